"""The one STFT / inverse STFT pair used for resynthesis (``nmf`` parts and mosaics, ``generate``).

Centred frames (``n_fft // 2`` zeros on each side, as ``librosa.stft(center=True,
pad_mode="constant")``), periodic Hann window, weighted overlap-add inverse divided by the summed
squared window: ``istft(stft(y), length=len(y)) == y`` to float64 precision, and the inverse is
linear. Feature extraction (:mod:`specmusic.features`) frames audio the same way but streams it,
with the same :func:`hann` window, or a shorter one zero-padded to the frame (:func:`hann_window`),
after an optional :class:`PreEmphasis`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from specmusic.errors import ConfigError, InputError

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

__all__ = ["check_fft", "hann", "hann_window", "PreEmphasis", "stft", "istft"]


def hann(n_fft: int) -> np.ndarray:
    """Periodic Hann window (``scipy.signal.get_window('hann', n_fft)``), float64."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)


@functools.lru_cache(maxsize=8)
def hann_window(n_fft: int, *, win_length: int | None = None, symmetric: bool = False) -> np.ndarray:
    """A Hann window of ``win_length`` samples zero-padded at both ends to ``n_fft``, as the feature
    path's float32, read-only (built once per arguments).

    Periodic (:func:`hann`) or ``symmetric`` (``torch.hann_window(win_length, periodic=False)``,
    ``0.5 - 0.5 cos(2 pi n / (win_length - 1))``). The padding is ``(n_fft - win_length) // 2``
    zeros on the left and the rest on the right, as ``torch.stft`` pads a window shorter than
    ``n_fft``; ``win_length=None`` is ``n_fft``.

    Returns
    -------
    window : np.ndarray [shape=(n_fft,)]

    Raises
    ------
    ConfigError
        ``win_length`` outside ``1 .. n_fft``.
    """
    length = n_fft if win_length is None else win_length
    if not 1 <= length <= n_fft:
        raise ConfigError(f"win_length={win_length} must lie in 1..n_fft={n_fft} — fix the feature config")
    if symmetric:
        core = np.ones(1) if length == 1 else 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / (length - 1))
    else:
        core = hann(length)
    left = (n_fft - length) // 2
    window = np.pad(core, (left, n_fft - length - left)).astype(np.float32)
    window.flags.writeable = False
    return window


class PreEmphasis:
    """Pre-emphasis ``y[n] = x[n+1] - c·x[n]`` of a signal that arrives in consecutive blocks.

    A valid convolution with ``[-c, 1]``, as EfficientAT's ``conv1d``: ``y`` is one sample shorter
    than ``x`` (the first sample has no predecessor), so frame ``t`` of its centred STFT is centred
    on sample ``t·hop + 1`` of ``x``. Iterate for ``y`` block by block (float32); ``n_samples``
    counts the samples of ``x`` read so far.
    """

    def __init__(self, blocks: Iterable[np.ndarray], coefficient: float) -> None:
        self.blocks, self.c, self.n_samples = blocks, np.float32(coefficient), 0

    def __iter__(self) -> Iterator[np.ndarray]:
        last: np.ndarray | None = None  # the previous block's last sample
        for block in self.blocks:
            x = np.asarray(block, dtype=np.float32)
            if not x.size:
                continue
            self.n_samples += x.size
            if last is None:
                yield x[1:] - self.c * x[:-1]
            else:
                yield x - self.c * np.concatenate([last, x[:-1]])
            last = x[-1:]


def check_fft(n_fft: int, hop_length: int) -> None:
    """Check that frames of ``n_fft`` samples every ``hop_length`` can be resynthesised.

    Raises
    ------
    ConfigError
        ``n_fft`` below 16, or ``hop_length`` outside ``1 .. n_fft / 2`` (frames must overlap).
    """
    if n_fft < 16 or hop_length < 1 or hop_length > n_fft // 2:
        raise ConfigError(
            f"n_fft={n_fft}, hop_length={hop_length} — need n_fft >= 16 and 1 <= hop_length <= n_fft/2 "
            "(overlap is needed to resynthesise)"
        )


def stft(
    y: np.ndarray, *, n_fft: int = 2048, hop_length: int = 512, dtype: DTypeLike = np.complex128
) -> np.ndarray:
    """Complex STFT of a mono signal (computed in float64, returned as ``dtype``).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
    dtype : complex128 (default) or complex64 (half the memory; NMF uses it)

    Returns
    -------
    X : np.ndarray [shape=(1 + n_fft // 2, 1 + n // hop_length)], C-contiguous; frame ``t`` is
        centred on sample ``t * hop_length``

    Raises
    ------
    ConfigError
        See :func:`check_fft`.
    InputError
        ``y`` is not one-dimensional.
    """
    check_fft(n_fft, hop_length)
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1:
        raise InputError(f"signal has shape {y.shape} — pass mono audio (load_audio(mono=True))")
    y = np.pad(y, n_fft // 2)
    n_frames = 1 + (len(y) - n_fft) // hop_length
    frames = np.lib.stride_tricks.as_strided(
        y, shape=(n_frames, n_fft), strides=(y.strides[0] * hop_length, y.strides[0]), writeable=False
    )
    return np.ascontiguousarray(np.fft.rfft(frames * hann(n_fft), axis=1).T, dtype=dtype)


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


def istft(
    X: np.ndarray, *, hop_length: int = 512, length: int | None = None, dtype: DTypeLike = np.float64
) -> np.ndarray:
    """Inverse of :func:`stft` (``n_fft`` = ``2 * (rows - 1)``), computed in float64.

    Parameters
    ----------
    X : np.ndarray [shape=(1 + n_fft // 2, n_frames)], complex
    length : samples of the output (default ``hop_length * (n_frames - 1)``)
    dtype : float64 (default) or float32

    Returns
    -------
    y : np.ndarray [shape=(length,)], ``dtype``

    Raises
    ------
    ConfigError
        See :func:`check_fft`.
    """
    n_fft = 2 * (X.shape[0] - 1)
    check_fft(n_fft, hop_length)
    n_frames = X.shape[1]
    frames = np.fft.irfft(np.asarray(X).T, n=n_fft, axis=1) * hann(n_fft)
    y, wsum = _overlap_add(frames, hop_length), _window_sum(n_fft, hop_length, n_frames)
    y /= np.where(wsum > 1e-8, wsum, 1.0)
    y = y[n_fft // 2 :]
    length = hop_length * (n_frames - 1) if length is None else length
    y = y[:length] if len(y) >= length else np.pad(y, (0, length - len(y)))
    return y.astype(dtype, copy=False)
