"""A compact spectrogram CNN: conv blocks with batch norm, global pooling, one linear head.

Input ``[batch, 1, n_rows, n_frames]`` (any size: pooling is global), outputs ``logits``
``[batch, n_classes]`` and the pooled penultimate ``embedding`` ``[batch, 2 * channels[-1]]``
(mean and max over time of the frequency-averaged last feature map).

Defaults (one block, nanoGPT-style)::

    channels = (16, 32, 64, 128)  # output channels of the conv blocks; each block halves both axes
    dropout  = 0.3                # before the linear head
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from specmusic.config import ConfigBase
from specmusic.errors import ConfigError

__all__ = ["CNNConfig", "SpecCNN"]


@dataclass(frozen=True)
class CNNConfig(ConfigBase):
    """Shape of a :class:`SpecCNN`."""

    what = "CNN config"

    n_classes: int = 10
    channels: tuple[int, ...] = (16, 32, 64, 128)
    dropout: float = 0.3

    def __post_init__(self) -> None:
        if self.n_classes < 1 or not self.channels or min(self.channels) < 1:
            raise ConfigError("CNNConfig needs n_classes >= 1 and positive channels — fix the config")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout} must be in [0, 1) — fix --dropout")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))

    @property
    def embedding_dim(self) -> int:
        """Size of the ``embedding`` output."""
        return 2 * self.channels[-1]


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2, ceil_mode=True),
    )


class SpecCNN(nn.Module):
    """Conv blocks → mean over frequency → [mean, max] over time → dropout → linear.

    Parameters
    ----------
    config : CNNConfig
    """

    arch = "cnn"

    def __init__(self, config: CNNConfig) -> None:
        super().__init__()
        self.config = config
        layers = []
        c_in = 1
        for c_out in config.channels:
            layers.append(_block(c_in, c_out))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.embedding_dim, config.n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features.

        Parameters
        ----------
        x : torch.Tensor [shape=(batch, 1, n_rows, n_frames)]

        Returns
        -------
        embedding : torch.Tensor [shape=(batch, config.embedding_dim)]
        """
        h = self.features(x).mean(dim=2)  # [batch, channels, time]
        return torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(logits [batch, n_classes], embedding [batch, embedding_dim])``."""
        emb = self.embed(x)
        return self.head(self.dropout(emb)), emb
