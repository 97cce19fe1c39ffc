"""What every ``train`` run writes besides its model (numpy and matplotlib, no torch): ``splits.json``,
``metrics.json`` with the plots, and the :class:`TrainResult` it returns — one way for a network
(:func:`specmusic.training.train`) and for a head on frozen features (:func:`specmusic.training.train_probe`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from specmusic.fileio import write_json_atomic
from specmusic.training.data import Labelled
from specmusic.training.plots import save_plots

__all__ = ["CHECKPOINT", "TrainResult", "describe_splits", "write_metrics", "write_splits"]

#: A network run's progress in its run folder (:mod:`specmusic.training.checkpoint`).
CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainResult:
    """What a training run produced."""

    out_dir: Path
    model_path: Path
    metrics: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def describe_splits(tracks: Sequence[Labelled], splits: dict[str, Sequence[Labelled]]) -> str:
    """``N tracks, K classes; train a, valid b, test c`` (the first half of a run's data line)."""
    return (f"{len(tracks)} tracks, {len({t.label for t in tracks})} classes; train {len(splits['train'])}, "
            f"valid {len(splits['valid'])}, test {len(splits['test'])}")


def write_splits(out: Path, splits: dict[str, Sequence[Labelled]]) -> None:
    """``splits.json``: every track of every split (key, label, group, source)."""
    write_json_atomic(out / "splits.json", {
        name: [{"key": t.key, "label": t.label, "group": t.group, "source": t.source} for t in ts]
        for name, ts in splits.items()
    })


def write_metrics(
    out: Path, metrics: dict[str, Any], history: list[dict[str, float]], *, log: Callable[[str], None]
) -> None:
    """``metrics.json``, ``training_curve.png`` (with a history) and ``confusion.png``; logs the test line."""
    write_json_atomic(out / "metrics.json", metrics)
    save_plots(out, history, metrics)
    test = metrics.get("test") or {}
    if test:
        log(f"test: accuracy {test['accuracy']:.3f}, macro-F1 {test['macro_f1']:.3f} on {test['n_tracks']} tracks")
