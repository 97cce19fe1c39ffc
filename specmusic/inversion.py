"""Spectrograms back to audio: mel → linear power by NNLS, then fast Griffin-Lim (numpy only, no torch).

Inversion: mel power → linear power by non-negative least squares (multiplicative updates on the
project's own mel filterbank), then fast Griffin-Lim (Perraudin et al. 2013, momentum 0.99) on
:mod:`specmusic.stft`; the output is DC-free, loudness-normalised (-20 dBFS RMS, peaks ≤ -1 dBFS).
Used by ``specmusic generate sample`` and ``specmusic generate invert``.

Before any work the memory is estimated from the shape (:func:`inversion_memory`: Griffin-Lim holds
about a dozen float64/complex128 copies of the linear spectrogram) and a run above
:data:`MAX_INVERSION_GB` is refused with the frames that fit; a spectrogram of digital silence
becomes silence (with a warning), not normalised noise.
"""

from __future__ import annotations

import os

import numpy as np

from specmusic.audio import loudness_normalize
from specmusic.errors import ConfigError, InputError
from specmusic.features import FeatureConfig, mel_filterbank
from specmusic.fileio import numpy_load_reason, printable_path
from specmusic.stft import istft, stft

__all__ = [
    "MAX_INVERSION_GB",
    "SILENT_DB",
    "griffin_lim",
    "inversion_memory",
    "invert_array",
    "load_invertible_array",
    "mel_to_audio",
    "mel_to_linear",
    "spectral_convergence_db",
]


#: The most memory (GB) an inversion may take: a longer array is refused before the work, with the
#: frames that fit (a 128 × 2,000,000 mel would need ~260 GB).
MAX_INVERSION_GB = 4.0
#: Power dB at or below which a spectrogram is digital silence (``power_to_db``'s floor, 10·log10(1e-10)).
SILENT_DB = -100.0
_BYTES_PER_BIN_FRAME = 128  # Griffin-Lim's float64/complex128 arrays per linear bin and frame (measured: 114-126)
_BYTES_PER_ROW_FRAME = 40  # the mel → linear NNLS's float64 arrays per mel row and frame


def inversion_memory(n_rows: int, n_frames: int, config: FeatureConfig) -> int:
    """Bytes an inversion of a [shape=(n_rows, n_frames)] array takes at its peak (tracemalloc-measured rule)."""
    bins = config.n_fft // 2 + 1
    return int(n_frames * (_BYTES_PER_BIN_FRAME * bins + _BYTES_PER_ROW_FRAME * n_rows))


def _check_memory(shape: tuple[int, int], config: FeatureConfig, name: str, max_gb: float) -> None:
    need = inversion_memory(shape[0], shape[1], config)
    if need <= max_gb * 1e9:
        return
    fits = int(max_gb * 1e9 // inversion_memory(shape[0], 1, config))
    seconds = shape[1] * config.hop_length / config.sample_rate
    raise InputError(
        f"{name}: inverting {shape[0]} × {shape[1]} frames ({seconds / 60:.0f} min of audio) needs about "
        f"{need / 1e9:.0f} GB of memory, more than {max_gb:g} GB — invert at most {fits} frames "
        f"({fits * config.hop_length / config.sample_rate / 60:.1f} min) at a time: save slices of the array "
        "(np.save('part.npy', a[:, :N])) and invert each"
    )


def spectral_convergence_db(y: np.ndarray, magnitude: np.ndarray, *, n_fft: int = 2048, hop_length: int = 512) -> float:
    """``20 log10(‖|STFT(y)| − S‖_F / ‖S‖_F)`` in dB (lower is better; -inf for a perfect match)."""
    S = np.asarray(magnitude, dtype=np.float64)
    A = np.abs(stft(y, n_fft=n_fft, hop_length=hop_length))
    T = min(A.shape[1], S.shape[1])
    num = np.linalg.norm(A[:, :T] - S[:, :T])
    den = max(np.linalg.norm(S[:, :T]), 1e-12)
    return float(20 * np.log10(max(num / den, 1e-12)))


def griffin_lim(
    magnitude: np.ndarray,
    *,
    n_fft: int = 2048,
    hop_length: int = 512,
    n_iter: int = 64,
    momentum: float = 0.99,
    seed: int = 0,
) -> tuple[np.ndarray, float]:
    """Fast Griffin-Lim (Perraudin, Balazs & Søndergaard 2013): phase for a magnitude spectrogram.

    Parameters
    ----------
    magnitude : np.ndarray [shape=(1 + n_fft // 2, n_frames)], non-negative
    momentum : 0 gives plain Griffin-Lim; 0.99 the fast variant

    Returns
    -------
    y : np.ndarray [shape=(hop_length * (n_frames - 1),)], float32 (not normalised)
    sc_db : spectral convergence of ``y`` against ``magnitude`` (:func:`spectral_convergence_db`)

    Raises
    ------
    InputError
        ``magnitude`` is not 2-D with ``1 + n_fft // 2`` rows.
    """
    S = np.asarray(magnitude, dtype=np.float64)
    if S.ndim != 2 or S.shape[0] != n_fft // 2 + 1:
        raise InputError(f"magnitude of shape {S.shape} needs {n_fft // 2 + 1} rows for n_fft={n_fft} — fix n_fft or the array")
    rng = np.random.default_rng(seed)
    angles = np.exp(2j * np.pi * rng.random(S.shape))
    length = hop_length * (S.shape[1] - 1)
    rebuilt = np.zeros_like(angles)
    for _ in range(n_iter):
        previous = rebuilt
        inverse = istft(S * angles, hop_length=hop_length, length=length)
        rebuilt = stft(inverse, n_fft=n_fft, hop_length=hop_length)[:, : S.shape[1]]
        angles = rebuilt - (momentum / (1 + momentum)) * previous
        angles /= np.abs(angles) + 1e-16
    y = istft(S * angles, hop_length=hop_length, length=length)
    return y.astype(np.float32), spectral_convergence_db(y, S, n_fft=n_fft, hop_length=hop_length)


def mel_to_linear(mel_power: np.ndarray, *, config: FeatureConfig, n_iter: int = 100) -> np.ndarray:
    """Non-negative least-squares linear power spectrogram whose mel projection is ``mel_power``.

    Multiplicative updates (Lee & Seung, Euclidean) on the project's mel filterbank, started from
    the filterbank's transpose applied to the target.

    Parameters
    ----------
    mel_power : np.ndarray [shape=(n_mels, n_frames)], power (not dB)

    Returns
    -------
    power : np.ndarray [shape=(1 + n_fft // 2, n_frames)], float64, ≥ 0

    Raises
    ------
    InputError
        ``mel_power`` does not have ``config.n_mels`` rows.
    """
    fb = mel_filterbank(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels, fmin=config.fmin,
                        fmax=config.fmax, htk=config.mel_scale == "htk", norm=config.mel_norm).astype(np.float64)
    M = np.maximum(np.asarray(mel_power, dtype=np.float64), 0.0)
    if M.ndim != 2 or M.shape[0] != fb.shape[0]:
        raise InputError(f"mel array of shape {M.shape} needs {fb.shape[0]} rows — fix --n-mels or the array")
    numer = fb.T @ M
    col = fb.sum(axis=0)
    P = numer / np.where(col > 0, col**2, 1.0)[:, None] + 1e-12 * M.max()
    eps = 1e-20
    for _ in range(n_iter):
        P *= numer / (fb.T @ (fb @ P) + eps)
    return P


def mel_to_audio(
    mel_db: np.ndarray,
    *,
    config: FeatureConfig,
    n_iter: int = 64,
    momentum: float = 0.99,
    seed: int = 0,
    normalize: bool = True,
) -> tuple[np.ndarray, float]:
    """Log-mel (dB) → linear magnitude → fast Griffin-Lim → DC-free, loudness-normalised audio.

    Parameters
    ----------
    mel_db : np.ndarray [shape=(n_mels, n_frames)], power dB

    Returns
    -------
    y : np.ndarray [shape=(hop_length * (n_frames - 1),)], float32, RMS -20 dBFS, peak ≤ -1 dBFS
    sc_db : spectral convergence (dB) of the audio against the linear magnitude it was made from
    """
    mel_power = 10.0 ** (np.asarray(mel_db, dtype=np.float64) / 10.0)
    magnitude = np.sqrt(mel_to_linear(mel_power, config=config))
    y, sc = griffin_lim(magnitude, n_fft=config.n_fft, hop_length=config.hop_length, n_iter=n_iter,
                        momentum=momentum, seed=seed)
    return (loudness_normalize(y) if normalize else y), sc


def invert_array(
    array: np.ndarray,
    *,
    config: FeatureConfig,
    scale: str = "db",
    n_iter: int = 64,
    momentum: float = 0.99,
    seed: int = 0,
    name: str = "array",
    warnings: list[str] | None = None,
    max_gb: float = MAX_INVERSION_GB,
) -> tuple[np.ndarray, float]:
    """Any mel or STFT-magnitude array back to audio (see :func:`mel_to_audio`).

    Parameters
    ----------
    array : np.ndarray [shape=(n_mels, n_frames)] when ``config.kind == "mel"``,
        [shape=(1 + n_fft // 2, n_frames)] when ``"stft"``
    scale : ``"db"`` (power dB, as ``specmusic spectro``), ``"power"`` or ``"magnitude"``
    warnings : receives a line when the array is digital silence (dB at or below :data:`SILENT_DB`,
        or no positive power): its audio is silence, not noise normalised to -20 dBFS
    max_gb : refuse (before the work) an array whose inversion would take more memory (:func:`inversion_memory`)

    Raises
    ------
    InputError
        Wrong number of dimensions or rows, too few frames, non-finite values, unknown scale, or more
        memory than ``max_gb``.
    """
    a = np.asarray(array)
    rows = config.n_rows
    if a.ndim != 2 or a.shape[0] != rows or a.shape[1] < 2:
        hint = f"--n-mels {a.shape[0]}" if config.kind == "mel" and a.ndim == 2 else "a (rows, frames) array"
        raise InputError(
            f"{name}: shape {a.shape} is not a {config.kind} spectrogram of {rows} rows × ≥2 frames — "
            f"pass {hint} or the matching --kind/--n-fft"
        )
    _check_memory(a.shape, config, name, max_gb)  # from the shape alone: before a value is read
    if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a) or not np.all(np.isfinite(a)):
        raise InputError(f"{name}: values must be real and finite — save the magnitude (np.abs) or dB array")
    if scale not in ("db", "power", "magnitude"):
        raise InputError(f"scale {scale!r} — use db, power or magnitude")
    if config.kind not in ("mel", "stft"):
        raise InputError(f"{name}: {config.kind} arrays cannot be inverted — only mel and stft")
    a = a.astype(np.float64)
    if (a.max() <= SILENT_DB) if scale == "db" else (a.max() <= 0.0):
        if warnings is not None:
            warnings.append(f"{name}: the spectrogram is digital silence (nothing above {SILENT_DB:g} dB) — "
                            "its audio is silence")
        y = np.zeros(config.hop_length * (a.shape[1] - 1), dtype=np.float32)
        return y, spectral_convergence_db(y, np.zeros((config.n_fft // 2 + 1, a.shape[1])), n_fft=config.n_fft,
                                          hop_length=config.hop_length)
    if scale == "db":
        power = 10.0 ** ((a - a.max()) / 10.0)
    elif scale == "power":
        power = np.maximum(a, 0.0)
    else:
        power = np.maximum(a, 0.0) ** 2
    magnitude = np.sqrt(mel_to_linear(power, config=config) if config.kind == "mel" else power)
    y, sc = griffin_lim(magnitude, n_fft=config.n_fft, hop_length=config.hop_length, n_iter=n_iter,
                        momentum=momentum, seed=seed)
    return loudness_normalize(y), sc


def load_invertible_array(
    path: str | os.PathLike[str],
    *,
    kind: str = "mel",
    scale: str = "db",
    sample_rate: int = 22050,
    n_fft: int = 2048,
    hop_length: int = 512,
    n_mels: int | None = None,
) -> tuple[np.ndarray, FeatureConfig, str]:
    """An array to pass to :func:`invert_array`, with its feature settings and scale.

    A ``specmusic spectro`` ``.npz`` carries its own settings (the keyword arguments are ignored; mel and
    stft arrays are dB); a ``.npy`` holds one (rows, frames) array described by ``kind``, ``scale``,
    ``sample_rate``, ``n_fft``, ``hop_length`` and ``n_mels`` (default: the array's rows).

    Returns
    -------
    array : np.ndarray [shape=(n_rows, n_frames)] as stored (shape checked by :func:`invert_array`)
    config : the array's feature settings
    scale : ``"db"``, ``"power"`` or ``"magnitude"``

    Raises
    ------
    InputError
        No such file, not a ``.npy``/``.npz`` array, several arrays, or a ``kind`` other than mel/stft.
    """
    name = printable_path(path)
    if not os.path.isfile(path):
        raise InputError(f"{name}: no such file — check the path")
    if os.fspath(path).lower().endswith(".npz"):
        from specmusic.specfile import load_spectrogram

        data, fc = load_spectrogram(path)
        return data, fc, "db" if fc.top_db is not None or fc.kind in ("mel", "stft") else scale
    try:
        try:  # mapped, not read: the shape (and the memory it needs) is checked before the values are loaded
            data = np.load(path, allow_pickle=False, mmap_mode="r")
        except ValueError:  # what cannot be mapped (Python objects): loading it says why in numpy's words
            data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{name}: not a .npy array ({numpy_load_reason(exc, path)}) — save it with numpy.save") from None
    if not isinstance(data, np.ndarray):
        raise InputError(f"{name}: holds several arrays — pass a .npy with one (rows, frames) array")
    if kind not in ("mel", "stft"):
        raise InputError(f"--kind {kind!r} — use mel or stft")
    rows = data.shape[0] if data.ndim == 2 else 128
    try:  # rows no feature config has (a 100,000-row "mel"), a rate no audio has: refused, naming the file
        fc = FeatureConfig(kind=kind, sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length,
                           n_mels=n_mels or (rows if kind == "mel" else 128))
    except ConfigError as exc:
        raise InputError(f"{name}: {exc}") from None
    return data, fc, scale
