"""One file, decoded once: everything ``describe`` needs from its samples, in one pass.

The file is streamed at its own rate and channel count (:func:`specmusic.audio.stream_audio`);
each block feeds, side by side,

- a hash of the decoded PCM (BLAKE2b): identical hashes are exact duplicates;
- the :class:`~specmusic.describe.loudness.LoudnessMeter` (LUFS, peak, clipping, silence);
- a streaming soxr resampler to 11025 Hz mono: a coarse STFT of it (93 ms frames side by side)
  gives a small log-mel picture for the label's mean spectrogram; halved to 5512 Hz, a fine one
  (186 ms frames every 23 ms) gives the fingerprint.

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


def analyse_file(path: str, config: DescribeConfig = DescribeConfig()) -> FileAnalysis:
    """Decode ``path`` once and measure it.

    Raises
    ------
    AudioError
        Missing, empty, undecodable or truncated file, or one without samples.
    """
    import soxr

    from specmusic.features import power_spectrogram

    fp_config = config.fingerprint
    info = read_info(path)
    meter = LoudnessMeter(info.sample_rate, info.channels, clip_level=config.clip_level,
                          clip_run=config.clip_run, silence_db=config.silence_db)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{info.sample_rate}/{info.channels}:".encode())  # the same samples at another rate are other audio
    resampler = soxr.ResampleStream(info.sample_rate, SPEC_RATE, 1, dtype="float32", quality="HQ")
    mono_parts = []
    for block in stream_audio(path, sr=None, mono=False):
        digest.update(np.ascontiguousarray(block, dtype=np.float32).tobytes())
        meter.add(block)
        mono = block.mean(axis=0, dtype=np.float32) if block.shape[0] > 1 else block[0]
        mono_parts.append(resampler.resample_chunk(mono, last=False))
    mono_parts.append(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    loud = meter.result()
    if loud.samples == 0:
        from specmusic.fileio import display_path

        raise AudioError(f"{display_path(path)}: contains no audio samples — check the file or remove it")
    y = np.concatenate(mono_parts) if mono_parts else np.zeros(0, dtype=np.float32)
    y_fp = y if fp_config.sample_rate == SPEC_RATE else soxr.resample(y, SPEC_RATE, fp_config.sample_rate, "HQ")
    frames = power_spectrogram(y_fp, n_fft=fp_config.n_fft, hop_length=fp_config.hop_length).T  # [T, bins]
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
        fingerprint=fingerprint_from_power(frames, fp_config),
        spectrogram=_picture(y),
    )


def safe_analyse_file(path: str, config: DescribeConfig) -> tuple[str, FileAnalysis | None, str | None]:
    """:func:`analyse_file`, with a failure returned as a one-line message instead of raised."""
    from specmusic.fileio import display_path

    try:
        return path, analyse_file(path, config), None
    except AudioError as exc:
        return path, None, str(exc)
    except PermissionError:
        return path, None, f"{display_path(path)}: permission denied — make the file readable"
    except MemoryError:
        return path, None, f"{display_path(path)}: out of memory — describe it alone or split the file"
