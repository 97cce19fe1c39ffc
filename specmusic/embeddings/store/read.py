"""Read any library by its path: ``.npz``, JSON Lines, ``-`` (JSON Lines on stdin), or a sharded folder."""

from __future__ import annotations

import os
import sys
from typing import IO

from specmusic.embeddings.store.library import EmbeddingLibrary, read_jsonl_library, read_npz_library
from specmusic.embeddings.store.shard_catalog import is_sharded, read_sharded
from specmusic.errors import InputError
from specmusic.fileio import display_path

__all__ = ["read_library"]


def read_library(path: str | os.PathLike[str], *, stdin: IO[str] | None = None) -> EmbeddingLibrary:
    """Read a library: ``.npz``, JSON Lines (``.jsonl``/``.json``), ``-`` (JSON Lines on stdin), or a
    sharded library folder (:mod:`specmusic.embeddings.store.shard_catalog`: ``library/``).

    Parameters
    ----------
    path : the library; ``-`` reads ``stdin`` (default: the process's)
    stdin : the stream ``-`` reads

    Raises
    ------
    InputError
        Missing or malformed file, newer format.
    """
    p = os.fspath(path)
    if p == "-":
        stream = stdin if stdin is not None else sys.stdin
        return read_jsonl_library(getattr(stream, "buffer", stream), "<stdin>")  # bytes: an encoding error is named
    if is_sharded(p):
        return read_sharded(p)
    if not os.path.exists(p):
        raise InputError(f"{display_path(p)}: no such library — check the path or create it with `specmusic embed`")
    if p.lower().endswith(".npz"):
        return read_npz_library(p)
    if p.lower().endswith((".jsonl", ".json", ".ndjson")):
        with open(p, "rb") as f:  # UTF-8, a byte-order mark allowed: specmusic.textfiles
            return read_jsonl_library(f, display_path(p))
    raise InputError(f"{display_path(p)}: unknown library format — use .npz, .jsonl, or .csv with --id/--columns")
