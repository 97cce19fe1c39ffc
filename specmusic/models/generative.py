"""A small class-conditional U-Net for flow matching on log-mel patches (``specmusic generate``).

Fully convolutional (GroupNorm, no attention, no fixed width): trained on patches of
``patch_frames`` frames, it samples any width (and height) that is a multiple of
``patch * 2 ** (len(channel_mult) - 1)`` (:attr:`specmusic.generation.GenConfig.multiple`).

Defaults (one block, nanoGPT-style)::

    n_mels       = 64          # input rows (mel bands)
    base         = 32          # channels at full resolution
    channel_mult = (1, 2, 4)   # channels per level; one 2x down/up-sampling between levels
    emb_dim      = 128         # time + label embedding size
    n_classes    = 0           # 0: unconditional; else labels 0..n-1 and n = "no label" (guidance)
    patch        = 2           # pixel-unshuffle factor: the U-Net runs on a (n_mels/2, frames/2) grid
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from specmusic.config import ConfigBase

__all__ = ["UNet", "UNetConfig"]


@dataclass(frozen=True)
class UNetConfig(ConfigBase):
    """Shape of the U-Net; stored in every checkpoint."""

    what = "U-Net config"

    n_mels: int = 64
    base: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 4)
    emb_dim: int = 128
    n_classes: int = 0
    patch: int = 2


def _timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (t.float() * 1000.0)[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


def _groups(c: int) -> int:
    """GroupNorm groups: 8, or the largest count ≤ 8 that divides ``c`` (``--base 12`` works too)."""
    g = min(8, c)
    while c % g:
        g -= 1
    return g


class _ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return self.skip(x) + h


class UNet(nn.Module):
    """Predicts the flow-matching velocity ``v(x_t, t, label)``.

    Input ``x`` [shape=(batch, 1, n_mels, n_frames)], ``t`` [shape=(batch,)] in [0, 1],
    ``labels`` [shape=(batch,)] long in 0..n_classes (n_classes = no label); output as ``x``.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        e = config.emb_dim
        self.time_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        self.label_emb = nn.Embedding(config.n_classes + 1, e) if config.n_classes > 0 else None
        chans = [config.base * m for m in config.channel_mult]
        self.stem = nn.Conv2d(config.patch**2, chans[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        c = chans[0]
        skips = []
        for i, ch in enumerate(chans):
            self.down_blocks.append(_ResBlock(c, ch, e))
            c = ch
            skips.append(c)
            if i < len(chans) - 1:
                self.downsamples.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid1 = _ResBlock(c, c, e)
        self.mid2 = _ResBlock(c, c, e)
        self.up_blocks = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        for i, ch in reversed(list(enumerate(chans))):
            self.up_blocks.append(_ResBlock(c + skips[i], ch, e))
            c = ch
            if i > 0:
                self.upsamples.append(nn.Conv2d(c, chans[i - 1], 3, padding=1))
                c = chans[i - 1]
        self.out_norm = nn.GroupNorm(_groups(c), c)
        self.out = nn.Conv2d(c, config.patch**2, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.time_mlp(_timestep_embedding(t, self.config.emb_dim))
        if self.label_emb is not None:
            if labels is None:
                labels = torch.full((x.shape[0],), self.config.n_classes, dtype=torch.long, device=x.device)
            emb = emb + self.label_emb(labels)
        emb = F.silu(emb)
        h = self.stem(F.pixel_unshuffle(x, self.config.patch) if self.config.patch > 1 else x)
        skips = []
        n = len(self.down_blocks)
        for i, block in enumerate(self.down_blocks):
            h = block(h, emb)
            skips.append(h)
            if i < n - 1:
                h = self.downsamples[i](h)
        h = self.mid2(self.mid1(h, emb), emb)
        for j, block in enumerate(self.up_blocks):
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if j < n - 1:
                h = self.upsamples[j](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        out = self.out(F.silu(self.out_norm(h)))
        return F.pixel_shuffle(out, self.config.patch) if self.config.patch > 1 else out
