"""Music taggers of Won et al. (SMC 2020): FCN, CRNN and MusiCNN, written for specmusic.

The modules' parameter names and shapes load the published checkpoints of
`minzwon/sota-music-tagging-models <https://github.com/minzwon/sota-music-tagging-models>`_
(MIT licence) with ``load_state_dict(strict=True)``: the checkpoints' torchaudio front end
(``spec.spectrogram.window``, ``spec.mel_scale.fb``) is kept as buffers of :class:`MelFrontEnd`,
followed by ``spec_bn`` (a one-channel BatchNorm over the dB mel spectrogram) and the network.

``forward`` takes what a specmusic model takes, the dB mel spectrogram
``[batch, 1, 96, n_frames]`` (computed by :mod:`specmusic.features` with :func:`tagger_feature_config`),
and returns ``(logits, embedding)``: logits *before* the sigmoid the original models end with,
and the pooled penultimate features. :meth:`TaggerBase.waveform_to_db` is the checkpoint's own
front end in torch (used to check the numpy one and for reference only).

Front end (facts from the checkpoints' stored window and filterbank and the paper)::

    sample_rate = 16000     # Hz
    n_fft       = 512       # periodic Hann window of 512 samples (the stored window)
    hop_length  = 256       # torchaudio's default n_fft // 2
    n_mels      = 96        # HTK mel scale, no area normalisation, 0..8000 Hz (the stored fb)
    centre pad  = reflect   # torchaudio's Spectrogram(center=True, pad_mode="reflect")
    to dB       = 10 log10(max(power, 1e-10)), no top_db floor (AmplitudeToDB defaults)

Input lengths used by the authors: FCN and CRNN 29 s (464,000 samples → 1,813 frames),
MusiCNN 3 s (48,000 samples → 188 frames).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from specmusic.features import FeatureConfig

__all__ = [
    "TAGGER_ARCHS",
    "TaggerSpec",
    "tagger_feature_config",
    "MelFrontEnd",
    "TaggerBase",
    "FCN",
    "CRNN",
    "MusiCNN",
    "build_tagger",
]


@dataclass(frozen=True)
class TaggerSpec:
    """What differs between the three architectures (all else is in :func:`tagger_feature_config`)."""

    arch: str  # "fcn" | "crnn" | "musicnn"
    input_samples: int  # audio samples per example at 16 kHz, as in the authors' eval.py
    embedding_dim: int  # size of the pooled penultimate features
    n_classes: int = 50  # 50 tags for MagnaTagATune, MSD and MTG-Jamendo alike

    @property
    def chunk_frames(self) -> int:
        """Frames of one input chunk (centred framing, hop 256)."""
        return tagger_feature_config().n_frames(self.input_samples)


TAGGER_ARCHS: dict[str, TaggerSpec] = {
    "fcn": TaggerSpec("fcn", input_samples=29 * 16000, embedding_dim=64),
    "crnn": TaggerSpec("crnn", input_samples=29 * 16000, embedding_dim=32),
    "musicnn": TaggerSpec("musicnn", input_samples=3 * 16000, embedding_dim=200),
}


def tagger_feature_config() -> FeatureConfig:
    """The specmusic feature config that reproduces the taggers' torchaudio front end."""
    return FeatureConfig(
        kind="mel",
        sample_rate=16000,
        n_fft=512,
        hop_length=256,
        n_mels=96,
        fmin=0.0,
        fmax=8000.0,
        top_db=None,
        mel_scale="htk",
        mel_norm="none",
        pad_mode="reflect",
    )


# -- front end ------------------------------------------------------------------------------
class _WindowHolder(nn.Module):
    def __init__(self, n_fft: int) -> None:
        super().__init__()
        self.register_buffer("window", torch.hann_window(n_fft))


class _FilterbankHolder(nn.Module):
    def __init__(self, n_freqs: int, n_mels: int) -> None:
        super().__init__()
        self.register_buffer("fb", torch.zeros(n_freqs, n_mels))


class MelFrontEnd(nn.Module):
    """The checkpoints' mel front end: stored window ``spectrogram.window`` [512] and filterbank
    ``mel_scale.fb`` [257, 96]; power STFT (centred, reflect pad) → mel → dB."""

    def __init__(self, n_fft: int = 512, hop_length: int = 256, n_mels: int = 96) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.spectrogram = _WindowHolder(n_fft)
        self.mel_scale = _FilterbankHolder(n_fft // 2 + 1, n_mels)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """[batch, n_samples] float audio at 16 kHz → dB mel [batch, 1, n_mels, 1 + n_samples // hop]."""
        stft = torch.stft(
            wave,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            window=self.spectrogram.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        power = stft.real**2 + stft.imag**2  # [batch, n_freqs, n_frames]
        mel = torch.matmul(power.transpose(1, 2), self.mel_scale.fb).transpose(1, 2)
        return (10.0 * torch.log10(torch.clamp(mel, min=1e-10))).unsqueeze(1)


# -- building blocks (parameter names follow the checkpoints: conv, bn) ---------------------
class _Conv2dBlock(nn.Module):
    """3x3 conv → BatchNorm → ReLU → max pool."""

    def __init__(self, c_in: int, c_out: int, pooling: tuple[int, int]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.bn = nn.BatchNorm2d(c_out)
        self.pool = nn.MaxPool2d(pooling)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.bn(self.conv(x))))


class _Conv1dBlock(nn.Module):
    """Same-padded 1-D conv → BatchNorm → ReLU (MusiCNN back end; its pooling of 1 is the identity)."""

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2)
        self.bn = nn.BatchNorm1d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class _TimbralConv(nn.Module):
    """Pons' vertical filter: a (freq x 7) conv over the spectrogram, max over frequency → [B, C, T]."""

    def __init__(self, c_out: int, height: int, width: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, c_out, (height, width), padding=(0, width // 2))
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x))).amax(dim=2)


class _TemporalConv(nn.Module):
    """Pons' horizontal filter: mean over frequency, then a long 1-D conv in time → [B, C, T]."""

    def __init__(self, c_out: int, length: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, c_out, length, padding=length // 2)
        self.bn = nn.BatchNorm1d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x.mean(dim=2))))


# -- the taggers ------------------------------------------------------------------------------
class TaggerBase(nn.Module):
    """Shared front end (``spec`` buffers + ``spec_bn``); subclasses implement :meth:`body`."""

    arch = ""

    def __init__(self) -> None:
        super().__init__()
        self.spec = MelFrontEnd()
        self.spec_bn = nn.BatchNorm2d(1)

    @property
    def spec_info(self) -> TaggerSpec:
        return TAGGER_ARCHS[self.arch]

    def waveform_to_db(self, wave: torch.Tensor) -> torch.Tensor:
        """The checkpoint's own front end: [batch, n_samples] → dB mel [batch, 1, 96, n_frames]."""
        return self.spec(wave)

    def body(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """dB mel [batch, 1, 96, chunk_frames] → (logits [batch, 50], embedding [batch, dim])."""
        return self.body(self.spec_bn(spec))


class FCN(TaggerBase):
    """Choi et al. 2016, fully convolutional: five 3x3 conv blocks pool 96 x 1813 down to 1 x 1."""

    arch = "fcn"

    def __init__(self, n_classes: int = 50) -> None:
        super().__init__()
        self.layer1 = _Conv2dBlock(1, 64, (2, 4))
        self.layer2 = _Conv2dBlock(64, 128, (2, 4))
        self.layer3 = _Conv2dBlock(128, 128, (2, 4))
        self.layer4 = _Conv2dBlock(128, 128, (3, 5))
        self.layer5 = _Conv2dBlock(128, 64, (4, 4))
        self.dense = nn.Linear(64, n_classes)

    def body(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4, self.layer5):
            x = layer(x)
        embedding = x.flatten(1)  # [B, 64]: the input length makes the map 1 x 1
        return self.dense(embedding), embedding


class CRNN(TaggerBase):
    """Choi et al. 2017: four conv blocks (frequency pooled to 1), then a 2-layer GRU; last step."""

    arch = "crnn"

    def __init__(self, n_classes: int = 50) -> None:
        super().__init__()
        self.layer1 = _Conv2dBlock(1, 64, (2, 2))
        self.layer2 = _Conv2dBlock(64, 128, (3, 3))
        self.layer3 = _Conv2dBlock(128, 128, (4, 4))
        self.layer4 = _Conv2dBlock(128, 128, (4, 4))
        self.layer5 = nn.GRU(128, 32, num_layers=2, batch_first=True)
        self.dense = nn.Linear(32, n_classes)

    def body(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
        seq = x.squeeze(2).transpose(1, 2)  # [B, T', 128]
        out, _ = self.layer5(seq)
        embedding = out[:, -1, :]  # [B, 32]
        return self.dense(embedding), embedding


class MusiCNN(TaggerBase):
    """Pons et al. 2018 as updated by Won et al.: timbral + temporal front end, dense 1-D back end,
    max and mean pooling over time, a 200-unit dense layer (the embedding)."""

    arch = "musicnn"

    def __init__(self, n_classes: int = 50, n_mels: int = 96, backend: int = 64, dense: int = 200) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [
                _TimbralConv(204, int(0.7 * n_mels)),
                _TimbralConv(204, int(0.4 * n_mels)),
                _TemporalConv(51, 129),
                _TemporalConv(51, 65),
                _TemporalConv(51, 33),
            ]
        )
        front = 2 * 204 + 3 * 51  # 561
        self.layer1 = _Conv1dBlock(front, backend, 7)
        self.layer2 = _Conv1dBlock(backend, backend, 7)
        self.layer3 = _Conv1dBlock(backend, backend, 7)
        self.dense1 = nn.Linear((front + 3 * backend) * 2, dense)
        self.bn = nn.BatchNorm1d(dense)
        self.dense2 = nn.Linear(dense, n_classes)

    def body(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        front = torch.cat([layer(x) for layer in self.layers], dim=1)  # [B, 561, T]
        res1 = self.layer1(front)
        res2 = self.layer2(res1) + res1
        res3 = self.layer3(res2) + res2
        feats = torch.cat([front, res1, res2, res3], dim=1)  # [B, 753, T]
        pooled = torch.cat([feats.amax(dim=2), feats.mean(dim=2)], dim=1)  # [B, 1506]
        embedding = torch.relu(self.bn(self.dense1(pooled)))  # [B, 200]
        return self.dense2(embedding), embedding


def build_tagger(arch: str) -> TaggerBase:
    """A fresh (untrained, eval-mode) tagger of ``arch``: "fcn", "crnn" or "musicnn".

    Raises
    ------
    ConfigError
        Unknown architecture.
    """
    from specmusic.errors import ConfigError

    classes: dict[str, type[TaggerBase]] = {"fcn": FCN, "crnn": CRNN, "musicnn": MusiCNN}
    if arch not in classes:
        raise ConfigError(f"unknown tagger architecture {arch!r} — use one of {', '.join(classes)}")
    return classes[arch]().eval()
