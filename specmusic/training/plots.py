"""A run's pictures (matplotlib, no torch): the training curve and the confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from specmusic.plotting import drawable_text, pyplot, save_figure_atomic

__all__ = ["confusion_figure", "save_plots", "training_curve_figure"]


def training_curve_figure(history: list[dict[str, float]]) -> Any:
    """Loss and accuracy per epoch (whole epochs on the x axes); a matplotlib Figure."""
    from matplotlib.ticker import MaxNLocator

    fig, (ax1, ax2) = pyplot().subplots(1, 2, figsize=(10, 3.5))
    ep = [h["epoch"] for h in history]
    ax1.plot(ep, [h["train_loss"] for h in history], label="train")
    if "valid_loss" in history[0]:
        ax1.plot(ep, [h["valid_loss"] for h in history], label="valid (per track)")
    ax1.set_ylabel("cross-entropy")
    ax2.plot(ep, [h["train_acc"] for h in history], label="train (chunks)")
    if "valid_acc" in history[0]:
        ax2.plot(ep, [h["valid_acc"] for h in history], label="valid (tracks)")
    ax2.set_ylabel("accuracy")
    ax2.set_ylim(0, 1.02)
    for ax in (ax1, ax2):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
    fig.suptitle("training curve")
    return fig


def confusion_figure(metrics: dict[str, Any], split: str) -> Any:
    """The confusion matrix of ``metrics[split]`` with counts in the cells; a matplotlib Figure."""
    labels = [drawable_text(lab) for lab in metrics["labels"]]
    cm = np.asarray(metrics[split]["confusion"])
    size = max(4.0, 0.5 * len(labels) + 2)
    fig, ax = pyplot().subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{split}: accuracy {metrics[split]['accuracy']:.3f} on {metrics[split]['n_tracks']} tracks")
    return fig


def save_plots(out: Path, history: list[dict[str, float]], metrics: dict[str, Any]) -> None:
    """``training_curve.png`` and ``confusion.png`` (of the test split, else the validation one)."""
    if history:
        save_figure_atomic(training_curve_figure(history), out / "training_curve.png")
    split = "test" if "test" in metrics else "valid" if "valid" in metrics else None
    if split:
        save_figure_atomic(confusion_figure(metrics, split), out / "confusion.png")
