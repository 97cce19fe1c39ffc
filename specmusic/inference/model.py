"""A loaded specmusic ONNX model: an onnxruntime session plus its checked metadata (:class:`Model`,
:func:`load_model`). onnxruntime and numpy only — never torch, never librosa."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from specmusic.features import FeatureConfig
from specmusic.fileio import display_path
from specmusic.errors import ModelError
from specmusic.inference.contract import FIX_MODEL, METADATA_KEY, check_graph, parse_metadata

__all__ = ["DEFAULT_BATCH", "Model", "load_model"]

# Defaults (measured on 2 cores by benchmarks/collection_speed.py; see docs/collections.md):
#: Windows per onnxruntime call. One window runs as fast per window as a batch of 2, 8 or 32 for
#: the taggers and `train`'s CNN (a window already fills the cores), and the default tagger's
#: activations take ~100 MB per window in a batch (musicnn's ~30 MB): one keeps memory lowest.
DEFAULT_BATCH = 1


@dataclass
class Model:
    """A loaded model: an onnxruntime session plus its metadata.

    Attributes
    ----------
    path : where it was loaded from
    labels : class names in output order
    feature_config : the features the model expects
    task : ``"multiclass"`` (softmax) or ``"multilabel"`` (sigmoid)
    chunk_frames, chunk_hop_frames : chunking of a track
    input_norm : ``(mean, std)`` applied to features before the network, or None
    meta : the whole metadata object
    batch_size : windows per onnxruntime call (memory grows with it)
    threads : onnxruntime intra-op threads, and threads decoding audio (None: every core)
    """

    path: str
    session: Any = field(repr=False)
    labels: list[str]
    feature_config: FeatureConfig
    task: str
    chunk_frames: int
    chunk_hop_frames: int
    input_norm: tuple[float, float] | None
    meta: dict[str, Any] = field(repr=False)
    batch_size: int = DEFAULT_BATCH
    threads: int | None = None  # onnxruntime intra-op threads and audio decoding threads (None: all cores)

    @property
    def n_classes(self) -> int:
        """Number of outputs of ``logits``."""
        return len(self.labels)


def load_model(path: str | os.PathLike[str], *, threads: int | None = None) -> Model:
    """Open ``model.onnx`` and validate its specmusic metadata (:mod:`specmusic.inference.contract`).

    Parameters
    ----------
    path : a specmusic ONNX model
    threads : onnxruntime intra-op threads, and the threads that decode a track's audio
        (None: onnxruntime's default, all cores; 1 in ``--jobs`` workers)

    Raises
    ------
    ModelError
        Missing file, not an ONNX model, missing or malformed metadata, or inputs/outputs that do
        not follow the contract.
    """
    name = display_path(path)
    if not os.path.isfile(path):
        raise ModelError(f"{name}: model file not found — check --model, or {FIX_MODEL}")
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    # Every graph optimisation (constant folding, conv+bn fusion, NCHWc layouts): ~25% faster on the
    # default tagger than "extended" (docs/collections.md). It is onnxruntime's default; said here.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-waiting on shared CPUs
    opts.inter_op_num_threads = 1
    if threads is not None:
        opts.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(os.fspath(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/… types
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{name}: not a readable ONNX model ({reason}) — {FIX_MODEL}") from None
    raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if raw is None:
        raise ModelError(f"{name}: ONNX model has no '{METADATA_KEY}' metadata (labels, features) — {FIX_MODEL}")
    meta = parse_metadata(raw, name=name)
    check_graph(session, meta, name)
    fc = meta["feature_config"]
    norm = meta.get("input_norm")
    return Model(
        path=os.fspath(path),
        session=session,
        labels=[str(x) for x in meta["labels"]],
        feature_config=fc,
        task=meta["task"],
        chunk_frames=int(meta["chunk_frames"]),
        chunk_hop_frames=int(meta["chunk_hop_frames"]),
        input_norm=None if norm is None else (float(norm["mean"]), float(norm["std"])),
        meta={**meta, "feature_config": fc.to_dict()},
        threads=threads,
    )
