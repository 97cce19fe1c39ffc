"""The ONNX file of a pretrained network, however it is to be had: bundled, cached, or converted once.

:func:`ensure_model` is the one way in for ``classify``, ``embed`` and ``recommend`` (through
:meth:`specmusic.models.resolve.ModelRef.ensure_path`). A bundled or cached model is returned at once,
without torch or the network; only a first conversion imports torch
(:mod:`specmusic.models.zoo.convert`, imported then). Without torch (the runtime install,
``pip install specmusic``) a network that is not bundled stops with one line saying to
``pip install 'specmusic[train]'``.
"""

from __future__ import annotations

import os
from pathlib import Path

from specmusic.errors import ModelError
from specmusic.fileio import CACHE_ENV, sha256_file
from specmusic.models.zoo.bundled import bundled_model
from specmusic.models.zoo.cache import cached_model_ok, cached_model_path, progress_line, record_sha
from specmusic.models.zoo.registry import DEFAULT_TAGGER, get_network

__all__ = ["ensure_default_model", "ensure_model"]


def ensure_model(
    name: str = DEFAULT_TAGGER,
    *,
    weights: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
) -> Path:
    """Path of the ONNX model of pretrained network ``name``: the bundled one, else the cached
    conversion, converting it (and for a tagger, downloading its checkpoint) on first use.

    A bundled or cached model is returned at once (no torch, no network; ``weights`` is not needed
    then and is not read). Otherwise the family's source is found (a tagger's checkpoint from
    ``weights`` / ``$SPECMUSIC_WEIGHTS``, the cache, or a download, sha256-checked; a Pons model's
    ``musicnn`` wheel from ``weights`` / ``$SPECMUSIC_MUSICNN_WHEEL``) and converted once into the
    cache, its sha256 recorded beside it.

    Parameters
    ----------
    name : a name of :func:`~specmusic.models.zoo.registry.network_names`
    weights : the source of a conversion: local ``best_model.pth`` or a folder of
        ``<dataset>/<arch>/best_model.pth``; for a Pons model, the musicnn wheel or its folder
    progress : download bar and conversion note on stderr (default: only on a terminal)

    Raises
    ------
    ConfigError
        Unknown name.
    ModelError
        No local copy and no network, a sha256 mismatch, a file that does not load, a damaged bundled
        model, or no torch/onnx for a conversion.
    """
    network = get_network(name)
    bundled = bundled_model(name)
    if bundled is not None:
        return bundled
    out = cached_model_path(network)
    rebuilding = out.is_file() and not cached_model_ok(out, network)
    if out.is_file():
        return out
    from specmusic.models.zoo.convert import conversion_for  # the torch side, only to convert

    conversion = conversion_for(network)
    source = conversion.find_source(network, weights=weights, progress=progress, rebuilding=rebuilding)
    progress_line(progress, f"converting the {name} {conversion.noun} to ONNX (once) → {out}")
    try:
        conversion.convert(network, source, out)
    except PermissionError as exc:
        raise ModelError(
            f"cannot write the converted model to {out.parent} ({exc.strerror}) — set {CACHE_ENV} to a writable folder"
        ) from exc
    record_sha(out, sha256_file(out))
    return out


def ensure_default_model(*, weights: str | None = None, progress: bool | None = None) -> Path:
    """:func:`ensure_model` of :data:`~specmusic.models.zoo.registry.DEFAULT_TAGGER`: the model
    ``specmusic classify`` uses without --model."""
    return ensure_model(DEFAULT_TAGGER, weights=weights, progress=progress)
