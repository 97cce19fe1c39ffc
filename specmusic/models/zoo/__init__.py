"""The zoo of pretrained networks: which exist, where their weights come from, how they become
specmusic ONNX models, and which ship inside the package.

Rooms:

* :mod:`~specmusic.models.zoo.registry` — every network by name (Won et al.'s taggers, Pons' MusiCNN
  and VGG, EfficientAT's AudioSet tagger), its labels, credits and licence, and what is bundled
  (torch-free);
* :mod:`~specmusic.models.zoo.cache` — the per-user cache: checkpoint lookup (``--weights`` /
  ``$SPECMUSIC_WEIGHTS``), download, sha256 checks, the sha256 recorded beside each converted model;
* :mod:`~specmusic.models.zoo.convert` — checkpoint → ONNX per family (imports torch to convert);
* :mod:`~specmusic.models.zoo.bundled` — ``specmusic/models/bundled/``, checked against ``SHA256SUMS``;
* :mod:`~specmusic.models.zoo.ensure` — :func:`ensure_model`: bundled, else cached, else converted once;
* :mod:`~specmusic.models.zoo.rebuild` — the maintainer's ``python -m specmusic.models.zoo --bundle``.

The first use of a network that is not bundled finds its source (a tagger's ``best_model.pth`` or
EfficientAT's release file from ``weights=`` / ``$SPECMUSIC_WEIGHTS``, the cache, else a download
from GitHub, sha256-checked; a Pons model's ``musicnn`` wheel from ``weights=`` /
``$SPECMUSIC_MUSICNN_WHEEL``, never downloaded) and converts it once into the cache under the
contract of :mod:`specmusic.inference.contract`. Every later use finds the cached ONNX file and never
imports torch or touches the network, so ``specmusic classify`` without ``--model`` stays on the
torch-free path.

This package re-exports the torch-free API of the registry, the cache, the bundle check and
:func:`ensure_model`.
"""

from __future__ import annotations

from specmusic.models.zoo.bundled import bundled_model
from specmusic.models.zoo.cache import WEIGHTS_ENV, download_checkpoint, fetch_checkpoint, find_checkpoint
from specmusic.models.zoo.ensure import ensure_default_model, ensure_model
from specmusic.models.zoo.registry import (
    BUNDLED_EFFICIENTAT,
    BUNDLED_PONS,
    BUNDLED_TAGGERS,
    DEFAULT_TAGGER,
    EFFICIENTAT_MODELS,
    JAMENDO_TAGS,
    PONS_MODELS,
    TAGGERS,
    EfficientATModel,
    PonsModel,
    PretrainedNetwork,
    PretrainedTagger,
    bundled_names,
    get_network,
    get_tagger,
    network_names,
)

__all__ = [
    "BUNDLED_EFFICIENTAT",
    "BUNDLED_PONS",
    "BUNDLED_TAGGERS",
    "DEFAULT_TAGGER",
    "EFFICIENTAT_MODELS",
    "JAMENDO_TAGS",
    "PONS_MODELS",
    "TAGGERS",
    "WEIGHTS_ENV",
    "EfficientATModel",
    "PonsModel",
    "PretrainedNetwork",
    "PretrainedTagger",
    "bundled_model",
    "bundled_names",
    "download_checkpoint",
    "ensure_default_model",
    "ensure_model",
    "fetch_checkpoint",
    "find_checkpoint",
    "get_network",
    "get_tagger",
    "network_names",
]
