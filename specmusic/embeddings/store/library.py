"""The embedding library format: one L2-normalised vector per track, as ``.npz`` or JSON Lines.

A library ``.npz`` holds named arrays (read with ``allow_pickle=False``)::

    vectors         float32 [n, d]   L2-normalised rows
    ids             str [n]          the track paths
    labels, groups  str [n]          "" where unknown
    source_size     int64 [n]        bytes of the audio when embedded  } to re-embed only
    source_mtime    float64 [n]      its modification time             } new/changed files
    tags            str [n, t]       the model's top labels per track, best first ("" padding)  } only when
    tag_scores      float32 [n, t]   their probabilities (nan padding)                        } a model tagged
    warning_rows    int64 [m]        rows whose audio was flagged (silence, mis-scaled, shorter  } only when
    warnings        str [m]          than a window): their warning lines, joined by newlines    } one was flagged
    meta_<field>    [n]              each track's tags (artist, album, title, …; ``meta_source``  } only when
                                     "" where none were read): :mod:`specmusic.metadata`        } tags were read
    format_version  int              LIBRARY_FORMAT_VERSION
    model           str (JSON)       what made the vectors: kind, path, sha256, feature config, dim

JSON Lines (for pipes) is one header line ``{"format_version": 1, "model": {...}}`` and then one
record a line ``{"id": ..., "label": ..., "group": ...[, "tags": {"rock": 0.62, ...}], "warnings": [...]
[, "metadata": {"artist": ..., "title": ..., "source": "tags"}], "vector": [...]}``; readers accept files
without the header (then the model is unknown). ``tags``, ``warnings`` and ``metadata`` are optional in
both formats (older readers ignore them; a library without them reads its tracks' tags on demand), so
they need no new format version. An id is the track's path as the OS decodes it: a byte that is not UTF-8 is a lone surrogate,
written ``\\udcNN`` in JSON (``os.fsencode(id)`` gives back the file name's bytes).

Readers refuse what cannot be a library: vectors that are not one row per id ([n, d]), an id listed
twice, arrays that hold Python objects (never unpickled). ``model`` is read and written by
:class:`~specmusic.embeddings.description.ModelDescription`. :func:`read_npz_library` and
:func:`read_jsonl_library` read one file or stream; :func:`specmusic.embeddings.store.read.read_library`
picks the reader (a sharded folder included) from the path.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from specmusic.embeddings.description import ModelDescription
from specmusic.embeddings.records import Tags, TrackRow
from specmusic.errors import InputError
from specmusic.fileio import PICKLE_REASON, atomic_write, display_path, json_line, numpy_load_reason, save_npz_atomic
from specmusic.metadata import TrackMetadata, metadata_columns, metadata_from_columns
from specmusic.textfiles import json_records

__all__ = [
    "LIBRARY_FORMAT_VERSION",
    "EmbeddingLibrary",
    "concat_libraries",
    "JsonlLibraryStream",
    "header_line",
    "read_jsonl_library",
    "read_npz_library",
    "record_line",
    "save_library",
    "track_record",
    "write_library_jsonl",
    "write_library_jsonl_file",
]

LIBRARY_FORMAT_VERSION = 1


@dataclass
class EmbeddingLibrary:
    """Vectors and what they describe (row ``i`` of each field is one track)."""

    vectors: np.ndarray  # float32 [n, d], L2-normalised
    ids: list[str]
    labels: list[str | None]
    groups: list[str | None]
    model: ModelDescription = field(default_factory=ModelDescription)
    source_size: np.ndarray | None = None  # int64 [n], -1 unknown
    source_mtime: np.ndarray | None = None  # float64 [n], nan unknown
    tags: list[Tags | None] | None = None  # None: the model gave no tags for that track
    warnings: list[list[str]] | None = None  # per track: why its vector may be meaningless ([] none)
    metadata: list[TrackMetadata | None] | None = None  # per track: its tags (None: not read)

    def __post_init__(self) -> None:
        n = len(self.ids)
        if n:
            vectors = np.asarray(self.vectors, dtype=np.float32)
            if vectors.ndim != 2 or vectors.shape[0] != n:
                raise InputError(
                    f"library vectors have shape {vectors.shape} for {n} ids, not one row per id — "
                    "the file is corrupt; recreate it with `specmusic embed`"
                )
            self.vectors = vectors
        else:
            self.vectors = np.zeros((0, int(self.model.dim or 0)), np.float32)
        if self.source_size is None:
            self.source_size = np.full(n, -1, np.int64)
        if self.source_mtime is None:
            self.source_mtime = np.full(n, np.nan, np.float64)
        if self.tags is None:
            self.tags = [None] * n
        if self.warnings is None:
            self.warnings = [[] for _ in range(n)]
        if self.metadata is None:
            self.metadata = [None] * n
        lengths = {
            len(self.labels), len(self.groups), n, len(self.source_size), len(self.source_mtime), len(self.tags),
            len(self.warnings), len(self.metadata),
        }  # fmt: skip
        if len(lengths) != 1:
            raise InputError("library fields have different lengths — the file is corrupt; re-embed")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self.vectors.shape[1]) if self.vectors.ndim == 2 else 0

    @property
    def has_metadata(self) -> bool:
        """Whether the library keeps its tracks' tags (libraries embedded before tags were kept do not)."""
        return any(m is not None for m in self.metadata or [])

    def subset(self, rows: Sequence[int] | np.ndarray) -> EmbeddingLibrary:
        """The library restricted to ``rows``."""
        rows = np.asarray(rows, dtype=np.int64)
        assert self.tags is not None and self.warnings is not None and self.metadata is not None
        return EmbeddingLibrary(
            self.vectors[rows],
            [self.ids[i] for i in rows],
            [self.labels[i] for i in rows],
            [self.groups[i] for i in rows],
            self.model.copy(),
            self.source_size[rows],
            self.source_mtime[rows],
            [self.tags[i] for i in rows],
            [self.warnings[i] for i in rows],
            [self.metadata[i] for i in rows],
        )

    def record(self, i: int) -> dict[str, Any]:
        """Row ``i`` as a JSON Lines record, without its vector (see the module docstring)."""
        assert self.tags is not None and self.warnings is not None and self.metadata is not None
        return track_record(
            self.ids[i], self.labels[i], self.groups[i], int(self.source_size[i]), float(self.source_mtime[i]),
            self.tags[i], self.warnings[i], self.metadata[i],
        )  # fmt: skip

    def track(self, i: int) -> TrackRow:
        """Row ``i`` as a search result shows it (:class:`~specmusic.embeddings.records.TrackRow`)."""
        assert self.tags is not None and self.warnings is not None and self.metadata is not None
        return TrackRow(self.ids[i], self.labels[i], self.groups[i], self.tags[i], list(self.warnings[i]), self.metadata[i])


def track_record(
    id_: str, label: str | None, group: str | None, size: int, mtime: float, tags: Tags | None, warnings: list[str],
    metadata: TrackMetadata | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A JSON Lines library record without its vector: id, label, group[, source_size, source_mtime][, tags],
    warnings[, metadata]."""
    rec: dict[str, Any] = {"id": id_, "label": label, "group": group}
    if size >= 0:
        rec["source_size"], rec["source_mtime"] = int(size), float(mtime)
    if tags:
        rec["tags"] = tags
    rec["warnings"] = list(warnings)
    if metadata is not None:
        rec["metadata"] = metadata.to_dict()
    return rec


# -- writing --------------------------------------------------------------------------------
def _text_array(values: Sequence[str | None]) -> np.ndarray:
    return np.array([v if v is not None else "" for v in values], dtype=np.str_).reshape(len(values))


def _tag_arrays(tags: Sequence[Tags | None]) -> dict[str, np.ndarray]:
    """``tags`` [n, t] and ``tag_scores`` [n, t], or nothing when no track has tags."""
    width = max((len(t) for t in tags if t), default=0)
    if not width:
        return {}
    names = np.full((len(tags), width), "", dtype=object)
    scores = np.full((len(tags), width), np.nan, np.float32)
    for i, t in enumerate(tags):
        for j, (name, score) in enumerate((t or {}).items()):
            names[i, j], scores[i, j] = name, score
    return {"tags": names.astype(np.str_), "tag_scores": scores}


def _warning_arrays(warnings: Sequence[list[str]]) -> dict[str, np.ndarray]:
    """``warning_rows`` [m] and ``warnings`` [m] for the flagged rows only (fixed-width text stays small)."""
    rows = [i for i, w in enumerate(warnings) if w]
    if not rows:
        return {}
    return {"warning_rows": np.asarray(rows, np.int64), "warnings": _text_array(["\n".join(warnings[i]) for i in rows])}


def save_library(library: EmbeddingLibrary, path: str | os.PathLike[str]) -> None:
    """Write ``library`` as ``.npz`` (temporary file + rename)."""
    ids = [os.fsencode(i).decode("utf-8", "surrogateescape") for i in library.ids]
    arrays = {
        "vectors": library.vectors.astype(np.float32, copy=False),
        "ids": _text_array(ids),
        "labels": _text_array(library.labels),
        "groups": _text_array(library.groups),
        "source_size": np.asarray(library.source_size, np.int64),
        "source_mtime": np.asarray(library.source_mtime, np.float64),
        **_tag_arrays(library.tags or []),
        **_warning_arrays(library.warnings or []),
        **metadata_columns(library.metadata or []),
        "format_version": np.array(LIBRARY_FORMAT_VERSION),
        "model": np.array(json.dumps(library.model.to_dict(), sort_keys=True)),
    }
    save_npz_atomic(path, arrays)


def _fmt_vector(v: np.ndarray, digits: int = 7) -> str:
    return "[" + ",".join(f"{x:.{digits}g}" for x in v.tolist()) + "]"


def header_line(model: ModelDescription) -> str:
    """The first line of a JSON Lines library: format version and model."""
    return json_line({"format_version": LIBRARY_FORMAT_VERSION, "model": model.to_dict()}, sort_keys=True)


def record_line(record: dict[str, Any], vector: np.ndarray, *, digits: int = 7) -> str:
    """One JSON Lines library record: ``record`` (:meth:`EmbeddingLibrary.record`) plus ``"vector"``.

    ``digits``: significant digits per component (9 round-trips float32 exactly).
    """
    head = json_line(record)[:-2]  # without "}\n"
    return head + ', "vector": ' + _fmt_vector(np.asarray(vector).reshape(-1), digits) + "}\n"


def write_library_jsonl(library: EmbeddingLibrary, stream: IO[str]) -> None:
    """Write ``library`` as JSON Lines: a header line, then one record a track."""
    stream.write(header_line(library.model))
    for i in range(len(library)):
        stream.write(record_line(library.record(i), library.vectors[i]))


class JsonlLibraryStream:
    """A JSON Lines library written record by record as tracks finish (``embed`` to stdout).

    The header goes out before the first record (the model's ``dim`` is known by then), or at
    :meth:`finish` when there are no records; every line is flushed at once, so a reader (or an
    interrupted run) sees whole records only.
    """

    def __init__(self, stream: IO[str], model: ModelDescription) -> None:
        self.stream, self.model, self.started = stream, model, False

    def add(self, record: dict[str, Any], vector: np.ndarray) -> None:
        """Write one record (:func:`track_record`) with its vector."""
        if not self.started:
            self.stream.write(header_line(self.model.with_dim(int(np.asarray(vector).size))))
            self.started = True
        self.stream.write(record_line(record, vector))
        self.stream.flush()

    def finish(self, model: ModelDescription) -> None:
        """End the stream (a header alone when nothing was written)."""
        if not self.started:
            self.stream.write(header_line(model))
            self.started = True
        self.stream.flush()


def write_library_jsonl_file(library: EmbeddingLibrary, path: str | os.PathLike[str]) -> None:
    """Write ``library`` as a JSON Lines file (temporary file + rename)."""
    atomic_write(path, lambda f: write_library_jsonl(library, f), "w")


# -- reading --------------------------------------------------------------------------------
def _tags_from_arrays(names: np.ndarray, scores: np.ndarray) -> list[Tags | None]:
    out: list[Tags | None] = []
    for row_names, row_scores in zip(names, scores):
        t = {str(n): round(float(s), 4) for n, s in zip(row_names, row_scores) if str(n)}
        out.append(t or None)
    return out


def _warnings_from_arrays(n: int, rows: np.ndarray, texts: np.ndarray) -> list[list[str]]:
    out: list[list[str]] = [[] for _ in range(n)]
    for i, text in zip(np.asarray(rows, np.int64).reshape(-1), np.asarray(texts).reshape(-1)):
        if not 0 <= i < n:
            raise InputError(f"warning row {i} is outside the library's {n} rows — the file is corrupt; re-embed")
        out[int(i)] = [line for line in str(text).split("\n") if line]
    return out


def _check_unique(ids: Sequence[str], name: str) -> None:
    seen: set[str] = set()
    for id_ in ids:
        if id_ in seen:
            raise InputError(
                f"{name}: lists {display_path(id_)} twice — one record per track; recreate it with `specmusic embed`"
            )
        seen.add(id_)


def read_npz_library(path: str | os.PathLike[str] | IO[bytes], *, name: str | None = None) -> EmbeddingLibrary:
    """Read an ``.npz`` library from a path or an open binary file (then ``name`` names it in errors).

    Raises
    ------
    InputError
        Not a library, unreadable, corrupt, a newer format, or arrays of Python objects (never unpickled).
    """
    name = name if name is not None else display_path(path)  # type: ignore[arg-type]
    try:
        with np.load(path, allow_pickle=False) as z:
            if "vectors" not in z.files or "ids" not in z.files:
                raise InputError(f"{name}: not an embedding library (no vectors/ids) — create one with `specmusic embed`")
            if z["vectors"].ndim != 2 or z["ids"].ndim != 1 or len(z["vectors"]) != len(z["ids"]):
                raise InputError(
                    f"{name}: {z['vectors'].shape} vectors for {z['ids'].shape} ids, not one row [n, d] per id — "
                    "the file is corrupt or not a library; recreate it with `specmusic embed`"
                )
            version = int(z["format_version"]) if "format_version" in z.files else 1
            if version > LIBRARY_FORMAT_VERSION:
                raise InputError(f"{name}: library format {version} is newer than this specmusic — upgrade")
            ids = [str(s) for s in z["ids"]]
            n = len(ids)
            _check_unique(ids, name)

            def text(key: str) -> list[str | None]:
                return [str(s) or None for s in z[key]] if key in z.files else [None] * n

            has_tags = "tags" in z.files and "tag_scores" in z.files
            has_warnings = "warning_rows" in z.files and "warnings" in z.files
            metadata = metadata_from_columns(lambda key: z[key] if key in z.files else None, n)
            return EmbeddingLibrary(
                z["vectors"].astype(np.float32, copy=False),
                ids,
                text("labels"),
                text("groups"),
                ModelDescription.from_dict(json.loads(str(z["model"])) if "model" in z.files else None),
                z["source_size"].astype(np.int64) if "source_size" in z.files else None,
                z["source_mtime"].astype(np.float64) if "source_mtime" in z.files else None,
                _tags_from_arrays(z["tags"], z["tag_scores"]) if has_tags else None,
                _warnings_from_arrays(n, z["warning_rows"], z["warnings"]) if has_warnings else None,
                metadata,
            )
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        reason = numpy_load_reason(exc, path if isinstance(path, (str, os.PathLike)) else None)  # never unpickle
        if reason == PICKLE_REASON:
            raise InputError(f"{name}: {reason} — recreate it with `specmusic embed`") from None
        raise InputError(f"{name}: cannot read the library ({reason}) — recreate it with `specmusic embed`") from None


def _record_tags(rec: dict[str, Any], where: str) -> Tags | None:
    tags = rec.get("tags")
    if tags in (None, {}):
        return None
    if not isinstance(tags, dict) or not all(isinstance(v, (int, float)) for v in tags.values()):
        raise InputError(f"{where}: \"tags\" must map tag names to probabilities — fix the record or drop the field")
    return {str(k): float(v) for k, v in tags.items()}


def _record_metadata(rec: dict[str, Any], where: str) -> TrackMetadata | None:
    metadata = rec.get("metadata")
    if metadata in (None, {}):
        return None
    try:
        if not isinstance(metadata, dict):
            raise ValueError
        return TrackMetadata.from_dict(metadata)
    except (TypeError, ValueError):
        raise InputError(f"{where}: \"metadata\" must map fields (artist, title, year, …) to values — fix the record or "
                         "drop the field") from None  # fmt: skip


def _record_warnings(rec: dict[str, Any], where: str) -> list[str]:
    warnings = rec.get("warnings")
    if warnings in (None, []):
        return []
    if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
        raise InputError(f"{where}: \"warnings\" must be a list of text lines — fix the record or drop the field")
    return list(warnings)


class _JsonlColumns:
    """The fields of a JSON Lines library as they are read, one record at a time."""

    def __init__(self) -> None:
        self.model = ModelDescription()
        self.ids: list[str] = []
        self.labels: list[str | None] = []
        self.groups: list[str | None] = []
        self.vectors: list[list[float]] = []
        self.sizes: list[int] = []
        self.mtimes: list[float] = []
        self.tags: list[Tags | None] = []
        self.warnings: list[list[str]] = []
        self.metadata: list[TrackMetadata | None] = []

    def add(self, rec: dict[str, Any], name: str, lineno: int) -> None:
        vec = rec["vector"]
        if not isinstance(vec, list) or not vec:
            raise InputError(f"{name}:{lineno}: \"vector\" must be a non-empty list of numbers")
        if self.vectors and len(vec) != len(self.vectors[0]):
            raise InputError(
                f"{name}:{lineno}: vector has {len(vec)} dimensions, earlier ones {len(self.vectors[0])} — "
                "mix no libraries from different models"
            )
        self.ids.append(str(rec.get("id", f"{lineno}")))
        self.labels.append(None if rec.get("label") in (None, "") else str(rec["label"]))
        self.groups.append(None if rec.get("group") in (None, "") else str(rec["group"]))
        self.vectors.append([math.nan if x is None else x for x in vec])
        self.sizes.append(int(rec.get("source_size", -1)))
        self.mtimes.append(float(rec.get("source_mtime", math.nan)))
        self.tags.append(_record_tags(rec, f"{name}:{lineno}"))
        self.warnings.append(_record_warnings(rec, f"{name}:{lineno}"))
        self.metadata.append(_record_metadata(rec, f"{name}:{lineno}"))

    def library(self, name: str) -> EmbeddingLibrary:
        try:
            arr = np.asarray(self.vectors, dtype=np.float32)
        except (TypeError, ValueError):
            raise InputError(f"{name}: a \"vector\" holds something that is not a number — fix the records") from None
        if arr.ndim != 2 and len(self.ids):
            raise InputError(f"{name}: vectors must be flat lists of numbers — fix the records")
        return EmbeddingLibrary(
            arr, self.ids, self.labels, self.groups, self.model,
            np.asarray(self.sizes, np.int64), np.asarray(self.mtimes, np.float64), self.tags, self.warnings,
            self.metadata,
        )  # fmt: skip


def read_jsonl_library(lines: Iterable[str | bytes], name: str, *, unique: bool = True) -> EmbeddingLibrary:
    """Read a JSON Lines library from its lines (``name`` names it in errors): UTF-8 text or bytes, with or
    without a byte-order mark (:func:`specmusic.textfiles.json_records`).

    ``unique=False`` lets an id appear twice (a journal: the caller keeps the last record).

    Raises
    ------
    InputError
        A line that is not UTF-8, not JSON (or nested too deeply to read), not a JSON object, a record without a vector, vectors of different sizes, an id
        listed twice (with ``unique``), a newer format.
    """
    columns = _JsonlColumns()
    fix = "give embeddings as JSON Lines (`specmusic embed --format jsonl`)"
    for lineno, rec in json_records(lines, name=name, fix=fix, invalid="not JSON"):
        if not isinstance(rec, dict):
            raise InputError(f"{name}:{lineno}: expected a JSON object — one record a line")
        if "vector" in rec:
            columns.add(rec, name, lineno)
        elif "model" in rec and not columns.ids:
            if int(rec.get("format_version", 1)) > LIBRARY_FORMAT_VERSION:
                raise InputError(f"{name}: library format is newer than this specmusic — upgrade")
            columns.model = ModelDescription.from_dict(rec["model"] or None)
        else:
            raise InputError(f"{name}:{lineno}: record has no \"vector\" — each line needs id and vector")
    if unique:
        _check_unique(columns.ids, name)
    return columns.library(name)


def concat_libraries(parts: Sequence[EmbeddingLibrary], model: ModelDescription) -> EmbeddingLibrary:
    """Libraries one after the other (the rows of each, in order) under ``model``."""
    if not parts:
        return EmbeddingLibrary(np.zeros((0, int(model.dim or 0)), np.float32), [], [], [], model.copy())

    def cat(attr: str) -> list[Any]:
        return [x for lib in parts for x in getattr(lib, attr)]

    return EmbeddingLibrary(
        np.concatenate([lib.vectors for lib in parts]), cat("ids"), cat("labels"), cat("groups"), model.copy(),
        np.concatenate([lib.source_size for lib in parts]), np.concatenate([lib.source_mtime for lib in parts]),
        cat("tags"), cat("warnings"), cat("metadata"),
    )  # fmt: skip
