"""The one STFT / inverse STFT pair used for resynthesis (``nmf`` parts and mosaics, ``generate``).

Centred frames (``n_fft // 2`` zeros on each side, as ``librosa.stft(center=True,
pad_mode="constant")``), periodic Hann window, weighted overlap-add inverse divided by the summed
squared window: ``istft(stft(y), length=len(y)) == y`` to float64 precision, and the inverse is
linear. Feature extraction (:mod:`specmusic.features`) frames audio the same way but streams it.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["hann", "stft", "istft"]


def hann(n_fft: int) -> np.ndarray:
    """Periodic Hann window (``scipy.signal.get_window('hann', n_fft)``), float64."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)


def stft(y: np.ndarray, *, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """Complex STFT of a mono signal.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]

    Returns
    -------
    X : np.ndarray [shape=(1 + n_fft // 2, 1 + n // hop_length)], complex128; frame ``t`` is centred
        on sample ``t * hop_length``
    """
    y = np.pad(np.asarray(y, dtype=np.float64), n_fft // 2)
    n_frames = 1 + (len(y) - n_fft) // hop_length
    frames = np.lib.stride_tricks.as_strided(
        y, shape=(n_frames, n_fft), strides=(y.strides[0] * hop_length, y.strides[0]), writeable=False
    )
    return np.fft.rfft(frames * hann(n_fft), axis=1).T


def _overlap_add(frames: np.ndarray, hop: int) -> np.ndarray:
    n_frames, n_fft = frames.shape
    total = n_fft + hop * (n_frames - 1)
    if n_fft % hop == 0:  # fast path: n_fft/hop shifted slabs
        r = n_fft // hop
        out = np.zeros((n_frames + r - 1, hop))
        blocks = frames.reshape(n_frames, r, hop)
        for k in range(r):
            out[k : k + n_frames] += blocks[:, k]
        return out.reshape(-1)[:total]
    y = np.zeros(total)
    for i in range(n_frames):
        y[i * hop : i * hop + n_fft] += frames[i]
    return y


@functools.lru_cache(maxsize=32)
def _window_sum(n_fft: int, hop: int, n_frames: int) -> np.ndarray:
    out = _overlap_add(np.broadcast_to(hann(n_fft) ** 2, (n_frames, n_fft)).copy(), hop)
    out.setflags(write=False)
    return out


def istft(X: np.ndarray, *, hop_length: int = 512, length: int | None = None) -> np.ndarray:
    """Inverse of :func:`stft` (``n_fft`` = ``2 * (rows - 1)``).

    Parameters
    ----------
    X : np.ndarray [shape=(1 + n_fft // 2, n_frames)], complex
    length : samples of the output (default ``hop_length * (n_frames - 1)``)

    Returns
    -------
    y : np.ndarray [shape=(length,)], float64
    """
    n_fft = 2 * (X.shape[0] - 1)
    n_frames = X.shape[1]
    frames = np.fft.irfft(np.asarray(X).T, n=n_fft, axis=1) * hann(n_fft)
    y, wsum = _overlap_add(frames, hop_length), _window_sum(n_fft, hop_length, n_frames)
    y /= np.where(wsum > 1e-8, wsum, 1.0)
    y = y[n_fft // 2 :]
    length = hop_length * (n_frames - 1) if length is None else length
    return y[:length] if len(y) >= length else np.pad(y, (0, length - len(y)))
