"""Integrated loudness (ITU-R BS.1770-4, LUFS), sample peak, clipping and digital silence, streamed.

:class:`LoudnessMeter` takes the decoded audio block by block (``[channels, n]`` at the file's own
rate) and keeps only 100 ms sums, so a long file is measured in bounded memory:

- **K-weighting**: the two biquads of BS.1770 (a high shelf, +4 dB above ~1.7 kHz, then an RLB
  high-pass at ~38 Hz). Their coefficients are derived for *any* sample rate from the analogue
  prototype (f0, gain, Q) by the bilinear transform, as libebur128 does; at 48 kHz they equal the
  standard's table to 1e-8 (tests/describe/test_describe.py checks).
- **Gating**: 400 ms blocks every 100 ms (75 % overlap: a block is the sum of four consecutive
  100 ms segments; at a rate where 100 ms is not a whole number of samples a segment is rounded
  to the nearest sample), block loudness ``-0.691 + 10 log10(sum_i G_i z_i)``, an absolute gate at
  -70 LUFS, then a relative gate 10 LU below the loudness of the blocks that passed it.
- **Channel weights** ``G_i``: 1.0 for mono, stereo and three channels; five channels
  (L, R, C, Ls, Rs) weigh the surrounds 1.41; 5.1 (L, R, C, LFE, Ls, Rs) also drops the LFE.
- **Sample peak** (not true peak: no oversampling) in dBFS over every channel.
- **Clipping share**: the fraction of samples inside a run of at least ``clip_run`` consecutive
  samples whose magnitude reaches ``clip_level`` (a flat top, not one loud sample).
- **Silence share**: the fraction of 100 ms segments whose peak stays below ``silence_db`` dBFS.

Audio shorter than one 400 ms block has no integrated loudness (``None``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["LoudnessMeter", "LoudnessResult", "channel_weights", "integrated_loudness", "k_weighting"]

# Analogue prototype of the BS.1770 filters (the values libebur128 and pyloudnorm derive the
# digital biquads from); the bilinear transform at 48 kHz gives the standard's coefficients.
_SHELF_F0 = 1681.974450955533
_SHELF_GAIN_DB = 3.999843853973347
_SHELF_Q = 0.7071752369554196
_HIGHPASS_F0 = 38.13547087602444
_HIGHPASS_Q = 0.5003270373238773

ABSOLUTE_GATE = -70.0  # LUFS
RELATIVE_GATE = -10.0  # LU below the absolutely gated loudness
_OFFSET = -0.691


def k_weighting(sample_rate: float) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The two K-weighting biquads ``((b_shelf, a_shelf), (b_highpass, a_highpass))`` at ``sample_rate``.

    Each ``b``/``a`` is ``[shape=(3,)]`` with ``a[0] == 1``.
    """
    k = math.tan(math.pi * _SHELF_F0 / sample_rate)
    vh = 10.0 ** (_SHELF_GAIN_DB / 20.0)
    vb = vh**0.4996667741545416
    a0 = 1.0 + k / _SHELF_Q + k * k
    shelf_b = np.array([(vh + vb * k / _SHELF_Q + k * k) / a0, 2.0 * (k * k - vh) / a0,
                        (vh - vb * k / _SHELF_Q + k * k) / a0])
    shelf_a = np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / _SHELF_Q + k * k) / a0])
    k = math.tan(math.pi * _HIGHPASS_F0 / sample_rate)
    a0 = 1.0 + k / _HIGHPASS_Q + k * k
    hp_b = np.array([1.0, -2.0, 1.0])
    hp_a = np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / _HIGHPASS_Q + k * k) / a0])
    return (shelf_b, shelf_a), (hp_b, hp_a)


def channel_weights(channels: int) -> np.ndarray:
    """BS.1770 channel weights ``G_i`` for the usual layouts [shape=(channels,)]."""
    if channels == 5:
        return np.array([1.0, 1.0, 1.0, 1.41, 1.41])
    if channels == 6:
        return np.array([1.0, 1.0, 1.0, 0.0, 1.41, 1.41])
    return np.ones(channels)


@dataclass(frozen=True)
class LoudnessResult:
    """What :class:`LoudnessMeter` measured over a whole file."""

    lufs: float | None  # integrated loudness; None: shorter than a block, or every block below -70 LUFS
    peak_dbfs: float | None  # sample peak; None: all samples zero
    clipping_share: float  # of samples, all channels
    silence_share: float  # of 100 ms segments
    samples: int  # frames measured (per channel)


def _to_db(power: float) -> float | None:
    return 10.0 * math.log10(power) if power > 0 else None


class LoudnessMeter:
    """Streamed BS.1770-4 integrated loudness plus peak, clipping and silence.

    Parameters
    ----------
    sample_rate : the blocks' rate (the file's own: the K-weighting is derived for it)
    channels : channels of every block
    clip_level : a sample at or above this magnitude is at full scale (0.999 ≈ -0.01 dBFS)
    clip_run : consecutive full-scale samples that make a flat top (clipping)
    silence_db : a 100 ms segment whose peak stays below this many dBFS is digital silence
    """

    def __init__(self, sample_rate: int, channels: int, *, clip_level: float = 0.999, clip_run: int = 3,
                 silence_db: float = -90.0) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self.segment = max(1, int(round(0.1 * sample_rate)))
        self.weights = channel_weights(channels)
        self.filters = k_weighting(sample_rate)
        self.sos = np.array([np.concatenate(f) for f in self.filters])  # [2, 6] second-order sections
        self.state = np.zeros((2, channels, 2))  # the filters start from silence
        self.clip_level = clip_level
        self.clip_run = max(1, clip_run)
        self.silence_level = 10.0 ** (silence_db / 20.0)
        self._sq_carry = np.zeros((channels, 0))
        self._abs_carry = np.zeros(0)
        self._segments: list[np.ndarray] = []  # [channels, n] sums of K-weighted squares per segment
        self._silent = 0
        self._counted = 0
        self._clipped = 0
        self.peak = 0.0
        self.samples = 0

    def add(self, block: np.ndarray) -> None:
        """Measure the next ``[shape=(channels, n)]`` block (float, full scale ±1)."""
        from scipy.signal import sosfilt  # scipy comes with scikit-learn and librosa

        x = np.asarray(block, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.shape[1] == 0:
            return
        self.samples += x.shape[1]
        mag = np.abs(x)
        self.peak = max(self.peak, float(mag.max()))
        self._clipped += self._count_clipped(mag >= self.clip_level)
        y, self.state = sosfilt(self.sos, x, axis=-1, zi=self.state)
        sq = np.concatenate([self._sq_carry, y * y], axis=1)
        peaks = np.concatenate([self._abs_carry, mag.max(axis=0)])
        n = sq.shape[1] // self.segment
        if n:
            cut = n * self.segment
            self._segments.append(sq[:, :cut].reshape(self.channels, n, self.segment).sum(axis=2))
            seg_peak = peaks[:cut].reshape(n, self.segment).max(axis=1)
            self._silent += int(np.count_nonzero(seg_peak < self.silence_level))
            self._counted += n
            sq, peaks = sq[:, cut:], peaks[cut:]
        self._sq_carry, self._abs_carry = sq, peaks

    def _count_clipped(self, full: np.ndarray) -> int:
        """Samples inside runs of at least ``clip_run`` full-scale samples (per channel)."""
        r = self.clip_run
        if r == 1 or full.shape[1] < r:
            return int(np.count_nonzero(full)) if r == 1 else 0
        start = full[:, : full.shape[1] - r + 1].copy()
        for k in range(1, r):
            start &= full[:, k : full.shape[1] - r + 1 + k]
        inside = np.zeros_like(full)
        for k in range(r):
            inside[:, k : k + start.shape[1]] |= start
        return int(np.count_nonzero(inside))

    def result(self) -> LoudnessResult:
        """Integrated loudness and the shares over everything added."""
        silent, counted = self._silent, self._counted
        if self._abs_carry.size:  # the last, partial segment counts for silence
            counted += 1
            silent += int(self._abs_carry.max() < self.silence_level)
        segments = np.concatenate(self._segments, axis=1) if self._segments else np.zeros((self.channels, 0))
        return LoudnessResult(
            lufs=gated_loudness(segments, self.weights, self.segment),
            peak_dbfs=None if self.peak <= 0 else 20.0 * math.log10(self.peak),
            clipping_share=self._clipped / max(1, self.samples * self.channels),
            silence_share=silent / counted if counted else 0.0,
            samples=self.samples,
        )


def gated_loudness(segments: np.ndarray, weights: np.ndarray, segment: int) -> float | None:
    """Gated integrated loudness from K-weighted squared sums per 100 ms segment [shape=(channels, n)]."""
    n = segments.shape[1]
    if n < 4:
        return None
    csum = np.concatenate([np.zeros((segments.shape[0], 1)), np.cumsum(segments, axis=1)], axis=1)
    z = (csum[:, 4:] - csum[:, :-4]) / (4 * segment)  # [channels, blocks] mean squares of 400 ms blocks
    power = weights @ z
    with np.errstate(divide="ignore"):
        block_lufs = _OFFSET + 10.0 * np.log10(power)
    kept = block_lufs > ABSOLUTE_GATE
    if not kept.any():
        return None
    relative = _OFFSET + 10.0 * math.log10(float(power[kept].mean())) + RELATIVE_GATE
    kept &= block_lufs > relative
    level = _to_db(float(power[kept].mean()))
    return None if level is None else _OFFSET + level


def integrated_loudness(y: np.ndarray, sample_rate: int) -> float | None:
    """Integrated loudness in LUFS of ``y`` [shape=(n,) or (channels, n)]; ``None`` below a block or -70 LUFS."""
    y = np.asarray(y)
    meter = LoudnessMeter(sample_rate, 1 if y.ndim == 1 else y.shape[0])
    meter.add(y)
    return meter.result().lufs
