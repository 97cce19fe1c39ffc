"""The generator's EMA U-Net as ``model.onnx``, so that ``generate sample`` runs on onnxruntime alone (torch, onnx).

One self-contained file (weights inside, no ``.onnx.data``), opset 17, written atomically: inputs
``x`` [shape=(batch, 1, n_mels, frames)] float32 (``batch`` and ``frames`` dynamic; ``frames`` a multiple of
:attr:`~specmusic.generation.config.GenConfig.multiple`), ``t`` [shape=(batch,)] float32 in [0, 1] and, for a
model with labels, ``label`` [shape=(batch,)] int64 (``len(labels)``: no label — the unconditional half of
classifier-free guidance); output ``v``, the velocity, shaped as ``x``. Its metadata
(:func:`~specmusic.generation.config.onnx_metadata`, JSON under ``metadata_props["specmusic-generator"]``)
repeats the config, labels and step of ``config.json``; :func:`~specmusic.generation.sample.load_generator`
uses the file only when they agree.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from specmusic.export import OPSET, export_module
from specmusic.generation.config import ONNX_METADATA_KEY, GenConfig, onnx_metadata
from specmusic.models.generative import UNet

__all__ = ["OPSET", "export_generator"]



class _Conditional(nn.Module):
    """``v(x, t, label)``: the graph's inputs are named after ``forward``'s arguments."""

    def __init__(self, unet: UNet) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, t: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, label)


class _Unconditional(nn.Module):
    """``v(x, t)``: a model trained without labels has no ``label`` input."""

    def __init__(self, unet: UNet) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, None)


def export_generator(
    unet: UNet, path: str | os.PathLike[str], *, config: GenConfig, labels: list[str], step: int
) -> Path:
    """Write ``unet`` (the EMA network) as a self-contained ONNX file, atomically.

    Parameters
    ----------
    unet : the U-Net of ``config`` with ``len(labels)`` classes (left in the mode it was in)
    path : the ``.onnx`` to write (usually ``OUT/model.onnx``)
    config, labels, step : the run it comes from, stored in the file's metadata

    Returns
    -------
    path : the written file

    Raises
    ------
    ModelError
        The exporter failed.
    """
    conditional = unet.label_emb is not None
    wrapper = _Conditional(unet) if conditional else _Unconditional(unet)
    # any width works in the graph; trace at a small one (2 samples, so the batch axis is not folded to 1)
    x = torch.zeros(2, 1, config.n_mels, 2 * config.multiple)
    t = torch.full((2,), 0.5)
    args = (x, t, torch.zeros(2, dtype=torch.long)) if conditional else (x, t)
    names = ["x", "t", "label"][: len(args)]
    axes = {"x": {0: "batch", 3: "frames"}, "v": {0: "batch", 3: "frames"}, **{n: {0: "batch"} for n in names[1:]}}
    was_training = unet.training  # the wrapper's mode is the U-Net's: trace in eval, restore after
    try:
        return export_module(wrapper, args, path, input_names=names, output_names=["v"], dynamic_axes=axes,
                             metadata_key=ONNX_METADATA_KEY,
                             metadata=onnx_metadata(config=config, labels=labels, step=step), what="the generator")
    finally:
        unet.train(was_training)
