"""Per-track evaluation (torch): chunk predictions pooled per track, classification metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from specmusic.features import chunk_features
from specmusic.training.config import POOLINGS
from specmusic.training.data import TrackData

__all__ = ["Chunking", "classification_metrics", "evaluate_tracks", "final_metrics", "model_device", "validation_scores"]


@dataclass(frozen=True)
class Chunking:
    """How a run cuts and scales its input: crop length, hop between evaluation chunks, (mean, std)."""

    chunk: int
    hop: int
    norm: tuple[float, float]


def model_device(model: torch.nn.Module) -> torch.device:
    """Where the model's parameters live."""
    return next(iter(model.parameters()), torch.empty(0)).device


@torch.no_grad()
def evaluate_tracks(
    model: torch.nn.Module,
    items: Sequence[TrackData],
    *,
    chunk_frames: int,
    hop_frames: int,
    norm: tuple[float, float],
    pooling: str = "mean",
    batch_size: int = 128,
) -> tuple[np.ndarray, np.ndarray]:
    """Track-level probabilities by pooling chunk predictions.

    Returns
    -------
    probs : np.ndarray [shape=(n_tracks, n_classes)]
    n_chunks : np.ndarray [shape=(n_tracks,)], chunks scored per track
    """
    model.eval()
    chunks, owners = [], []
    for i, t in enumerate(items):
        c = chunk_features(t.spec.astype(np.float32), chunk_frames, hop_frames)
        if pooling == "center":
            c = c[len(c) // 2 : len(c) // 2 + 1]
        chunks.append(c)
        owners.append(np.full(len(c), i))
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.int64)
    x = np.concatenate(chunks)
    owner = np.concatenate(owners)
    mean, std = norm
    dev = model_device(model)
    probs = []
    for s in range(0, len(x), batch_size):
        xb = ((torch.from_numpy(x[s : s + batch_size]) - mean) / std).to(dev)
        probs.append(torch.softmax(model(xb)[0], dim=1).float().cpu().numpy())
    p = np.concatenate(probs)
    out = np.zeros((len(items), p.shape[1]), dtype=np.float64)
    if pooling == "vote":
        np.add.at(out, (owner, p.argmax(axis=1)), 1.0)
        out += 1e-3 * np.stack([p[owner == i].mean(axis=0) for i in range(len(items))])  # break ties
    else:
        np.add.at(out, owner, p)
    out /= out.sum(axis=1, keepdims=True)
    return out.astype(np.float32), np.bincount(owner, minlength=len(items))


def _probs(model: torch.nn.Module, items: Sequence[TrackData], chunking: Chunking, pooling: str) -> tuple[np.ndarray, np.ndarray]:
    return evaluate_tracks(model, items, chunk_frames=chunking.chunk, hop_frames=chunking.hop, norm=chunking.norm,
                           pooling=pooling)


def validation_scores(
    model: torch.nn.Module, items: Sequence[TrackData], y: np.ndarray, chunking: Chunking, pooling: str
) -> tuple[float, float]:
    """Per-track accuracy and cross-entropy of ``items`` (true class indices ``y``)."""
    probs, _ = _probs(model, items, chunking, pooling)
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


def final_metrics(
    model: torch.nn.Module,
    splits: dict[str, list[TrackData]],
    labels: list[str],
    chunking: Chunking,
    pooling: str,
) -> dict[str, Any]:
    """``metrics.json`` of the valid and test splits: metrics, every track's prediction, accuracy by pooling."""
    index = {name: i for i, name in enumerate(labels)}
    metrics: dict[str, Any] = {"labels": labels, "track_pooling": pooling}
    for name in ("valid", "test"):
        ts = splits[name]
        if not ts:
            continue
        probs, n_chunks = _probs(model, ts, chunking, pooling)
        y_true = np.array([index[t.label] for t in ts])
        y_pred = probs.argmax(axis=1)
        m = classification_metrics(y_true, y_pred, labels)
        m["predictions"] = [
            {"track": t.key, "source": t.source, "label": t.label, "predicted": labels[int(p)],
             "correct": bool(t.label == labels[int(p)]), "chunks": int(c),
             "probabilities": {lab: round(float(v), 4) for lab, v in zip(labels, pr)}}
            for t, p, pr, c in zip(ts, y_pred, probs, n_chunks)
        ]
        # The same trained network scored with every pooling: compares them without retraining.
        m["accuracy_by_pooling"] = {
            other: float(np.mean(_probs(model, ts, chunking, other)[0].argmax(axis=1) == y_true)) for other in POOLINGS
        }
        metrics[name] = m
    return metrics
