"""Audio mosaicing: rebuild a target out of a source's sounds (Driedger, Prätzlich & Müller 2015,
"Let it Bee — towards NMF-inspired audio mosaicing")."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from specmusic.config import ConfigBase
from specmusic.errors import ConfigError, InputError
from specmusic.nmf.blocks import BLOCK_FRAMES, istft_blocks, stft_blocks
from specmusic.nmf.separate import magnitude
from specmusic.nmf.solver import NMFConfig, NMFResult, fit_nmf
from specmusic.nmf.updates import FLOOR
from specmusic.stft import check_fft

__all__ = [
    "LET_IT_BEE", "MosaicConfig", "MosaicResult", "mosaic", "mosaic_files", "mosaic_plot_paths", "mosaic_to_file",
]

#: The paper's constraints: repetition r, polyphony p, continuity c.
LET_IT_BEE: dict[str, int] = {"repetition": 3, "polyphony": 10, "continuity": 3}


@dataclass(frozen=True)
class MosaicConfig(ConfigBase):
    """How :func:`mosaic` rebuilds a target from a source's sounds.

    Defaults (one block)::

        n_fft, hop_length = 2048, 512  # STFT of both signals
        n_iter      = 50    # multiplicative H updates (W is fixed)
        beta        = 1.0   # KL, as the paper
        templates   = 0     # 0: every source frame is a template, resynthesised from the source's
                            #    complex frames; > 0: learn this many templates from the source and
                            #    resynthesise W·H with the target's phase
        repetition  = 0     # r: damp activations that are not the largest within ±r frames (paper: 3)
        polyphony   = 0     # p: damp all but the p largest activations of each target frame (paper: 10)
        continuity  = 0     # c: diagonal filter of length 2c+1, favouring source frames in order (paper: 3)
        max_source_frames = 4000  # guard: H has source_frames × target_frames entries
        seed        = 0
        threads     = 0     # solver threads (0: every CPU), as in NMFConfig

    :meth:`with_constraints` gives the paper's constraints (:data:`LET_IT_BEE`).
    """

    what = "mosaic config"

    n_fft: int = 2048
    hop_length: int = 512
    n_iter: int = 50
    beta: float = 1.0
    templates: int = 0
    repetition: int = 0
    polyphony: int = 0
    continuity: int = 0
    max_source_frames: int = 4000
    seed: int = 0
    threads: int = 0

    def __post_init__(self) -> None:
        check_fft(self.n_fft, self.hop_length)
        if self.n_iter < 1:
            raise ConfigError("mosaic needs at least 1 iteration — raise --iterations")
        if min(self.templates, self.repetition, self.polyphony, self.continuity) < 0:
            raise ConfigError("templates, repetition, polyphony and continuity must be >= 0 (0: off)")
        if self.templates and self.continuity:
            raise ConfigError(
                "continuity follows the source's frame order, which learned templates do not have — "
                "drop --continuity or --templates"
            )

    @classmethod
    def with_constraints(
        cls, *, let_it_bee: bool = False, repetition: int | None = None, polyphony: int | None = None,
        continuity: int | None = None, **fields: Any,
    ) -> MosaicConfig:
        """A config whose constraints left as ``None`` are the paper's (:data:`LET_IT_BEE`) with
        ``let_it_bee``, else off; continuity stays off with ``templates`` unless given."""
        chosen = {"repetition": repetition, "polyphony": polyphony, "continuity": continuity}
        for name, value in chosen.items():
            if value is None:
                wanted = let_it_bee and not (name == "continuity" and fields.get("templates"))
                chosen[name] = LET_IT_BEE[name] if wanted else 0
        return cls(**fields, **chosen)


def _let_it_bee_hook(config: MosaicConfig) -> Callable[[np.ndarray, int], None] | None:
    """The three constraints of Driedger et al. (2015), applied to H before each update."""
    r, p, c, L = config.repetition, config.polyphony, config.continuity, config.n_iter
    if not (r or p or c):
        return None

    def hook(H: np.ndarray, it: int) -> None:
        # iteration ℓ = it - 1 of L: non-chosen entries shrink by (1 - (ℓ+1)/L), harder over time
        damp = max(0.0, 1.0 - it / L)
        if r:
            padded = np.pad(H, ((0, 0), (r, r)))
            peak = np.lib.stride_tricks.sliding_window_view(padded, 2 * r + 1, axis=1).max(axis=-1)
            H[H < peak] *= damp
        if p and p < H.shape[0]:
            kth = -np.partition(-H, p - 1, axis=0)[p - 1]
            H[H < kth[None, :]] *= damp
        if c:
            m, n = H.shape
            padded = np.zeros((m + 2 * c, n + 2 * c), dtype=H.dtype)
            padded[c : c + m, c : c + n] = H
            acc = np.zeros_like(H)
            for d in range(-c, c + 1):
                acc += padded[c + d : c + d + m, c + d : c + d + n]
            H[...] = acc
        np.maximum(H, FLOOR, out=H)

    return hook


@dataclass
class MosaicResult:
    """The mosaic signal and how it was made."""

    y: np.ndarray
    sr: int
    fit: NMFResult
    info: dict[str, Any]


def mosaic(
    source: np.ndarray, target: np.ndarray, *, sr: int, config: MosaicConfig | None = None,
    progress: bool | None = False,
) -> MosaicResult:
    """Rebuild ``target`` [shape=(n,)] out of ``source`` [shape=(m,)] sounds (both at ``sr``).

    Frames mode (``templates = 0``): ``W`` = the source's magnitude frames (silent ones dropped,
    each scaled to unit sum), fixed; learn ``H`` so ``W @ H ≈ |target|``; the output STFT is
    ``X_source @ H``, an H-weighted sum of the source's *complex* frames, as in the paper: the
    source's own phase keeps its transients and timbre, and with the continuity constraint the
    activations run along diagonals, i.e. stretches of the source play in order with coherent phase.
    Templates mode: ``W`` = ``templates`` NMF templates of the source; the output is ``W @ H`` with
    the target's phase (a template has no phase of its own).

    Returns
    -------
    :class:`MosaicResult` with ``y`` [shape=(n,)], float32, loudness-normalised (-20 dBFS RMS).

    Raises
    ------
    InputError
        A silent source or target; ConfigError: too many source frames.
    """
    from specmusic.audio import loudness_normalize

    config = config or MosaicConfig()
    source, target = _check_signal("source", source, config), _check_signal("target", target, config)
    Xs = stft_blocks(source, n_fft=config.n_fft, hop_length=config.hop_length)
    Xt = stft_blocks(target, n_fft=config.n_fft, hop_length=config.hop_length)
    Vt = magnitude(Xt)
    info: dict[str, Any] = {"target_frames": int(Xt.shape[1]), "source_frames": int(Xs.shape[1])}
    if config.templates:
        W, Xs = _source_templates(Xs, config), None
        info["mode"] = "templates"
    else:
        W, Xs = _source_frames(Xs, config)
        info |= {"mode": "frames", "source_frames_used": int(W.shape[1])}
    fit = _fit_activations(W, Vt, config, progress)
    y = istft_blocks(_output_spectrogram(fit, Xs, Xt), n_fft=config.n_fft, n_frames=Xt.shape[1],
                     hop_length=config.hop_length, length=len(target)).astype(np.float32)
    info |= {"loss": fit.loss, "initial_loss": float(fit.losses[0]), "seconds": round(fit.seconds, 3),
             "spectral_correlation": _spectral_correlation(y, Vt, config)}
    return MosaicResult(y=loudness_normalize(y), sr=sr, fit=fit, info=info)


def _output_spectrogram(fit: NMFResult, Xs: np.ndarray | None, Xt: np.ndarray) -> Callable[[int, int], np.ndarray]:
    """The mosaic's STFT, a block of frames at a time: ``X_source @ H`` (frames mode), or ``W @ H`` with
    the target's phase (templates mode)."""
    H = fit.H
    if Xs is None:
        W64, H64 = fit.W.astype(np.float64), H.astype(np.float64)
        return lambda t0, t1: (W64 @ H64[:, t0:t1]) * np.exp(1j * np.angle(Xt[:, t0:t1]))
    real, imag = np.ascontiguousarray(Xs.real), np.ascontiguousarray(Xs.imag)
    return lambda t0, t1: (real @ H[:, t0:t1]) + 1j * (imag @ H[:, t0:t1])


def _check_signal(name: str, y: np.ndarray, config: MosaicConfig) -> np.ndarray:
    y = np.asarray(y, dtype=np.float32)
    if len(y) < config.n_fft // 2:
        raise InputError(f"the {name} is only {len(y)} samples — give at least {config.n_fft // 2}")
    if not np.any(y):
        raise InputError(f"the {name} is silent (all zeros) — nothing to {'build from' if name.startswith('source') else 'imitate'}")
    return y


def _source_templates(Xs: np.ndarray, config: MosaicConfig) -> np.ndarray:
    """``config.templates`` NMF templates of the source's magnitude, each scaled to unit sum."""
    Vs = magnitude(Xs)
    k = min(config.templates, min(Vs.shape))
    W = fit_nmf(Vs, config=NMFConfig(n_components=k, beta=config.beta, max_iter=200, seed=config.seed,
                                     threads=config.threads)).W
    return W / np.maximum(W.sum(axis=0, keepdims=True), FLOOR)


def _source_frames(Xs: np.ndarray, config: MosaicConfig) -> tuple[np.ndarray, np.ndarray]:
    """The source's non-silent frames scaled to unit magnitude sum: ``(|frames|, complex frames)``.

    Raises
    ------
    ConfigError
        More than ``config.max_source_frames`` of them.
    """
    energy = np.abs(Xs).sum(axis=0)
    Xs = Xs[:, energy > 1e-4 * float(energy.max())]
    if Xs.shape[1] > config.max_source_frames:
        raise ConfigError(
            f"the source has {Xs.shape[1]} frames, more than max_source_frames={config.max_source_frames} "
            f"— shorten it (--source-duration) or use --templates"
        )
    Xs = Xs / np.maximum(np.abs(Xs).sum(axis=0), 1e-30)[None, :]
    return np.abs(Xs).astype(np.float32), Xs


def _fit_activations(W: np.ndarray, Vt: np.ndarray, config: MosaicConfig, progress: bool | None) -> NMFResult:
    """Learn ``H`` for the fixed ``W`` (seeded start around the target's mean frame energy)."""
    m = W.shape[1]
    rng = np.random.default_rng(config.seed)
    H0 = rng.random((m, Vt.shape[1]), dtype=np.float32)  # in place from here: H is the largest array
    H0 += 0.5
    H0 *= float(Vt.sum(axis=0, dtype=np.float64).mean()) / m
    nmf_config = NMFConfig(n_components=1, beta=config.beta, max_iter=config.n_iter, tol=0.0, seed=config.seed,
                           threads=config.threads)
    return fit_nmf(Vt, config=nmf_config, W=W, H=H0, fix_W=True, h_hook=_let_it_bee_hook(config), progress=progress)


def _spectral_correlation(y: np.ndarray, Vt: np.ndarray, config: MosaicConfig) -> float:
    """How much the result's spectrogram follows the target's (Pearson r of the magnitudes)."""
    got = magnitude(stft_blocks(y, n_fft=config.n_fft, hop_length=config.hop_length))
    sums = np.zeros(5)  # Σx, Σy, Σx², Σy², Σxy over every bin, a block of frames at a time
    for t0 in range(0, got.shape[1], BLOCK_FRAMES):
        a = got[:, t0 : t0 + BLOCK_FRAMES].astype(np.float64)
        b = Vt[:, t0 : t0 + BLOCK_FRAMES].astype(np.float64)
        sums += (a.sum(), b.sum(), np.vdot(a, a), np.vdot(b, b), np.vdot(a, b))
    n = got.size
    var_a, var_b = sums[2] - sums[0] ** 2 / n, sums[3] - sums[1] ** 2 / n
    if var_a <= 0 or var_b <= 0:
        return 0.0
    return round(float((sums[4] - sums[0] * sums[1] / n) / np.sqrt(var_a * var_b)), 4)


def mosaic_files(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    sr: int | None = None,
    config: MosaicConfig | None = None,
    source_duration: float | None = None,
    target_duration: float | None = None,
    on_note: Callable[[str], None] | None = None,
    progress: bool | None = False,
    max_memory_gb: float | None = None,
) -> MosaicResult:
    """Load both files at one rate (``sr``, default the target's own) and :func:`mosaic` them.

    A file at another rate is resampled (soxr HQ) and ``on_note`` says so. With ``max_memory_gb``
    the memory the run needs (:func:`specmusic.nmf.memory.mosaic_memory`) is estimated from the
    headers first: fewer solver threads are used when that is enough to fit (``on_note`` says so),
    else the run is refused before anything is decoded.

    Raises
    ------
    AudioError
        Unreadable files; InputError: silence; ConfigError: more memory than ``max_memory_gb``.
    """
    from specmusic.audio import load_audio, read_info
    from specmusic.fileio import display_path

    s_info, t_info = read_info(source), read_info(target)
    rate = int(sr or t_info.sample_rate)
    note = on_note or (lambda _msg: None)
    for role, path, info in (("source", source, s_info), ("target", target, t_info)):
        if info.sample_rate != rate:
            note(f"note: {role} {display_path(path)} is {info.sample_rate} Hz — resampled to {rate} Hz")
    config = config or MosaicConfig()
    if max_memory_gb is not None:
        config = _within_memory(source, target, rate=rate, config=config, source_duration=source_duration,
                                target_duration=target_duration, max_gb=max_memory_gb, note=note)
    ys, _ = load_audio(source, sr=rate, duration=source_duration)
    yt, _ = load_audio(target, sr=rate, duration=target_duration)
    for role, path, y in (("source", source, ys), ("target", target, yt)):
        _check_signal(f"{role} {display_path(path)}", y, config)  # the same checks, naming the file
    result = mosaic(ys, yt, sr=rate, config=config, progress=progress)
    result.info |= {"source_sample_rate": s_info.sample_rate, "target_sample_rate": t_info.sample_rate,
                    "sample_rate": rate}
    return result


def _within_memory(
    source: str | os.PathLike[str], target: str | os.PathLike[str], *, rate: int, config: MosaicConfig,
    source_duration: float | None, target_duration: float | None, max_gb: float, note: Callable[[str], None],
) -> MosaicConfig:
    """``config``, with fewer solver threads when that makes the run fit in ``max_gb``; refused when nothing does."""
    from dataclasses import replace

    from specmusic.fileio import display_path
    from specmusic.nmf.memory import (
        MemoryEstimate,
        check_memory,
        duration_after,
        mosaic_memory,
    )
    from specmusic.nmf.updates import solver_threads

    src_s = duration_after(source, duration=source_duration)
    tgt_s = duration_after(target, duration=target_duration)

    def estimate(threads: int) -> MemoryEstimate:
        return mosaic_memory(round(src_s * rate), round(tgt_s * rate), sample_rate=rate, n_fft=config.n_fft,
                             hop_length=config.hop_length, templates=config.templates,
                             max_source_frames=config.max_source_frames, threads=threads,
                             constrained=bool(config.repetition or config.polyphony or config.continuity))

    workers = solver_threads(config.threads)
    fits = next((w for w in range(workers, 0, -1) if estimate(w).bytes <= max_gb * 1e9), None)
    if fits is not None and fits < workers:
        note(f"note: {fits} solver thread(s) instead of {workers}, each holding its own share of the "
             f"activations, to stay within --max-memory {max_gb:g} GB")
        return replace(config, threads=fits)
    check_memory(estimate(1 if fits is None else workers), max_gb=max_gb, name=display_path(target),
                 seconds=tgt_s, sample_rate=rate, what=f" of target (with {src_s:.0f} s of source)",
                 fixes="--target-duration", otherwise="shorten the source (--source-duration) or use --templates")
    return config


def mosaic_plot_paths(output: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Where the pictures of a mosaic written to ``output`` go: ``mosaic.wav`` → ``mosaic.png`` (its
    spectrogram) and ``mosaic.loss.png`` (the loss curve), beside it."""
    out = Path(output)
    return out.with_suffix(".png"), out.with_suffix(".loss.png")


def mosaic_to_file(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    config: MosaicConfig | None = None,
    sr: int | None = None,
    source_duration: float | None = None,
    target_duration: float | None = None,
    plots: bool | None = None,
    on_note: Callable[[str], None] | None = None,
    progress: bool | None = False,
    max_memory_gb: float | None = None,
) -> dict[str, Any]:
    """:func:`mosaic_files` written to ``output`` (``-``: WAV on stdout), its pictures beside it
    (:func:`mosaic_plot_paths`; ``plots`` None: for a file, not for ``-``).

    Returns
    -------
    The run's record (``specmusic nmf mosaic``'s JSON line): :attr:`MosaicResult.info` plus ``output``,
    the constraints, ``iterations`` and, when drawn, ``plots``.

    Raises
    ------
    ConfigError
        ``plots`` with ``-`` (nowhere to put them), or more memory than ``max_memory_gb``.
    InputError
        An output name no audio format can be written to, or that is the source or the target (before any
        work); silence.
    OSError
        The output or a picture cannot be written (a full disk): named; none of them is left.
    AudioError
        Unreadable files.
    """
    from specmusic.audio import check_audio_output, save_audio
    from specmusic.fileio import display_path
    from specmusic.nmf.plots import save_mosaic_plots
    from specmusic.outputs import check_not_an_input, staged_files

    to_stdout = os.fspath(output) == "-"
    if plots and to_stdout:
        raise ConfigError("--plots needs an output file to put the pictures beside — give -o FILE.wav or drop --plots")
    check_audio_output(output, option="-o")  # before any work: a name no format can be written to
    pictures = mosaic_plot_paths(output) if not to_stdout and plots is not False else ()
    for written in (output, *pictures):
        check_not_an_input(written, [source, target])  # -t X.wav -o X.wav would overwrite its own target
    config = config or MosaicConfig()
    result = mosaic_files(source, target, sr=sr, config=config, source_duration=source_duration,
                          target_duration=target_duration, on_note=on_note, progress=progress,
                          max_memory_gb=max_memory_gb)
    info = result.info | {"output": "-" if to_stdout else display_path(output), "repetition": config.repetition,
                          "polyphony": config.polyphony, "continuity": config.continuity, "iterations": config.n_iter}
    if to_stdout:
        save_audio(output, result.y, result.sr)
        return info
    out = Path(output)
    with staged_files(out.parent, last=out.name) as stage:  # the audio and its pictures, whole or not at all
        save_audio(stage / out.name, result.y, result.sr)
        if pictures:
            save_mosaic_plots(*(stage / p.name for p in pictures), result.y, result.fit, sr=result.sr,
                              n_fft=config.n_fft, hop_length=config.hop_length, title=Path(target).name)
    if pictures:
        info["plots"] = [display_path(p) for p in pictures]
    return info
