"""Per-track evaluation of a network (torch): its chunk predictions pooled per track (the numpy rules:
:mod:`specmusic.training.metrics`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from specmusic.features import chunk_features
from specmusic.training.data import TrackData
from specmusic.training.metrics import accuracy_and_loss, pool_chunk_probabilities, split_metrics

__all__ = ["Chunking", "evaluate_tracks", "final_metrics", "model_device", "validation_scores"]


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
    return pool_chunk_probabilities(np.concatenate(probs), owner, len(items), pooling)


def _probs(model: torch.nn.Module, items: Sequence[TrackData], chunking: Chunking, pooling: str) -> tuple[np.ndarray, np.ndarray]:
    return evaluate_tracks(model, items, chunk_frames=chunking.chunk, hop_frames=chunking.hop, norm=chunking.norm,
                           pooling=pooling)


def validation_scores(
    model: torch.nn.Module, items: Sequence[TrackData], y: np.ndarray, chunking: Chunking, pooling: str
) -> tuple[float, float]:
    """Per-track accuracy and cross-entropy of ``items`` (true class indices ``y``)."""
    return accuracy_and_loss(_probs(model, items, chunking, pooling)[0], y)


def final_metrics(
    model: torch.nn.Module,
    splits: dict[str, list[TrackData]],
    labels: list[str],
    chunking: Chunking,
    pooling: str,
) -> dict[str, Any]:
    """``metrics.json`` of the valid and test splits (:func:`~specmusic.training.metrics.split_metrics`) of ``model``."""
    return split_metrics(splits, labels, pooling, lambda ts, other: _probs(model, ts, chunking, other))
