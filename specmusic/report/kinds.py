"""Which specmusic output a path is, and the :class:`Report` every builder returns.

Detection looks only at names and the first record, never at the whole collection:

=========  ===============================================================================
kind       what PATH is
=========  ===============================================================================
spectro    a folder with ``manifest.jsonl`` whose records name ``.npz`` arrays
train      a run folder with ``metrics.json`` (and ``config.json`` / ``model.onnx``)
embed      a library (``.npz`` / ``.jsonl`` from ``embed``) or the ``.json`` of ``embed --map``
recommend  ``recommend --json`` output: JSON Lines of ``{"query", "neighbors"}``
nmf        a folder with ``nmf.npz`` and ``summary.json`` (or either file)
generate   a ``generate sample`` folder: ``.wav`` files, each with its ``.npy`` mel beside it
describe   ``describe --json`` output: ``{"kind": "specmusic-describe", ...}``
=========  ===============================================================================
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from specmusic.errors import InputError
from specmusic.fileio import display_path
from specmusic.specfile import MANIFEST_NAME

__all__ = ["KINDS", "Report", "detect_kind"]

#: kind → what PATH must be (the error for an unknown PATH lists these).
KINDS: dict[str, str] = {
    "spectro": "a spectro folder (manifest.jsonl + .npz)",
    "train": "a train run folder (metrics.json)",
    "embed": "an embed library (.npz/.jsonl) or its --map .json",
    "recommend": "recommend --json output (.jsonl)",
    "nmf": "an nmf output folder (nmf.npz + summary.json)",
    "generate": "a generate sample folder (.wav + .npy)",
    "describe": "describe --json output",
}


@dataclass
class Report:
    """What a builder found: the page-1 context (``head``) and the listed items, paged by the renderer.

    ``items`` are dicts the kind's template reads; every string in them is already printable
    (paths through :func:`specmusic.fileio.display_path`) and every URL already quoted.
    """

    kind: str
    title: str
    source: str
    head: dict[str, Any] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)
    item_name: str = "items"
    notes: list[str] = field(default_factory=list)


def _unknown(path: Path, why: str) -> InputError:
    listed = "; ".join(f"{k}: {v}" for k, v in KINDS.items())
    return InputError(f"{display_path(path)}: {why} — report reads one of: {listed}")


def _first_record(path: Path) -> Any:
    """The first JSON value of a file: its first non-empty line, else the whole file (pretty-printed JSON)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                if line.strip():
                    try:
                        return json.loads(line)
                    except json.JSONDecodeError:
                        break
            f.seek(0)
            return json.loads(f.read())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def _json_kind(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    if record.get("kind") == "specmusic-describe":
        return "describe"
    if "query" in record and "neighbors" in record:
        return "recommend"
    if "points" in record and "clusters" in record:
        return "embed"
    if "vector" in record or ("format_version" in record and "model" in record):
        return "embed"
    if "track_pooling" in record and "labels" in record:
        return "train"
    if "file_notes" in record or "parts_sum_rms_error" in record:
        return "nmf"
    return None


def _folder_kind(path: Path) -> str | None:
    if (path / "metrics.json").is_file() and ((path / "config.json").is_file() or (path / "model.onnx").is_file()):
        return "train"
    if (path / "nmf.npz").is_file() and (path / "summary.json").is_file():
        return "nmf"
    manifest = path / MANIFEST_NAME
    if manifest.is_file():
        record = _first_record(manifest)
        if isinstance(record, dict) and str(record.get("path", "")).endswith(".npz"):
            return "spectro"
    with os.scandir(path) as entries:
        names = {e.name for e in entries if e.is_file()}
    if any(n.endswith(".wav") and n[:-4] + ".npy" in names for n in names):
        return "generate"
    return None


def detect_kind(path: str | os.PathLike[str]) -> str:
    """The kind of specmusic output at ``path`` (a key of :data:`KINDS`).

    Raises
    ------
    InputError
        ``path`` does not exist, or is none of the kinds (the message lists them).
    """
    p = Path(path)
    if p.is_dir():
        kind = _folder_kind(p)
        if kind is None:
            raise _unknown(p, "a folder holding no output report knows")
        return kind
    if not p.is_file():
        raise InputError(f"{display_path(p)}: no such file or folder — check the path")
    if p.suffix.lower() == ".npz":
        import numpy as np

        try:
            with np.load(p, allow_pickle=False) as z:
                names = set(z.files)
        except (OSError, ValueError, EOFError):
            raise _unknown(p, "not a readable .npz") from None
        if {"W", "H"} <= names:
            return "nmf"
        if {"vectors", "ids"} <= names:
            return "embed"
        raise _unknown(p, "an .npz that is neither a library nor nmf.npz")
    kind = _json_kind(_first_record(p))
    if kind is None:
        raise _unknown(p, "not a specmusic output report knows")
    return kind
