"""Train a spectrogram classifier: chunks, augmentation, early stopping, per-track evaluation.

``train(data, out)`` takes an audio folder (labels from sub-folders, groups from a ``manifest.csv``
beside it when there is one) or a ``specmusic spectro`` output folder (labels and groups from its
``manifest.jsonl``), splits the tracks by group (or by GTZAN-style lists), trains a
:class:`~specmusic.models.cnn.SpecCNN` (or, with ``model_spec=ModelSpec(arch=…)``, a pretrained music
tagger, EfficientAT's AudioSet network or an ImageNet backbone with a new head: see
:mod:`specmusic.models.transfer`) on random crops, and writes ``model.onnx``, metrics and plots into
``out``. ``train_probe(data, out)`` (``train --head linear``) instead fits a linear head on a
pretrained network's frozen features, without torch, and writes the same outputs.

Modules: :mod:`~specmusic.training.config` (``TrainConfig`` and its defaults, the features a model
takes; numpy), :mod:`~specmusic.training.data` (loading and splitting tracks; numpy),
:mod:`~specmusic.training.loop` (the epoch loop, a generator), :mod:`~specmusic.training.evaluate`
(a network's per-track scores), :mod:`~specmusic.training.metrics` (pooling and metrics; numpy),
:mod:`~specmusic.training.checkpoint` (best epoch, early stopping, resuming),
:mod:`~specmusic.training.outputs` (splits.json, metrics.json and plots, ``TrainResult``; numpy),
:mod:`~specmusic.training.plots`, :mod:`~specmusic.training.device`, :mod:`~specmusic.training.run`
(``train``: the orchestration), :mod:`~specmusic.training.backbone_features` (a backbone's frozen
window features, cached; onnxruntime) and :mod:`~specmusic.training.probe` (``train_probe``). The
names below are imported on first use, so importing this package (or its numpy modules) imports no torch.
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
    from specmusic.training.evaluate import evaluate_tracks
    from specmusic.training.metrics import classification_metrics
    from specmusic.training.outputs import TrainResult
    from specmusic.training.probe import DEFAULT_BACKBONE, ProbeConfig, probe_is_default, train_probe
    from specmusic.training.run import train

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
    "classification_metrics": "metrics",
    "evaluate_tracks": "evaluate",
    "TrainResult": "outputs",
    "DEFAULT_BACKBONE": "probe",
    "ProbeConfig": "probe",
    "train_probe": "probe",
    "probe_is_default": "probe",
    "train": "run",
}

__all__ = [  # spelled out (not list(_HOMES)) so that linters see the re-exports
    "AUGMENTS", "DEFAULT_FEATURES", "POOLINGS", "TrainConfig", "model_features", "requested_features", "TrackData", "load_training_data",
    "make_splits", "resolve_device", "classification_metrics", "evaluate_tracks", "TrainResult", "train",
    "DEFAULT_BACKBONE", "ProbeConfig", "train_probe", "probe_is_default",
]


__getattr__, __dir__ = lazy_exports(__name__, _HOMES, __all__)
