"""torch → ONNX, following the specmusic model contract (:mod:`specmusic.inference.contract`).

The exported file is self-contained (weights inside, no ``.onnx.data``), opset 17, with input
``spec`` ``[batch, 1, n_rows, chunk_frames]`` (batch dynamic), outputs ``logits`` and ``embedding``,
and the metadata JSON under ``metadata_props["specmusic"]``, built by the contract's
:func:`~specmusic.inference.contract.model_metadata` (exported here with the exporter that embeds it).

:func:`append_linear_head` needs no torch: it grafts a linear head (fitted on a network's frozen
``embedding``) onto that network's ONNX graph with the ``onnx`` helper API, into one file of the
same contract.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specmusic import __version__
from specmusic.errors import ModelError
from specmusic.fileio import atomic_write
from specmusic.inference.contract import FIX_MODEL, METADATA_KEY, model_metadata

if TYPE_CHECKING:
    import numpy as np

__all__ = ["OPSET", "model_metadata", "append_linear_head", "export_onnx", "export_module"]

OPSET = 17


def export_onnx(model: Any, path: str | os.PathLike[str], *, n_rows: int, metadata: dict[str, Any]) -> Path:
    """Export a torch module returning ``(logits, embedding)`` to a self-contained ONNX file.

    Parameters
    ----------
    model : torch.nn.Module, ``forward(x [batch, 1, n_rows, chunk_frames]) -> (logits, embedding)``
    path : output ``.onnx`` (written atomically)
    n_rows : feature rows of the input
    metadata : from :func:`model_metadata`; ``chunk_frames`` fixes the input width

    Returns
    -------
    path : the written file

    Raises
    ------
    ModelError
        The exporter failed.
    """
    import torch

    dummy = torch.zeros(2, 1, n_rows, int(metadata["chunk_frames"]), dtype=torch.float32)
    return export_module(
        model, (dummy,), path, input_names=["spec"], output_names=["logits", "embedding"],
        dynamic_axes={"spec": {0: "batch"}, "logits": {0: "batch"}, "embedding": {0: "batch"}},
        metadata_key=METADATA_KEY, metadata=metadata, what="the model",
    )


def export_module(
    module: Any,
    args: tuple[Any, ...],
    path: str | os.PathLike[str],
    *,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
    metadata_key: str,
    metadata: dict[str, Any],
    what: str,
) -> Path:
    """Trace ``module`` on ``args`` into one self-contained ONNX file (opset :data:`OPSET`), with
    ``metadata`` as JSON under ``metadata_props[metadata_key]``, written atomically.

    The TorchScript exporter (``dynamo=False``: the default one needs onnxscript, not a dependency);
    ``module`` is traced in eval mode and left in the mode it was in.

    Raises
    ------
    ModelError
        The exporter failed (``ONNX export of {what} failed (…)``).
    """
    import onnx
    import torch

    was_training = module.training
    module.eval()
    buf = io.BytesIO()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
            torch.onnx.export(module, args, buf, input_names=input_names, output_names=output_names,
                              dynamic_axes=dynamic_axes, opset_version=OPSET, dynamo=False)
    except Exception as exc:  # the exporter raises many types; report one line
        raise ModelError(f"ONNX export of {what} failed ({type(exc).__name__}: {exc}) — report this with --verbose") from None
    finally:
        module.train(was_training)
    return _write_proto(onnx.load_from_string(buf.getvalue()), path, metadata_key=metadata_key, metadata=metadata)


def _write_proto(proto: Any, path: str | os.PathLike[str], *, metadata_key: str, metadata: dict[str, Any]) -> Path:
    """``proto`` with ``metadata`` (JSON, sorted keys) as its only metadata entry, written atomically."""
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key = metadata_key
    entry.value = json.dumps(metadata, sort_keys=True)
    proto.producer_name = "specmusic"
    proto.producer_version = __version__
    target = Path(path)
    atomic_write(target, lambda f: f.write(proto.SerializeToString()))
    return target


HEAD_PREFIX = "linear_head"


def append_linear_head(
    backbone: str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    mean: np.ndarray,
    scale: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    metadata: dict[str, Any],
) -> Path:
    """One ONNX file: a specmusic model's network up to its ``embedding``, then a linear head on it.

    The new graph computes ``logits = ((embedding - mean) / scale) @ weight.T + bias`` per chunk
    (``Sub``, ``Div``, ``MatMul``, ``Add`` after the backbone's pooled ``embedding``); its outputs are
    ``logits`` (the head's) and ``embedding`` (the backbone's). Everything the embedding does not need
    (the backbone's own classifier, other outputs) is left out. Written atomically; the same inputs
    give the same bytes.

    Parameters
    ----------
    backbone : a specmusic ``.onnx`` model with an ``embedding`` output [shape=(batch, dim)]
    path : the ``.onnx`` to write
    mean, scale : np.ndarray [shape=(dim,)], the standardisation of the embedding
    weight : np.ndarray [shape=(n_classes, dim)]
    bias : np.ndarray [shape=(n_classes,)]
    metadata : from :func:`model_metadata` (replaces the backbone's)

    Returns
    -------
    path : the written file

    Raises
    ------
    ModelError
        The backbone cannot be read, has no ``embedding`` output, or its width is not the head's.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    from specmusic.errors import ModelError

    try:
        proto = onnx.load(os.fspath(backbone))
    except Exception as exc:  # onnx raises DecodeError, OSError, …
        raise ModelError(f"{backbone}: not a readable ONNX model ({type(exc).__name__}) — {FIX_MODEL}") from None
    graph = proto.graph
    embedding = next((o for o in graph.output if o.name == "embedding"), None)
    dims = [d.dim_value or d.dim_param for d in embedding.type.tensor_type.shape.dim] if embedding is not None else []
    if embedding is None or len(dims) != 2:
        raise ModelError(f"{backbone}: has no 'embedding' output [batch, dim] to put a head on — "
                         "use a specmusic model (a network name, or a model.onnx from `specmusic train`)")
    n_classes, dim = weight.shape
    if dims[1] != dim or mean.shape != (dim,) or scale.shape != (dim,) or bias.shape != (n_classes,):
        raise ModelError(f"{backbone}: its embedding has {dims[1]} values, the head reads {dim} — fit the head on "
                         "this backbone's features")
    _keep_only(graph, "embedding")
    names = {n: f"{HEAD_PREFIX}.{n}" for n in ("mean", "scale", "weight", "bias", "centred", "standardised", "product")}
    graph.initializer.extend([
        numpy_helper.from_array(np.asarray(mean, np.float32), names["mean"]),
        numpy_helper.from_array(np.asarray(scale, np.float32), names["scale"]),
        numpy_helper.from_array(np.ascontiguousarray(np.asarray(weight, np.float32).T), names["weight"]),
        numpy_helper.from_array(np.asarray(bias, np.float32), names["bias"]),
    ])
    graph.node.extend([
        helper.make_node("Sub", ["embedding", names["mean"]], [names["centred"]], name=names["centred"]),
        helper.make_node("Div", [names["centred"], names["scale"]], [names["standardised"]], name=names["standardised"]),
        helper.make_node("MatMul", [names["standardised"], names["weight"]], [names["product"]], name=names["product"]),
        helper.make_node("Add", [names["product"], names["bias"]], ["logits"], name=f"{HEAD_PREFIX}.logits"),
    ])
    logits = helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, [dims[0], n_classes])
    kept = onnx.ValueInfoProto()
    kept.CopyFrom(embedding)
    del graph.output[:]
    graph.output.extend([logits, kept])
    onnx.checker.check_model(proto)
    return _write_proto(proto, path, metadata_key=METADATA_KEY, metadata=metadata)


def _keep_only(graph: Any, output: str) -> None:
    """Drop from ``graph`` every node, initializer and annotation that ``output`` does not depend on.

    Raises
    ------
    ModelError
        ``output`` depends on a tensor called ``logits`` (the name the head's output takes).
    """
    from specmusic.errors import ModelError

    producer = {name: i for i, node in enumerate(graph.node) for name in node.output}
    keep: set[int] = set()
    todo = [output]
    while todo:
        i = producer.get(todo.pop())
        if i is None or i in keep:
            continue
        keep.add(i)
        node = graph.node[i]
        todo.extend(node.input)
        todo.extend(name for attr in node.attribute for g in (attr.g, *attr.graphs) for sub in g.node for name in sub.input)
    nodes = [graph.node[i] for i in sorted(keep)]
    used = {name for node in nodes for name in node.input} | {output}
    if "logits" in used:
        raise ModelError("the backbone's embedding is computed from its logits — it cannot take a new head")
    produced = {name for node in nodes for name in node.output}
    initializers = [t for t in graph.initializer if t.name in used]
    annotations = [v for v in graph.value_info if v.name in produced and v.name != output]
    inputs = [v for v in graph.input if v.name in used]
    for field, items in ((graph.node, nodes), (graph.initializer, initializers), (graph.value_info, annotations),
                         (graph.input, inputs)):
        copies = [type(item)() for item in items]
        for copy, item in zip(copies, items):
            copy.CopyFrom(item)
        del field[:]
        field.extend(copies)
