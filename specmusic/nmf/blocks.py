"""The STFT pair of :mod:`specmusic.stft`, a block of frames at a time, for long signals.

:func:`specmusic.stft.stft` frames the whole signal in float64 and transforms it at once: about
40 bytes per time-frequency bin of temporaries, where the complex64 result takes 8. :func:`stft_blocks`
computes the same frames with the same arithmetic (float64, periodic Hann) ``block_frames`` at a
time into the complex64 result, so its output equals ``stft(y, dtype=np.complex64)`` bit for bit.
:func:`istft_blocks` is :func:`specmusic.stft.istft` of a spectrogram that is computed block by block
(a mask times the mix, the model with the mix's phase) and never held whole: the overlap-add of each
block's frames goes into one float64 signal, divided by the summed squared window at the end.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from specmusic.errors import InputError
from specmusic.stft import check_fft, hann

__all__ = ["BLOCK_FRAMES", "istft_blocks", "stft_blocks", "window_sum"]

#: Frames per block: 256 frames of a 2048-point STFT are ~8 MiB of complex128 temporaries.
BLOCK_FRAMES = 256


def stft_blocks(y: np.ndarray, *, n_fft: int = 2048, hop_length: int = 512,
                block_frames: int = BLOCK_FRAMES) -> np.ndarray:
    """``specmusic.stft.stft(y, dtype=np.complex64)``, bit for bit, without its whole-signal temporaries.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]

    Returns
    -------
    X : np.ndarray [shape=(1 + n_fft // 2, 1 + n // hop_length)], complex64, C-contiguous

    Raises
    ------
    ConfigError
        See :func:`specmusic.stft.check_fft`.
    InputError
        ``y`` is not one-dimensional.
    """
    check_fft(n_fft, hop_length)
    y = np.asarray(y)
    if y.ndim != 1:
        raise InputError(f"signal has shape {y.shape} — pass mono audio (load_audio(mono=True))")
    if y.dtype not in (np.float32, np.float64):
        y = y.astype(np.float64)
    padded = np.pad(y, n_fft // 2)  # float32 stays float32: widening it per block is exact
    n_frames = 1 + (len(padded) - n_fft) // hop_length
    frames = np.lib.stride_tricks.as_strided(
        padded, shape=(n_frames, n_fft), strides=(padded.strides[0] * hop_length, padded.strides[0]), writeable=False
    )
    window = hann(n_fft)
    X = np.empty((n_fft // 2 + 1, n_frames), dtype=np.complex64)
    for t0 in range(0, n_frames, block_frames):
        t1 = min(t0 + block_frames, n_frames)
        X[:, t0:t1] = np.fft.rfft(frames[t0:t1].astype(np.float64) * window, axis=1).T
    return X


def _overlap_add_into(out: np.ndarray, frames: np.ndarray, start: int, hop: int) -> None:
    """Add ``frames`` [shape=(m, n_fft)], one every ``hop`` samples, into ``out`` from sample ``start``."""
    m, n_fft = frames.shape
    if n_fft % hop == 0:  # fast path: n_fft/hop shifted slabs, as specmusic.stft
        r = n_fft // hop
        view = out[start : start + (m + r - 1) * hop].reshape(m + r - 1, hop)
        slabs = frames.reshape(m, r, hop)
        for k in range(r):
            view[k : k + m] += slabs[:, k]
        return
    for i in range(m):
        out[start + i * hop : start + i * hop + n_fft] += frames[i]


def window_sum(n_fft: int, hop_length: int, n_frames: int, *, block_frames: int = BLOCK_FRAMES) -> np.ndarray:
    """The summed squared Hann window over ``n_frames`` frames, zeros replaced by 1 (the ISTFT's divisor).

    Returns
    -------
    wsum : np.ndarray [shape=(n_fft + hop_length * (n_frames - 1),)], float64
    """
    out = np.zeros(n_fft + hop_length * (n_frames - 1))
    square = hann(n_fft) ** 2
    for t0 in range(0, n_frames, block_frames):
        m = min(block_frames, n_frames - t0)
        _overlap_add_into(out, np.broadcast_to(square, (m, n_fft)).copy(), t0 * hop_length, hop_length)
    out[out <= 1e-8] = 1.0
    return out


def istft_blocks(
    block: Callable[[int, int], np.ndarray],
    *,
    n_fft: int,
    n_frames: int,
    hop_length: int,
    length: int,
    wsum: np.ndarray | None = None,
    block_frames: int = BLOCK_FRAMES,
) -> np.ndarray:
    """:func:`specmusic.stft.istft` of a spectrogram given block by block.

    Parameters
    ----------
    block : ``block(t0, t1)`` → the complex frames ``t0 .. t1 - 1`` [shape=(1 + n_fft // 2, t1 - t0)]
    n_frames : frames of the whole spectrogram
    length : samples of the output
    wsum : :func:`window_sum` of these settings (computed when not given; pass it to reuse it)

    Returns
    -------
    y : np.ndarray [shape=(length,)], float64
    """
    check_fft(n_fft, hop_length)
    if wsum is None:
        wsum = window_sum(n_fft, hop_length, n_frames, block_frames=block_frames)
    y = np.zeros(n_fft + hop_length * (n_frames - 1))
    window = hann(n_fft)
    for t0 in range(0, n_frames, block_frames):
        t1 = min(t0 + block_frames, n_frames)
        frames = np.fft.irfft(np.asarray(block(t0, t1)).T, n=n_fft, axis=1)
        frames *= window
        _overlap_add_into(y, frames, t0 * hop_length, hop_length)
    y /= wsum
    y = y[n_fft // 2 :]
    return y[:length] if len(y) >= length else np.pad(y, (0, length - len(y)))
