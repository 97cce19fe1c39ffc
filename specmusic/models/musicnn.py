"""Pons' MusiCNN and VGG taggers (PyPI ``musicnn``, TensorFlow 1 checkpoints): the torch networks and the
TF checkpoint → state dict port.

Jordi Pons and Xavier Serra, "musicnn: pre-trained convolutional neural networks for music audio
tagging", ISMIR 2019 late-breaking demo — code and weights under the ISC licence, (c) 2019 Music
Technology Group, Universitat Pompeu Fabra. The ``musicnn`` wheel ships TF1 checkpoints
(``musicnn/<MODEL>/.index`` + ``.data-00000-of-00001``) of MusiCNN and a VGG-like baseline trained
on MagnaTagATune (MTT) and the Million Song Dataset (MSD). specmusic reads them with
:mod:`specmusic.models.tf_checkpoint` (no TensorFlow), re-implements the graphs of the wheel's
``musicnn/models.py`` in torch (:class:`PonsMusicnn`, :class:`PonsVGG`);
:mod:`specmusic.models.zoo.convert` exports them to ONNX under the contract of
:mod:`specmusic.inference.contract` (the registry entries, credits and licence:
:mod:`specmusic.models.zoo.registry`). Nothing here downloads: :func:`load_pons_model` takes the
wheel (``.whl``) or its unzipped folder (``pip download --no-deps musicnn``).

Port notes (TF graph → torch):

* the TF input is ``[batch, time, freq]`` expanded to NHWC (H = time, W = freq); specmusic feeds
  ``[batch, 1, freq, time]``, so the networks transpose first and run NCHW with H = time;
* kernels ``[kh, kw, in, out]`` → ``[out, in, kh, kw]``; the mid-end's full-width convolutions
  (``[7, width]`` over ``[time, width, 1]``) are 1-D convolutions over time with ``width`` channels;
* ``tf.layers.batch_normalization`` at inference: moving statistics, epsilon 0.001, placed *after*
  the ReLU of each convolution (TF order kept);
* ``padding='same'`` of the temporal ``[k, 1]`` kernels pads ``(k - 1) // 2`` frames before and the
  rest after (TF's rule for even kernels); the timbral and mid-end convolutions are ``valid`` on
  input padded by 3 frames each side;
* the back-end flattens ``concat([max_pool, mean_pool], axis=2)`` of shape ``[753, 2]``, so the
  1,506 inputs of the penultimate dense layer interleave max and mean per feature.

Features (the wheel's ``configuration.py`` and ``extractor.py``): 16 kHz, n_fft 512, hop 256, 96
Slaney mel bands (librosa's default filterbank), power, then ``log10(1 + 10000·x)``
(:data:`MUSICNN_FEATURES`, ``log_scale="logc"``); 3 s windows of 187 frames, not overlapping.

Outputs: ``logits`` [batch, 50] (pre-sigmoid), ``embedding`` (MusiCNN: the penultimate dense
layer's 200 features after its batch norm, the wheel's ``penultimate``; VGG: ``pool5`` flattened,
256), and for MusiCNN also ``mean_pool`` / ``max_pool`` [batch, 753], the back-end's pooled
front- and mid-end features (the wheel's ``mean_pool`` / ``max_pool``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from specmusic.errors import ModelError
from specmusic.features import FeatureConfig
from specmusic.models.zoo.registry import PonsModel, get_pons_model

__all__ = [
    "CHUNK_FRAMES",
    "MUSICNN_FEATURES",
    "build_pons_model",
    "load_pons_model",
    "tf_to_state_dict",
]

BN_EPS = 1e-3  # tf.compat.v1.layers.batch_normalization's default
CHUNK_FRAMES = 187  # 3 s at 16 kHz / 256
#: The features every Pons model was trained on (musicnn/configuration.py, extractor.batch_data).
MUSICNN_FEATURES = FeatureConfig(kind="mel", sample_rate=16000, n_fft=512, hop_length=256, n_mels=96,
                                 top_db=None, log_scale="logc")  # fmt: skip

# -- torch networks ---------------------------------------------------------------------------
def _nets() -> tuple[type, type]:
    """The torch classes, defined on first use so that importing this module never imports torch."""
    global _NETS
    if _NETS is None:
        _NETS = _define_nets()
    return _NETS


_NETS: tuple[type, type] | None = None


def _define_nets() -> tuple[type, type]:
    import torch
    import torch.nn.functional as F
    from torch import nn

    def bn(n: int) -> nn.BatchNorm1d:
        return nn.BatchNorm1d(n, eps=BN_EPS)

    def bn2(n: int) -> nn.BatchNorm2d:
        return nn.BatchNorm2d(n, eps=BN_EPS)

    class PonsMusicnn(nn.Module):
        """MusiCNN (``build_musicnn`` of the wheel: 7774timbraltemporal front-end, 3 dense-residual
        mid-end layers of 64 filters, mean+max pooling, 200-unit penultimate layer)."""

        def __init__(self, n_mels: int = 96, n_classes: int = 50, mid: int = 64, units: int = 200) -> None:
            super().__init__()
            self.bn_input = bn2(1)
            widths = (int(0.4 * n_mels), int(0.7 * n_mels))
            self.timbral = nn.ModuleList([nn.Conv2d(1, int(1.6 * 128), (7, w)) for w in widths])
            self.timbral_bn = nn.ModuleList([bn2(int(1.6 * 128)) for _ in widths])
            self.temporal = nn.ModuleList([nn.Conv2d(1, int(1.6 * 32), (k, 1)) for k in (128, 64, 32)])
            self.temporal_bn = nn.ModuleList([bn2(int(1.6 * 32)) for _ in range(3)])
            front = 2 * int(1.6 * 128) + 3 * int(1.6 * 32)
            self.mid = nn.ModuleList([nn.Conv1d(front if i == 0 else mid, mid, 7) for i in range(3)])
            self.mid_bn = nn.ModuleList([bn(mid) for _ in range(3)])
            self.n_pooled = front + 3 * mid
            self.bn_flat = bn(2 * self.n_pooled)
            self.dense = nn.Linear(2 * self.n_pooled, units)
            self.bn_dense = bn(units)
            self.out = nn.Linear(units, n_classes)

        def forward(self, spec: torch.Tensor) -> tuple[torch.Tensor, ...]:
            x = self.bn_input(spec.transpose(2, 3))  # [B, 1, T, F]
            feats = []
            padded = F.pad(x, (0, 0, 3, 3))
            for conv, norm in zip(self.timbral, self.timbral_bn):
                feats.append(norm(F.relu(conv(padded))).amax(dim=3))  # [B, C, T]
            for conv, norm in zip(self.temporal, self.temporal_bn):
                k = conv.kernel_size[0]
                same = F.pad(x, (0, 0, (k - 1) // 2, k - 1 - (k - 1) // 2))  # TF 'same'
                feats.append(norm(F.relu(conv(same))).amax(dim=3))
            front = torch.cat(feats, dim=1)  # [B, 561, T]
            layers, h = [front], front
            for i, (conv, norm) in enumerate(zip(self.mid, self.mid_bn)):
                y = norm(F.relu(conv(F.pad(h, (3, 3)))))
                h = y if i == 0 else y + h
                layers.append(h)
            mid = torch.cat(layers, dim=1)  # [B, 753, T]
            max_pool, mean_pool = mid.amax(dim=2), mid.mean(dim=2)
            flat = torch.stack([max_pool, mean_pool], dim=2).flatten(1)  # TF's [753, 2] flattened
            penultimate = self.bn_dense(F.relu(self.dense(self.bn_flat(flat))))
            return self.out(penultimate), penultimate, mean_pool, max_pool

    class PonsVGG(nn.Module):
        """The wheel's ``vgg``: 5 × (3×3 conv 128, ReLU, batch norm, max pool), dense to 50 tags."""

        POOLS = (((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4)))

        def __init__(self, n_classes: int = 50, filters: int = 128, flat: int = 256) -> None:
            super().__init__()
            self.bn_input = bn2(1)
            self.convs = nn.ModuleList([nn.Conv2d(1 if i == 0 else filters, filters, 3, padding=1) for i in range(5)])
            self.bns = nn.ModuleList([bn2(filters) for _ in range(5)])
            self.out = nn.Linear(flat, n_classes)

        def forward(self, spec: torch.Tensor) -> tuple[torch.Tensor, ...]:
            x = self.bn_input(spec.transpose(2, 3))  # [B, 1, T, F]
            for conv, norm, (size, stride) in zip(self.convs, self.bns, self.POOLS):
                x = F.max_pool2d(norm(F.relu(conv(x))), size, stride)
            pool5 = x.permute(0, 2, 3, 1).flatten(1)  # NHWC order, as tf.layers.flatten
            return self.out(pool5), pool5

    return PonsMusicnn, PonsVGG


def build_pons_model(arch: str) -> Any:
    """An untrained :class:`PonsMusicnn` (``arch="musicnn"``) or :class:`PonsVGG` (``"vgg"``), eval mode."""
    musicnn_cls, vgg_cls = _nets()
    return (musicnn_cls() if arch == "musicnn" else vgg_cls()).eval()


# -- TF variables → torch state dict ------------------------------------------------------------
def _conv2d(k: np.ndarray) -> np.ndarray:
    return k.transpose(3, 2, 0, 1)  # [kh, kw, in, out] → [out, in, kh, kw]


def _conv1d(k: np.ndarray) -> np.ndarray:
    return k[:, :, 0, :].transpose(2, 1, 0)  # [7, width, 1, out] → [out, width, 7]


def _bn(state: dict[str, np.ndarray], prefix: str, tf: dict[str, np.ndarray], name: str) -> None:
    state[f"{prefix}.weight"] = tf[f"{name}/gamma"]
    state[f"{prefix}.bias"] = tf[f"{name}/beta"]
    state[f"{prefix}.running_mean"] = tf[f"{name}/moving_mean"]
    state[f"{prefix}.running_var"] = tf[f"{name}/moving_variance"]


def _bn_name(i: int) -> str:
    return "batch_normalization" if i == 0 else f"batch_normalization_{i}"


def _conv_name(i: int) -> str:
    return "conv2d" if i == 0 else f"conv2d_{i}"


def tf_to_state_dict(arch: str, tf: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map the TF variables of a Pons checkpoint (graph-creation order of ``musicnn/models.py``)
    to the parameter names of :func:`build_pons_model` ``(arch)``."""
    state: dict[str, np.ndarray] = {}
    _bn(state, "bn_input", tf, _bn_name(0))
    if arch == "vgg":
        for i in range(5):
            state[f"convs.{i}.weight"] = _conv2d(tf[f"{i + 1}CNN/kernel"])
            state[f"convs.{i}.bias"] = tf[f"{i + 1}CNN/bias"]
            _bn(state, f"bns.{i}", tf, _bn_name(i + 1))
        state["out.weight"], state["out.bias"] = tf["dense/kernel"].T, tf["dense/bias"]
        return state
    # conv2d, conv2d_1: timbral 7x38, 7x67; conv2d_2..4: temporal 128, 64, 32; conv2d_5..7: mid-end
    for i in range(2):
        state[f"timbral.{i}.weight"] = _conv2d(tf[f"{_conv_name(i)}/kernel"])
        state[f"timbral.{i}.bias"] = tf[f"{_conv_name(i)}/bias"]
        _bn(state, f"timbral_bn.{i}", tf, _bn_name(1 + i))
    for i in range(3):
        state[f"temporal.{i}.weight"] = _conv2d(tf[f"{_conv_name(2 + i)}/kernel"])
        state[f"temporal.{i}.bias"] = tf[f"{_conv_name(2 + i)}/bias"]
        _bn(state, f"temporal_bn.{i}", tf, _bn_name(3 + i))
    for i in range(3):
        state[f"mid.{i}.weight"] = _conv1d(tf[f"{_conv_name(5 + i)}/kernel"])
        state[f"mid.{i}.bias"] = tf[f"{_conv_name(5 + i)}/bias"]
        _bn(state, f"mid_bn.{i}", tf, _bn_name(6 + i))
    _bn(state, "bn_flat", tf, _bn_name(9))
    state["dense.weight"], state["dense.bias"] = tf["dense/kernel"].T, tf["dense/bias"]
    _bn(state, "bn_dense", tf, _bn_name(10))
    state["out.weight"], state["out.bias"] = tf["dense_1/kernel"].T, tf["dense_1/bias"]
    return state


# -- the wheel ----------------------------------------------------------------------------------
def _checkpoint_prefix(source: str | os.PathLike[str], model: PonsModel, scratch: Path) -> str:
    """The checkpoint prefix of ``model`` in ``source``: a ``.whl`` (extracted into ``scratch``), the
    unzipped wheel, its ``musicnn/`` package folder, or the model folder itself."""
    import zipfile

    src = Path(source).expanduser()
    files = (".index", ".data-00000-of-00001")
    if src.is_file() and zipfile.is_zipfile(src):
        with zipfile.ZipFile(src) as whl:
            for suffix in files:
                member = f"musicnn/{model.folder}/{suffix}"
                try:
                    (scratch / suffix).write_bytes(whl.read(member))
                except KeyError:
                    raise ModelError(f"{src} has no {member} — pass the musicnn wheel "
                                     "(pip download --no-deps musicnn)") from None  # fmt: skip
        return f"{scratch}{os.sep}"  # the wheel names its files ".index": the prefix is the folder
    for folder in (src / "musicnn" / model.folder, src / model.folder, src):
        if (folder / ".index").is_file():
            return f"{folder}{os.sep}"
    raise ModelError(f"{src} holds no musicnn/{model.folder}/.index — pass the musicnn wheel or its unzipped "
                     "folder (pip download --no-deps musicnn -d DIR)")  # fmt: skip


def load_pons_model(name: str, source: str | os.PathLike[str]) -> Any:
    """The torch module of Pons model ``name`` with the wheel's weights (``source``: .whl or folder), eval mode.

    Raises
    ------
    ModelError
        Unknown name, or the checkpoint is missing, unreadable or not this architecture.
    """
    import torch

    from specmusic.models.tf_checkpoint import read_checkpoint

    model = get_pons_model(name)
    with tempfile.TemporaryDirectory(prefix="specmusic-musicnn-") as scratch:
        tf = read_checkpoint(_checkpoint_prefix(source, model, Path(scratch)))
    net = build_pons_model(model.arch)
    try:
        state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tf_to_state_dict(model.arch, tf).items()}
        net.load_state_dict(state, strict=False)
        counters = {k for k in net.state_dict() if k.endswith("num_batches_tracked")}
        missing = set(net.state_dict()) - set(state) - counters
        if missing:
            raise KeyError(min(missing))
    except (KeyError, RuntimeError) as exc:
        raise ModelError(f"{source}: the {model.folder} checkpoint does not fit the {model.arch} port "
                         f"({type(exc).__name__}: {exc}) — pass the musicnn 0.1.0 wheel") from exc  # fmt: skip
    return net.eval()
