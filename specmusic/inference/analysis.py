"""Per-track analysis: a track's features, the plan of its analysis windows, and the network run on
them (onnxruntime and numpy alone; never torch, never librosa).

A track is cut into chunks (a track shorter than a chunk is repeated to fill it), chunk probabilities
are averaged into track probabilities, chunk embeddings averaged and L2-normalised into a track
embedding. A long track is judged from :data:`~specmusic.windowing.DEFAULT_WINDOWS` evenly spread
chunks ("windows"), decoded alone (:mod:`specmusic.windowing`) while the network runs on them
``model.batch_size`` at a time (:func:`analyse_track`; measurements in docs/collections.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from specmusic.errors import AudioError, ConfigError, InputError, ModelError
from specmusic.features import chunk_features, chunk_starts
from specmusic.fileio import printable_path
from specmusic.inference.contract import FIX_MODEL
from specmusic.inference.model import Model
from specmusic.windowing import (
    DEFAULT_WINDOWS,
    DecodedWindows,
    Replan,
    WindowPlan,
    decode_threads,
    listening_band,
    plan_windows,
    select_windows,
)

__all__ = [
    "TrackAnalysis",
    "analyse_track",
    "embed_and_predict_track",
    "embed_track",
    "predict_track",
    "probabilities_from_logits",
    "run_chunks",
    "run_outputs",
    "track_features",
]


# -- features --------------------------------------------------------------------------------
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
                f"{printable_path(source)}: computed with other features ({cfg.kind}, {cfg.n_rows} rows, "
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
    from specmusic.audio import PeakMeter, stream_audio
    from specmusic.features import compute_features_stream

    fc = model.feature_config
    meter = PeakMeter(stream_audio(path, sr=fc.sample_rate, mono=True), band=(*listening_band(fc), fc.sample_rate))
    spec, n = compute_features_stream(meter, fc)
    if n == 0:
        raise AudioError(f"{printable_path(path)}: contains no audio samples — check the file")
    seconds = n / fc.sample_rate
    if warnings is not None:
        warnings += _signal_warnings(model, path, meter, seconds)
    return spec, seconds


def _signal_warnings(model: Model, path: str | os.PathLike[str], meter: Any, seconds: float) -> list[str]:
    """Why not to trust the track's result, from what ``meter`` (a :class:`~specmusic.audio.PeakMeter` or
    :class:`~specmusic.windowing.DecodedWindows`) measured: silence, nothing in the band the model hears
    (DC, a 5 Hz tone), a mis-scaled file, a clip shorter than a window."""
    from specmusic.audio import signal_warnings

    share = meter.band_power / meter.power if meter.power > 0 else None
    return signal_warnings(printable_path(path), peak=meter.peak, seconds=seconds, window_seconds=_window_seconds(model),
                           band=listening_band(model.feature_config), band_share=share)


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
            raise ModelError(f"{printable_path(model.path)}: the network gave {probs.shape[-1]} outputs for "
                             f"{len(model.labels)} labels — {FIX_MODEL}")
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
    from specmusic.audio import check_complete, read_info

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
            outs, decoded = _run_plan(model, path, plan, names)
            break
        except Replan as again:  # a header that over- or under-states the length (some MP3s): plan again
            if planned_again:
                raise AudioError(f"{printable_path(path)}: its length differs from read to read — re-encode the file") from None
            plan = _plan(model, info.sample_rate, info.frames, windows, n_samples=again.n_samples)
            planned_again = True
    seconds = plan.n_samples / fc.sample_rate
    if warnings is not None:
        warnings += _signal_warnings(model, path, decoded, seconds)
    return outs, plan.total, seconds


def _plan(model: Model, native: int, frames: int, windows: int | None, n_samples: int | None = None) -> WindowPlan | None:
    return plan_windows(model.feature_config, model.chunk_frames, model.chunk_hop_frames, native=native, frames=frames,
                        windows=windows, n_samples=n_samples)


def _run_plan(
    model: Model, path: str | os.PathLike[str], plan: WindowPlan, names: list[str]
) -> tuple[list[np.ndarray], DecodedWindows]:
    """The network on the plan's windows as their pieces are decoded; returns its outputs and what the
    decoding measured (peak, power in the model's band)."""
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
    return runner.result(), decoded


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
    return run_outputs(model, chunks, ["embedding" if embedding else "logits"])[0]


def run_outputs(model: Model, chunks: Iterable[np.ndarray], names: list[str]) -> list[np.ndarray]:
    """The outputs ``names`` of the network over ``chunks`` [shape=(n, 1, n_rows, chunk_frames)], batch by batch.

    Returns
    -------
    outputs : one array per name, each [shape=(n, ...)], float32, raw (logits, not probabilities)
    """
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


