"""Which windows of a long track a model analyses, and decoding only those, piece by piece.

A track with more chunks ("windows") than ``windows`` is judged from that many, spread evenly over
it (:func:`select_windows`), as musicnn and Essentia judge a track from a bounded number of
patches. :func:`plan_windows` turns the chosen windows into pieces of the file to decode: windows
that overlap or nearly touch are read once, long stretches are cut into pieces of at most
``_PIECE_SECONDS`` (or one window), and each piece starts a margin early on a native sample that
lies on the whole decode's grid, so that its features are those of the same frames of the whole
decoded track. :class:`DecodedWindows` decodes the pieces on a few threads, at most ``threads + 1``
at a time, and hands the windows over in track order as soon as their frames are in: memory
depends on the piece and the window, never on the track's length.

numpy, soundfile and soxr only (no onnxruntime, no torch, no librosa): :mod:`specmusic.inference`
runs the network on the windows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from specmusic.errors import InputError
from specmusic.features import FeatureConfig, chunk_starts

__all__ = [
    "listening_band",
    "DEFAULT_WINDOWS",
    "parse_windows",
    "select_windows",
    "WindowPlan",
    "plan_windows",
    "DecodedWindows",
    "Replan",
    "decode_threads",
]

# Defaults (measured on 2 cores by benchmarks/collection_speed.py; see docs/collections.md):
#: Windows (chunks) analysed per track when it has more; ``None`` ("all"): every chunk.
DEFAULT_WINDOWS: int | None = 6
_MARGIN_SECONDS = 0.25  # audio decoded before/after a piece: the resampler's and MP3 decoder's warm-up
_PIECE_SECONDS = 20.0  # audio decoded as one task (at least one window): the unit of parallel work
_MAX_ALIGN_FRAMES = 64  # piece starts snap to a multiple of this many frames at most (sample-exact seeks)
_MAX_DECODE_THREADS = 4  # pieces decoded at once at most (memory: a piece of audio and its features each)


def parse_windows(value: str | int | None) -> int | None:
    """The value of ``--windows``: a positive whole number, or ``all`` (every chunk: ``None``).

    ``None`` (option not given) is :data:`DEFAULT_WINDOWS`.

    Raises
    ------
    InputError
        Anything else (``Error: --windows 0 …``).
    """
    if value is None:
        return DEFAULT_WINDOWS
    text = str(value).strip().lower()
    if text == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise InputError(f"--windows {value!r} is neither a positive whole number nor 'all' — e.g. --windows 6")
    return n


def select_windows(n_frames: int, chunk_frames: int, hop_frames: int, windows: int | None) -> np.ndarray:
    """Start frames of the windows analysed in a track of ``n_frames`` frames.

    Every chunk (:func:`specmusic.features.chunk_starts`) when ``windows`` is None or the track has
    no more chunks than that; otherwise ``windows`` chunks spread evenly, each at the centre of its
    share of the track (one window: the middle of the track).

    Returns
    -------
    starts : np.ndarray [shape=(n_windows,)], int, increasing
    """
    starts = chunk_starts(n_frames, chunk_frames, hop_frames)
    if windows is None or len(starts) <= windows:
        return starts
    span = n_frames - chunk_frames
    return np.floor((np.arange(windows) + 0.5) * span / windows + 0.5).astype(np.int64)


@dataclass(frozen=True)
class Piece:
    """Frames ``lo``..``hi`` of a track, decoded from native sample ``start`` to ``stop`` (None: the end).

    The decoded audio's first frame is the track's frame ``first`` (a margin before ``lo``).
    """

    lo: int
    hi: int
    first: int
    start: int
    stop: int | None


@dataclass(frozen=True)
class WindowPlan:
    """What to decode for a track's windows.

    Attributes
    ----------
    starts : np.ndarray [shape=(n_windows,)], start frames of the windows, increasing
    total : windows of ``windows=None`` (every chunk)
    n_samples : samples of the whole track at the model's rate
    native : the file's sample rate
    pieces : what to decode, in track order
    """

    starts: np.ndarray
    total: int
    n_samples: int
    native: int
    pieces: list[Piece]


class Replan(Exception):
    """The file is not as long as its header says: plan again with ``n_samples`` (model-rate samples)."""

    def __init__(self, n_samples: int) -> None:
        super().__init__(n_samples)
        self.n_samples = n_samples


def decode_threads(threads: int | None) -> int:
    """Pieces decoded at once: ``threads``, else one per core (at most ``_MAX_DECODE_THREADS``)."""
    if threads is not None:
        return max(1, threads)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return min(cores, _MAX_DECODE_THREADS)


def _resampled_length(frames: int, native: int, sr: int) -> int:
    """Samples that soxr's stream gives for ``frames`` native samples (rounded to nearest, as soxr)."""
    return frames if native == sr else math.floor(frames * sr / native + 0.5)


def _align_frames(native: int, sr: int, hop: int) -> int:
    """Smallest frame step whose start is a whole native sample (so seeking there is sample-exact)."""
    step = sr // math.gcd(hop * native, sr)
    return step if step <= _MAX_ALIGN_FRAMES else 1


def plan_windows(
    config: FeatureConfig,
    chunk_frames: int,
    hop_frames: int,
    *,
    native: int,
    frames: int,
    windows: int | None,
    n_samples: int | None = None,
) -> WindowPlan | None:
    """Which pieces of a file to decode for its selected windows; None: decode the whole file instead.

    Parameters
    ----------
    config : the model's features
    chunk_frames, hop_frames : the model's windows and their hop
    native, frames : the file's sample rate and length (its header's)
    windows : windows analysed at most (None: every chunk)
    n_samples : the track's length at the model's rate when known better than the header's

    Returns None for kinds that need the whole track (MFCC and chroma, CQT), a track of one
    window or less, and every window of features floored relative to the track's loudest frame.
    """
    if config.kind not in ("mel", "stft") or native <= 0 or frames <= 0:
        return None  # MFCC/chroma (a floor or peak over the track) and CQT (librosa) take the whole track
    sr, hop, C = config.sample_rate, config.hop_length, chunk_frames
    n_samples = _resampled_length(frames, native, sr) if n_samples is None else n_samples
    n_frames = config.n_frames(n_samples)
    if n_frames <= C:
        return None  # one window or less: decode it whole
    starts = select_windows(n_frames, C, hop_frames, windows)
    total = len(chunk_starts(n_frames, C, hop_frames))
    if config.top_db is not None and len(starts) == total:
        return None  # every window, floored at the track's loudest frame: the whole track's features
    if n_samples != _resampled_length(frames, native, sr):  # planning again: the file ends sooner or later
        frames = math.ceil(n_samples * native / sr)
    margin = -(-(config.n_fft // 2 + int(_MARGIN_SECONDS * sr)) // hop)
    align = _align_frames(native, sr, hop)
    piece = max(C, int(_PIECE_SECONDS * sr / hop))
    intervals: list[list[int]] = []
    for s in starts.tolist():
        if intervals and s <= intervals[-1][1] + 2 * margin:  # overlapping or nearly touching: read once
            intervals[-1][1] = s + C
        else:
            intervals.append([s, s + C])
    pieces = []
    for lo, hi in intervals:
        size = -(-(hi - lo) // -(-(hi - lo) // piece))  # equal pieces of at most `piece` frames
        for a in range(lo, hi, size):
            b = min(a + size, hi)
            first = max((a - margin) // align * align, 0)
            start = 0 if first == 0 else round(first * hop * native / sr)
            end = math.ceil(((b - 1 + margin) * hop + config.n_fft // 2) * native / sr) + 1
            pieces.append(Piece(a, b, first, start, None if end >= frames else end))
    return WindowPlan(starts, total, n_samples, native, pieces)


def listening_band(config: FeatureConfig) -> tuple[float, float]:
    """The frequencies (Hz) a model on ``config``'s features hears: its mel bands' ``fmin``..``fmax`` (the
    whole spectrum for other kinds), from 20 Hz up (below is DC and infrasound, whatever the filters)."""
    mel = config.kind in ("mel", "mfcc")
    return max(config.fmin if mel else 0.0, 20.0), float(config.fmax if mel and config.fmax else config.sample_rate / 2)


def _decode_piece(
    path: str | os.PathLike[str], config: FeatureConfig, native: int, piece: Piece
) -> tuple[np.ndarray, Any, int | None]:
    """Features of frames ``piece.lo``..``hi`` (dB not yet floored), the :class:`~specmusic.audio.PeakMeter`
    that measured the piece (peak, power in :func:`listening_band`), and the track's length in samples at
    the model's rate when this read reached the end of the file (else None)."""
    from specmusic.audio import PeakMeter, stream_audio_frames
    from specmusic.features import compute_features_stream

    meter = PeakMeter(stream_audio_frames(path, start=piece.start, stop=piece.stop, sr=config.sample_rate, mono=True),
                      band=(*listening_band(config), config.sample_rate))
    spec, n = compute_features_stream(meter, dataclasses.replace(config, top_db=None))
    end = None
    if piece.stop is None or n < _resampled_length(piece.stop - piece.start, native, config.sample_rate) - 1:
        end = piece.first * config.hop_length + n  # the file ended here
    return spec[:, piece.lo - piece.first : piece.hi - piece.first], meter, end


def ordered(fn: Callable[[Any], Any], items: Sequence[Any], workers: int) -> Iterator[tuple[Any, Any]]:
    """``(item, fn(item))`` in order, computed on ``workers`` threads with at most ``workers + 1`` in flight."""
    if workers <= 1 or len(items) <= 1:
        for item in items:
            yield item, fn(item)
        return
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="specmusic-decode")
    queue: deque[tuple[Any, Any]] = deque()
    todo = iter(items)
    try:
        for item in todo:
            queue.append((item, pool.submit(fn, item)))
            if len(queue) > workers:
                break
        while queue:
            item, future = queue.popleft()
            result = future.result()
            nxt = next(todo, None)
            if nxt is not None:
                queue.append((nxt, pool.submit(fn, nxt)))
            yield item, result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class DecodedWindows:
    """The windows of a :class:`WindowPlan`, decoded: iterate for each [shape=(n_rows, chunk_frames)], in order.

    Pieces are decoded on ``threads`` threads while the caller works on the windows already handed
    over; a window is a view, valid until the next one is asked for (copy it to keep it). dB
    features come unfloored (``top_db`` is the caller's: relative to the loudest analysed frame).
    After the iteration, ``peak`` is the largest absolute sample decoded, ``band_power`` and ``power``
    the pieces' power in :func:`listening_band` and in all (:class:`~specmusic.audio.PeakMeter`).

    Raises
    ------
    Replan
        The file ended elsewhere than its header said (plan again with the length found).
    AudioError
        Undecodable, or much shorter than its header (truncated).
    """

    def __init__(
        self, path: str | os.PathLike[str], config: FeatureConfig, chunk_frames: int, plan: WindowPlan, *, threads: int
    ) -> None:
        self.path, self.config, self.chunk_frames, self.plan, self.threads = path, config, chunk_frames, plan, threads
        self.peak = self.band_power = self.power = 0.0

    def __iter__(self) -> Iterator[np.ndarray]:
        C, plan = self.chunk_frames, self.plan
        pending = deque(plan.starts.tolist())
        buf, base = np.zeros((self.config.n_rows, 0), np.float32), 0
        n_frames = self.config.n_frames(plan.n_samples)
        work = functools.partial(_decode_piece, self.path, self.config, plan.native)
        with contextlib.closing(ordered(work, plan.pieces, self.threads)) as results:
            for piece, (frames, meter, end) in results:
                if end is not None and self.config.n_frames(end) != n_frames:
                    raise Replan(end)
                self.peak = max(self.peak, meter.peak)
                self.band_power += meter.band_power
                self.power += meter.power
                if piece.lo != base + buf.shape[1]:  # the first piece of another stretch of windows
                    buf, base = frames, piece.lo
                else:
                    buf = np.concatenate([buf, frames], axis=1)
                while pending and pending[0] + C <= base + buf.shape[1]:
                    s = pending.popleft()
                    yield buf[:, s - base : s - base + C]
                keep = pending[0] if pending else base + buf.shape[1]
                if keep > base:
                    buf, base = buf[:, keep - base :], keep
