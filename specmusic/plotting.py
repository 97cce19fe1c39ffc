"""Pictures: spectrograms with real time/frequency axes (matplotlib, Agg backend, imported lazily).

Any name drawn (a title, a tick label, a legend entry) goes through :func:`drawable_text`: a file
name or label that is not UTF-8, holds a newline or a ``$`` is drawn as text, never a crash or
matplotlib's math; :func:`save_figure_atomic` passes every text of a figure through it once more.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from specmusic.features import FeatureConfig, mel_frequencies
from specmusic.fileio import atomic_path, printable_text

__all__ = ["drawable_text", "pyplot", "save_spectrogram_png", "save_figure_atomic"]

_PITCH_CLASSES = ["C", "C♯", "D", "D♯", "E", "F", "F♯", "G", "G♯", "A", "A♯", "B"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (files only, no display), imported on first use.

    Every module that draws gets pyplot here, so the backend is chosen in one place.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def drawable_text(text: object) -> str:
    """``text`` as matplotlib can draw it: :func:`~specmusic.fileio.printable_text` (a byte that is not
    UTF-8 as ``\\xNN``, control characters escaped), and ``$`` escaped so it is not read as math.

    matplotlib fails at draw time (``TypeError`` from ``FT2Font.set_text``) on the lone surrogates that
    stand for such bytes, and on an unbalanced ``$``; every name drawn goes through here. Idempotent.
    """
    out = printable_text(str(text))
    return out.replace("\\$", "$").replace("$", "\\$")


def _drawable_texts(fig: Any) -> None:
    """Pass every text of ``fig`` through :func:`drawable_text`: titles, labels, legends, and the tick
    labels given as strings or categories (their formatters make them again at draw time). A picture
    with a name nobody escaped is still drawn."""
    from matplotlib.category import StrCategoryFormatter
    from matplotlib.text import Text
    from matplotlib.ticker import FixedFormatter, FuncFormatter

    for artist in fig.findobj(Text):
        text = artist.get_text()
        if text and _drawable_label(text) != text:
            artist.set_text(_drawable_label(text))
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for get, put in ((axis.get_major_formatter, axis.set_major_formatter),
                             (axis.get_minor_formatter, axis.set_minor_formatter)):
                names = get()
                if isinstance(names, (FixedFormatter, FuncFormatter, StrCategoryFormatter)):
                    put(FuncFormatter(lambda x, pos, names=names: _drawable_label(names(x, pos))))


def _drawable_label(text: str) -> str:
    """:func:`drawable_text` of a text already in a figure, line by line (a title's line breaks are the
    caller's), leaving math the caller wrote (``$...$``) as it is."""
    return "\n".join(line if _is_math(line) else drawable_text(line) for line in str(text).split("\n"))


def _is_math(text: str) -> bool:
    """Math on purpose: a whole ``$...$`` with printable text inside (specmusic draws none, a caller might)."""
    return len(text) > 2 and text[0] == text[-1] == "$" and text.count("$") == 2 and printable_text(text) == text


def save_figure_atomic(fig, path: str | os.PathLike[str], *, dpi: int = 100) -> None:
    """Save a matplotlib figure through a temporary file + rename (:func:`~specmusic.fileio.atomic_path`: a
    worker stopped mid-write leaves none behind), then close it (every text of it drawable: :func:`drawable_text`)."""
    _drawable_texts(fig)
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    finally:
        pyplot().close(fig)


def _frequency_ticks(config: FeatureConfig, n_rows: int) -> tuple[list[float], list[str], str]:
    """Row positions and labels for the y axis of a ``config.kind`` picture."""
    kind = config.kind
    if kind in ("mel", "stft"):
        if kind == "mel":
            fmax = config.fmax or config.sample_rate / 2
            centres = mel_frequencies(config.n_mels, fmin=config.fmin, fmax=fmax, htk=config.mel_scale == "htk")[1:-1]
        else:
            centres = np.fft.rfftfreq(config.n_fft, 1.0 / config.sample_rate)
        marks = [f for f in (0, 250, 500, 1000, 2000, 4000, 8000, 16000) if f <= centres[-1]]
        rows = [float(np.interp(f, centres, np.arange(len(centres)))) for f in marks]
        labels = [f"{f / 1000:g}k" if f >= 1000 else str(f) for f in marks]
        return rows, labels, "Hz"
    if kind == "cqt":
        rows = list(range(0, n_rows, 12))
        return [float(r) for r in rows], [f"C{1 + r // 12}" for r in rows], "note"
    if kind == "chroma":
        return [float(i) for i in range(n_rows)], _PITCH_CLASSES[:n_rows], "pitch class"
    step = max(1, n_rows // 10)
    return [float(i) for i in range(0, n_rows, step)], [str(i) for i in range(0, n_rows, step)], "coefficient"


def save_spectrogram_png(
    path: str | os.PathLike[str],
    spec: np.ndarray,
    config: FeatureConfig,
    *,
    title: str | None = None,
) -> None:
    """Save ``spec`` [shape=(n_rows, n_frames)] as a PNG with a time axis in seconds,
    a frequency (or pitch/coefficient) axis, and a colour bar."""
    plt = pyplot()
    n_rows, n_frames = spec.shape
    seconds = n_frames * config.hop_length / config.sample_rate
    width = min(max(6.0, seconds / 4), 16.0)
    fig, ax = plt.subplots(figsize=(width, 4))
    im = ax.imshow(
        spec,
        origin="lower",
        aspect="auto",
        interpolation="nearest",
        extent=(0.0, seconds, -0.5, n_rows - 0.5),
        cmap="magma" if config.kind != "mfcc" else "coolwarm",
    )
    rows, labels, unit = _frequency_ticks(config, n_rows)
    ax.set_yticks(rows)
    ax.set_yticklabels(labels)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"{config.kind} ({unit})")
    if title:
        ax.set_title(drawable_text(title))
    fig.colorbar(im, ax=ax, label="dB" if config.kind in ("mel", "stft", "cqt") else "value")
    save_figure_atomic(fig, path)
