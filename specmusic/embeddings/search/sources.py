"""What ``recommend`` searches and with what: :func:`open_recommender` (a library file, JSON Lines on
stdin, a CSV of features or a sharded folder), :func:`read_queries` and :func:`query_embedder`
(``recommend -m``).

A source's format comes from ``source_format``, else from the path: a folder (or a path ending in
``/``) is a sharded library, ``.csv``/``.tsv`` a table, ``.npz`` a library, anything else (``-``
included) JSON Lines.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import IO

from specmusic.data import read_path_list
from specmusic.embeddings.description import ModelDescription
from specmusic.embeddings.embedders import Embedder, make_embedder
from specmusic.embeddings.search.memory import InMemoryRecommender
from specmusic.embeddings.search.recommender import Recommender
from specmusic.embeddings.search.sharded import ShardedRecommender
from specmusic.embeddings.search.tabular import read_tabular
from specmusic.embeddings.store.read import read_library
from specmusic.embeddings.store.shard_catalog import is_sharded
from specmusic.errors import InputError
from specmusic.fileio import display_path
from specmusic.index import IndexConfig
from specmusic.models.resolve import resolve_model

__all__ = ["BACKENDS", "SOURCE_FORMATS", "open_recommender", "query_embedder", "read_queries", "source_format_of"]

#: ``recommend --format``.
SOURCE_FORMATS = ("auto", "npz", "jsonl", "csv")
#: ``recommend --index``: exact numpy, an ANN index in memory (hnsw, faiss), or a sharded folder's FAISS index.
BACKENDS = ("auto", "exact", "hnsw", "faiss", "ivf", "ivfpq")
#: ``--index`` → what a sharded folder uses (None: an index held in memory, which a folder has not).
_SHARDED_ANN = {"auto": "auto", "exact": "exact", "faiss": "ivf", "ivf": "ivf", "ivfpq": "ivfpq"}
_NOTE = Callable[[str], None]


def read_queries(
    queries: Sequence[str] | None, queries_file: str | None, *, source: str, stdin: IO[str] | None = None
) -> list[str]:
    """``queries`` (``--query``), then the lines of ``queries_file`` (``--queries``: a file, or ``-``: stdin).

    Raises
    ------
    InputError
        No query at all; stdin asked to carry both the library (``source`` ``-``) and the queries; an
        unreadable file.
    """
    wanted = list(queries or [])
    if queries_file == "-" and source == "-":
        raise InputError("stdin cannot carry both the library and --queries — put one of them in a file")
    if queries_file == "-":
        wanted += read_path_list(stdin if stdin is not None else sys.stdin)
    elif queries_file is not None:
        try:  # a byte that is not UTF-8 reads as os.fsdecode gives it, so it matches the library's ids
            with open(queries_file, encoding="utf-8", errors="surrogateescape") as f:
                wanted += read_path_list(f)
        except OSError as exc:
            raise InputError(f"{display_path(queries_file)}: cannot read queries ({exc.strerror}) — check the path") from None
    if not wanted:
        raise InputError("no query — give --query ID_OR_AUDIO (repeatable) or --queries FILE ('-': stdin)")
    return wanted


def source_format_of(source: str, source_format: str = "auto") -> str:
    """``npz`` | ``jsonl`` | ``csv`` | ``sharded``: ``source_format``, else from the path (module docstring)."""
    if source_format != "auto":
        return source_format
    lower = source.lower()
    if source == "-":
        return "jsonl"
    if is_sharded(source):
        return "sharded"
    return "csv" if lower.endswith((".csv", ".tsv")) else "npz" if lower.endswith(".npz") else "jsonl"


def open_recommender(
    source: str,
    *,
    source_format: str = "auto",
    standardize: bool | None = None,
    backend: str = "auto",
    ann_threshold: int = 1_000_000,
    nprobe: int = 32,
    save_index: bool = True,
    id_column: str | None = None,
    columns: str | Sequence[str] | None = None,
    explain: bool = False,
    stdin: IO[str] | None = None,
    on_note: _NOTE | None = None,
) -> Recommender:
    """The recommender of ``source``: a library held in memory, a table, or a sharded folder searched part by part.

    Parameters
    ----------
    source : a library (``.npz``, ``.jsonl``), a sharded folder, a CSV/TSV of features, or ``-`` (stdin)
    source_format : one of :data:`SOURCE_FORMATS` (``auto``: :func:`source_format_of`)
    standardize : z-score each dimension first (default: CSV and MFCC yes, as the library's model asks)
    backend : one of :data:`BACKENDS`; ``ivf``/``ivfpq`` use (building it first) a sharded folder's FAISS
        index (``ivfpq`` for a folder only); ``faiss`` means ``ivf`` for a folder
    ann_threshold, nprobe : :class:`specmusic.index.IndexConfig`'s (``nprobe``: a folder's FAISS index too)
    save_index : keep a built ANN index beside the library file (in a sharded folder) for next time
    id_column, columns : a table's id column and feature columns (names, or one comma-separated string)
    explain : results will be explained: note when the library keeps no tags to name
    stdin : what ``-`` reads (default: the process's stdin)
    on_note : where ``note:`` lines go (left-out table columns, indexes, the learnt space)

    Raises
    ------
    InputError
        A source that is not there or not a library or table, ``ivfpq`` on a file, table options on a
        library, an empty library.
    ConfigError
        Bad index settings.
    """
    fmt = source_format_of(source, source_format)
    if backend == "ivfpq" and fmt != "sharded":
        raise InputError("--index ivfpq is for a sharded library (`embed -o library/`) — use --index faiss here")
    config = IndexConfig(
        backend="faiss" if backend in ("ivf", "ivfpq") else backend, ann_threshold=ann_threshold,
        faiss_nprobe=nprobe,  # a sharded library takes backend itself (ivf | ivfpq)
    )  # fmt: skip
    if fmt == "csv":
        return _table_recommender(source, id_column, columns, config, stdin, on_note)
    if id_column or columns:
        raise InputError("--id and --columns are for CSV sources — drop them or give a .csv")
    rec: Recommender
    if fmt == "sharded":
        ann = _SHARDED_ANN.get(backend)
        if ann is None:
            _note(on_note, f"note: --index {backend} needs the whole library in memory — a sharded library uses "
                           "--index ivf|ivfpq; searching exactly")  # fmt: skip
            ann = "exact"
        rec = ShardedRecommender(source, standardize=standardize, ann=ann, build=save_index, nprobe=nprobe, on_note=on_note)
    else:
        rec = InMemoryRecommender.from_library(
            read_library(source, stdin=stdin), standardize=standardize, index_config=config, on_note=on_note,
            index_cache=source if source != "-" and save_index else None,
        )  # fmt: skip
    if explain and not rec.has_tags:
        _note(on_note, "note: this library keeps no tags (MFCC, or embedded before tags were kept) — --explain names "
                       "shared tags for libraries embedded with a tagger (the default) or a model.onnx")  # fmt: skip
    return rec


def _note(on_note: _NOTE | None, line: str) -> None:
    if on_note is not None:
        on_note(line)


def _table_recommender(
    source: str, id_column: str | None, columns: str | Sequence[str] | None, config: IndexConfig,
    stdin: IO[str] | None, on_note: _NOTE | None,
) -> InMemoryRecommender:  # fmt: skip
    if isinstance(columns, str):
        columns = [c.strip() for c in columns.split(",") if c.strip()]
    table = read_tabular(source, id_column=id_column, columns=columns or None, stdin=stdin)
    if table.skipped:
        hint = "" if id_column else f" (--id {table.skipped[0]} names rows by it)"
        _note(on_note, f"note: left out id-like column(s) {', '.join(table.skipped)}{hint} — "
                       "name them in --columns to use them as features")  # fmt: skip
    if table.non_numeric:
        _note(on_note, f"note: left out column(s) holding text: {', '.join(table.non_numeric)}")
    return InMemoryRecommender.from_tabular(table, index_config=config, on_note=on_note)


def query_embedder(model: str, *, library: ModelDescription) -> Embedder:
    """The embedder ``recommend -m MODEL`` embeds audio queries with.

    A library of packed rows (adapt) maps queries through a space learnt from its own model's
    features: another model's would land in it unnoticed (same size), so only the library's own
    model is taken, and packed the same way.

    Raises
    ------
    InputError
        ``model`` is not the model that made a library of packed rows.
    ModelError, ConfigError
        ``model`` is missing or unusable.
    """
    if not library.adapt_groups:
        return make_embedder(model)
    plain = resolve_model(model).kind == "mfcc"
    embedder = None if plain else make_embedder(model, adapt=True)
    if embedder is None or not library.same_as(embedder.description):
        raise InputError(
            f"--model {model} is not the model that made the library ({library.label}) — leave out --model: "
            "queries are embedded with the library's own recipe"
        )
    return embedder
