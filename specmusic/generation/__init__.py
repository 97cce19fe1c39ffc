"""Generative model of log-mel spectrograms (``specmusic generate``).

The model is a small class-conditional U-Net (:mod:`specmusic.models.generative`) trained with
flow matching (rectified flow): ``x_t = (1 - t) noise + t data``, the network predicts the
velocity ``data - noise``; sampling integrates it with Euler steps from noise (t=0) to data (t=1),
with classifier-free guidance when the data has labels; the Euler steps are numpy, the network runs
on onnxruntime from the folder's ``model.onnx`` (``pip install specmusic`` samples without torch).
Spectrograms are log-mel patches in dB relative to each clip's maximum, scaled to [-1, 1]. Samples become audio with
:mod:`specmusic.inversion` (numpy only).

Modules: :mod:`~specmusic.generation.config` (``GenConfig``, the folder layout, dB scaling; numpy),
:mod:`~specmusic.generation.data` (training clips; numpy), :mod:`~specmusic.generation.sample`
(numpy + onnxruntime; torch only to convert a folder without ``model.onnx``),
:mod:`~specmusic.generation.invert` (an array file back to audio; numpy),
:mod:`~specmusic.generation.train` and :mod:`~specmusic.generation.export` (torch). The names below are
imported on first use, so importing this package imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from specmusic.lazy import lazy_exports

if TYPE_CHECKING:
    from specmusic.generation.config import (
        FORMAT_VERSION,
        GenConfig,
        config_with,
        denormalize_db,
        normalize_db,
    )
    from specmusic.generation.data import load_training_data
    from specmusic.generation.export import export_generator
    from specmusic.generation.invert import Inversion, invert_file
    from specmusic.generation.sample import (
        Generator,
        iter_spectrograms,
        load_generator,
        sample_spectrograms,
        sample_to_folder,
        write_samples,
    )
    from specmusic.generation.train import GeneratorTrainResult, train_generator, train_generator_from_files

_HOMES = {
    "FORMAT_VERSION": "config",
    "GenConfig": "config",
    "config_with": "config",
    "normalize_db": "config",
    "denormalize_db": "config",
    "load_training_data": "data",
    "export_generator": "export",
    "Inversion": "invert",
    "invert_file": "invert",
    "Generator": "sample",
    "load_generator": "sample",
    "sample_spectrograms": "sample",
    "iter_spectrograms": "sample",
    "write_samples": "sample",
    "sample_to_folder": "sample",
    "GeneratorTrainResult": "train",
    "train_generator": "train",
    "train_generator_from_files": "train",
}

__all__ = [  # noqa: RUF022 - in the order of the modules
    "FORMAT_VERSION", "GenConfig", "config_with", "normalize_db", "denormalize_db",
    "load_training_data",
    "export_generator",
    "Inversion", "invert_file",
    "Generator", "load_generator", "sample_spectrograms", "iter_spectrograms", "write_samples", "sample_to_folder",
    "GeneratorTrainResult", "train_generator", "train_generator_from_files",
]


__getattr__, __dir__ = lazy_exports(__name__, _HOMES, __all__)
