"""EfficientAT's ``mn04_as``: an AudioSet tagger (MobileNetV3, width 0.4, 0.98 M parameters) as a specmusic model.

Florian Schmid, Khaled Koutini, Gerhard Widmer: "Efficient Large-Scale Audio Tagging via
Transformer-to-CNN Knowledge Distillation", ICASSP 2023 — code and weights under the MIT licence,
(c) 2022 Florian Schmid (the GitHub repository ``fschmid56/EfficientAT``). The released state dict
``mn04_as_mAP_432.pt`` (ImageNet pre-training, then AudioSet with knowledge distillation from PaSST;
mAP 43.2) loads into :func:`build_efficientat` with ``strict=True``; :func:`convert_efficientat`
exports it to ONNX under the contract of :mod:`specmusic.inference`. Nothing here downloads.

The network (the repository's ``models/mn``, written again here from its facts):

* a stem ``Conv 3×3 stride 2 → BN → Hardswish`` to 8 channels, then MobileNetV3-Large's fifteen
  inverted-residual blocks (:data:`BLOCKS`) with every width ``c`` scaled to
  ``make_divisible(0.4·c, 8)``, then ``Conv 1×1 → BN → Hardswish`` to 6 × 64 = 384 channels;
* each block: ``1×1 expand`` (left out where the width does not grow), ``k×k depthwise`` (stride
  1 or 2, padding ``(k - 1) // 2``), squeeze-excitation where the table says so, ``1×1 project``
  without activation, and the input added back when the stride is 1 and the width unchanged;
  batch norms with ``eps`` 0.001; the names follow torchvision's ``ConvNormActivation``
  (``0`` conv without bias, ``1`` BN, ``2`` activation);
* squeeze-excitation over channels only (EfficientAT's ``se_dims="c"``): the mean over frequency
  and time, ``Linear(C → make_divisible(C // 4, 8))``, ReLU, ``Linear`` back, sigmoid, times the
  input. EfficientAT runs it as a "concurrent" block of one gate whose outputs are fused by a
  maximum (over one gate: the gate itself), hence the ``conc_se_layers.0`` in the names;
* the head (``head_type="mlp"``): global average pooling over frequency and time, ``Linear(384 →
  512)``, Hardswish, dropout, ``Linear(512 → 527)`` (``classifier.2`` and ``classifier.5``).

Outputs: ``logits`` [batch, 527] before the sigmoid (AudioSet is multi-label), and ``embedding``
[batch, 384], the pooled last feature map that feeds the classifier (the ``features`` EfficientAT's
``forward`` returns beside the logits). The network is convolutional up to the pooling, so any
number of frames works; specmusic feeds windows of :data:`CHUNK_SECONDS`.

Features (the repository's ``models/preprocess.py`` ``AugmentMelSTFT`` in eval mode, and the
defaults of ``ex_audioset.py``), :data:`EFFICIENTAT_FEATURES`: mono at 32 kHz; pre-emphasis as the
valid convolution ``x[n+1] - 0.97·x[n]`` (one sample shorter); ``torch.stft`` with n_fft 1024, hop 320,
a symmetric (``periodic=False``) Hann window of 800 samples zero-padded to 1024 at its centre,
``center=True`` with reflected edges; power; Kaldi's mel filterbank (:mod:`specmusic.kaldi`), 128
bands from 0 Hz to 15 kHz (``fmax=None`` resolves to ``sr // 2 - fmax_aug_range // 2`` = 16000 − 1000);
``ln(mel + 1e-5)``. The last step, ``(x + 4.5) / 5``, is the metadata's ``input_norm`` ``{"mean":
-4.5, "std": 5}``, applied by :mod:`specmusic.inference` before the network: arrays written by
``spectro --like`` stay in natural-log units.
"""

from __future__ import annotations

import csv
import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

from specmusic.errors import InputError, ModelError
from specmusic.features import FeatureConfig

__all__ = [
    "BLOCKS",
    "CHECKPOINT_SHA256",
    "CHUNK_SECONDS",
    "CREDIT",
    "EFFICIENTAT_FEATURES",
    "INPUT_NORM",
    "build_efficientat",
    "convert_efficientat",
    "efficientat_metadata",
    "fetch_efficientat_checkpoint",
    "load_efficientat",
    "make_divisible",
    "read_audioset_labels",
]

CREDIT = (
    "Florian Schmid, Khaled Koutini, Gerhard Widmer: Efficient Large-Scale Audio Tagging via "
    "Transformer-to-CNN Knowledge Distillation, ICASSP 2023; weights (c) 2022 Florian Schmid, MIT licence"
)
URL = "https://github.com/fschmid56/EfficientAT"
CHECKPOINT = "mn04_as_mAP_432.pt"
#: sha256 of the released ``mn04_as_mAP_432.pt`` (4,066,513 bytes), recorded in the converted model's metadata.
CHECKPOINT_SHA256 = "899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c"
LABELS_CSV = "audioset_class_labels_indices.csv"
#: Where EfficientAT publishes the checkpoint (its ``models/mn/model.py`` ``pretrained_models``).
CHECKPOINT_URL = f"{URL}/releases/download/v0.0.1/{CHECKPOINT}"
CONVERTER_VERSION = 1
WIDTH = 0.4  # mn04: width_mult 0.4
N_CLASSES = 527
BN_EPS = 1e-3
#: Window length the network sees: AudioSet's 10 s clips, as it was trained (benchmarks/efficientat_probe.py).
CHUNK_SECONDS = 10.0
#: ``(x - mean) / std`` after the log: EfficientAT's ``(x + 4.5) / 5``.
INPUT_NORM = (-4.5, 5.0)
#: The features mn04_as was trained on (``AugmentMelSTFT`` in eval mode; see the module docstring).
EFFICIENTAT_FEATURES = FeatureConfig(
    kind="mel", sample_rate=32000, n_fft=1024, hop_length=320, n_mels=128, fmin=0.0, fmax=15000.0, top_db=None,
    mel_scale="kaldi", mel_norm="none", pad_mode="reflect", log_scale="ln", preemphasis=0.97, win_length=800,
    window="hann_symmetric",
)  # fmt: skip

#: MobileNetV3-Large's inverted residual blocks before width scaling:
#: (kernel, expanded width, output width, squeeze-excitation, Hardswish (else ReLU), stride).
BLOCKS: tuple[tuple[int, int, int, bool, bool, int], ...] = (
    (3, 16, 16, False, False, 1),
    (3, 64, 24, False, False, 2),
    (3, 72, 24, False, False, 1),
    (5, 72, 40, True, False, 2),
    (5, 120, 40, True, False, 1),
    (5, 120, 40, True, False, 1),
    (3, 240, 80, False, True, 2),
    (3, 200, 80, False, True, 1),
    (3, 184, 80, False, True, 1),
    (3, 184, 80, False, True, 1),
    (3, 480, 112, True, True, 1),
    (3, 672, 112, True, True, 1),
    (5, 672, 160, True, True, 2),
    (5, 960, 160, True, True, 1),
    (5, 960, 160, True, True, 1),
)
STEM_WIDTH, HIDDEN_WIDTH = 16, 1280  # the stem's output and the head's hidden layer, before scaling


def make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``divisor``), rounded up
    once more where rounding lost over 10 % (the MobileNet rule for scaled widths)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


# -- torch network ------------------------------------------------------------------------------
_NET: type | None = None


def _net_class() -> type:
    """The torch class, defined on first use so that importing this module never imports torch."""
    global _NET
    if _NET is None:
        _NET = _define_net()
    return _NET


def _define_net() -> type:
    import torch
    from torch import nn

    def conv_bn(c_in: int, c_out: int, kernel: int, *, stride: int = 1, groups: int = 1,
                activation: type[nn.Module] | None = None) -> nn.Sequential:  # fmt: skip
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out, eps=BN_EPS),
        ]
        if activation is not None:
            layers.append(activation())
        return nn.Sequential(*layers)

    class ChannelGate(nn.Module):
        """Squeeze-excitation over channels: ``x · sigmoid(fc2(relu(fc1(mean_ft(x)))))``."""

        def __init__(self, channels: int) -> None:
            super().__init__()
            squeezed = make_divisible(channels // 4, 8)
            self.fc1, self.fc2 = nn.Linear(channels, squeezed), nn.Linear(squeezed, channels)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            scale = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3))))))
            return x * scale[:, :, None, None]

    class SqueezeExcitation(nn.Module):
        """EfficientAT's concurrent squeeze-excitation with channel gating alone (a maximum over one gate)."""

        def __init__(self, channels: int) -> None:
            super().__init__()
            self.conc_se_layers = nn.ModuleList([ChannelGate(channels)])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conc_se_layers[0](x)

    class InvertedResidual(nn.Module):
        def __init__(self, c_in: int, kernel: int, expanded: int, c_out: int, se: bool, hswish: bool,
                     stride: int) -> None:  # fmt: skip
            super().__init__()
            act = nn.Hardswish if hswish else nn.ReLU
            layers: list[nn.Module] = []
            if expanded != c_in:
                layers.append(conv_bn(c_in, expanded, 1, activation=act))
            layers.append(conv_bn(expanded, expanded, kernel, stride=stride, groups=expanded, activation=act))
            if se:
                layers.append(SqueezeExcitation(expanded))
            layers.append(conv_bn(expanded, c_out, 1))
            self.block = nn.Sequential(*layers)
            self.residual = stride == 1 and c_in == c_out

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.block(x)
            return y + x if self.residual else y

    class EfficientATMobileNet(nn.Module):
        """EfficientAT's MobileNetV3 (``models/mn``), ``forward(spec) -> (logits, embedding)``."""

        def __init__(self, width_mult: float = WIDTH, n_classes: int = N_CLASSES, dropout: float = 0.2) -> None:
            super().__init__()

            def scaled(c: int) -> int:
                return make_divisible(c * width_mult, 8)

            c_in = scaled(STEM_WIDTH)
            layers: list[nn.Module] = [conv_bn(1, c_in, 3, stride=2, activation=nn.Hardswish)]
            for kernel, expanded, c_out, se, hswish, stride in BLOCKS:
                layers.append(InvertedResidual(c_in, kernel, scaled(expanded), scaled(c_out), se, hswish, stride))
                c_in = scaled(c_out)
            self.embedding_dim = 6 * c_in
            layers.append(conv_bn(c_in, self.embedding_dim, 1, activation=nn.Hardswish))
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Sequential(
                nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(self.embedding_dim, scaled(HIDDEN_WIDTH)),
                nn.Hardswish(), nn.Dropout(dropout), nn.Linear(scaled(HIDDEN_WIDTH), n_classes),
            )  # fmt: skip

        def forward(self, spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """Normalised log-mel ``[batch, 1, 128, frames]`` → (logits [batch, 527], embedding [batch, 384])."""
            embedding = self.features(spec).mean(dim=(2, 3))  # the classifier's own pooling, done once
            return self.classifier[2:](embedding), embedding

    return EfficientATMobileNet


def build_efficientat(*, width_mult: float = WIDTH, n_classes: int = N_CLASSES) -> Any:
    """An untrained EfficientAT MobileNetV3 (torch ``nn.Module``) in eval mode.

    ``forward(spec [batch, 1, n_mels, frames]) -> (logits [batch, n_classes], embedding [batch, dim])``
    with ``dim`` = 384 at width 0.4.
    """
    return _net_class()(width_mult=width_mult, n_classes=n_classes).eval()


def load_efficientat(checkpoint: str | os.PathLike[str]) -> Any:
    """``mn04_as`` with the weights of the state dict ``checkpoint`` (loaded strictly), eval mode.

    Raises
    ------
    ModelError
        Missing or unreadable file, or a state dict that is not mn04_as's.
    """
    import torch

    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found — pass {CHECKPOINT} of {URL}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, OSError) as exc:  # a foreign file
        raise ModelError(f"{path}: not a readable torch state dict ({type(exc).__name__}) — pass {CHECKPOINT}") from None
    net = build_efficientat()
    try:
        net.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise ModelError(f"{path}: not the mn04_as state dict ({first}) — pass {CHECKPOINT} of {URL}") from None
    return net.eval()


# -- labels, metadata, ONNX ---------------------------------------------------------------------
def read_audioset_labels(path: str | os.PathLike[str]) -> list[str]:
    """The 527 AudioSet display names, in output order, from ``class_labels_indices.csv``.

    The file's header is ``index,mid,display_name`` and its rows are numbered 0..526 in order.

    Raises
    ------
    InputError
        Missing file, another header, rows out of order, or not 527 of them.
    """
    src = Path(path).expanduser()
    try:
        with open(src, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except OSError as exc:
        raise InputError(f"{src}: cannot read the AudioSet labels ({exc.strerror or exc}) — pass {LABELS_CSV}") from None
    if not rows or [c.strip() for c in rows[0]] != ["index", "mid", "display_name"]:
        raise InputError(f"{src}: header is not index,mid,display_name — pass AudioSet's {LABELS_CSV}")
    body = rows[1:]
    if len(body) != N_CLASSES or any(len(r) != 3 or r[0].strip() != str(i) for i, r in enumerate(body)):
        raise InputError(f"{src}: expected {N_CLASSES} rows numbered 0..{N_CLASSES - 1} — pass AudioSet's {LABELS_CSV}")
    return [r[2] for r in body]


def _chunk_frames(chunk_seconds: float) -> int:
    if not 0.5 <= chunk_seconds <= 60.0:
        raise InputError(f"chunk_seconds={chunk_seconds} must lie in 0.5..60 — AudioSet clips are 10 s")
    return EFFICIENTAT_FEATURES.n_frames(round(chunk_seconds * EFFICIENTAT_FEATURES.sample_rate))


def efficientat_metadata(labels: list[str], *, chunk_seconds: float = CHUNK_SECONDS,
                         checkpoint_sha256: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The ``specmusic`` metadata object of the converted model (:func:`specmusic.export.model_metadata`).

    Windows of ``chunk_seconds`` (10 s: 1,000 frames) that do not overlap; multi-label (sigmoid).
    """
    from specmusic.export import model_metadata

    frames = _chunk_frames(chunk_seconds)
    return model_metadata(
        labels=labels, feature_config=EFFICIENTAT_FEATURES, chunk_frames=frames, chunk_hop_frames=frames,
        input_norm=INPUT_NORM, arch="efficientat-mn04", task="multilabel", outputs="logits",
        embedding="pooled last feature map (384), the classifier's input",
        pretrained={
            "name": "audioset-mn04", "dataset": "audioset", "url": URL, "source": CHECKPOINT,
            "checkpoint_sha256": checkpoint_sha256, "license": "MIT", "credit": CREDIT,
            "converter_version": CONVERTER_VERSION,
        },
    )  # fmt: skip


def convert_efficientat(
    checkpoint: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    chunk_seconds: float = CHUNK_SECONDS,
    labels_csv: str | os.PathLike[str] | None = None,
) -> Path:
    """Export the ``mn04_as`` state dict to a self-contained specmusic ONNX model, atomically.

    Input ``spec`` [batch, 1, 128, chunk_frames] (:data:`EFFICIENTAT_FEATURES`, before
    :data:`INPUT_NORM`); outputs ``logits`` [batch, 527] and ``embedding`` [batch, 384]; metadata
    from :func:`efficientat_metadata`. The same checkpoint gives the same bytes every time.

    Parameters
    ----------
    checkpoint : ``mn04_as_mAP_432.pt`` (a state dict; read with ``weights_only=True``)
    out_path : the ``.onnx`` to write
    chunk_seconds : window length (default :data:`CHUNK_SECONDS`)
    labels_csv : AudioSet's ``class_labels_indices.csv`` (default: ``audioset_class_labels_indices.csv``
        beside the checkpoint)

    Raises
    ------
    ModelError
        The checkpoint is missing, unreadable or not mn04_as's, or the export failed.
    InputError
        The labels file is missing or malformed, or ``chunk_seconds`` is outside 0.5..60.
    """
    import torch

    from specmusic.export import export_onnx

    labels = read_audioset_labels(labels_csv or Path(checkpoint).expanduser().with_name(LABELS_CSV))
    net = load_efficientat(checkpoint)
    digest = hashlib.sha256(Path(checkpoint).expanduser().read_bytes()).hexdigest()
    meta = efficientat_metadata(labels, chunk_seconds=chunk_seconds, checkpoint_sha256=digest)
    with torch.no_grad():
        return export_onnx(net, out_path, n_rows=EFFICIENTAT_FEATURES.n_mels, metadata=meta)


# -- the checkpoint, for finetuning (specmusic train --arch audioset-mn04 --pretrained) -----------
def _supply_hint() -> str:
    return (f"download {CHECKPOINT_URL} by hand and pass --weights FILE (or set SPECMUSIC_WEIGHTS to the folder "
            "that holds it)")


def fetch_efficientat_checkpoint(
    *, weights: str | os.PathLike[str] | None = None, progress: bool | None = None
) -> Path:
    """The ``mn04_as`` state dict to start a finetune from.

    ``weights`` (a file, used as it is; or a folder holding ``mn04_as_mAP_432.pt`` or
    ``efficientat/mn04_as_mAP_432.pt``), else such a folder in ``$SPECMUSIC_WEIGHTS``, else the cache
    (``<cache>/weights/efficientat/``), else downloaded there from :data:`CHECKPOINT_URL`. Files found
    in a folder, the cache or the download must have the published sha256 (:data:`CHECKPOINT_SHA256`).

    Raises
    ------
    ModelError
        ``weights`` names nothing usable, a file is not the published one, or the download failed
        (offline: the message says to pass ``--weights``).
    """
    from specmusic.fileio import cache_dir, download, sha256_file

    def checked(path: Path) -> Path:
        got = sha256_file(path)
        if got != CHECKPOINT_SHA256:
            raise ModelError(f"{path}: sha256 {got[:16]}…, not that of {CHECKPOINT} ({CHECKPOINT_SHA256[:16]}…) — "
                             "it is corrupt or another file; " + _supply_hint())
        return path

    for root, option in ((weights, "--weights"), (os.environ.get("SPECMUSIC_WEIGHTS") or None, "SPECMUSIC_WEIGHTS")):
        if root is None:
            continue
        where = Path(root).expanduser()
        if where.is_file() and option == "--weights":
            return where
        for candidate in (where / CHECKPOINT, where / "efficientat" / CHECKPOINT):
            if where.is_dir() and candidate.is_file():
                return checked(candidate)
        if option == "--weights":
            raise ModelError(f"{where}: no such file, nor a folder holding {CHECKPOINT} — fix --weights")
    cached = cache_dir() / "weights" / "efficientat" / CHECKPOINT
    if cached.is_file():
        return checked(cached)
    return download(CHECKPOINT_URL, cached, what="EfficientAT mn04_as", how_to_fix=_supply_hint(),
                    sha256=CHECKPOINT_SHA256, progress=progress)
