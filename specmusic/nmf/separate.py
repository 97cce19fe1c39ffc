"""A mix into parts: its spectrogram, soft masks, one signal per component, the model's own signal.

The parts come from soft masks that sum to one at every bin, applied to the mix's complex STFT, so
they add up to the mix sample for sample. The model ``W @ H`` itself is only an approximation of
``|X|``: heard through the mix's phase (:func:`reconstruct`) it differs from the mix by the
factorisation's error, which :func:`resynthesize` measures.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from specmusic.config import ConfigBase
from specmusic.errors import ConfigError, InputError
from specmusic.nmf.blocks import stft_blocks
from specmusic.nmf.solver import NMFConfig, NMFResult, fit_nmf
from specmusic.stft import check_fft

__all__ = [
    "magnitude",
    "soft_masks",
    "separate_components",
    "reconstruct",
    "component_stats",
    "SpectrogramConfig",
    "Decomposition",
    "Resynthesis",
    "load_spectrogram_for_nmf",
    "decompose",
    "resynthesize",
]


def magnitude(X: np.ndarray, *, power: float = 1.0) -> np.ndarray:
    """``|X| ** power`` as float32 [shape=X.shape]."""
    mag = np.abs(X).astype(np.float32, copy=False)
    return mag if power == 1 else np.power(mag, power, dtype=np.float32)


# -- parts of a mix --------------------------------------------------------------------------
def _mask_factors(W: np.ndarray, H: np.ndarray, power: float) -> tuple[np.ndarray, np.ndarray]:
    """``W^p`` and ``H^p`` in float64; the masks' denominator ``Σ_j (W_j H_j)^p`` is ``W^p @ H^p``."""
    if power <= 0:
        raise ConfigError(f"mask power {power:g} — use a positive exponent (1: ratio mask, 2: Wiener-like)")
    return np.power(np.asarray(W, dtype=np.float64), power), np.power(np.asarray(H, dtype=np.float64), power)


def _mask_parts(W: np.ndarray, H: np.ndarray, power: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``W^p``, ``H^p`` and the safe denominator ``Σ_j (W_j H_j)^p`` (zeros → 0, handled by the caller)."""
    Wp, Hp = _mask_factors(W, H, power)
    return Wp, Hp, Wp @ Hp  # Σ_c (w_fc h_cn)^p, since (w h)^p = w^p h^p


def _mask(Wp: np.ndarray, Hp: np.ndarray, den: np.ndarray, c: int) -> np.ndarray:
    """The mask of component ``c`` [shape=(n_freqs, n_frames)] (or of the frames of ``Hp`` and ``den``, a
    block of them); ``1/k`` where every component underflows."""
    zero = den <= 0
    m = np.outer(Wp[:, c], Hp[c]) / np.where(zero, 1.0, den)
    m[zero] = 1.0 / Wp.shape[1]
    return m


def soft_masks(W: np.ndarray, H: np.ndarray, *, power: float = 2.0) -> np.ndarray:
    """Wiener-like masks ``(W_c H_c)^p / Σ_j (W_j H_j)^p`` for every component ``c``.

    Returns
    -------
    masks : np.ndarray [shape=(k, n_freqs, n_frames)], float64, each in [0, 1]; they sum to exactly 1
        at every bin (bins where every component underflows get ``1 / k`` each).
    """
    Wp, Hp, den = _mask_parts(W, H, power)
    return np.stack([_mask(Wp, Hp, den, c) for c in range(Wp.shape[1])])


def separate_components(
    X: np.ndarray, W: np.ndarray, H: np.ndarray, *, hop_length: int, length: int, mask_power: float = 2.0
) -> np.ndarray:
    """One signal per component by soft-masking the mix's complex STFT.

    Masks, masked spectrograms and their inverse go a block of frames at a time
    (:func:`specmusic.nmf.blocks.istft_blocks`): besides ``X`` and the parts, memory is a few
    ``length``-sized float64 signals and some MiB of block temporaries, whatever the length.

    Parameters
    ----------
    X : np.ndarray [shape=(n_freqs, n_frames)], complex: the mix's :func:`stft`
    W, H : the factorisation of ``|X|`` (or ``|X|²``)
    length : samples of each output signal (the mix's length)

    Returns
    -------
    parts : np.ndarray [shape=(k, length)], float32; ``parts.sum(axis=0)`` equals ``istft(X)``
        (the mix) to float32 rounding, because the masks sum to one and the ISTFT is linear.
    """
    from specmusic.nmf.blocks import istft_blocks, window_sum

    Wp, Hp = _mask_factors(W, H, mask_power)
    n_fft, n_frames = 2 * (X.shape[0] - 1), X.shape[1]
    check_fft(n_fft, hop_length)
    wsum = window_sum(n_fft, hop_length, n_frames)
    parts = np.empty((Wp.shape[1], length), dtype=np.float32)
    for c in range(Wp.shape[1]):
        def masked(t0: int, t1: int, c: int = c) -> np.ndarray:
            Hb = Hp[:, t0:t1]
            return X[:, t0:t1] * _mask(Wp, Hb, Wp @ Hb, c)

        parts[c] = istft_blocks(masked, n_fft=n_fft, n_frames=n_frames, hop_length=hop_length, length=length,
                                wsum=wsum)
    return parts


def reconstruct(X: np.ndarray, W: np.ndarray, H: np.ndarray, *, hop_length: int, length: int,
                power: float = 1.0) -> np.ndarray:
    """The model ``W @ H`` heard through the mix's phase: ``istft((WH)^(1/power) · e^{i∠X})``.

    Not the mix: it differs from it by the factorisation's error (``W @ H`` only approximates
    ``|X| ** power``); the parts of :func:`separate_components` are what sums to the mix. Computed a
    block of frames at a time, as :func:`separate_components`.

    Returns
    -------
    y : np.ndarray [shape=(length,)], float32
    """
    from specmusic.nmf.blocks import istft_blocks

    W64, H64 = np.asarray(W, np.float64), np.asarray(H, np.float64)

    def model(t0: int, t1: int) -> np.ndarray:
        mag = np.power(np.maximum(W64 @ H64[:, t0:t1], 0.0), 1.0 / power)
        return mag * np.exp(1j * np.angle(X[:, t0:t1]))

    y = istft_blocks(model, n_fft=2 * (X.shape[0] - 1), n_frames=X.shape[1], hop_length=hop_length, length=length)
    return y.astype(np.float32)


def component_stats(W: np.ndarray, H: np.ndarray, parts: np.ndarray, *, sr: int, hop_length: int) -> list[dict[str, Any]]:
    """Numbers that say what each part sounds like.

    Returns one dict per component: ``energy_share`` (of the parts' total energy), ``rms_db``,
    ``centroid_hz`` (spectral centroid of the template), ``peak_hz`` (its strongest bin),
    ``active_share`` (frames where the activation exceeds 10 % of its maximum) and ``onsets_per_s``
    (upward crossings of that threshold per second: high for percussive parts).
    """
    n_fft = 2 * (W.shape[0] - 1)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    energy = np.array([_sum_squares(p) for p in parts])
    total = float(energy.sum()) or 1.0
    seconds = H.shape[1] * hop_length / sr
    out = []
    for c in range(W.shape[1]):
        w = W[:, c].astype(np.float64)
        h = H[c].astype(np.float64)
        on = h > 0.1 * float(h.max()) if h.max() > 0 else np.zeros_like(h, dtype=bool)
        rms = math.sqrt(energy[c] / max(parts.shape[1], 1))
        out.append({
            "component": c + 1,
            "energy_share": round(float(energy[c]) / total, 4),
            "rms_db": round(20 * math.log10(max(rms, 1e-10)), 1),
            "centroid_hz": round(float((freqs * w).sum() / max(w.sum(), 1e-30)), 1),
            "peak_hz": round(float(freqs[int(np.argmax(w))]), 1),
            "active_share": round(float(on.mean()), 3),
            "onsets_per_s": round(float(np.count_nonzero(on[1:] & ~on[:-1])) / max(seconds, 1e-9), 2),
        })
    return out


# -- one file → parts ------------------------------------------------------------------------
@dataclass(frozen=True)
class SpectrogramConfig(ConfigBase):
    """How audio becomes the matrix ``V`` (defaults as ``spectro``'s STFT)."""

    what = "NMF spectrogram config"

    sample_rate: int = 22050  # Hz; audio is resampled (soxr HQ)
    n_fft: int = 2048  # samples per frame (Hann window, centred)
    hop_length: int = 512  # samples between frames
    power: float = 1.0  # 1: magnitude |X| (default), 2: power |X|²
    mask_power: float = 2.0  # exponent of the soft masks (2: Wiener-like, 1: ratio masks)

    def __post_init__(self) -> None:
        check_fft(self.n_fft, self.hop_length)
        if self.power <= 0 or self.mask_power <= 0:
            raise ConfigError("power and mask power must be positive — use 1 (magnitude) or 2 (power)")


@dataclass
class Decomposition:
    """A mix, its STFT and its factorisation."""

    y: np.ndarray
    X: np.ndarray
    V: np.ndarray
    result: NMFResult
    spec: SpectrogramConfig
    sr: int


def load_spectrogram_for_nmf(
    path: str | os.PathLike[str], *, spec: SpectrogramConfig, offset: float = 0.0, duration: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode ``path`` (mono, ``spec.sample_rate``) → ``(y, X, V)`` with ``V = |X| ** spec.power``.

    Raises
    ------
    AudioError
        Unreadable audio.
    InputError
        Silence (all zeros) or too short for one frame.
    """
    from specmusic.audio import load_audio
    from specmusic.fileio import display_path

    y, _ = load_audio(path, sr=spec.sample_rate, offset=offset, duration=duration)
    name = display_path(path)
    if len(y) < spec.n_fft // 2:
        raise InputError(f"{name}: only {len(y)} samples — give at least n_fft/2 = {spec.n_fft // 2} samples")
    if not np.any(y):
        raise InputError(f"{name}: is silent (all samples are zero) — there is nothing to decompose; "
                         "pick another file or --offset")
    X = stft_blocks(y, n_fft=spec.n_fft, hop_length=spec.hop_length)
    return y, X, magnitude(X, power=spec.power)


def decompose(
    y: np.ndarray, *, sr: int, spec: SpectrogramConfig | None = None, config: NMFConfig | None = None,
    progress: bool | None = False,
) -> Decomposition:
    """STFT of ``y`` [shape=(n,)] then :func:`fit_nmf` of its magnitude.

    Raises
    ------
    InputError
        Silence; ConfigError: ``k`` too large for the spectrogram.
    """
    spec = spec or SpectrogramConfig(sample_rate=sr)
    if not np.any(y):
        raise InputError("the audio is silent (all samples are zero) — there is nothing to decompose")
    X = stft_blocks(y, n_fft=spec.n_fft, hop_length=spec.hop_length)
    V = magnitude(X, power=spec.power)
    return Decomposition(y=y, X=X, V=V, result=fit_nmf(V, config=config, progress=progress), spec=spec, sr=sr)



@dataclass
class Resynthesis:
    """The audio of a :class:`Decomposition`, and how far each signal is from the mix.

    Attributes
    ----------
    parts : np.ndarray [shape=(k, n)], float32: the mix through each soft mask; they sum to the mix
    model : np.ndarray [shape=(n,)], float32: ``W @ H`` with the mix's phase (:func:`reconstruct`)
    mix_rms : RMS of the mix
    parts_sum_rms_error : RMS of ``parts.sum(axis=0) - mix`` (float rounding only)
    model_rms_error : RMS of ``model - mix`` (the factorisation's error, heard)
    """

    parts: np.ndarray
    model: np.ndarray
    mix_rms: float
    parts_sum_rms_error: float
    model_rms_error: float

    @property
    def model_relative_error(self) -> float:
        """``model_rms_error / mix_rms``: 0 for a perfect model."""
        return self.model_rms_error / self.mix_rms if self.mix_rms > 0 else 0.0


def _sum_squares(x: np.ndarray, *, chunk: int = 1 << 20) -> float:
    """``Σ x²`` in float64, a chunk at a time (no signal-sized float64 copy)."""
    return math.fsum(float(np.dot(b, b)) for b in (x[s : s + chunk].astype(np.float64) for s in range(0, len(x), chunk)))


def _rms_error(y: np.ndarray, mix: np.ndarray, *, chunk: int = 1 << 20) -> float:
    """RMS of ``y - mix`` where ``y`` is one signal [shape=(n,)] or the sum of several [shape=(k, n)]."""
    n = mix.shape[-1]
    total = 0.0
    for s in range(0, n, chunk):
        got = y[..., s : s + chunk]
        d = (got.sum(axis=0, dtype=np.float64) if got.ndim == 2 else got.astype(np.float64)) - mix[s : s + chunk]
        total += float(np.dot(d, d))
    return math.sqrt(total / n) if n else 0.0


def resynthesize(dec: Decomposition) -> Resynthesis:
    """One signal per component, the model's own signal, and their errors against the mix."""
    spec, r, n = dec.spec, dec.result, len(dec.y)
    parts = separate_components(dec.X, r.W, r.H, hop_length=spec.hop_length, length=n, mask_power=spec.mask_power)
    model = reconstruct(dec.X, r.W, r.H, hop_length=spec.hop_length, length=n, power=spec.power)
    return Resynthesis(
        parts=parts, model=model, mix_rms=math.sqrt(_sum_squares(dec.y) / n) if n else 0.0,
        parts_sum_rms_error=_rms_error(parts, dec.y),
        model_rms_error=_rms_error(model, dec.y),
    )
