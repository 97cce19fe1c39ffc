"""Kaldi's mel filterbank in numpy (``compute-fbank-feats``; ``torchaudio.compliance.kaldi.get_mel_banks``).

Kaldi's mel scale is ``1127 ln(1 + f / 700)`` (HTK's, in natural log). Its ``n_mels`` triangles are
spaced evenly in mel between ``fmin`` and ``fmax``, with the end effects of ``n_mels + 1`` steps:
band ``i`` rises from ``mel_lo + i·Δ`` to 1 at ``mel_lo + (i+1)·Δ`` and falls to 0 at
``mel_lo + (i+2)·Δ``, where ``Δ = (mel(fmax) - mel(fmin)) / (n_mels + 1)``. Each FFT bin ``k`` of
``0 .. n_fft/2 - 1`` sits at ``mel(k · sr / n_fft)`` and takes the triangle's height there (linear in
mel, not in Hz, unlike librosa's filters); the Nyquist bin ``n_fft/2`` gets weight 0 (Kaldi builds
``n_fft/2`` columns, and the callers pad one zero column). No area normalisation. EfficientAT's
front end (:mod:`specmusic.models.efficientat`) uses it with ``fmin`` 0 and ``fmax`` 15 kHz at 32 kHz.

Computed in float32 (Kaldi's ``BaseFloat``) in the order of torchaudio's operations, so that the
weights are those EfficientAT was trained with to within torch's float32 ``log`` (one unit in the
last place at some bins, 2e-5 in a weight; float64 arithmetic throughout would move a log-mel band
by up to 3e-4).
"""

from __future__ import annotations

import functools

import numpy as np

from specmusic.errors import ConfigError

__all__ = ["kaldi_mel", "kaldi_mel_filterbank"]


def kaldi_mel(f: np.ndarray | float) -> np.ndarray:
    """Kaldi's mel scale: ``1127 ln(1 + f / 700)`` for frequencies ``f`` in Hz (float64)."""
    return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)


@functools.lru_cache(maxsize=8)
def kaldi_mel_filterbank(
    *, sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Kaldi's triangular mel filters over the bins of an ``n_fft``-point real FFT.

    Parameters
    ----------
    sr : sample rate in Hz
    n_fft : FFT size (even)
    n_mels : number of bands (more than 3, as Kaldi requires)
    fmin, fmax : band edges in Hz, ``0 <= fmin < fmax <= sr / 2`` (``fmax`` None: ``sr / 2``)

    Returns
    -------
    fb : np.ndarray [shape=(n_mels, 1 + n_fft // 2)], float32, read-only; the last column (Nyquist) is 0

    Raises
    ------
    ConfigError
        Odd ``n_fft``, ``n_mels`` of 3 or fewer, or band edges outside ``0 .. sr / 2``.
    """
    nyquist = sr / 2
    fmax = nyquist if fmax is None else fmax
    if n_fft % 2 or n_mels <= 3 or not 0.0 <= fmin < fmax <= nyquist:
        raise ConfigError(f"Kaldi mel filterbank needs an even n_fft (got {n_fft}), n_mels > 3 (got {n_mels}) and "
                          f"0 <= fmin < fmax <= {nyquist:g} (got {fmin:g}, {fmax:g}) — fix the feature config")
    f32 = np.float32
    mel_lo, mel_hi = float(kaldi_mel(fmin)), float(kaldi_mel(fmax))
    step = f32((mel_hi - mel_lo) / (n_mels + 1))
    band = np.arange(n_mels, dtype=f32)[:, None]
    left, centre, right = (f32(mel_lo) + (band + f32(k)) * step for k in (0, 1, 2))
    ratio = f32(1.0) + f32(sr / n_fft) * np.arange(n_fft // 2, dtype=f32) / f32(700.0)
    mel = f32(1127.0) * np.log(ratio.astype(np.float64)).astype(f32)[None, :]  # a correctly rounded log
    rising = (mel - left) / (centre - left)
    falling = (right - mel) / (right - centre)
    weights = np.maximum(f32(0.0), np.minimum(rising, falling))
    fb = np.pad(weights, ((0, 0), (0, 1))).astype(np.float32)
    fb.flags.writeable = False
    return fb
