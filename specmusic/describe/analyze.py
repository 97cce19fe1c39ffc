"""One file, decoded once: everything ``describe`` needs from its samples, in one pass.

The file is streamed at its own rate and channel count (:func:`specmusic.audio.stream_audio`);
each block feeds, side by side,

- a hash of the decoded PCM (BLAKE2b): identical hashes are exact duplicates;
- the :class:`~specmusic.describe.loudness.LoudnessMeter` (LUFS, peak, clipping, silence);
- a streaming soxr resampler to 11025 Hz mono: a coarse STFT of its first 30 s (93 ms frames side
  by side) gives a small log-mel picture for the label's mean spectrogram; halved to 5512 Hz (a
  second streaming resampler), a fine one (186 ms frames every 23 ms) gives the fingerprint, a
  block at a time.

Nothing but those results grows with the file: a 2-hour file is described in the memory of a
20 s block (docs/failures.md has the measurement).

What comes back (:class:`FileAnalysis`) is small: numbers, a 32-bit word per 23 ms and a
64 x 60 picture, so ``--jobs`` workers send little to the parent.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from specmusic.audio import read_info, stream_audio
from specmusic.describe.fingerprint import (
    Fingerprint,
    FingerprintConfig,
    fingerprint_from_power,
)
from specmusic.describe.loudness import LoudnessMeter
from specmusic.errors import AudioError
from specmusic.fileio import printable_path

__all__ = [
    "SPEC_COLUMNS",
    "SPEC_RATE",
    "SPEC_MELS",
    "SPEC_SECONDS",
    "DescribeConfig",
    "FileAnalysis",
    "analyse_file",
    "safe_analyse_file",
]

SPEC_RATE = 11025  # Hz: the picture's audio (the fingerprint's is half of it)
SPEC_FFT = 1024  # 93 ms frames, side by side (the picture is averaged over 0.5 s anyway)
SPEC_MELS = 64  # mel bands of the mean spectrogram (0..5.5 kHz)
SPEC_SECONDS = 30.0  # the picture covers the first 30 s of each clip
SPEC_COLUMNS = 60  # 0.5 s a column


@dataclass(frozen=True)
class DescribeConfig:
    """Thresholds of ``describe``.

    Defaults (one block)::

        clip_level      = 0.999  # |sample| at or above this is full scale (-0.01 dBFS)
        clip_run        = 3      # full-scale samples in a row that make a flat top (clipping)
        clipping_share  = 0.001  # a clip with more clipped samples than this counts as clipping
        silence_db      = -90.0  # a 100 ms segment whose peak stays below this is digital silence
        silent_share    = 0.5    # a clip with more silent segments than this counts as silent
        imbalance_ratio = 0.5    # warn when a label has fewer clips than this x the median label
        fingerprint     = FingerprintConfig()  # near-duplicate matching (see fingerprint.py)
    """

    clip_level: float = 0.999
    clip_run: int = 3
    clipping_share: float = 0.001
    silence_db: float = -90.0
    silent_share: float = 0.5
    imbalance_ratio: float = 0.5
    fingerprint: FingerprintConfig = FingerprintConfig()


@dataclass
class FileAnalysis:
    """What one file's samples say."""

    path: str
    duration: float
    sample_rate: int
    channels: int
    format: str
    lufs: float | None
    peak_dbfs: float | None
    clipping_share: float
    silence_share: float
    pcm_hash: str
    fingerprint: Fingerprint
    spectrogram: np.ndarray  # [SPEC_MELS, SPEC_COLUMNS] float32 mean power in dB; NaN past the clip's end


def _format_name(path: str, container: str) -> str:
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    return ext or container.lower()


def _picture(y: np.ndarray) -> np.ndarray:
    """Log-mel means over 0.5 s columns of the first 30 s of ``y`` (mono, ``SPEC_RATE``)
    [shape=(SPEC_MELS, SPEC_COLUMNS)], in dB relative to a full-scale sine."""
    from specmusic.features import mel_filterbank, power_spectrogram

    n = min(len(y), int(SPEC_SECONDS * SPEC_RATE))
    frames = power_spectrogram(y[:n], n_fft=SPEC_FFT, hop_length=SPEC_FFT).T  # [T, bins], no copy
    fb = mel_filterbank(sr=SPEC_RATE, n_fft=SPEC_FFT, n_mels=SPEC_MELS)
    per_col = SPEC_SECONDS / SPEC_COLUMNS * SPEC_RATE / SPEC_FFT  # frames a column (5.4)
    out = np.full((SPEC_MELS, SPEC_COLUMNS), np.nan, dtype=np.float32)
    full = min(int(frames.shape[0] / per_col), SPEC_COLUMNS)
    if full:  # the mel of a mean is the mean of the mels: pool the power first
        edges = np.round(np.arange(full + 1) * per_col).astype(int)
        pooled = np.add.reduceat(frames[: edges[-1]], edges[:-1], axis=0) / np.diff(edges)[:, None]
        cols = fb @ pooled.T
        out[:, :full] = 10.0 * np.log10(np.maximum(cols, 1e-10) / (SPEC_FFT / 4) ** 2)
    return out


class _FingerprintStream:
    """Sub-fingerprints of mono audio at ``config.sample_rate``, fed block by block.

    The frames are those :func:`~specmusic.features.power_spectrogram` gives for the whole signal
    (centred, zero-padded), computed a block at a time; only the last frame is kept between blocks,
    so memory is a block's, not the file's (a 32-bit word and a flag per 23 ms are what grows).
    """

    def __init__(self, config: FingerprintConfig) -> None:
        self.config = config
        self.pad = config.n_fft // 2
        self.buffer = np.zeros(self.pad, dtype=np.float32)  # the left centring pad
        self.previous: np.ndarray | None = None  # the last frame, the first of the next block's pairs
        self.bits: list[np.ndarray] = []
        self.valid: list[np.ndarray] = []

    def push(self, y: np.ndarray) -> None:
        """Add samples; fingerprint the frames they complete."""
        self.buffer = np.concatenate([self.buffer, np.asarray(y, dtype=np.float32)])
        self._drain()

    def finish(self) -> Fingerprint:
        """Pad the right edge, fingerprint the last frames, and return the whole fingerprint."""
        self.buffer = np.concatenate([self.buffer, np.zeros(self.pad, dtype=np.float32)])
        self._drain()
        if not self.bits:
            return Fingerprint(np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=bool))
        return Fingerprint(np.concatenate(self.bits), np.concatenate(self.valid))

    def _drain(self) -> None:
        from specmusic.features import power_spectrogram

        n_fft, hop = self.config.n_fft, self.config.hop_length
        if len(self.buffer) < n_fft:
            return
        n = 1 + (len(self.buffer) - n_fft) // hop  # whole frames in the buffer, the first at its start
        segment = self.buffer[: (n - 1) * hop + n_fft]
        # power_spectrogram centres frame t on sample t*hop of what it gets: the frames whose window
        # lies inside ``segment`` (no padding of its own) are frames 0..n-1 of the buffer.
        first = -(-self.pad // hop)
        shift = first * hop - self.pad  # 0 when hop divides n_fft/2 (the default); else pad on the left
        padded = np.concatenate([np.zeros(shift, dtype=np.float32), segment]) if shift else segment
        frames = power_spectrogram(padded, n_fft=n_fft, hop_length=hop).T[first : first + n]  # [n, bins]
        if self.previous is not None:
            frames = np.concatenate([self.previous, frames])
        if len(frames) >= 2:
            fp = fingerprint_from_power(frames, self.config)
            self.bits.append(fp.bits)
            self.valid.append(fp.valid)
        self.previous = frames[-1:].copy()
        self.buffer = self.buffer[n * hop :].copy()


def analyse_file(path: str, config: DescribeConfig = DescribeConfig()) -> FileAnalysis:
    """Decode ``path`` once and measure it, block by block: memory is bounded by a block (20 s at the
    file's rate) and the first 30 s of the picture, whatever the file's length.

    Raises
    ------
    AudioError
        Missing, empty, undecodable or truncated file, or one without samples.
    """
    import soxr

    fp_config = config.fingerprint
    info = read_info(path)
    meter = LoudnessMeter(info.sample_rate, info.channels, clip_level=config.clip_level,
                          clip_run=config.clip_run, silence_db=config.silence_db)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{info.sample_rate}/{info.channels}:".encode())  # the same samples at another rate are other audio
    resampler = soxr.ResampleStream(info.sample_rate, SPEC_RATE, 1, dtype="float32", quality="HQ")
    to_fp = (None if fp_config.sample_rate == SPEC_RATE
             else soxr.ResampleStream(SPEC_RATE, fp_config.sample_rate, 1, dtype="float32", quality="HQ"))
    fingerprint = _FingerprintStream(fp_config)
    picture: list[np.ndarray] = []  # the first SPEC_SECONDS at SPEC_RATE
    kept = 0

    def feed(y: np.ndarray, last: bool) -> None:
        nonlocal kept
        if kept < SPEC_SECONDS * SPEC_RATE:
            picture.append(y[: int(SPEC_SECONDS * SPEC_RATE) - kept])
            kept += len(picture[-1])
        fingerprint.push(y if to_fp is None else to_fp.resample_chunk(y, last=last))

    for block in stream_audio(path, sr=None, mono=False):
        digest.update(np.ascontiguousarray(block, dtype=np.float32).tobytes())
        meter.add(block)
        mono = block.mean(axis=0, dtype=np.float32) if block.shape[0] > 1 else block[0]
        feed(resampler.resample_chunk(mono, last=False), last=False)
    feed(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True), last=True)
    loud = meter.result()
    if loud.samples == 0:
        raise AudioError(f"{printable_path(path)}: contains no audio samples — check the file or remove it")
    return FileAnalysis(
        path=path,
        duration=loud.samples / info.sample_rate,
        sample_rate=info.sample_rate,
        channels=info.channels,
        format=_format_name(path, info.format),
        lufs=loud.lufs,
        peak_dbfs=loud.peak_dbfs,
        clipping_share=loud.clipping_share,
        silence_share=loud.silence_share,
        pcm_hash=digest.hexdigest(),
        fingerprint=fingerprint.finish(),
        spectrogram=_picture(np.concatenate(picture) if picture else np.zeros(0, dtype=np.float32)),
    )


def safe_analyse_file(path: str, config: DescribeConfig) -> tuple[str, FileAnalysis | None, str | None]:
    """:func:`analyse_file`, with a failure returned as a one-line message instead of raised."""
    try:
        return path, analyse_file(path, config), None
    except AudioError as exc:
        return path, None, str(exc)
    except PermissionError:
        return path, None, f"{printable_path(path)}: permission denied — make the file readable"
    except MemoryError:
        return path, None, f"{printable_path(path)}: out of memory — describe it alone or split the file"
