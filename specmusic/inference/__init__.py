"""Run specmusic ONNX models with onnxruntime and numpy alone (never torch, never librosa).

The one place that loads models for ``classify`` (and ``embed``). Rooms:

* :mod:`~specmusic.inference.contract` — the metadata a model carries (``labels``, ``feature_config``,
  chunking, …), written by the torch side and read and checked here;
* :mod:`~specmusic.inference.model` — :func:`load_model`: the onnxruntime session plus that metadata;
* :mod:`~specmusic.inference.analysis` — one track: its features, its analysis windows (a long track
  is judged from :data:`DEFAULT_WINDOWS` evenly spread chunks, decoded alone) and the network run on
  them (:func:`analyse_track`; measurements in docs/collections.md);
* :mod:`~specmusic.inference.labels` — which labels ``classify`` reports (``--labels all | music |
  FILE``: :func:`select_labels`);
* :mod:`~specmusic.inference.classify` — many files: :func:`predict_files`, :func:`top_k`, and what
  ``specmusic classify`` prints (:func:`open_classifier`).

This package re-exports their public API.
"""

from __future__ import annotations

from specmusic.inference.analysis import (
    TrackAnalysis,
    analyse_track,
    embed_and_predict_track,
    embed_track,
    predict_track,
    probabilities_from_logits,
    run_chunks,
    run_outputs,
    track_features,
)
from specmusic.inference.classify import (
    ClassifiedTrack,
    Classifier,
    TrackResult,
    open_classifier,
    predict_files,
    top_k,
    top_labels,
)
from specmusic.inference.contract import METADATA_KEY, MODEL_FORMAT_VERSION
from specmusic.inference.labels import LABEL_SETS, LabelSelection, select_labels
from specmusic.inference.model import DEFAULT_BATCH, Model, load_model
from specmusic.windowing import DEFAULT_WINDOWS, parse_windows, select_windows

__all__ = [
    "MODEL_FORMAT_VERSION",
    "METADATA_KEY",
    "DEFAULT_WINDOWS",
    "DEFAULT_BATCH",
    "LABEL_SETS",
    "ClassifiedTrack",
    "Classifier",
    "LabelSelection",
    "Model",
    "TrackResult",
    "TrackAnalysis",
    "load_model",
    "open_classifier",
    "parse_windows",
    "select_windows",
    "analyse_track",
    "track_features",
    "run_chunks",
    "run_outputs",
    "predict_track",
    "embed_track",
    "embed_and_predict_track",
    "predict_files",
    "probabilities_from_logits",
    "select_labels",
    "top_k",
    "top_labels",
]
