"""Embedding libraries: one L2-normalised vector per track, stored as ``.npz`` or JSON Lines.

A library ``.npz`` holds named arrays (read with ``allow_pickle=False``)::

    vectors         float32 [n, d]   L2-normalised rows
    ids             str [n]          the track paths
    labels, groups  str [n]          "" where unknown
    source_size     int64 [n]        bytes of the audio when embedded  } to re-embed only
    source_mtime    float64 [n]      its modification time             } new/changed files
    format_version  int              LIBRARY_FORMAT_VERSION
    model           str (JSON)       what made the vectors: kind, path, sha256, feature config, dim

JSON Lines (for pipes) is one header line ``{"format_version": 1, "model": {...}}`` and then one
record a line ``{"id": ..., "vector": [...], "label": ..., "group": ...}``; readers accept files
without the header (then the model is unknown).

Embedding sources (:func:`make_embedder`):

* ``"mfcc"``: mean and standard deviation over time of 20 MFCCs (numpy only, no model); the
  library records ``"standardize": true`` so that ``recommend`` z-scores its columns first.
* a ``model.onnx`` path (specmusic model contract): the track's pooled ``embedding`` output, via
  :mod:`specmusic.inference`.
* ``None``: the default pretrained tagger (:func:`specmusic.pretrained.ensure_default_model`).
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from specmusic.data import Track
from specmusic.errors import ConfigError, InputError, ModelError, SpecmusicError
from specmusic.features import FeatureConfig
from specmusic.fileio import display_path, sha256_file
from specmusic.index import l2_normalize

__all__ = [
    "LIBRARY_FORMAT_VERSION",
    "LAYERS",
    "DEFAULT_LAYER",
    "EmbeddingLibrary",
    "EmbedReport",
    "Embedder",
    "MfccEmbedder",
    "OnnxEmbedder",
    "TabularSource",
    "make_embedder",
    "embedder_from_description",
    "embed_tracks",
    "mfcc_statistics",
    "read_library",
    "save_library",
    "write_library_jsonl",
    "write_library_jsonl_file",
    "read_tabular",
    "same_model",
    "search_vectors",
    "Recommender",
]

LIBRARY_FORMAT_VERSION = 1


# -- the library ----------------------------------------------------------------------------
@dataclass
class EmbeddingLibrary:
    """Vectors and what they describe (row ``i`` of each field is one track)."""

    vectors: np.ndarray  # float32 [n, d], L2-normalised
    ids: list[str]
    labels: list[str | None]
    groups: list[str | None]
    model: dict[str, Any] = field(default_factory=dict)
    source_size: np.ndarray | None = None  # int64 [n], -1 unknown
    source_mtime: np.ndarray | None = None  # float64 [n], nan unknown

    def __post_init__(self) -> None:
        n = len(self.ids)
        self.vectors = np.asarray(self.vectors, dtype=np.float32).reshape(n, -1) if n else np.zeros(
            (0, int(self.model.get("dim") or 0)), np.float32
        )
        if self.source_size is None:
            self.source_size = np.full(n, -1, np.int64)
        if self.source_mtime is None:
            self.source_mtime = np.full(n, np.nan, np.float64)
        if not (len(self.labels) == len(self.groups) == n == len(self.source_size) == len(self.source_mtime)):
            raise InputError("library fields have different lengths — the file is corrupt; re-embed")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self.vectors.shape[1]) if self.vectors.ndim == 2 else 0

    def subset(self, rows: Sequence[int] | np.ndarray) -> EmbeddingLibrary:
        """The library restricted to ``rows``."""
        rows = np.asarray(rows, dtype=np.int64)
        return EmbeddingLibrary(
            self.vectors[rows],
            [self.ids[i] for i in rows],
            [self.labels[i] for i in rows],
            [self.groups[i] for i in rows],
            dict(self.model),
            self.source_size[rows],
            self.source_mtime[rows],
        )


def _text_array(values: Sequence[str | None]) -> np.ndarray:
    return np.array([v if v is not None else "" for v in values], dtype=np.str_).reshape(len(values))


def _atomic_write(path: Path, write: Callable[[IO[bytes]], None], mode: str = "wb") -> None:
    """Temporary file + rename (``specmusic.fileio.atomic_write``)."""
    from specmusic.fileio import atomic_write

    atomic_write(path, write, mode)


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
        "format_version": np.array(LIBRARY_FORMAT_VERSION),
        "model": np.array(json.dumps(library.model, sort_keys=True)),
    }
    _atomic_write(Path(path), lambda f: np.savez(f, **arrays))


def _fmt_vector(v: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in v.tolist()) + "]"


def write_library_jsonl(library: EmbeddingLibrary, stream: IO[str]) -> None:
    """Write ``library`` as JSON Lines: a header line, then one record a track."""
    stream.write(json.dumps({"format_version": LIBRARY_FORMAT_VERSION, "model": library.model}, sort_keys=True) + "\n")
    for i, id_ in enumerate(library.ids):
        rec: dict[str, Any] = {"id": id_, "label": library.labels[i], "group": library.groups[i]}
        if library.source_size[i] >= 0:
            rec["source_size"] = int(library.source_size[i])
            rec["source_mtime"] = float(library.source_mtime[i])
        head = json.dumps(rec)
        stream.write(head[:-1] + ', "vector": ' + _fmt_vector(library.vectors[i]) + "}\n")


def write_library_jsonl_file(library: EmbeddingLibrary, path: str | os.PathLike[str]) -> None:
    """Write ``library`` as a JSON Lines file (temporary file + rename)."""
    _atomic_write(Path(path), lambda f: write_library_jsonl(library, f), "w")


def _library_from_npz(path: str | os.PathLike[str]) -> EmbeddingLibrary:
    name = display_path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if "vectors" not in z.files or "ids" not in z.files:
                raise InputError(f"{name}: not an embedding library (no vectors/ids) — create one with `specmusic embed`")
            version = int(z["format_version"]) if "format_version" in z.files else 1
            if version > LIBRARY_FORMAT_VERSION:
                raise InputError(f"{name}: library format {version} is newer than this specmusic — upgrade")
            ids = [str(s) for s in z["ids"]]
            n = len(ids)

            def text(key: str) -> list[str | None]:
                return [str(s) or None for s in z[key]] if key in z.files else [None] * n

            return EmbeddingLibrary(
                z["vectors"].astype(np.float32, copy=False),
                ids,
                text("labels"),
                text("groups"),
                json.loads(str(z["model"])) if "model" in z.files else {},
                z["source_size"].astype(np.int64) if "source_size" in z.files else None,
                z["source_mtime"].astype(np.float64) if "source_mtime" in z.files else None,
            )
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise InputError(f"{name}: cannot read the library ({exc}) — recreate it with `specmusic embed`") from None


def _library_from_jsonl(lines: Iterable[str], name: str) -> EmbeddingLibrary:
    model: dict[str, Any] = {}
    ids: list[str] = []
    labels: list[str | None] = []
    groups: list[str | None] = []
    vectors: list[list[float]] = []
    sizes: list[int] = []
    mtimes: list[float] = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise InputError(f"{name}:{lineno}: not JSON — give embeddings as JSON Lines (`specmusic embed --format jsonl`)") from None
        if not isinstance(rec, dict):
            raise InputError(f"{name}:{lineno}: expected a JSON object — one record a line")
        if "vector" not in rec:
            if "model" in rec and not ids:
                if int(rec.get("format_version", 1)) > LIBRARY_FORMAT_VERSION:
                    raise InputError(f"{name}: library format is newer than this specmusic — upgrade")
                model = rec["model"] or {}
                continue
            raise InputError(f"{name}:{lineno}: record has no \"vector\" — each line needs id and vector")
        vec = rec["vector"]
        if not isinstance(vec, list) or not vec:
            raise InputError(f"{name}:{lineno}: \"vector\" must be a non-empty list of numbers")
        if vectors and len(vec) != len(vectors[0]):
            raise InputError(
                f"{name}:{lineno}: vector has {len(vec)} dimensions, earlier ones {len(vectors[0])} — "
                "mix no libraries from different models"
            )
        ids.append(str(rec.get("id", f"{lineno}")))
        labels.append(None if rec.get("label") in (None, "") else str(rec["label"]))
        groups.append(None if rec.get("group") in (None, "") else str(rec["group"]))
        vectors.append([math.nan if x is None else x for x in vec])
        sizes.append(int(rec.get("source_size", -1)))
        mtimes.append(float(rec.get("source_mtime", math.nan)))
    try:
        arr = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError):
        raise InputError(f"{name}: a \"vector\" holds something that is not a number — fix the records") from None
    if arr.ndim != 2 and len(ids):
        raise InputError(f"{name}: vectors must be flat lists of numbers — fix the records")
    return EmbeddingLibrary(arr, ids, labels, groups, model, np.asarray(sizes, np.int64), np.asarray(mtimes, np.float64))


def read_library(path: str | os.PathLike[str], *, stdin: IO[str] | None = None) -> EmbeddingLibrary:
    """Read a library: ``.npz``, JSON Lines (``.jsonl``/``.json``), or ``-`` (JSON Lines on stdin).

    Raises
    ------
    InputError
        Missing or malformed file, newer format.
    """
    p = os.fspath(path)
    if p == "-":
        return _library_from_jsonl(stdin if stdin is not None else sys.stdin, "<stdin>")
    if not os.path.exists(p):
        raise InputError(f"{display_path(p)}: no such library — check the path or create it with `specmusic embed`")
    if p.lower().endswith(".npz"):
        return _library_from_npz(p)
    if p.lower().endswith((".jsonl", ".json", ".ndjson")):
        with open(p, encoding="utf-8") as f:
            return _library_from_jsonl(f, display_path(p))
    raise InputError(f"{display_path(p)}: unknown library format — use .npz, .jsonl, or .csv with --id/--columns")


# -- tabular sources ------------------------------------------------------------------------
@dataclass
class TabularSource:
    """Rows of a CSV file as vectors (raw, unscaled)."""

    ids: list[str]
    columns: list[str]
    values: np.ndarray  # float64 [n, len(columns)]
    rows: list[dict[str, str]]


def read_tabular(
    path: str | os.PathLike[str],
    *,
    id_column: str | None = None,
    columns: Sequence[str] | None = None,
    stdin: IO[str] | None = None,
) -> TabularSource:
    """Read numeric columns of a CSV as one vector a row.

    Parameters
    ----------
    path : CSV file, or ``-`` for stdin
    id_column : column naming each row (default: the row number, from 0)
    columns : numeric columns to use (default: every column whose values all parse as numbers)

    Raises
    ------
    InputError
        Missing columns, a non-numeric or empty cell, no rows.
    """
    p = os.fspath(path)
    name = "<stdin>" if p == "-" else display_path(p)
    try:
        f = (stdin or sys.stdin) if p == "-" else open(p, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"{name}: cannot open ({exc.strerror}) — check the path") from None
    with f if p != "-" else _nullcontext(f):
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    if not header or not rows:
        raise InputError(f"{name}: no rows — give a CSV with a header line and one row per track")
    if id_column is not None and id_column not in header:
        raise InputError(f"{name}: no column {id_column!r} — columns are {', '.join(header)}")
    if columns:
        missing = [c for c in columns if c not in header]
        if missing:
            raise InputError(f"{name}: no column(s) {', '.join(missing)} — columns are {', '.join(header)}")
        cols = list(columns)
    else:
        cols = [c for c in header if c != id_column and all(_is_number(r.get(c)) for r in rows)]
        if not cols:
            raise InputError(f"{name}: no all-numeric columns — name them with --columns")
    values = np.empty((len(rows), len(cols)), np.float64)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            cell = r.get(c)
            try:
                values[i, j] = float(cell)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise InputError(
                    f"{name}: row {i + 2} column {c!r} is {cell!r}, not a number — fix the cell or leave the column out"
                ) from None
            if not math.isfinite(values[i, j]):
                raise InputError(f"{name}: row {i + 2} column {c!r} is {cell!r} (NaN vector) — fix or drop that row")
    ids = [r[id_column] for r in rows] if id_column else [str(i) for i in range(len(rows))]
    return TabularSource(ids, cols, values, rows)


class _nullcontext:
    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __enter__(self) -> Any:
        return self.obj

    def __exit__(self, *exc: Any) -> None:
        return None


def _is_number(s: str | None) -> bool:
    try:
        return s is not None and math.isfinite(float(s))
    except ValueError:
        return False


# -- embedders ------------------------------------------------------------------------------
def mfcc_statistics(features: np.ndarray) -> np.ndarray:
    """Mean and standard deviation over time of each MFCC.

    Parameters
    ----------
    features : np.ndarray [shape=(n_mfcc, n_frames)]

    Returns
    -------
    np.ndarray [shape=(2 * n_mfcc,)], float32, not normalised
    """
    f = np.asarray(features, dtype=np.float64)
    return np.concatenate([f.mean(axis=1), f.std(axis=1)]).astype(np.float32)


class Embedder:
    """Turns one audio file into one vector; ``description`` goes into the library's ``model``."""

    description: dict[str, Any]

    def embed_file(self, path: str) -> np.ndarray:  # pragma: no cover - interface
        """Return the track's vector [shape=(dim,)], not necessarily normalised."""
        raise NotImplementedError


class MfccEmbedder(Embedder):
    """Model-free: mean + std of MFCCs (``specmusic.features``, kind ``mfcc``)."""

    def __init__(self, config: FeatureConfig | None = None, *, duration: float | None = None) -> None:
        self.config = config or FeatureConfig(kind="mfcc", n_mfcc=20)
        if self.config.kind != "mfcc":
            raise ConfigError(f"MFCC embedding needs kind='mfcc', got {self.config.kind!r} — fix the config")
        self.duration = duration
        self.description = {
            "kind": "mfcc",
            "name": f"mfcc-stats-{self.config.n_mfcc}",
            "feature_config": self.config.to_dict(),
            "duration": duration,
            "dim": 2 * self.config.n_mfcc,
            "standardize": True,
        }

    def embed_file(self, path: str) -> np.ndarray:
        from specmusic.features import compute_features_file

        features, _ = compute_features_file(path, self.config, duration=self.duration)
        return mfcc_statistics(features)


LAYERS = ("embedding", "probabilities")
#: Which output of a model becomes the track vector when ``--layer`` is not given.
DEFAULT_LAYER = {"pretrained": "embedding", "onnx": "embedding"}


class OnnxEmbedder(Embedder):
    """A track vector from a specmusic ONNX model (via :mod:`specmusic.inference`).

    ``layer="embedding"``: the pooled penultimate features (the model's ``embedding`` output);
    ``layer="probabilities"``: the track's class/tag probabilities (for a pretrained tagger, its
    50 tags: a semantic space learnt from other labels than yours).
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        kind: str = "onnx",
        sha256: str | None = None,
        layer: str = "embedding",
    ) -> None:
        from specmusic import inference

        if layer not in LAYERS:
            raise ConfigError(f"unknown layer {layer!r} — use one of {', '.join(LAYERS)}")
        self.layer = layer

        self.path = Path(model_path)
        if not self.path.is_file():
            raise ModelError(f"{display_path(self.path)}: no such model — check --model (a model.onnx from `specmusic train`)")
        self.model = inference.load_model(self.path)
        self._inference = inference
        meta = _model_metadata(self.model)
        self.description = {
            "kind": kind,
            "path": str(self.path.resolve()),
            "sha256": sha256 or sha256_file(self.path),
            "arch": meta.get("arch"),
            "feature_config": meta.get("feature_config"),
            "chunk_frames": meta.get("chunk_frames"),
            "layer": layer,
            "dim": None,
        }

    def embed_file(self, path: str) -> np.ndarray:
        run = self._inference.predict_track if self.layer == "probabilities" else self._inference.embed_track
        vec = np.asarray(run(self.model, path), dtype=np.float32).reshape(-1)
        if self.description.get("dim") is None:
            self.description["dim"] = int(vec.shape[0])
        return vec


def _model_metadata(model: Any) -> dict[str, Any]:
    """The ``specmusic`` metadata of a loaded model, whatever shape inference.load_model returns."""
    for attr in ("metadata", "meta", "info"):
        meta = getattr(model, attr, None)
        if isinstance(meta, dict):
            return meta
        if meta is not None and hasattr(meta, "__dict__"):
            out = dict(vars(meta))
            fc = out.get("feature_config")
            if hasattr(fc, "to_dict"):
                out["feature_config"] = fc.to_dict()
            return out
    return {}


def make_embedder(
    model: str | None,
    *,
    duration: float | None = None,
    weights: str | None = None,
    progress: bool | None = None,
    layer: str | None = None,
) -> Embedder:
    """The embedder named by ``--model``.

    Parameters
    ----------
    model : ``"mfcc"``; a ``.onnx`` path; a pretrained tagger name (``msd-fcn``, ``mtat-musicnn``…,
        optionally ``pretrained:NAME``); or ``None``: the default pretrained tagger
    duration : MFCC only: seconds read per track
    weights : pretrained taggers: a local checkpoint file or folder (see ``specmusic.pretrained``)
    layer : ``embedding`` | ``probabilities`` (ONNX models); default :data:`DEFAULT_LAYER` for
        pretrained taggers, ``embedding`` for trained models

    Raises
    ------
    ModelError
        The model is missing or unusable.
    """
    if model is not None and model.lower() == "mfcc":
        return MfccEmbedder(duration=duration)
    name = model[len("pretrained:") :] if model is not None and model.startswith("pretrained:") else model
    if name is None or (not name.lower().endswith(".onnx") and not os.path.exists(name)):
        try:
            from specmusic import pretrained
        except ImportError:
            raise ModelError(
                "pretrained taggers are not available in this build — pass --model mfcc or --model model.onnx"
            ) from None
        if name is not None and name not in pretrained.TAGGERS:
            raise ModelError(
                f"{name!r} is neither a model file nor a pretrained tagger — use a model.onnx path, 'mfcc', "
                f"or one of {', '.join(pretrained.TAGGERS)}"
            )
        path = pretrained.ensure_model(name or pretrained.DEFAULT_TAGGER, weights=weights, progress=progress)
        emb = OnnxEmbedder(path, kind="pretrained", layer=layer or DEFAULT_LAYER["pretrained"])
        emb.description["name"] = name or pretrained.DEFAULT_TAGGER
        return emb
    return OnnxEmbedder(name, layer=layer or DEFAULT_LAYER["onnx"])


def embedder_from_description(model: dict[str, Any]) -> Embedder:
    """Rebuild the embedder that made a library, to embed a new query the same way.

    Raises
    ------
    ModelError
        The library does not say how it was made, the model file is gone, or it changed.
    """
    kind = model.get("kind")
    if kind == "mfcc":
        return MfccEmbedder(FeatureConfig.from_dict(model["feature_config"]), duration=model.get("duration"))
    if kind in ("onnx", "pretrained"):
        path = model.get("path")
        if not path or not os.path.isfile(path):
            raise ModelError(
                f"the library's model {path!r} is not there any more — pass --model with the same model.onnx"
            )
        sha = sha256_file(path)
        if model.get("sha256") and sha != model["sha256"]:
            raise ModelError(
                f"{display_path(path)} changed since the library was embedded (sha256 differs) — re-embed the library"
            )
        return OnnxEmbedder(path, kind=kind, sha256=sha, layer=model.get("layer") or "embedding")
    raise ModelError(
        "the library does not record which model made it (e.g. JSON Lines without a header) — "
        "pass --model to embed the query, or query by an id in the library"
    )


def same_model(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two library ``model`` descriptions name the same embedding."""
    if a.get("kind") != b.get("kind"):
        return False
    if a.get("kind") == "mfcc":
        return a.get("feature_config") == b.get("feature_config") and a.get("duration") == b.get("duration")
    return (
        bool(a.get("sha256"))
        and a.get("sha256") == b.get("sha256")
        and (a.get("layer") or "embedding") == (b.get("layer") or "embedding")
    )


# -- embedding a collection -----------------------------------------------------------------
@dataclass
class EmbedReport:
    """What an embed run did."""

    embedded: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failed


def _stat(path: str) -> tuple[int, float]:
    st = os.stat(path)
    return int(st.st_size), float(st.st_mtime)


def embed_tracks(
    tracks: Sequence[Track],
    embedder: Embedder,
    *,
    existing: EmbeddingLibrary | None = None,
    keep_others: bool = True,
    progress: bool | None = None,
    on_error: Callable[[str], None] | None = None,
) -> tuple[EmbeddingLibrary, EmbedReport]:
    """Embed tracks into a library, reusing vectors of unchanged files from ``existing``.

    A track is reused when ``existing`` (made by the same model) holds its path with the same
    size and modification time; everything else is embedded. Failures are reported and skipped.

    Parameters
    ----------
    tracks : what to embed (ids are ``track.path``)
    embedder : :func:`make_embedder`'s result
    existing : a library to update; ignored when made by another model
    keep_others : keep ``existing`` entries that are not among ``tracks`` (appending to a library)

    Returns
    -------
    library, report
    """
    from tqdm import tqdm

    report = EmbedReport()
    old: dict[str, int] = {}
    if existing is not None and len(existing) and same_model(existing.model, embedder.description):
        old = {id_: i for i, id_ in enumerate(existing.ids)}
    elif existing is not None and len(existing) and on_error is not None:
        on_error("note: the existing library was made by another model — embedding everything again")
        keep_others = False
    vectors: list[np.ndarray] = []
    ids: list[str] = []
    labels: list[str | None] = []
    groups: list[str | None] = []
    sizes: list[int] = []
    mtimes: list[float] = []
    seen: set[str] = set()
    bar = tqdm(tracks, desc="embed", unit="track", file=sys.stderr, disable=(not progress) if progress is not None else None)
    for track in bar:
        if track.path in seen:
            continue
        seen.add(track.path)
        try:
            size, mtime = _stat(track.path)
        except OSError as exc:
            report.failed.append({"path": track.path, "error": f"{display_path(track.path)}: {exc.strerror}"})
            if on_error:
                on_error(f"{display_path(track.path)}: cannot read ({exc.strerror}) — check the path")
            continue
        j = old.get(track.path)
        if j is not None and existing is not None and existing.source_size[j] == size and existing.source_mtime[j] == mtime:
            vec = existing.vectors[j]
            report.reused.append(track.path)
        else:
            try:
                vec = np.asarray(embedder.embed_file(track.path), dtype=np.float32).reshape(-1)
                if not np.isfinite(vec).all():
                    raise InputError(f"{display_path(track.path)}: embedding holds NaN — the audio may be corrupt")
            except SpecmusicError as exc:
                report.failed.append({"path": track.path, "error": str(exc)})
                if on_error:
                    on_error(f"Error: {exc}")
                continue
            if vectors and vec.shape != vectors[0].shape:
                raise ModelError(f"{display_path(track.path)}: embedding size changed mid-run — check the model")
            report.embedded.append(track.path)
        vectors.append(vec)
        ids.append(track.path)
        labels.append(track.label)
        groups.append(track.group)
        sizes.append(size)
        mtimes.append(mtime)
    if existing is not None and old and keep_others:
        for id_, j in old.items():
            if id_ not in seen:
                vectors.append(existing.vectors[j])
                ids.append(id_)
                labels.append(existing.labels[j])
                groups.append(existing.groups[j])
                sizes.append(int(existing.source_size[j]))
                mtimes.append(float(existing.source_mtime[j]))
    model = dict(embedder.description)
    if vectors:
        model["dim"] = int(vectors[0].shape[0])
    matrix = l2_normalize(np.stack(vectors)) if vectors else np.zeros((0, int(model.get("dim") or 0)), np.float32)
    lib = EmbeddingLibrary(
        matrix, ids, labels, groups, model, np.asarray(sizes, np.int64), np.asarray(mtimes, np.float64)
    )
    return lib, report


def iter_records(library: EmbeddingLibrary) -> Iterator[dict[str, Any]]:
    """One dict a track (``id``, ``label``, ``group``, ``vector`` as a list)."""
    for i, id_ in enumerate(library.ids):
        yield {"id": id_, "label": library.labels[i], "group": library.groups[i], "vector": library.vectors[i].tolist()}



def search_vectors(library: EmbeddingLibrary, *, standardize: bool | None = None) -> np.ndarray:
    """The vectors that cosine search and cluster maps use: z-scored per column first when the
    library's model asks for it (MFCC statistics) or ``standardize`` says so, then L2-normalised.

    Returns
    -------
    np.ndarray [shape=(n, d)], float32
    """
    from specmusic.index import standardize_columns

    std = bool(library.model.get("standardize")) if standardize is None else standardize
    if not std or len(library) < 2:
        return library.vectors
    return l2_normalize(standardize_columns(library.vectors)[0])


# -- recommending ---------------------------------------------------------------------------
GROUP_KEYS = ("group", "label", "dir")


class Recommender:
    """Cosine top-k over a library or a table, with query resolution, exclusion and explanations.

    Build with :meth:`from_library` or :meth:`from_tabular`; call :meth:`recommend`.
    """

    def __init__(
        self,
        *,
        vectors: np.ndarray,
        ids: list[str],
        labels: list[str | None],
        groups: list[str | None],
        model: dict[str, Any],
        standardize: bool,
        columns: list[str] | None = None,
        raw: np.ndarray | None = None,
        rows: list[dict[str, str]] | None = None,
        index_config: Any = None,
        on_note: Callable[[str], None] | None = None,
        index_cache: str | None = None,
    ) -> None:
        from specmusic.index import build_index, standardize_columns

        self.ids, self.labels, self.groups, self.model = ids, labels, groups, model
        self.columns, self.raw, self.rows = columns, raw, rows
        self.standardize = standardize
        base = np.asarray(vectors, dtype=np.float32)
        if base.ndim != 2 or base.shape[0] == 0:
            raise InputError("the library is empty — embed some tracks first (`specmusic embed DIR -o library.npz`)")
        from specmusic.index import _check_finite

        _check_finite(base, "the library", ids)
        if standardize:
            self.z, self.mean, self.scale = standardize_columns(base)
        else:
            self.z, self.mean, self.scale = base, None, None
        key = ""
        if index_cache is not None:
            st = os.stat(index_cache)
            key = f"{st.st_size}:{st.st_mtime_ns}:standardize={standardize}"
        self.index = build_index(
            l2_normalize(self.z), config=index_config, ids=ids, on_note=on_note, cache=index_cache, cache_key=key
        )
        self._by_id = {id_: i for i, id_ in enumerate(ids)}
        self._abs: dict[str, int] | None = None
        self._embedder: Embedder | None = None

    @classmethod
    def from_library(
        cls,
        library: EmbeddingLibrary,
        *,
        standardize: bool | None = None,
        index_config: Any = None,
        on_note: Any = None,
        index_cache: str | None = None,
    ) -> Recommender:
        """Search a library; ``standardize`` defaults to what its model asks (MFCC stats: yes).

        ``index_cache``: the library's file; an ANN index built for it is saved beside it and
        reused while the file is unchanged (see :func:`specmusic.index.build_index`).
        """
        std = bool(library.model.get("standardize")) if standardize is None else standardize
        return cls(
            vectors=library.vectors,
            ids=library.ids,
            labels=library.labels,
            groups=library.groups,
            model=library.model,
            standardize=std,
            index_config=index_config,
            on_note=on_note,
            index_cache=index_cache,
        )

    @classmethod
    def from_tabular(cls, source: TabularSource, *, index_config: Any = None, on_note: Any = None) -> Recommender:
        """Search table rows, each column z-scored first (so tempo in BPM cannot swamp 0–1 columns)."""
        return cls(
            vectors=source.values,
            ids=source.ids,
            labels=[None] * len(source.ids),
            groups=[None] * len(source.ids),
            model={"kind": "tabular", "columns": source.columns},
            standardize=True,
            columns=source.columns,
            raw=source.values,
            rows=source.rows,
            index_config=index_config,
            on_note=on_note,
        )

    # -- queries ----------------------------------------------------------------------------
    def find_id(self, query: str) -> int | None:
        """Row of ``query``: exact id, same absolute path, or a unique path suffix; else None.

        Raises
        ------
        InputError
            The suffix matches several ids.
        """
        if query in self._by_id:
            return self._by_id[query]
        if self.columns is not None:
            return None
        if self._abs is None:
            self._abs = {os.path.abspath(os.path.expanduser(i)): n for n, i in enumerate(self.ids)}
        hit = self._abs.get(os.path.abspath(os.path.expanduser(query)))
        if hit is not None:
            return hit
        tail = "/" + query.lstrip("./")
        matches = [n for n, i in enumerate(self.ids) if i.endswith(tail)]
        if len(matches) > 1:
            raise InputError(
                f"query {query!r} matches {len(matches)} library ids ({self.ids[matches[0]]}, …) — give more of the path"
            )
        return matches[0] if matches else None

    def _query_vector(self, vec: np.ndarray) -> np.ndarray:
        v = np.asarray(vec, dtype=np.float64).reshape(-1)
        if v.shape[0] != self.index.dim:
            raise InputError(
                f"the query's model gives {v.shape[0]}-d vectors but the library holds {self.index.dim}-d ones — "
                "embed the query with the library's model"
            )
        if not np.isfinite(v).all():
            raise InputError("the query vector holds NaN — the query audio may be silent or corrupt")
        v = l2_normalize(v.astype(np.float32)).astype(np.float64)
        if self.mean is not None:
            v = (v - self.mean) / self.scale
        return v.astype(np.float32)

    def resolve(self, query: str, *, embedder: Embedder | None = None) -> tuple[np.ndarray, int | None]:
        """The (search-space) vector of a query and its library row (None for a new audio file).

        Raises
        ------
        InputError
            Unknown id, or a query audio file whose embedding does not fit the library.
        """
        row = self.find_id(query)
        if row is not None:
            return self.z[row], row
        from specmusic.audio import AUDIO_EXTENSIONS

        if self.columns is None and os.path.isfile(query) and Path(query).suffix.lower() in AUDIO_EXTENSIONS:
            if embedder is None:
                if self._embedder is None:
                    self._embedder = embedder_from_description(self.model)
                embedder = self._embedder
            return self._query_vector(embedder.embed_file(query)), None
        hint = "one of the CSV's --id values" if self.columns is not None else "a path in the library or an audio file"
        raise InputError(f"unknown query {query!r} — give {hint}")

    def _group_values(self, key: str) -> list[str | None]:
        if key == "group":
            return self.groups
        if key == "label":
            return self.labels
        if key == "dir":
            return [os.path.dirname(i) or None for i in self.ids]
        if self.rows is not None and self.columns is not None:
            if key not in self.rows[0]:
                raise InputError(f"--group-key {key!r} is not a column — columns are {', '.join(self.rows[0])}")
            return [r.get(key) or None for r in self.rows]
        raise InputError(f"--group-key {key!r} is unknown — use one of {', '.join(GROUP_KEYS)}")

    def recommend(
        self,
        queries: Sequence[str],
        *,
        k: int = 10,
        group_key: str | None = None,
        explain: bool = False,
        embedder: Embedder | None = None,
    ) -> list[dict[str, Any]]:
        """The ``k`` nearest tracks to each query, excluding the query and (``group_key``) its group.

        Parameters
        ----------
        queries : ids in the library, or audio files (embedded with ``embedder`` or the library's model)
        k : neighbours per query
        group_key : ``group`` | ``label`` | ``dir`` | a CSV column; neighbours sharing the query's value are left out
        explain : add what each match shares with its query

        Returns
        -------
        list of ``{"query": str, "neighbors": [{"rank", "id", "score", "label", "group"[, "explain"]}]}``

        Raises
        ------
        InputError
            Unknown query, mismatched dimensions, NaN vectors.
        """
        resolved = [self.resolve(q, embedder=embedder) for q in queries]
        qz = np.stack([v for v, _ in resolved]) if resolved else np.zeros((0, self.index.dim), np.float32)
        codes = qcodes = None
        if group_key:
            values = self._group_values(group_key)
            table: dict[str, int] = {}
            codes = np.array([table.setdefault(v, len(table)) if v is not None else -1 for v in values], np.int64)
            qcodes = []
            for q, (_, row) in zip(queries, resolved):
                if row is not None:
                    qcodes.append(codes[row])
                elif group_key == "dir":
                    qcodes.append(table.get(os.path.dirname(q), -1))
                else:
                    qcodes.append(-1)
        exclude = [[row] if row is not None else [] for _, row in resolved]
        idx, scores = self.index.search(
            l2_normalize(qz), k, exclude=exclude, groups=codes, query_groups=qcodes
        )
        from specmusic.index import explain_match

        out = []
        for qi, q in enumerate(queries):
            qvec, qrow = resolved[qi]
            neighbours = []
            for rank, (j, s) in enumerate(zip(idx[qi], scores[qi]), 1):
                if j < 0:
                    break
                rec: dict[str, Any] = {
                    "rank": rank,
                    "id": display_path(self.ids[j]),
                    "score": round(float(s), 6),
                    "label": self.labels[j],
                    "group": self.groups[j],
                }
                if explain:
                    shared = []
                    if qrow is not None:
                        for name, vals in (("label", self.labels), ("group", self.groups)):
                            if vals[qrow] is not None and vals[qrow] == vals[j]:
                                shared.append(f"{name}={vals[qrow]}")
                    info: dict[str, Any] = {"shared": shared}
                    if self.columns is not None:
                        info.update(
                            explain_match(
                                qvec,
                                self.z[j],
                                columns=self.columns,
                                raw_query=self.raw[qrow] if qrow is not None and self.raw is not None else None,
                                raw_match=self.raw[j] if self.raw is not None else None,
                            )
                        )
                    else:
                        info.update(explain_match(l2_normalize(qvec), l2_normalize(self.z[j])))
                    rec["explain"] = info
                neighbours.append(rec)
            out.append({"query": q, "neighbors": neighbours})
        return out
