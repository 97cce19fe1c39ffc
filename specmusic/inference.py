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

A long track is judged from :data:`DEFAULT_WINDOWS` evenly spread chunks ("windows"), decoded alone
(:mod:`specmusic.windowing`) while the network runs on them :data:`DEFAULT_BATCH` at a time
(:func:`analyse_track`; measurements in docs/collections.md).
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from specmusic.fileio import display_path
from specmusic.errors import AudioError, ConfigError, InputError, ModelError, SpecmusicError
from specmusic.features import FeatureConfig, chunk_features, chunk_starts
from specmusic.windowing import (
    DEFAULT_WINDOWS,
    DecodedWindows,
    Replan,
    WindowPlan,
    decode_threads,
    parse_windows,
    plan_windows,
    select_windows,
)

__all__ = [
    "MODEL_FORMAT_VERSION",
    "METADATA_KEY",
    "DEFAULT_WINDOWS",
    "DEFAULT_BATCH",
    "Model",
    "TrackResult",
    "TrackAnalysis",
    "load_model",
    "parse_windows",
    "select_windows",
    "analyse_track",
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

# Defaults (measured on 2 cores by benchmarks/collection_speed.py; see docs/collections.md):
#: Windows per onnxruntime call. One window runs as fast per window as a batch of 2, 8 or 32 for
#: the taggers and `train`'s CNN (a window already fills the cores), and the default tagger's
#: activations take ~100 MB per window in a batch (musicnn's ~30 MB): one keeps memory lowest.
DEFAULT_BATCH = 1


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
    batch_size : windows per onnxruntime call (memory grows with it)
    threads : onnxruntime intra-op threads, and threads decoding audio (None: every core)
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
    batch_size: int = DEFAULT_BATCH
    threads: int | None = None  # onnxruntime intra-op threads and audio decoding threads (None: all cores)

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
    windows: int | None = None  # windows (chunks) the network saw

    @property
    def ok(self) -> bool:
        """True when the track was classified."""
        return self.error is None


def load_model(path: str | os.PathLike[str], *, threads: int | None = None) -> Model:
    """Open ``model.onnx`` and validate its specmusic metadata.

    Parameters
    ----------
    path : a specmusic ONNX model
    threads : onnxruntime intra-op threads, and the threads that decode a track's audio
        (None: onnxruntime's default, all cores; 1 in ``--jobs`` workers)

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
    # Every graph optimisation (constant folding, conv+bn fusion, NCHWc layouts): ~25% faster on the
    # default tagger than "extended" (docs/collections.md). It is onnxruntime's default; said here.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-waiting on shared CPUs
    opts.inter_op_num_threads = 1
    if threads is not None:
        opts.intra_op_num_threads = threads
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
        threads=threads,
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
    """The features of the whole file (decoded block by block); the path of kinds that need all of it."""
    from specmusic.audio import PeakMeter, signal_warnings, stream_audio
    from specmusic.features import compute_features_stream

    fc = model.feature_config
    meter = PeakMeter(stream_audio(path, sr=fc.sample_rate, mono=True))
    spec, n = compute_features_stream(meter, fc)
    if n == 0:
        raise AudioError(f"{display_path(path)}: contains no audio samples — check the file")
    seconds = n / fc.sample_rate
    if warnings is not None:
        warnings += signal_warnings(display_path(path), peak=meter.peak, seconds=seconds, window_seconds=_window_seconds(model))
    return spec, seconds


def _window_seconds(model: Model) -> float:
    fc = model.feature_config
    return model.chunk_frames * fc.hop_length / fc.sample_rate


# -- windows ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrackAnalysis:
    """What :func:`analyse_track` found: pooled outputs and how much of the track it took them from.

    Attributes
    ----------
    probabilities : np.ndarray [shape=(n_classes,)] in ``model.labels`` order (None unless ``logits`` asked)
    embedding : np.ndarray [shape=(dim,)], L2-normalised (None unless ``embedding`` asked)
    duration : seconds of audio in the track (None for a feature matrix)
    windows : windows (chunks) the network saw
    total_windows : windows ``windows=None`` would have analysed
    per_window : each asked output of every analysed window, unpooled: ``{"logits": [n_windows, n_classes],
        "embedding": [n_windows, dim]}`` (for other poolings: :func:`specmusic.embeddings.pool_windows`)
    """

    probabilities: np.ndarray | None
    embedding: np.ndarray | None
    duration: float | None
    windows: int
    total_windows: int
    per_window: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


def analyse_track(
    model: Model,
    source: str | os.PathLike[str] | np.ndarray,
    *,
    windows: int | None = DEFAULT_WINDOWS,
    outputs: Sequence[str] = ("logits",),
    warnings: list[str] | None = None,
) -> TrackAnalysis:
    """Pooled network outputs of a track from (at most) ``windows`` evenly spread windows.

    For audio, only the analysed windows are decoded (seeking in the file) and resampled straight
    to the model's rate, in pieces decoded on ``model.threads`` threads (None: one per core) while
    the network runs on ``model.batch_size`` windows at a time: memory does not grow with the track
    (:mod:`specmusic.windowing`). A window's features are those of the same frames of the whole
    decoded track, to within the resampler's ripple (hundredths of a dB at most). Features whose dB
    floor is relative to the track's loudest frame (``top_db``) are floored at the loudest analysed
    frame (such a model with every window, and MFCC, chroma and CQT models, compute the whole
    track's features at once: they grow with it).

    Parameters
    ----------
    source : audio path, ``.npz`` spectro array, or features [shape=(n_rows, n_frames)]
    windows : windows analysed at most (None: every chunk of the track)
    outputs : ``"logits"`` (pooled into ``probabilities``) and/or ``"embedding"``
    warnings : receives a line for each reason not to trust the result (audio only)

    Raises
    ------
    AudioError, InputError, ConfigError
        As :func:`track_features`.
    ModelError
        The network's outputs do not match its labels.
    """
    names = list(outputs)
    if isinstance(source, np.ndarray) or os.fspath(source).lower().endswith(".npz"):
        spec, seconds = track_features(model, source)
        outs, total = _run_matrix(model, spec, windows, names)
    else:
        outs, total, seconds = _run_audio(model, source, windows, names, warnings)
    probs = emb = None
    if "logits" in names:
        probs = probabilities_from_logits(outs[names.index("logits")], model.task)
        if probs.shape[-1] != len(model.labels):
            raise ModelError(f"{display_path(model.path)}: the network gave {probs.shape[-1]} outputs for "
                             f"{len(model.labels)} labels — {_FIX_MODEL}")
        probs = probs.mean(axis=0).astype(np.float32)
    if "embedding" in names:
        mean = outs[names.index("embedding")].mean(axis=0)
        norm = float(np.linalg.norm(mean))
        emb = (mean / norm if norm > 0 else mean).astype(np.float32)
    return TrackAnalysis(probs, emb, seconds, int(outs[0].shape[0]), total, dict(zip(names, outs)))


class _Runner:
    """Windows → the network, ``model.batch_size`` at a time; keeps every window's outputs in order."""

    def __init__(self, model: Model, names: list[str]) -> None:
        self.model, self.names = model, names
        self.batch: list[np.ndarray] = []
        self.outputs: list[list[np.ndarray]] = [[] for _ in names]

    def add(self, window: np.ndarray) -> None:
        """Queue one window [shape=(n_rows, chunk_frames)] (copied); runs a batch when one is full."""
        self.batch.append(window)
        if len(self.batch) >= self.model.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.batch:
            return
        x = np.stack(self.batch)[:, None].astype(np.float32, copy=False)  # a fresh array: normalised in place
        self.batch = []
        if self.model.input_norm is not None:
            mean, std = self.model.input_norm
            x -= mean
            x /= std
        for j, y in enumerate(self.model.session.run(self.names, {"spec": x})):
            self.outputs[j].append(np.asarray(y, dtype=np.float32))

    def result(self) -> list[np.ndarray]:
        """Every window's outputs, each [shape=(n_windows, ...)]."""
        self.flush()
        return [np.concatenate(parts, axis=0) for parts in self.outputs]


def _run_matrix(model: Model, spec: np.ndarray, windows: int | None, names: list[str]) -> tuple[list[np.ndarray], int]:
    """Network outputs of the selected windows of a feature matrix, and how many windows it has."""
    spec = np.asarray(spec, dtype=np.float32)
    if spec.ndim != 2 or spec.shape[1] == 0:
        raise InputError(f"expected features of shape (n_rows, n_frames>0), got {spec.shape} — check the input")
    C = model.chunk_frames
    if spec.shape[1] < C:
        spec = chunk_features(spec, C, model.chunk_hop_frames)[0, 0]  # repeated to fill one window
    total = len(chunk_starts(spec.shape[1], C, model.chunk_hop_frames))
    runner = _Runner(model, names)
    for s in select_windows(spec.shape[1], C, model.chunk_hop_frames, windows):
        runner.add(spec[:, s : s + C])
    return runner.result(), total


def _run_audio(
    model: Model, path: str | os.PathLike[str], windows: int | None, names: list[str], warnings: list[str] | None
) -> tuple[list[np.ndarray], int, float]:
    """Network outputs of the selected windows of an audio file, its window count and its seconds."""
    from specmusic.audio import check_complete, read_info, signal_warnings

    info = read_info(path)
    fc = model.feature_config
    plan, planned_again = _plan(model, info.sample_rate, info.frames, windows), False
    while True:
        if plan is None:  # the whole file's features (kinds that need them; a track of one window)
            spec, seconds = _audio_features(model, path, warnings)
            outs, total = _run_matrix(model, spec, windows, names)
            return outs, total, seconds
        if not planned_again:
            check_complete(path, info)
        try:
            outs, peak = _run_plan(model, path, plan, names)
            break
        except Replan as again:  # a header that over- or under-states the length (some MP3s): plan again
            if planned_again:
                raise AudioError(f"{display_path(path)}: its length differs from read to read — re-encode the file") from None
            plan = _plan(model, info.sample_rate, info.frames, windows, n_samples=again.n_samples)
            planned_again = True
    seconds = plan.n_samples / fc.sample_rate
    if warnings is not None:
        warnings += signal_warnings(display_path(path), peak=peak, seconds=seconds, window_seconds=_window_seconds(model))
    return outs, plan.total, seconds


def _plan(model: Model, native: int, frames: int, windows: int | None, n_samples: int | None = None) -> WindowPlan | None:
    return plan_windows(model.feature_config, model.chunk_frames, model.chunk_hop_frames, native=native, frames=frames,
                        windows=windows, n_samples=n_samples)


def _run_plan(model: Model, path: str | os.PathLike[str], plan: WindowPlan, names: list[str]) -> tuple[list[np.ndarray], float]:
    """The network on the plan's windows as their pieces are decoded; returns its outputs and the peak sample."""
    top_db = model.feature_config.top_db
    runner = _Runner(model, names)
    held: list[np.ndarray] = []  # windows waiting for the dB floor (top_db), else straight to the network
    decoded = DecodedWindows(path, model.feature_config, model.chunk_frames, plan, threads=decode_threads(model.threads))
    for window in decoded:
        if top_db is None:
            runner.add(window)
        else:
            held.append(window.copy())
    if held:  # the dB floor, relative to the loudest analysed frame (as power_to_db's, to the track's)
        floor = max(float(w.max()) for w in held) - top_db
        for w in held:
            runner.add(np.maximum(w, floor))
    return runner.result(), decoded.peak


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


def _run_outputs(model: Model, chunks: Iterable[np.ndarray], names: list[str]) -> list[np.ndarray]:
    """The outputs ``names`` of the network over ``chunks`` [shape=(n, 1, n_rows, chunk_frames)], batch by batch."""
    runner = _Runner(model, names)
    for chunk in chunks:
        runner.add(chunk[0])
    return runner.result()


def probabilities_from_logits(logits: np.ndarray, task: str) -> np.ndarray:
    """Softmax (multiclass) or sigmoid (multilabel) along the last axis."""
    if task == "multilabel":
        return 1.0 / (1.0 + np.exp(-logits))
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def predict_track(
    model: Model, source: str | os.PathLike[str] | np.ndarray, *, windows: int | None = DEFAULT_WINDOWS
) -> np.ndarray:
    """Track probabilities: the mean of the window probabilities.

    Parameters
    ----------
    source : audio path, ``.npz`` spectro array, or features [shape=(n_rows, n_frames)]
    windows : evenly spread windows analysed at most (None: every chunk)

    Returns
    -------
    probabilities : np.ndarray [shape=(n_classes,)], float32, in ``model.labels`` order
    """
    probs = analyse_track(model, source, windows=windows).probabilities
    assert probs is not None
    return probs


def _predict_spec(model: Model, spec: np.ndarray) -> np.ndarray:
    """Probabilities from every chunk of a feature matrix [shape=(n_rows, n_frames)]."""
    outs, _ = _run_matrix(model, spec, None, ["logits"])
    probs = probabilities_from_logits(outs[0], model.task)
    if probs.shape[-1] != len(model.labels):
        raise ModelError(f"{display_path(model.path)}: the network gave {probs.shape[-1]} outputs for "
                         f"{len(model.labels)} labels — {_FIX_MODEL}")
    return probs.mean(axis=0).astype(np.float32)


def embed_track(
    model: Model, source: str | os.PathLike[str] | np.ndarray, *, windows: int | None = DEFAULT_WINDOWS
) -> np.ndarray:
    """Track embedding: the mean of the window embeddings, L2-normalised.

    Returns
    -------
    embedding : np.ndarray [shape=(dim,)], float32
    """
    emb = analyse_track(model, source, windows=windows, outputs=("embedding",)).embedding
    assert emb is not None
    return emb


def embed_and_predict_track(
    model: Model,
    source: str | os.PathLike[str] | np.ndarray,
    *,
    windows: int | None = DEFAULT_WINDOWS,
    warnings: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`embed_track` and :func:`predict_track` from one pass of the network.

    ``warnings`` (audio only) receives a line for each reason not to trust the result.

    Returns
    -------
    embedding : np.ndarray [shape=(dim,)], float32, L2-normalised
    probabilities : np.ndarray [shape=(n_classes,)], float32, in ``model.labels`` order
    """
    result = analyse_track(model, source, windows=windows, outputs=("logits", "embedding"), warnings=warnings)
    assert result.embedding is not None and result.probabilities is not None
    return result.embedding, result.probabilities


# -- batches --------------------------------------------------------------------------------
def _classify_one(path: str, model: Model | str, windows: int | None = DEFAULT_WINDOWS) -> TrackResult:
    """One file's result (a failure in ``error``); ``model`` as a path is loaded once per worker process."""
    try:
        if isinstance(model, str):
            from specmusic.batch import require_visible, worker_cached

            require_visible(path)
            model = worker_cached(("classify", model), lambda: load_model(model, threads=1))  # type: ignore[arg-type]
        notes: list[str] = []
        result = analyse_track(model, path, windows=windows, warnings=notes)  # type: ignore[arg-type]
        return TrackResult(path, result.probabilities, result.duration, warnings=notes, windows=result.windows)
    except SpecmusicError as exc:
        return TrackResult(path, error=str(exc))
    except MemoryError:
        return TrackResult(path, error=f"{display_path(path)}: out of memory — split the file")
    except OSError as exc:
        return TrackResult(path, error=f"{display_path(path)}: cannot read ({exc.strerror or exc}) — check the file")


def predict_files(
    model: Model,
    paths: Sequence[str],
    *,
    jobs: int = 1,
    cluster: str | None = None,
    progress: bool | None = None,
    windows: int | None = DEFAULT_WINDOWS,
) -> Iterator[TrackResult]:
    """Classify many files, in input order; a file that fails yields a result with ``error``.

    Parameters
    ----------
    model : from :func:`load_model` (workers reload it from ``model.path``)
    paths : audio files or ``.npz`` spectro arrays
    jobs : worker processes (each runs onnxruntime and decodes on one thread)
    cluster : run on Dask instead (``local[:N]`` | ``tcp://HOST:PORT``; :mod:`specmusic.distributed`)
    progress : progress bar on stderr (None: only on a terminal)
    windows : evenly spread windows analysed per track at most (None: every chunk)

    Yields
    ------
    TrackResult
    """
    from specmusic.batch import open_executor, run_tasks

    show = sys.stderr.isatty() if progress is None else progress
    bar: Any = None
    if show:  # no bar: skip importing tqdm (cold start matters here)
        from tqdm import tqdm

        bar = tqdm(total=len(paths), desc="classify", unit="track", file=sys.stderr, dynamic_ncols=True)
    try:
        with open_executor(jobs=jobs, cluster=cluster, n_items=len(paths)) as executor:
            target: Model | str = model if executor is None else model.path
            for _, result in run_tasks(
                executor, _classify_one, paths, args=(target, windows), ordered=True,
                on_failure=lambda path, error: TrackResult(path, error=error),
            ):  # fmt: skip
                if bar is not None:
                    bar.update(1)
                yield result
    finally:
        if bar is not None:
            bar.close()


def top_k(model: Model, probabilities: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` most probable labels with their probabilities, best first."""
    order = np.argsort(-probabilities, kind="stable")[: max(1, k)]
    return [(model.labels[i], float(probabilities[i])) for i in order]

