"""The specmusic ONNX model contract: the metadata a model carries, written and read in this one module.

A specmusic model is a self-contained ``model.onnx`` whose ``metadata_props`` key ``specmusic``
(:data:`METADATA_KEY`) holds a JSON object::

    format_version  1
    task            "multiclass" | "multilabel"
    labels          class names, in output order
    feature_config  FeatureConfig.to_dict(): the features the model was trained on
    chunk_frames    frames per input chunk
    chunk_hop_frames hop between chunks of a track
    input_norm      {"mean": float, "std": float} applied to features first, or null
    arch, specmusic_version, ... (extra fields allowed)

Input ``spec`` float32 ``[batch, 1, n_rows, chunk_frames]``; outputs ``logits`` ``[batch, n_classes]``
and ``embedding`` ``[batch, dim]``.

The torch side (:mod:`specmusic.export`, :mod:`specmusic.models.zoo.convert`) builds the object with
:func:`model_metadata`; the runtime (:func:`specmusic.inference.load_model`) reads it back with
:func:`parse_metadata` and checks the graph against it with :func:`check_graph`. numpy-free,
torch-free, onnxruntime-free: the session is only read through its ``get_inputs``/``get_outputs``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from specmusic import __version__
from specmusic.errors import ConfigError, ModelError
from specmusic.features import FeatureConfig

__all__ = [
    "FIX_MODEL",
    "METADATA_KEY",
    "MODEL_FORMAT_VERSION",
    "TASKS",
    "check_graph",
    "model_metadata",
    "parse_metadata",
]

MODEL_FORMAT_VERSION = 1
METADATA_KEY = "specmusic"
TASKS = ("multiclass", "multilabel")
REQUIRED = ("format_version", "task", "labels", "feature_config", "chunk_frames", "chunk_hop_frames")
MAX_CHUNK_FRAMES = 1 << 16  # ~25 min at hop 512 / 22050 Hz; larger is a corrupt file, not a model
#: How to get a model that keeps the contract: the end of every error line about a model file.
FIX_MODEL = "export one with `specmusic train` (it writes RUN/model.onnx)"


def model_metadata(
    *,
    labels: list[str],
    feature_config: FeatureConfig,
    chunk_frames: int,
    chunk_hop_frames: int,
    input_norm: tuple[float, float] | None,
    arch: str,
    task: str = "multiclass",
    **extra: Any,
) -> dict[str, Any]:
    """The ``specmusic`` metadata object of the contract (extra fields are kept, after the contract's).

    Returns
    -------
    meta : JSON-ready dict, in the order the fields are stored
    """
    return {
        "format_version": MODEL_FORMAT_VERSION,
        "task": task,
        "labels": list(labels),
        "feature_config": feature_config.to_dict(),
        "chunk_frames": int(chunk_frames),
        "chunk_hop_frames": int(chunk_hop_frames),
        "input_norm": None if input_norm is None else {"mean": float(input_norm[0]), "std": float(input_norm[1])},
        "arch": arch,
        "specmusic_version": __version__,
        **extra,
    }


def parse_metadata(raw: str, *, name: str) -> dict[str, Any]:
    """Decode and check the metadata JSON of model ``name`` (as the user knows the file).

    Returns
    -------
    meta : the object, with ``feature_config`` as a :class:`~specmusic.features.FeatureConfig`

    Raises
    ------
    ModelError
        Not JSON, not an object, a missing field, a format newer than this specmusic, a field of the
        wrong kind, a label named twice, or features no real audio has (a sample rate outside 1 kHz to
        768 kHz: :class:`~specmusic.features.FeatureConfig`); the message ends with :data:`FIX_MODEL`
        or says to upgrade.
    """
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise ModelError(f"{name}: '{METADATA_KEY}' metadata is not valid JSON — {FIX_MODEL}") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{name}: '{METADATA_KEY}' metadata is not a JSON object — {FIX_MODEL}")
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise ModelError(f"{name}: metadata lacks {', '.join(missing)} — {FIX_MODEL}")
    version = meta["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelError(f"{name}: metadata format_version {version!r} is not a positive whole number — {FIX_MODEL}")
    if version > MODEL_FORMAT_VERSION:
        raise ModelError(f"{name}: model format {version} is newer than this specmusic — upgrade")
    if meta["task"] not in TASKS:
        raise ModelError(f"{name}: unknown task {meta['task']!r} (expected multiclass|multilabel) — {FIX_MODEL}")
    labels = meta["labels"]
    if not isinstance(labels, list) or not labels:
        raise ModelError(f"{name}: metadata 'labels' must be a non-empty list — {FIX_MODEL}")
    try:
        meta["feature_config"] = FeatureConfig.from_dict(dict(meta["feature_config"]))
        chunk, hop = int(meta["chunk_frames"]), int(meta["chunk_hop_frames"])
    except (ConfigError, TypeError, ValueError) as exc:
        raise ModelError(f"{name}: bad feature_config/chunking in metadata ({str(exc).split(' — ')[0]}) — {FIX_MODEL}") from None
    if chunk < 1 or hop < 1:
        raise ModelError(f"{name}: chunk_frames and chunk_hop_frames must be positive — {FIX_MODEL}")
    if chunk > MAX_CHUNK_FRAMES or hop > MAX_CHUNK_FRAMES:
        raise ModelError(f"{name}: chunk_frames {chunk} / chunk_hop_frames {hop} exceed {MAX_CHUNK_FRAMES} — "
                         f"the metadata is corrupt; {FIX_MODEL}")
    if not all(isinstance(x, str) for x in labels):
        raise ModelError(f"{name}: metadata 'labels' must be strings — {FIX_MODEL}")
    twice = next((x for i, x in enumerate(labels) if x in labels[:i]), None)
    if twice is not None:  # two outputs under one name: `probabilities` by label would keep only one of them
        raise ModelError(f"{name}: metadata names the label {json.dumps(twice, ensure_ascii=False)} twice — each "
                         f"output needs its own label; {FIX_MODEL}")
    norm = meta.get("input_norm")
    if norm is not None and not (isinstance(norm, dict) and {"mean", "std"} <= set(norm) and _positive(norm["std"])
                                 and _finite(norm["mean"])):
        raise ModelError(f"{name}: input_norm must be null or {{mean, std>0}} (numbers) — {FIX_MODEL}")
    return meta


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _positive(x: Any) -> bool:
    return _finite(x) and x > 0


def check_graph(session: Any, meta: dict[str, Any], name: str) -> None:
    """The network must read ``spec`` and give ``logits``, with static sizes that agree with the metadata
    (labels, feature rows, chunk frames).

    Parameters
    ----------
    session : an onnxruntime ``InferenceSession`` (anything with ``get_inputs``/``get_outputs``)
    meta : from :func:`parse_metadata`

    Raises
    ------
    ModelError
        A missing input or output, or a size that disagrees.
    """
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    if "spec" not in inputs or "logits" not in outputs:
        raise ModelError(
            f"{name}: model needs input 'spec' and output 'logits' (has {sorted(inputs)} → {sorted(outputs)}) — "
            f"{FIX_MODEL}"
        )
    fc: FeatureConfig = meta["feature_config"]
    spec_shape, logits_shape = inputs["spec"].shape, outputs["logits"].shape
    if len(spec_shape) != 4:
        raise ModelError(f"{name}: input 'spec' has {len(spec_shape)} dimensions, expected 4 — {FIX_MODEL}")
    rows, frames = spec_shape[2], spec_shape[3]
    if isinstance(rows, int) and rows != fc.n_rows:
        raise ModelError(f"{name}: the network reads {rows} feature rows but the metadata's features have "
                         f"{fc.n_rows} — the metadata does not belong to this network; {FIX_MODEL}")
    if isinstance(frames, int) and frames != int(meta["chunk_frames"]):
        raise ModelError(f"{name}: the network reads chunks of {frames} frames but the metadata says "
                         f"{meta['chunk_frames']} — {FIX_MODEL}")
    n_out = logits_shape[-1] if len(logits_shape) == 2 else None
    if isinstance(n_out, int) and n_out != len(meta["labels"]):
        raise ModelError(f"{name}: the network has {n_out} outputs but the metadata names {len(meta['labels'])} "
                         f"labels — {FIX_MODEL}")
