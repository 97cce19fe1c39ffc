"""Pictures of a factorisation (``W.png``, ``H.png``, ``loss.png``), of loss against k, and of a mosaic.

matplotlib is imported lazily (Agg backend) through :mod:`specmusic.plotting`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from specmusic.nmf.divergence import loss_name
from specmusic.nmf.solver import NMFResult

__all__ = [
    "log_frequency_ticks",
    "templates_figure",
    "activations_figure",
    "loss_figure",
    "save_nmf_plots",
    "save_report_plot",
    "save_mosaic_plots",
]

_TICKS_HZ = (20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
_LOWEST_HZ = 20.0  # the log axis of W.png starts here (or at the first bin, whichever is higher)


def log_frequency_ticks(fmin: float, fmax: float) -> tuple[list[float], list[str]]:
    """Tick positions (Hz) and labels (``50``, ``200``, ``1k``, ``10k``) for a log axis from ``fmin`` to ``fmax``."""
    ticks = [float(f) for f in _TICKS_HZ if fmin <= f <= fmax]
    return ticks, [f"{f / 1000:g}k" if f >= 1000 else f"{f:g}" for f in ticks]


def templates_figure(W: np.ndarray, *, sr: int, n_fft: int, title: str = "") -> Any:
    """Each template (a column of ``W`` [shape=(1 + n_fft // 2, k)]) in dB of its own peak, over a
    logarithmic frequency axis, so the bass and the mid range get the room they have in music."""
    plt = _plt()
    W = np.asarray(W, dtype=np.float64)
    k = W.shape[1]
    df = sr / n_fft
    edges = (np.arange(1, W.shape[0] + 1) - 0.5) * df  # bins 1 .. n_fft/2 (DC has no place on a log axis)
    edges[-1] = sr / 2
    Wn = W[1:] / np.maximum(W.max(axis=0, keepdims=True), 1e-30)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * k + 3), 4.5))
    mesh = ax.pcolormesh(np.arange(k + 1) + 0.5, edges, 20 * np.log10(np.maximum(Wn, 1e-4)), cmap="magma",
                         vmin=-80, vmax=0, shading="flat")
    ax.set_yscale("log")
    fmin = min(max(edges[0], _LOWEST_HZ), edges[-1] / 10)
    ax.set_ylim(fmin, sr / 2)
    ticks, labels = log_frequency_ticks(fmin, sr / 2)
    ax.set_yticks(ticks, labels)
    ax.minorticks_off()
    ax.set_ylabel("frequency (Hz, log scale)")
    ax.set_xlabel("component")
    ax.set_xticks(range(1, k + 1))
    ax.set_title(_drawable(f"W: spectral templates {title}".strip()))
    fig.colorbar(mesh, ax=ax, label="dB (per template)")
    return fig


def activations_figure(H: np.ndarray, *, sr: int, hop_length: int, title: str = "") -> Any:
    """Each activation (a row of ``H`` [shape=(k, n_frames)]) over time in seconds, scaled to its maximum."""
    plt = _plt()
    H = np.asarray(H, dtype=np.float64)
    k = H.shape[0]
    seconds = H.shape[1] * hop_length / sr
    fig, ax = plt.subplots(figsize=(min(max(6.0, seconds / 3), 16.0), max(2.5, 0.3 * k + 1.5)))
    Hn = H / np.maximum(H.max(axis=1, keepdims=True), 1e-30)
    im = ax.imshow(Hn, origin="lower", aspect="auto", cmap="viridis", interpolation="nearest",
                   extent=(0.0, seconds, 0.5, k + 0.5))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("component")
    ax.set_yticks(range(1, k + 1))
    ax.set_title(_drawable(f"H: activations {title}".strip()))
    fig.colorbar(im, ax=ax, label="activation / row max")
    return fig


def loss_figure(result: NMFResult, *, title: str = "") -> Any:
    """The recorded divergence against the iteration, on a log axis."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(result.loss_iterations, result.losses, marker="." if len(result.losses) < 60 else None)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"{loss_name(result.beta)} divergence")
    ax.set_title(_drawable(title))
    ax.grid(alpha=0.3)
    return fig


def save_nmf_plots(
    out_dir: str | os.PathLike[str], result: NMFResult, *, sr: int, hop_length: int, n_fft: int, title: str = ""
) -> None:
    """``W.png`` (:func:`templates_figure`), ``H.png`` (:func:`activations_figure`) and ``loss.png``."""
    from specmusic.plotting import save_figure_atomic

    out = Path(out_dir)
    save_figure_atomic(templates_figure(result.W, sr=sr, n_fft=n_fft, title=title), out / "W.png")
    save_figure_atomic(activations_figure(result.H, sr=sr, hop_length=hop_length, title=title), out / "H.png")
    save_figure_atomic(loss_figure(result, title=f"loss, k={result.W.shape[1]}"), out / "loss.png")


def save_report_plot(path: str | os.PathLike[str], rows: list[dict[str, Any]], *, title: str = "") -> None:
    """Final loss against k (``rows``: one ``{"k", "loss", "loss_name"}`` dict per k), as a PNG."""
    from specmusic.plotting import save_figure_atomic

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ks = [r["k"] for r in rows]
    ax.plot(ks, [r["loss"] for r in rows], marker="o")
    ax.set_xlabel("k (components)")
    ax.set_ylabel(f"final {rows[0]['loss_name']} divergence" if rows else "loss")
    ax.set_xticks(ks)
    ax.grid(alpha=0.3)
    ax.set_title(_drawable(f"loss vs k {title}".strip()))
    save_figure_atomic(fig, path)


def save_mosaic_plots(
    spectrogram_png: str | os.PathLike[str], loss_png: str | os.PathLike[str], y: np.ndarray, fit: NMFResult, *,
    sr: int, n_fft: int, hop_length: int, title: str = "",
) -> None:
    """A mosaic's pictures: the log-mel spectrogram of its audio ``y`` [shape=(n,)] and the loss
    curve of its activations ``fit``."""
    from specmusic.features import FeatureConfig, compute_features
    from specmusic.plotting import save_figure_atomic, save_spectrogram_png

    config = FeatureConfig(kind="mel", sample_rate=sr, n_fft=n_fft, hop_length=hop_length)
    save_spectrogram_png(spectrogram_png, compute_features(y, config), config, title=f"mosaic {title}".strip())
    save_figure_atomic(loss_figure(fit, title=f"mosaic: divergence of W·H from {title or 'the target'}"), loss_png)


def _plt() -> Any:
    from specmusic.plotting import pyplot

    return pyplot()


def _drawable(text: str) -> str:
    from specmusic.plotting import drawable_text  # only when drawing

    return drawable_text(text)
