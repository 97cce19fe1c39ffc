"""Run specmusic ONNX models with onnxruntime and numpy alone (never torch, never librosa).

The one place that loads models for ``classify`` (and ``embed``). A specmusic model is a
self-contained ``model.onnx`` whose ``metadata_props`` key ``specmusic`` holds a JSON object::

    format_version  1
    task            "multiclass" | "multilabel"
    labels          class names, in output order
    feature_config  FeatureConfig.to_dict(): the features the model was trained on
    chunk_frames    frames per input chunk
    chunk_hop_frames hop between chunks of a track
    input_norm      {"mean": float, "std": float} applied to features first, or null
    arch, specmusic_version, ... (extra fields allowed)

Input ``spec`` float32 ``[batch, 1, n_rows, chunk_frames]``; outputs ``logits`` ``[batch, n_classes]``
and ``embedding`` ``[batch, dim]``. A track is cut into chunks (a track shorter than a chunk is
repeated to fill it), chunk probabilities are averaged into track probabilities, chunk embeddings
averaged and L2-normalised into a track embedding.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from specmusic.fileio import display_path
from specmusic.errors import AudioError, ConfigError, ModelError, SpecmusicError
from specmusic.features import chunk_features
from specmusic.features import FeatureConfig

__all__ = [
    "MODEL_FORMAT_VERSION",
    "METADATA_KEY",
    "Model",
    "TrackResult",
    "load_model",
    "track_features",
    "run_chunks",
    "predict_track",
    "embed_track",
    "embed_and_predict_track",
    "predict_files",
    "probabilities_from_logits",
    "top_k",
]

MODEL_FORMAT_VERSION = 1
METADATA_KEY = "specmusic"
_REQUIRED = ("format_version", "task", "labels", "feature_config", "chunk_frames", "chunk_hop_frames")
_TASKS = ("multiclass", "multilabel")
_MAX_CHUNK_FRAMES = 1 << 16  # ~25 min at hop 512 / 22050 Hz; larger is a corrupt file, not a model
_FIX_MODEL = "export one with `specmusic train` (it writes RUN/model.onnx)"


@dataclass
class Model:
    """A loaded model: an onnxruntime session plus its metadata.

    Attributes
    ----------
    path : where it was loaded from
    labels : class names in output order
    feature_config : the features the model expects
    task : ``"multiclass"`` (softmax) or ``"multilabel"`` (sigmoid)
    chunk_frames, chunk_hop_frames : chunking of a track
    input_norm : ``(mean, std)`` applied to features before the network, or None
    meta : the whole metadata object
    """

    path: str
    session: Any = field(repr=False)
    labels: list[str]
    feature_config: FeatureConfig
    task: str
    chunk_frames: int
    chunk_hop_frames: int
    input_norm: tuple[float, float] | None
    meta: dict[str, Any] = field(repr=False)
    batch_size: int = 32

    @property
    def n_classes(self) -> int:
        """Number of outputs of ``logits``."""
        return len(self.labels)


@dataclass(frozen=True)
class TrackResult:
    """What :func:`predict_files` yields per input: probabilities, or the error that stopped it."""

    path: str
    probabilities: np.ndarray | None = None
    duration: float | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)  # silence, mis-scaled samples, shorter than a window

    @property
    def ok(self) -> bool:
        """True when the track was classified."""
        return self.error is None


def load_model(path: str | os.PathLike[str], *, threads: int | None = None) -> Model:
    """Open ``model.onnx`` and validate its specmusic metadata.

    Parameters
    ----------
    path : a specmusic ONNX model
    threads : onnxruntime intra-op threads (None: onnxruntime's default, all cores)

    Raises
    ------
    ModelError
        Missing file, not an ONNX model, missing or malformed metadata, or inputs/outputs that do
        not follow the contract.
    """
    name = display_path(path)
    if not os.path.isfile(path):
        raise ModelError(f"{name}: model file not found — check --model, or {_FIX_MODEL}")
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-waiting on shared CPUs
    if threads is not None:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(os.fspath(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/… types
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{name}: not a readable ONNX model ({reason}) — {_FIX_MODEL}") from None
    raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if raw is None:
        raise ModelError(
            f"{name}: ONNX model has no '{METADATA_KEY}' metadata (labels, features) — {_FIX_MODEL}"
        )
    meta = _parse_meta(raw, name)
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    if "spec" not in inputs or "logits" not in outputs:
        raise ModelError(
            f"{name}: model needs input 'spec' and output 'logits' (has {sorted(inputs)} → {sorted(outputs)}) — "
            f"{_FIX_MODEL}"
        )
    _check_graph(session, meta, name)
    fc = meta["feature_config"]
    norm = meta.get("input_norm")
    return Model(
        path=os.fspath(path),
        session=session,
        labels=[str(x) for x in meta["labels"]],
        feature_config=fc,
        task=meta["task"],
        chunk_frames=int(meta["chunk_frames"]),
        chunk_hop_frames=int(meta["chunk_hop_frames"]),
        input_norm=None if norm is None else (float(norm["mean"]), float(norm["std"])),
        meta={**meta, "feature_config": fc.to_dict()},
    )


def _parse_meta(raw: str, name: str) -> dict[str, Any]:
    """Decode and check the metadata JSON; returns it with ``feature_config`` as a FeatureConfig."""
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise ModelError(f"{name}: '{METADATA_KEY}' metadata is not valid JSON — {_FIX_MODEL}") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{name}: '{METADATA_KEY}' metadata is not a JSON object — {_FIX_MODEL}")
    missing = [k for k in _REQUIRED if k not in meta]
    if missing:
        raise ModelError(f"{name}: metadata lacks {', '.join(missing)} — {_FIX_MODEL}")
    version = meta["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelError(f"{name}: metadata format_version {version!r} is not a positive whole number — {_FIX_MODEL}")
    if version > MODEL_FORMAT_VERSION:
        raise ModelError(f"{name}: model format {version} is newer than this specmusic — upgrade")
    if meta["task"] not in _TASKS:
        raise ModelError(f"{name}: unknown task {meta['task']!r} (expected multiclass|multilabel) — {_FIX_MODEL}")
    labels = meta["labels"]
    if not isinstance(labels, list) or not labels:
        raise ModelError(f"{name}: metadata 'labels' must be a non-empty list — {_FIX_MODEL}")
    try:
        meta["feature_config"] = FeatureConfig.from_dict(dict(meta["feature_config"]))
        chunk, hop = int(meta["chunk_frames"]), int(meta["chunk_hop_frames"])
    except (ConfigError, TypeError, ValueError) as exc:
        raise ModelError(f"{name}: bad feature_config/chunking in metadata ({exc}) — {_FIX_MODEL}") from None
    if chunk < 1 or hop < 1:
        raise ModelError(f"{name}: chunk_frames and chunk_hop_frames must be positive — {_FIX_MODEL}")
    if chunk > _MAX_CHUNK_FRAMES or hop > _MAX_CHUNK_FRAMES:
        raise ModelError(f"{name}: chunk_frames {chunk} / chunk_hop_frames {hop} exceed {_MAX_CHUNK_FRAMES} — "
                         f"the metadata is corrupt; {_FIX_MODEL}")
    if not all(isinstance(x, str) for x in labels):
        raise ModelError(f"{name}: metadata 'labels' must be strings — {_FIX_MODEL}")
    norm = meta.get("input_norm")
    if norm is not None and not (isinstance(norm, dict) and {"mean", "std"} <= set(norm) and _positive(norm["std"])
                                 and _finite(norm["mean"])):
        raise ModelError(f"{name}: input_norm must be null or {{mean, std>0}} (numbers) — {_FIX_MODEL}")
    return meta


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _positive(x: Any) -> bool:
    return _finite(x) and x > 0


def _check_graph(session: Any, meta: dict[str, Any], name: str) -> None:
    """The network's static input/output sizes must agree with the metadata (labels, rows, chunk)."""
    fc: FeatureConfig = meta["feature_config"]
    spec_shape = next(i.shape for i in session.get_inputs() if i.name == "spec")
    logits_shape = next(o.shape for o in session.get_outputs() if o.name == "logits")
    if len(spec_shape) != 4:
        raise ModelError(f"{name}: input 'spec' has {len(spec_shape)} dimensions, expected 4 — {_FIX_MODEL}")
    rows, frames = spec_shape[2], spec_shape[3]
    if isinstance(rows, int) and rows != fc.n_rows:
        raise ModelError(f"{name}: the network reads {rows} feature rows but the metadata's features have "
                         f"{fc.n_rows} — the metadata does not belong to this network; {_FIX_MODEL}")
    if isinstance(frames, int) and frames != int(meta["chunk_frames"]):
        raise ModelError(f"{name}: the network reads chunks of {frames} frames but the metadata says "
                         f"{meta['chunk_frames']} — {_FIX_MODEL}")
    n_out = logits_shape[-1] if len(logits_shape) == 2 else None
    if isinstance(n_out, int) and n_out != len(meta["labels"]):
        raise ModelError(f"{name}: the network has {n_out} outputs but the metadata names {len(meta['labels'])} "
                         f"labels — {_FIX_MODEL}")


# -- running --------------------------------------------------------------------------------
def track_features(
    model: Model, source: str | os.PathLike[str] | np.ndarray, *, warnings: list[str] | None = None
) -> tuple[np.ndarray, float | None]:
    """Features of a track as the model expects them.

    ``source`` is an audio path, a ``spectro`` array (``.npz``; its config must match the model's),
    or a feature matrix ``[n_rows, n_frames]`` computed with ``model.feature_config``. For audio,
    ``warnings`` (when given) receives a line for each reason not to trust the result
    (:func:`specmusic.audio.signal_warnings`).

    Returns
    -------
    features : np.ndarray [shape=(n_rows, n_frames)], float32
    duration : seconds analysed (None for a matrix)

    Raises
    ------
    AudioError, InputError
        Unreadable audio or array.
    ConfigError
        An array computed with other features than the model's.
    """
    fc = model.feature_config
    if isinstance(source, np.ndarray):
        spec, seconds = source, None
    elif os.fspath(source).lower().endswith(".npz"):
        from specmusic.specfile import load_spectrogram

        spec, cfg = load_spectrogram(source)
        if cfg.digest() != fc.digest():
            raise ConfigError(
                f"{display_path(source)}: computed with other features ({cfg.kind}, {cfg.n_rows} rows, "
                f"sr {cfg.sample_rate}) than the model expects ({fc.kind}, {fc.n_rows} rows, sr {fc.sample_rate}) "
                "— classify the audio file instead, or recompute the arrays with `specmusic spectro AUDIO --like MODEL.onnx -o DIR`"
            )
        seconds = spec.shape[1] * fc.hop_length / fc.sample_rate
    else:
        spec, seconds = _audio_features(model, source, warnings)
    if spec.ndim != 2 or spec.shape[0] != fc.n_rows:
        raise ConfigError(
            f"features of shape {spec.shape} do not match the model's {fc.n_rows} rows — "
            "compute them with the model's feature_config"
        )
    return spec, seconds


def _audio_features(model: Model, path: str | os.PathLike[str], warnings: list[str] | None) -> tuple[np.ndarray, float]:
    from specmusic.audio import PeakMeter, signal_warnings, stream_audio
    from specmusic.features import compute_features_stream

    fc = model.feature_config
    meter = PeakMeter(stream_audio(path, sr=fc.sample_rate, mono=True))
    spec, n = compute_features_stream(meter, fc)
    if n == 0:
        raise AudioError(f"{display_path(path)}: contains no audio samples — check the file")
    seconds = n / fc.sample_rate
    if warnings is not None:
        window = model.chunk_frames * fc.hop_length / fc.sample_rate
        warnings += signal_warnings(display_path(path), peak=meter.peak, seconds=seconds, window_seconds=window)
    return spec, seconds


def run_chunks(model: Model, chunks: np.ndarray, *, embedding: bool = False) -> np.ndarray:
    """Run the network on chunks in batches.

    Parameters
    ----------
    chunks : np.ndarray [shape=(n, 1, n_rows, chunk_frames)], raw features (normalised here)
    embedding : return the ``embedding`` output instead of ``logits``

    Returns
    -------
    out : np.ndarray [shape=(n, n_classes) or (n, dim)], float32
    """
    return _run_outputs(model, chunks, ["embedding" if embedding else "logits"])[0]


def _run_outputs(model: Model, chunks: np.ndarray, names: list[str]) -> list[np.ndarray]:
    """The outputs ``names`` of one pass of the network over ``chunks``, each [shape=(n, ...)]."""
    x = chunks.astype(np.float32, copy=True)
    if model.input_norm is not None:
        mean, std = model.input_norm
        x -= mean
        x /= std
    parts = [model.session.run(names, {"spec": x[i : i + model.batch_size]}) for i in range(0, len(x), model.batch_size)]
    return [np.concatenate([p[j] for p in parts], axis=0).astype(np.float32, copy=False) for j in range(len(names))]


def probabilities_from_logits(logits: np.ndarray, task: str) -> np.ndarray:
    """Softmax (multiclass) or sigmoid (multilabel) along the last axis."""
    if task == "multilabel":
        return 1.0 / (1.0 + np.exp(-logits))
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def predict_track(model: Model, source: str | os.PathLike[str] | np.ndarray) -> np.ndarray:
    """Track probabilities: the mean of the chunk probabilities.

    Parameters
    ----------
    source : audio path, ``.npz`` spectro array, or features [shape=(n_rows, n_frames)]

    Returns
    -------
    probabilities : np.ndarray [shape=(n_classes,)], float32, in ``model.labels`` order
    """
    spec, _ = track_features(model, source)
    return _predict_spec(model, spec)


def _predict_spec(model: Model, spec: np.ndarray) -> np.ndarray:
    chunks = chunk_features(spec, model.chunk_frames, model.chunk_hop_frames)
    probs = probabilities_from_logits(run_chunks(model, chunks), model.task)
    if probs.shape[-1] != len(model.labels):
        raise ModelError(f"{display_path(model.path)}: the network gave {probs.shape[-1]} outputs for "
                         f"{len(model.labels)} labels — {_FIX_MODEL}")
    return probs.mean(axis=0).astype(np.float32)


def embed_track(model: Model, source: str | os.PathLike[str] | np.ndarray) -> np.ndarray:
    """Track embedding: the mean of the chunk embeddings, L2-normalised.

    Returns
    -------
    embedding : np.ndarray [shape=(dim,)], float32
    """
    spec, _ = track_features(model, source)
    chunks = chunk_features(spec, model.chunk_frames, model.chunk_hop_frames)
    emb = run_chunks(model, chunks, embedding=True).mean(axis=0)
    norm = float(np.linalg.norm(emb))
    return (emb / norm if norm > 0 else emb).astype(np.float32)


def embed_and_predict_track(
    model: Model, source: str | os.PathLike[str] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`embed_track` and :func:`predict_track` from one pass of the network.

    Returns
    -------
    embedding : np.ndarray [shape=(dim,)], float32, L2-normalised
    probabilities : np.ndarray [shape=(n_classes,)], float32, in ``model.labels`` order
    """
    spec, _ = track_features(model, source)
    chunks = chunk_features(spec, model.chunk_frames, model.chunk_hop_frames)
    logits, emb = _run_outputs(model, chunks, ["logits", "embedding"])
    probs = probabilities_from_logits(logits, model.task).mean(axis=0).astype(np.float32)
    emb = emb.mean(axis=0)
    norm = float(np.linalg.norm(emb))
    return (emb / norm if norm > 0 else emb).astype(np.float32), probs


# -- batches --------------------------------------------------------------------------------
_WORKER_MODEL: Model | None = None


def _worker_init(model_path: str) -> None:
    global _WORKER_MODEL
    _WORKER_MODEL = load_model(model_path, threads=1)


def _classify_one(path: str, model: Model | None = None) -> TrackResult:
    model = model or _WORKER_MODEL
    assert model is not None
    try:
        notes: list[str] = []
        spec, seconds = track_features(model, path, warnings=notes)
        return TrackResult(path, _predict_spec(model, spec), seconds, warnings=notes)
    except SpecmusicError as exc:
        return TrackResult(path, error=str(exc))
    except MemoryError:
        return TrackResult(path, error=f"{display_path(path)}: out of memory — split the file")
    except OSError as exc:
        return TrackResult(path, error=f"{display_path(path)}: cannot read ({exc.strerror or exc}) — check the file")


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def predict_files(
    model: Model,
    paths: Sequence[str],
    *,
    jobs: int = 1,
    progress: bool | None = None,
) -> Iterator[TrackResult]:
    """Classify many files, in input order; a file that fails yields a result with ``error``.

    Parameters
    ----------
    model : from :func:`load_model` (workers reload it from ``model.path``)
    paths : audio files or ``.npz`` spectro arrays
    jobs : worker processes (each runs onnxruntime on one thread)
    progress : progress bar on stderr (None: only on a terminal)

    Yields
    ------
    TrackResult
    """
    show = sys.stderr.isatty() if progress is None else progress
    if show:
        from tqdm import tqdm

        bar: Any = tqdm(total=len(paths), desc="classify", unit="track", file=sys.stderr, dynamic_ncols=True)
    else:  # no bar: skip importing tqdm (cold start matters here)
        bar = _NoBar()
    try:
        if jobs <= 1 or len(paths) <= 1:
            results: Iterator[TrackResult] = (_classify_one(p, model) for p in paths)
            for r in results:
                bar.update(1)
                yield r
        else:
            from specmusic.workers import worker_pool

            with worker_pool(min(jobs, len(paths)), initializer=_worker_init, initargs=(model.path,)) as pool:
                for r in pool.map(_classify_one, paths, chunksize=1):
                    bar.update(1)
                    yield r
    finally:
        bar.close()


def top_k(model: Model, probabilities: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` most probable labels with their probabilities, best first."""
    order = np.argsort(-probabilities, kind="stable")[: max(1, k)]
    return [(model.labels[i], float(probabilities[i])) for i in order]

