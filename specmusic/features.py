"""Spectrogram features: ONE implementation, shared by ``spectro``, ``train`` and ``classify``.

The mel, STFT, MFCC and chroma paths are plain numpy (a filterbank is built once per config);
they reproduce ``librosa.feature.melspectrogram`` + ``librosa.power_to_db`` (and
``librosa.feature.mfcc``) to float32 precision, and run block by block over long files so memory
stays bounded by the block, not the track. Only ``cqt`` (and building the chroma filterbank) calls
librosa, lazily.

Defaults (one block, nanoGPT-style)::

    kind        = "mel"    # mel | stft | cqt | chroma | mfcc
    sample_rate = 22050    # Hz; audio is resampled with soxr HQ
    n_fft       = 2048     # samples per FFT frame (Hann window, centred, zero padded)
    hop_length  = 512      # samples between frames (~23 ms)
    n_mels      = 128      # mel bands (Slaney mel scale and area normalisation, as librosa)
    fmin, fmax  = 0, sr/2  # mel band edges in Hz
    top_db      = 80.0     # dB floor below the track's maximum; None disables
    n_mfcc      = 20       # coefficients kept by mfcc
    n_chroma    = 12       # pitch classes of chroma
    n_bins      = 84       # cqt bins, 12 per octave from C1
    mel_scale   = "slaney" # "slaney" (librosa default), "htk" (torchaudio default) or "kaldi"
                           # (specmusic.kaldi: triangles in 1127 ln(1 + f/700); mel_norm "none")
    mel_norm    = "slaney" # "slaney" area normalisation, or "none" (torchaudio default)
    pad_mode    = "constant"  # centring pad: "constant" zeros (librosa) or "reflect" (torchaudio)
    log_scale   = "db"     # mel/stft compression: "db" (power_to_db, floored by top_db), "logc" (log10(1 +
                           # 10000·power), MusiCNN's) or "ln" (ln(power + 1e-5), EfficientAT's), these with top_db None
    preemphasis = 0.0      # c of y[n] = x[n+1] - c·x[n] (one sample shorter) before the STFT (0: none)
    win_length  = None     # samples of the window, zero-padded to n_fft at its centre (None: n_fft)
    window      = "hann"   # "hann" (periodic, librosa) or "hann_symmetric" (torch periodic=False)

``log_scale``, ``preemphasis``, ``win_length`` and ``window`` appear in :meth:`FeatureConfig.to_dict`
(and so in :meth:`FeatureConfig.digest`, model metadata and libraries) only when they differ from
their defaults: everything written before they existed is unchanged, byte for byte.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np

from specmusic.config import ConfigBase
from specmusic.errors import ConfigError, InputError
from specmusic.kaldi import kaldi_mel_filterbank
from specmusic.stft import PreEmphasis, hann, hann_window

__all__ = [
    "chunk_features",
    "chunk_starts",
    "FEATURE_KINDS",
    "FeatureConfig",
    "mel_filterbank",
    "mel_frequencies",
    "power_spectrogram",
    "power_to_db",
    "logc",
    "compute_features",
    "compute_features_stream",
    "compute_features_file",
]

FeatureKind = Literal["mel", "stft", "cqt", "chroma", "mfcc"]
FEATURE_KINDS: tuple[str, ...] = ("mel", "stft", "cqt", "chroma", "mfcc")
_STFT_KINDS = frozenset({"mel", "stft", "chroma", "mfcc"})
_AMIN = 1e-10
LOG_SCALES: tuple[str, ...] = ("db", "logc", "ln")
#: C of the "logc" compression log10(1 + C·power) (Pons' MusiCNN, configuration "logC").
LOGC_FACTOR = 10000.0
#: e of the "ln" compression ln(power + e) (EfficientAT's and PaSST's front ends).
LN_OFFSET = 1e-5
#: Fields left out of FeatureConfig.to_dict at these values (added after configs were first written).
_OMITTED_DEFAULTS: dict[str, Any] = {"log_scale": "db", "preemphasis": 0.0, "win_length": None, "window": "hann"}


@dataclass(frozen=True)
class FeatureConfig(ConfigBase):
    """Everything that determines a spectrogram; its :meth:`digest` names the config in manifests."""

    what = "feature config"

    kind: str = "mel"
    sample_rate: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None
    top_db: float | None = 80.0
    n_mfcc: int = 20
    n_chroma: int = 12
    n_bins: int = 84
    mel_scale: str = "slaney"
    mel_norm: str = "slaney"
    pad_mode: str = "constant"
    log_scale: str = "db"
    preemphasis: float = 0.0
    win_length: int | None = None
    window: str = "hann"

    def __post_init__(self) -> None:
        if self.log_scale not in LOG_SCALES:
            raise ConfigError(f"log_scale {self.log_scale!r} must be db|logc|ln — fix the config")
        if self.log_scale != "db" and (self.kind not in ("mel", "stft") or self.top_db is not None):
            raise ConfigError(f"log_scale {self.log_scale} applies to mel/stft features without a dB floor "
                              "(top_db None) — fix the config")
        if (self.mel_scale not in ("slaney", "htk", "kaldi") or self.mel_norm not in ("slaney", "none")
                or (self.mel_scale == "kaldi" and self.mel_norm != "none")):  # fmt: skip
            raise ConfigError("mel_scale must be slaney|htk|kaldi and mel_norm slaney|none (none for kaldi) — "
                              "fix the config")
        if not (0.0 <= self.preemphasis < 1.0 and self.window in ("hann", "hann_symmetric")
                and (self.win_length is None or 1 <= self.win_length <= self.n_fft)):  # fmt: skip
            raise ConfigError(f"preemphasis {self.preemphasis} must lie in [0, 1), window {self.window!r} be "
                              f"hann|hann_symmetric and win_length {self.win_length} in 1..n_fft — fix the config")
        if self.pad_mode not in ("constant", "reflect"):
            raise ConfigError(f"pad_mode {self.pad_mode!r} must be constant|reflect — fix the config")
        if self.kind not in FEATURE_KINDS:
            raise ConfigError(f"unknown feature kind {self.kind!r} — use one of {', '.join(FEATURE_KINDS)}")
        if self.sample_rate <= 0 or self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise ConfigError("sample_rate, n_fft, hop_length and n_mels must be positive — fix the options")
        if self.n_fft % 2:
            raise ConfigError(f"n_fft={self.n_fft} is odd — use an even FFT size such as 2048")
        from specmusic.audio import sample_rate_problem
        if (problem := sample_rate_problem(self.sample_rate)) is not None:  # (audio never imports features)
            raise ConfigError(f"sample_rate {problem} — fix --sr or the config")
        if self.n_fft > 65536 or (self.kind in ("mel", "mfcc") and self.n_mels > self.n_fft // 2 + 1):  # ≤ 32769 rows
            raise ConfigError(f"n_fft={self.n_fft}, n_mels={self.n_mels}: a spectrogram has at most 65536 FFT points and "
                              "n_fft/2+1 mel bands (32769 rows) — fix --n-fft/--n-mels, or the array is no spectrogram")
        nyquist = self.sample_rate / 2
        if self.fmax is not None and not (self.fmin < self.fmax <= nyquist):
            raise ConfigError(f"fmax={self.fmax} must lie in (fmin, {nyquist:g}] — lower --fmax or raise --sr")
        if self.kind == "mfcc" and not 0 < self.n_mfcc <= self.n_mels:
            raise ConfigError(f"n_mfcc={self.n_mfcc} must be in 1..n_mels={self.n_mels} — fix --n-mfcc")

    # -- identity -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """All fields, JSON-ready, less those of :data:`_OMITTED_DEFAULTS` at their defaults: configs, model
        metadata and libraries written before those fields existed read and compare the same."""
        out = super().to_dict()
        for name, default in _OMITTED_DEFAULTS.items():
            if out[name] == default:
                del out[name]
        return out

    def digest(self) -> str:
        """A short stable hash of the fields that matter for this kind."""
        relevant = {k: v for k, v in self.to_dict().items() if k in _relevant_fields(self.kind)}
        blob = json.dumps(relevant, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def with_kind(self, kind: str) -> FeatureConfig:
        """A copy with another kind."""
        return replace(self, kind=kind)

    @property
    def n_rows(self) -> int:
        """Number of rows (bins) of this kind's output."""
        return {
            "mel": self.n_mels,
            "stft": self.n_fft // 2 + 1,
            "cqt": self.n_bins,
            "chroma": self.n_chroma,
            "mfcc": self.n_mfcc,
        }[self.kind]

    def n_frames(self, n_samples: int) -> int:
        """Frames produced for ``n_samples`` samples (centred framing; pre-emphasis drops one sample)."""
        if self.preemphasis:
            n_samples = max(n_samples - 1, 0)
        return 1 + n_samples // self.hop_length

    def require_same(self, expected: FeatureConfig, *, what: str, fix: str, ignore: Iterable[str] = ()) -> None:
        """The one "same features?" check: arrays computed with ``self`` must be ones ``expected`` would give.

        Compares the fields that matter for either kind (as :meth:`digest`), less ``ignore`` (``top_db``
        where the caller floors the dB itself).

        Raises
        ------
        ConfigError
            ``{what} (n_mels 48, not 32) — {fix}`` naming every field that differs.
        """
        mine, theirs = asdict(self), asdict(expected)  # every field (to_dict leaves out some at their defaults)
        fields = (_relevant_fields(self.kind) | _relevant_fields(expected.kind)) - set(ignore)
        diffs = [f"{k} {mine[k]}, not {theirs[k]}" for k in sorted(fields, key=lambda k: (k != "kind", k))
                 if mine[k] != theirs[k]]
        if diffs:
            raise ConfigError(f"{what} ({'; '.join(diffs)}) — {fix}")


def _relevant_fields(kind: str) -> set[str]:
    base = {"kind", "sample_rate", "hop_length", "top_db"}
    framing = {"n_fft", "pad_mode", "preemphasis", "win_length", "window"}
    extra = {
        "mel": framing | {"n_mels", "fmin", "fmax", "mel_scale", "mel_norm", "log_scale"},
        "stft": framing | {"log_scale"},
        "mfcc": framing | {"n_mels", "fmin", "fmax", "n_mfcc", "mel_scale", "mel_norm"},
        "chroma": framing | {"n_chroma"},
        "cqt": {"n_bins"},
    }[kind]
    return base | extra


# -- filterbanks ----------------------------------------------------------------------------
def _hz_to_mel(f: np.ndarray, htk: bool = False) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa's default); or HTK's."""
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-12) / min_log_hz) / logstep, mels)


def _mel_to_hz(m: np.ndarray, htk: bool = False) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_frequencies(n_mels: int, *, fmin: float = 0.0, fmax: float = 11025.0, htk: bool = False) -> np.ndarray:
    """Centre frequencies in Hz of ``n_mels`` bands (plus the two edges: ``n_mels + 2`` values)."""
    return _mel_to_hz(np.linspace(_hz_to_mel(fmin, htk), _hz_to_mel(fmax, htk), n_mels + 2), htk)


@functools.lru_cache(maxsize=16)
def mel_filterbank(
    *,
    sr: int,
    n_fft: int,
    n_mels: int,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str = "slaney",
) -> np.ndarray:
    """Triangular mel filters, as ``librosa.filters.mel`` (``htk=True, norm="none"``: torchaudio's).

    Returns
    -------
    fb : np.ndarray [shape=(n_mels, 1 + n_fft // 2)], float32, read-only
    """
    fmax = sr / 2 if fmax is None else fmax
    fftfreqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    mel_f = mel_frequencies(n_mels, fmin=fmin, fmax=fmax, htk=htk)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    fb = weights.astype(np.float32)
    fb.flags.writeable = False
    return fb


@functools.lru_cache(maxsize=8)
def _banded_mel(config: FeatureConfig) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """The mel filterbank cut into groups of adjacent bands, each with the bin range it touches.

    Each band is non-zero on a handful of neighbouring bins (~2% of the matrix), so projecting
    group by group onto only those bins does a fraction of the dense product's work, in plain
    numpy (importing scipy.sparse would cost ~0.2 s of start-up on the ``classify`` path).
    Returns ``(band_lo, band_hi, bin_lo, bin_hi, block[band_hi-band_lo, bin_hi-bin_lo])`` tuples.
    """
    if config.mel_scale == "kaldi":
        fb = kaldi_mel_filterbank(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels, fmin=config.fmin,
                                  fmax=config.fmax)  # fmt: skip
    else:
        fb = mel_filterbank(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels, fmin=config.fmin,
                            fmax=config.fmax, htk=config.mel_scale == "htk", norm=config.mel_norm)  # fmt: skip
    groups = []
    step = 8
    for b0 in range(0, fb.shape[0], step):
        block = fb[b0 : b0 + step]
        nz = np.flatnonzero(block.any(axis=0))
        lo, hi = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 1)
        sub = np.ascontiguousarray(block[:, lo:hi].T)  # [bins, bands] for frames @ sub
        sub.flags.writeable = False
        groups.append((b0, b0 + block.shape[0], lo, hi, sub))
    return tuple(groups)


def _mel_project(power_frames: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """``power_frames @ mel_filterbank.T`` computed band group by band group: [n, n_mels]."""
    out = np.empty((power_frames.shape[0], config.n_mels), dtype=np.result_type(power_frames, np.float32))
    for b0, b1, lo, hi, sub in _banded_mel(config):
        np.matmul(power_frames[:, lo:hi], sub, out=out[:, b0:b1])
    return out


@functools.lru_cache(maxsize=8)
def _chroma_filterbank(sr: int, n_fft: int, n_chroma: int) -> np.ndarray:
    import librosa  # only the chroma filterbank needs it; built once per config

    fb = librosa.filters.chroma(sr=sr, n_fft=n_fft, n_chroma=n_chroma, tuning=0.0).astype(np.float32)
    fb.flags.writeable = False
    return fb


@functools.lru_cache(maxsize=8)
def _dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Orthonormal DCT-II rows 0..n_out-1 (``scipy.fft.dct(type=2, norm='ortho')``)."""
    n = np.arange(n_in)
    k = np.arange(n_out)[:, None]
    basis = np.cos(np.pi / n_in * (n + 0.5) * k) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    out = basis.astype(np.float32)
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    """:func:`specmusic.stft.hann` as float32, read-only (built once per ``n_fft``)."""
    w = hann(n_fft).astype(np.float32)
    w.flags.writeable = False
    return w


# -- STFT -----------------------------------------------------------------------------------
_CHUNK_FRAMES = 32  # frames transformed together: small enough to stay in cache (3x faster than all at once)


def _frames_power(frames: np.ndarray, window: np.ndarray) -> np.ndarray:
    """|rfft(window * frame)|^2 for a [n_frames, n_fft] view; returns [n_frames, n_fft//2+1] float32."""
    spec = np.fft.rfft(frames * window, axis=-1)
    power = spec.real**2
    power += spec.imag**2
    return power.astype(np.float32, copy=False)


def power_spectrogram(
    y: np.ndarray, *, n_fft: int = 2048, hop_length: int = 512, pad_mode: str = "constant"
) -> np.ndarray:
    """Power STFT ``|X|^2`` of a mono signal, centred (librosa's ``center=True``).

    ``pad_mode="constant"`` pads with zeros (librosa); ``"reflect"`` mirrors the edges (torchaudio;
    falls back to zeros for a signal shorter than ``n_fft // 2 + 1``).

    Returns
    -------
    S : np.ndarray [shape=(1 + n_fft // 2, 1 + len(y) // hop_length)], float32
    """
    stream = _PowerStream(n_fft, hop_length, pad_mode)
    parts = [stream.push(np.asarray(y, dtype=np.float32)), stream.finish()]
    return np.concatenate(parts, axis=0).T


class _PowerStream:
    """Turn consecutive audio blocks into power-spectrum frames identical to one-shot framing."""

    def __init__(
        self,
        n_fft: int,
        hop_length: int,
        pad_mode: str = "constant",
        project: Callable[[np.ndarray], np.ndarray] | None = None,
        window: np.ndarray | None = None,
    ) -> None:
        self.project = project or (lambda power: power)  # applied chunk by chunk, while in cache
        self.window = _hann(n_fft) if window is None else window
        self.n_fft = n_fft
        self.hop = hop_length
        self.pad = n_fft // 2
        self.reflect = pad_mode == "reflect"
        # Zeros: the left centring pad is known now. Reflect: it is built from the first samples.
        self.started = not self.reflect
        self.buffer = np.zeros(self.pad if self.started else 0, dtype=np.float32)
        self.tail = np.zeros(0, dtype=np.float32)  # last pad+1 samples, for a reflected right edge
        self.n_samples = 0

    def _start(self, final: bool) -> None:
        """Prepend the left pad once enough samples arrived (or at the end, whatever we have)."""
        if self.started or (len(self.buffer) <= self.pad and not final):
            return
        if len(self.buffer) > self.pad:
            left = self.buffer[1 : self.pad + 1][::-1]
        else:  # too short to reflect: fall back to zeros, as for pad_mode="constant"
            self.reflect = False
            left = np.zeros(self.pad, dtype=np.float32)
        self.buffer = np.concatenate([left, self.buffer])
        self.started = True

    def _drain(self) -> np.ndarray:
        buf = self.buffer
        if len(buf) < self.n_fft:
            return self.project(np.empty((0, self.n_fft // 2 + 1), dtype=np.float32))
        n = 1 + (len(buf) - self.n_fft) // self.hop
        frames = np.lib.stride_tricks.sliding_window_view(buf, self.n_fft)[:: self.hop][:n]
        chunks = range(0, n, _CHUNK_FRAMES)
        out = np.concatenate([self.project(_frames_power(frames[i : i + _CHUNK_FRAMES], self.window)) for i in chunks])
        self.buffer = buf[n * self.hop :].copy()
        return out

    def push(self, block: np.ndarray) -> np.ndarray:
        """Add samples; return the frames that are now complete."""
        block = block.astype(np.float32, copy=False)
        self.n_samples += len(block)
        self.buffer = np.concatenate([self.buffer, block])
        if self.reflect:
            self.tail = np.concatenate([self.tail, block])[-(self.pad + 1) :]
        self._start(final=False)
        return self._drain() if self.started else self.project(np.empty((0, self.n_fft // 2 + 1), dtype=np.float32))

    def finish(self) -> np.ndarray:
        """Pad the right edge and return the remaining frames."""
        self._start(final=True)
        right = self.tail[:-1][::-1] if self.reflect else np.zeros(self.pad, dtype=np.float32)
        self.buffer = np.concatenate([self.buffer, right])
        out = self._drain()
        self.buffer = np.empty(0, dtype=np.float32)
        return out


def power_to_db(
    S: np.ndarray, *, ref: float = 1.0, amin: float = _AMIN, top_db: float | None = 80.0
) -> np.ndarray:
    """``10 log10(max(S, amin) / ref)``, floored at ``max - top_db`` (``librosa.power_to_db``)."""
    S = np.asarray(S)
    log_spec = 10.0 * np.log10(np.maximum(amin, S))
    log_spec -= 10.0 * np.log10(max(amin, ref))
    if top_db is not None:
        if top_db < 0:
            raise ConfigError("top_db must be non-negative — fix --top-db")
        log_spec = np.maximum(log_spec, log_spec.max() - top_db)
    return log_spec.astype(np.float32, copy=False)


def logc(S: np.ndarray, factor: float = LOGC_FACTOR) -> np.ndarray:
    """``log10(1 + factor · S)``: the compression MusiCNN's checkpoints were trained on (no floor)."""
    return np.log10(1.0 + factor * np.asarray(S, dtype=np.float32)).astype(np.float32, copy=False)


def _project(power_frames: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Map power frames [n, n_fft//2+1] to the linear (pre-dB) rows of ``config.kind``: [n, rows]."""
    kind = config.kind
    if kind == "stft":
        return power_frames
    if kind in ("mel", "mfcc"):
        return _mel_project(power_frames, config)
    if kind == "chroma":
        raw = power_frames @ _chroma_filterbank(config.sample_rate, config.n_fft, config.n_chroma).T
        peak = raw.max(axis=1, keepdims=True)
        tiny = np.finfo(np.float32).tiny
        return raw / np.where(peak < tiny, 1.0, peak)
    raise ConfigError(f"feature kind {kind!r} is not computed from an STFT")


def _finalize(linear: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Rows x frames, in dB where the kind is logarithmic."""
    rows = np.ascontiguousarray(linear.T, dtype=np.float32)
    if config.kind == "chroma":
        return rows
    if config.log_scale == "logc":
        return logc(rows)
    if config.log_scale == "ln":
        return np.log(rows + np.float32(LN_OFFSET))
    db = power_to_db(rows, top_db=config.top_db)
    if config.kind == "mfcc":
        return _dct_matrix(config.n_mfcc, config.n_mels) @ db
    return db


def compute_features_stream(blocks: Iterable[np.ndarray], config: FeatureConfig) -> tuple[np.ndarray, int]:
    """Compute features from consecutive mono blocks at ``config.sample_rate``.

    Only the (small) feature matrix grows with the track; audio is held one block at a time.

    Returns
    -------
    features : np.ndarray [shape=(config.n_rows, n_frames)], float32
    n_samples : number of audio samples consumed
    """
    if config.kind == "cqt":
        y = np.concatenate([np.asarray(b, dtype=np.float32) for b in blocks] or [np.zeros(0, np.float32)])
        return _cqt(y, config), len(y)
    window = hann_window(config.n_fft, win_length=config.win_length, symmetric=config.window == "hann_symmetric")
    stream = _PowerStream(config.n_fft, config.hop_length, config.pad_mode, lambda p: _project(p, config), window)
    source = PreEmphasis(blocks, config.preemphasis) if config.preemphasis else None
    parts = [stream.push(b) for b in (blocks if source is None else source)]
    parts.append(stream.finish())
    n = stream.n_samples if source is None else source.n_samples
    return _finalize(np.concatenate(parts, axis=0), config), n


def compute_features(y: np.ndarray, config: FeatureConfig | None = None) -> np.ndarray:
    """Features of a mono signal already at ``config.sample_rate``.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], audio
    config : FeatureConfig (default: 128-band log-mel at 22050 Hz)

    Returns
    -------
    features : np.ndarray [shape=(config.n_rows, 1 + n // config.hop_length)], float32
    """
    config = config or FeatureConfig()
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ConfigError(f"expected mono audio of shape (n,), got {y.shape} — mix down first")
    return compute_features_stream([y], config)[0]


def _cqt(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    import warnings

    import librosa  # CQT is librosa's; it needs the whole signal in memory

    with warnings.catch_warnings():
        # Short clips make librosa warn once per octave that n_fft exceeds the (downsampled) signal;
        # the zero-padded result is what it returns anyway, and a clip too short to trust is
        # reported by specmusic itself (--min-duration, signal warnings).
        warnings.simplefilter("ignore", UserWarning)
        C = librosa.cqt(y, sr=config.sample_rate, hop_length=config.hop_length, n_bins=config.n_bins)
    return power_to_db(np.abs(C) ** 2, top_db=config.top_db)


def compute_features_file(
    path: str | os.PathLike[str],
    config: FeatureConfig | None = None,
    *,
    offset: float = 0.0,
    duration: float | None = None,
) -> tuple[np.ndarray, float]:
    """Decode ``path`` block by block and compute its features.

    Returns
    -------
    features : np.ndarray [shape=(config.n_rows, n_frames)], float32
    seconds : duration of the audio that was analysed

    Raises
    ------
    AudioError
        The file cannot be decoded or holds no samples.
    """
    from specmusic.audio import stream_audio
    from specmusic.fileio import display_path
    from specmusic.errors import AudioError

    config = config or FeatureConfig()
    blocks = stream_audio(path, sr=config.sample_rate, mono=True, offset=offset, duration=duration)
    features, n = compute_features_stream(blocks, config)
    if n == 0:
        raise AudioError(f"{display_path(path)}: contains no audio samples — check the file or the --offset")
    return features, n / config.sample_rate


# -- chunking -------------------------------------------------------------------------------
def chunk_starts(n_frames: int, chunk_frames: int, hop_frames: int) -> np.ndarray:
    """Start frames of the chunks covering a track (the last chunk ends at the track's end).

    Returns
    -------
    starts : np.ndarray [shape=(n_chunks,)], int; ``[0]`` for a track shorter than a chunk
    """
    if n_frames <= chunk_frames:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, n_frames - chunk_frames + 1, hop_frames, dtype=np.int64)
    if starts[-1] + chunk_frames < n_frames:
        starts = np.append(starts, n_frames - chunk_frames)
    return starts


def chunk_features(spec: np.ndarray, chunk_frames: int, hop_frames: int) -> np.ndarray:
    """Cut a feature matrix into chunks.

    Parameters
    ----------
    spec : np.ndarray [shape=(n_rows, n_frames)]
    chunk_frames : frames per chunk
    hop_frames : frames between chunk starts

    Returns
    -------
    chunks : np.ndarray [shape=(n_chunks, 1, n_rows, chunk_frames)], float32
    """
    spec = np.asarray(spec, dtype=np.float32)
    if spec.ndim != 2 or spec.shape[1] == 0:
        raise InputError(f"expected features of shape (n_rows, n_frames>0), got {spec.shape} — check the input")
    if spec.shape[1] < chunk_frames:  # a short track is repeated along time until it fills one chunk
        spec = np.tile(spec, (1, -(-chunk_frames // spec.shape[1])))[:, :chunk_frames]
    starts = chunk_starts(spec.shape[1], chunk_frames, hop_frames)
    return np.stack([spec[None, :, s : s + chunk_frames] for s in starts])
