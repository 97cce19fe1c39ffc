"""torch → ONNX, following the specmusic model contract (:mod:`specmusic.inference.contract`).

The exported file is self-contained (weights inside, no ``.onnx.data``), opset 17, with input
``spec`` ``[batch, 1, n_rows, chunk_frames]`` (batch dynamic), outputs ``logits`` and ``embedding``,
and the metadata JSON under ``metadata_props["specmusic"]``, built by the contract's
:func:`~specmusic.inference.contract.model_metadata` (exported here with the exporter that embeds it).
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

from specmusic import __version__
from specmusic.errors import ModelError
from specmusic.fileio import atomic_write
from specmusic.inference.contract import METADATA_KEY, model_metadata

__all__ = ["OPSET", "model_metadata", "export_onnx", "export_module"]

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
    proto = onnx.load_from_string(buf.getvalue())
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key = metadata_key
    entry.value = json.dumps(metadata, sort_keys=True)
    proto.producer_name = "specmusic"
    proto.producer_version = __version__
    target = Path(path)
    atomic_write(target, lambda f: f.write(proto.SerializeToString()))
    return target
