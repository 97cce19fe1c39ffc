"""``describe --plots DIR``: four PNGs (matplotlib, Agg backend, imported lazily).

- ``clips_per_label.png``: clips per label, stacked by split when split lists were given;
- ``durations.png``: clip durations per label (box plot, seconds);
- ``loudness.png``: integrated loudness per label (box plot, LUFS);
- ``mean_spectrograms.png``: each label's mean log-mel spectrogram of its clips' first 30 s
  (64 mel bands to 5.5 kHz, 0.5 s columns), on one colour scale so labels compare.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from specmusic.describe.analyze import SPEC_COLUMNS, SPEC_MELS, SPEC_RATE, SPEC_SECONDS
from specmusic.describe.run import SPLIT_NAMES, Description, label_of
from specmusic.plotting import drawable_text, pyplot, save_figure_atomic

__all__ = ["PLOT_NAMES", "save_plots"]

#: Key in the JSON's ``plots`` → file name in the plots folder.
PLOT_NAMES = {
    "clips_per_label": "clips_per_label.png",
    "durations": "durations.png",
    "loudness": "loudness.png",
    "mean_spectrograms": "mean_spectrograms.png",
}
_MAX_SPECTROGRAMS = 30  # labels drawn in the spectrogram grid (the largest ones)


def _by_label(desc: Description) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, t in enumerate(desc.tracks):
        out.setdefault(label_of(t.label), []).append(i)
    return dict(sorted(out.items()))


def _clips(desc: Description, groups: dict[str, list[int]], path: Path) -> None:
    plt = pyplot()
    names = list(groups)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.5 * len(names) + 2), 4))
    x = np.arange(len(names))
    if desc.split_lists:
        bottom = np.zeros(len(names))
        for split in (*SPLIT_NAMES, None):
            counts = np.array([sum(desc.splits[i] == split for i in groups[n]) for n in names], dtype=float)
            if counts.any():
                ax.bar(x, counts, bottom=bottom, label=split or "in no split")
                bottom += counts
        ax.legend()
    else:
        ax.bar(x, [len(groups[n]) for n in names])
    ax.set_xticks(x)
    ax.set_xticklabels([drawable_text(n) for n in names], rotation=45, ha="right")
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("clips")
    ax.set_title("Clips per label")
    save_figure_atomic(fig, path)


def _boxes(groups: dict[str, list[int]], values: list[float | None], path: Path, *, ylabel: str, title: str) -> None:
    plt = pyplot()
    names = list(groups)
    data = [[values[i] for i in groups[n] if values[i] is not None] or [np.nan] for n in names]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.5 * len(names) + 2), 4))
    ax.boxplot(data, showfliers=True)
    ax.set_xticks(np.arange(1, len(names) + 1))
    ax.set_xticklabels([drawable_text(n) for n in names], rotation=45, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    save_figure_atomic(fig, path)


def _spectrograms(desc: Description, groups: dict[str, list[int]], path: Path) -> None:
    plt = pyplot()
    names = sorted(groups, key=lambda n: -len(groups[n]))[:_MAX_SPECTROGRAMS]
    names.sort()
    pictures = [desc.mean_spectrogram(n) for n in names]
    finite = np.concatenate([p[np.isfinite(p)] for p in pictures]) if pictures else np.zeros(0)
    lo, hi = (np.percentile(finite, [2, 99.5]) if finite.size else (-80.0, 0.0))
    cols = min(5, len(names)) or 1
    rows = math.ceil(len(names) / cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    fig.subplots_adjust(hspace=0.5)
    from specmusic.features import mel_frequencies

    centres = mel_frequencies(SPEC_MELS, fmin=0.0, fmax=SPEC_RATE / 2)[1:-1]
    marks = [f for f in (0, 500, 1000, 2000, 4000) if f <= centres[-1]]
    image = None
    for ax, name, pic in zip(axes.flat, names, pictures):
        image = ax.imshow(pic, origin="lower", aspect="auto", cmap="magma", vmin=lo, vmax=hi,
                          extent=(0.0, SPEC_SECONDS, -0.5, SPEC_MELS - 0.5), interpolation="nearest")
        ax.set_title(f"{drawable_text(name)} ({len(groups[name])})", fontsize=9)
        ax.set_yticks([float(np.interp(f, centres, np.arange(SPEC_MELS))) for f in marks])
        ax.set_yticklabels([f"{f / 1000:g}k" if f >= 1000 else str(f) for f in marks], fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_xlabel("s", fontsize=7, labelpad=1)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), label="dB re full scale", shrink=0.8)
    fig.suptitle(f"Mean log-mel spectrogram per label (first {SPEC_SECONDS:g} s; {SPEC_COLUMNS} columns)")
    save_figure_atomic(fig, path)


def save_plots(desc: Description, folder: str | os.PathLike[str]) -> dict[str, Path]:
    """Write the four PNGs into ``folder`` (created); returns JSON key → path."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    groups = _by_label(desc)
    paths = {key: out / name for key, name in PLOT_NAMES.items()}
    _clips(desc, groups, paths["clips_per_label"])
    _boxes(groups, [a.duration for a in desc.analyses], paths["durations"], ylabel="seconds",
           title="Clip durations per label")
    _boxes(groups, [a.lufs for a in desc.analyses], paths["loudness"], ylabel="LUFS (BS.1770)",
           title="Integrated loudness per label")
    _spectrograms(desc, groups, paths["mean_spectrograms"])
    return paths
