"""Per-track scores and ``metrics.json`` (numpy only, no torch): one rule for every way ``train`` learns.

Chunk (window) probabilities become track probabilities by a pooling (:func:`pool_chunk_probabilities`:
``mean``, as ``classify`` does, ``vote`` or ``center``); :func:`classification_metrics` scores the
tracks; :func:`split_metrics` writes what ``metrics.json`` says of the valid and test splits, given any
scorer of tracks — the network of :mod:`specmusic.training.evaluate`, or the head on frozen features of
:mod:`specmusic.training.probe`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from specmusic.training.config import POOLINGS
from specmusic.training.data import Labelled

__all__ = ["Scorer", "accuracy_and_loss", "centre_chunks", "classification_metrics", "pool_chunk_probabilities",
           "split_metrics"]

#: ``scorer(tracks, pooling) -> (probabilities [n_tracks, n_classes], chunks scored per track [n_tracks])``.
Scorer = Callable[[Sequence[Any], str], tuple[np.ndarray, np.ndarray]]


def centre_chunks(owner: np.ndarray, n_tracks: int) -> np.ndarray:
    """Which rows ``center`` pooling keeps: each track's middle chunk (of rows grouped by ``owner``, in order).

    Returns
    -------
    keep : np.ndarray [shape=(n_rows,)], bool
    """
    keep = np.zeros(len(owner), dtype=bool)
    for i in range(n_tracks):
        rows = np.flatnonzero(owner == i)
        if len(rows):
            keep[rows[len(rows) // 2]] = True
    return keep


def pool_chunk_probabilities(
    probs: np.ndarray, owner: np.ndarray, n_tracks: int, pooling: str = "mean"
) -> tuple[np.ndarray, np.ndarray]:
    """Track probabilities from chunk probabilities.

    Parameters
    ----------
    probs : np.ndarray [shape=(n_chunks, n_classes)]
    owner : np.ndarray [shape=(n_chunks,)], the track (0 … n_tracks - 1) of each chunk
    pooling : ``mean`` of the probabilities; ``vote``: the share of chunks that pick each class (ties
        broken by the mean); ``center``: the middle chunk alone

    Returns
    -------
    probs : np.ndarray [shape=(n_tracks, n_classes)], float32, rows summing to 1
    n_chunks : np.ndarray [shape=(n_tracks,)], chunks pooled per track
    """
    if pooling == "center":
        keep = centre_chunks(owner, n_tracks)
        probs, owner = probs[keep], owner[keep]
    out = np.zeros((n_tracks, probs.shape[1]), dtype=np.float64)
    if pooling == "vote":
        np.add.at(out, (owner, probs.argmax(axis=1)), 1.0)
        out += 1e-3 * np.stack([probs[owner == i].mean(axis=0) for i in range(n_tracks)])  # break ties
    else:
        np.add.at(out, owner, probs)
    out /= out.sum(axis=1, keepdims=True)
    return out.astype(np.float32), np.bincount(owner, minlength=n_tracks)


def accuracy_and_loss(probs: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of track probabilities [shape=(n, n_classes)] against class indices ``y``."""
    accuracy = float((probs.argmax(1) == y).mean())
    loss = float(-np.log(np.maximum(probs[np.arange(len(y)), y], 1e-7)).mean())
    return accuracy, loss


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix (rows = truth)."""
    k = len(labels)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    per_class = {}
    f1s = []
    for i, name in enumerate(labels):
        tp = cm[i, i]
        prec = tp / cm[:, i].sum() if cm[:, i].sum() else 0.0
        rec = tp / cm[i].sum() if cm[i].sum() else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        if cm[i].sum():
            f1s.append(f1)
        per_class[name] = {
            "precision": round(float(prec), 4),
            "recall": round(float(rec), 4),
            "f1": round(float(f1), 4),
            "support": int(cm[i].sum()),
        }
    return {
        "accuracy": round(float(np.trace(cm) / max(1, cm.sum())), 4),
        "macro_f1": round(float(np.mean(f1s)) if f1s else 0.0, 4),
        "n_tracks": int(cm.sum()),
        "per_class": per_class,
        "confusion": cm.tolist(),
    }


def split_metrics(
    splits: dict[str, Sequence[Labelled]], labels: list[str], pooling: str, score: Scorer
) -> dict[str, Any]:
    """``metrics.json`` of the valid and test splits: metrics, every track's prediction, accuracy by pooling.

    Parameters
    ----------
    splits : ``{"valid"|"test": tracks}`` (other splits are not scored)
    labels : class names, in output order
    pooling : the run's track pooling (its predictions and metrics)
    score : :data:`Scorer` of tracks
    """
    index = {name: i for i, name in enumerate(labels)}
    metrics: dict[str, Any] = {"labels": labels, "track_pooling": pooling}
    for name in ("valid", "test"):
        ts = splits.get(name) or []
        if not ts:
            continue
        probs, n_chunks = score(ts, pooling)
        y_true = np.array([index[t.label] for t in ts])
        y_pred = probs.argmax(axis=1)
        m = classification_metrics(y_true, y_pred, labels)
        m["predictions"] = [
            {"track": t.key, "source": t.source, "label": t.label, "predicted": labels[int(p)],
             "correct": bool(t.label == labels[int(p)]), "chunks": int(c),
             "probabilities": {lab: round(float(v), 4) for lab, v in zip(labels, pr)}}
            for t, p, pr, c in zip(ts, y_pred, probs, n_chunks)
        ]
        # The same trained model scored with every pooling: compares them without retraining.
        m["accuracy_by_pooling"] = {
            other: float(np.mean(score(ts, other)[0].argmax(axis=1) == y_true)) for other in POOLINGS
        }
        metrics[name] = m
    return metrics
