"""Train a spectrogram classifier: chunks, augmentation, early stopping, per-track evaluation.

``train(data, out)`` takes an audio folder (labels from sub-folders, groups from a ``manifest.csv``
beside it when there is one) or a ``specmusic spectro`` output folder (labels and groups from its
``manifest.jsonl``), splits the tracks by group (or by GTZAN-style lists), trains a
:class:`~specmusic.models.cnn.SpecCNN` (or, with ``model_spec=ModelSpec(arch=…)``, a pretrained music
tagger or an ImageNet backbone with a new head: see :mod:`specmusic.models.transfer`) on random
crops, and writes ``model.onnx``, metrics and plots into ``out``.

Modules: :mod:`~specmusic.training.config` (``TrainConfig`` and its defaults, the features a model
takes; numpy), :mod:`~specmusic.training.data` (loading and splitting tracks; numpy),
:mod:`~specmusic.training.loop` (the epoch loop, a generator), :mod:`~specmusic.training.evaluate`
(per-track scores and metrics), :mod:`~specmusic.training.checkpoint` (best epoch, early stopping,
resuming), :mod:`~specmusic.training.plots`, :mod:`~specmusic.training.device` and
:mod:`~specmusic.training.run` (``train``: the orchestration). The names below are imported on first
use, so importing this package (or its numpy modules) imports no torch.
"""

from __future__ import annotations

from specmusic.lazy import lazy_exports
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from specmusic.training.config import (
        AUGMENTS,
        DEFAULT_FEATURES,
        POOLINGS,
        TrainConfig,
        model_features,
        requested_features,
    )
    from specmusic.training.data import TrackData, load_training_data, make_splits
    from specmusic.training.device import resolve_device
    from specmusic.training.evaluate import classification_metrics, evaluate_tracks
    from specmusic.training.run import TrainResult, train

_HOMES = {
    "AUGMENTS": "config",
    "DEFAULT_FEATURES": "config",
    "POOLINGS": "config",
    "TrainConfig": "config",
    "model_features": "config",
    "requested_features": "config",
    "TrackData": "data",
    "load_training_data": "data",
    "make_splits": "data",
    "resolve_device": "device",
    "classification_metrics": "evaluate",
    "evaluate_tracks": "evaluate",
    "TrainResult": "run",
    "train": "run",
}

__all__ = [  # spelled out (not list(_HOMES)) so that linters see the re-exports
    "AUGMENTS", "DEFAULT_FEATURES", "POOLINGS", "TrainConfig", "model_features", "requested_features", "TrackData", "load_training_data",
    "make_splits", "resolve_device", "classification_metrics", "evaluate_tracks", "TrainResult", "train",
]


__getattr__, __dir__ = lazy_exports(__name__, _HOMES, __all__)
