"""Which network ``specmusic train --arch`` builds, and with which starting weights.

Three families share one contract (``forward(x) -> (logits, embedding)``, plus ``embed``,
``classify`` and ``head_name`` so training can freeze everything but the new head):

* ``cnn`` — the small scratch :class:`~specmusic.models.cnn.SpecCNN` (the default);
* music taggers ``musicnn`` / ``fcn`` / ``crnn`` (:mod:`specmusic.models.taggers`) with
  ``pretrained`` = ``mtat`` | ``msd`` | ``jamendo``: the published checkpoint (see
  :mod:`specmusic.models.zoo`) minus its 50-tag output layer, plus a new linear head on the pooled
  embedding. These take the taggers' own features (:func:`~specmusic.models.taggers.tagger_feature_config`)
  and normalise them with the checkpoint's ``spec_bn``;
* ``audioset-mn04`` — EfficientAT's AudioSet tagger (:mod:`specmusic.models.efficientat`) with
  ``pretrained`` = ``default`` / ``audioset``, or a local ``weights`` state dict: the released network
  with its 527-class last layer replaced by a new one (as EfficientAT's own finetuning does; the
  512-wide hidden layer before it is kept). It takes its own Kaldi log-mel front end
  (:data:`~specmusic.models.efficientat.EFFICIENTAT_FEATURES`) and input scaling
  (:data:`~specmusic.models.efficientat.INPUT_NORM`);
* ImageNet backbones (:mod:`specmusic.models.backbones`, timm names) with ``pretrained`` =
  ``default`` (timm's default tag) or a timm tag (``a1_in1k``), or a local ``weights`` file;
  random init otherwise. When ``timm`` is importable, any other timm model name works too
  (``timm.create_model(name, pretrained=..., in_chans=1, num_classes=n)``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from specmusic.config import ConfigBase
from specmusic.errors import ConfigError, ModelError

__all__ = ["AUDIOSET_ARCHS", "TAGGER_DATASETS", "AudioSetClassifier", "ModelSpec", "TaggerClassifier",
           "TimmClassifier", "build_model", "arch_family", "builtin_archs"]

TAGGER_DATASETS = ("mtat", "msd", "jamendo")
#: EfficientAT's AudioSet networks ``--arch`` builds (the ``efficientat`` family).
AUDIOSET_ARCHS = ("audioset-mn04",)
#: Values of ``--pretrained`` that mean "the architecture's default pretrained weights".
DEFAULT_PRETRAINED = ("default", "imagenet")


def builtin_archs() -> list[str]:
    """Every ``--arch`` value that works without timm."""
    from specmusic.models.backbones import BACKBONE_ARCHS
    from specmusic.models.taggers import TAGGER_ARCHS

    return ["cnn", *TAGGER_ARCHS, *AUDIOSET_ARCHS, *BACKBONE_ARCHS]


def arch_family(arch: str) -> str:
    """``"cnn"``, ``"tagger"``, ``"efficientat"``, ``"backbone"`` (built in) or ``"timm"``.

    Raises
    ------
    ConfigError
        Not built in and timm is not installed.
    """
    from specmusic.models.backbones import BACKBONE_ARCHS
    from specmusic.models.taggers import TAGGER_ARCHS

    if arch == "cnn":
        return "cnn"
    if arch in TAGGER_ARCHS:
        return "tagger"
    if arch in AUDIOSET_ARCHS:
        return "efficientat"
    if arch in BACKBONE_ARCHS:
        return "backbone"
    if importlib.util.find_spec("timm") is not None:
        return "timm"
    raise ConfigError(
        f"unknown --arch {arch!r} — use one of {', '.join(builtin_archs())} (other timm models need `pip install timm`)"
    )


@dataclass(frozen=True)
class ModelSpec(ConfigBase):
    """What to build: ``arch``, its starting weights and input handling.

    ``pretrained``: None (random init), a tagger dataset (``mtat``…) for taggers, ``default`` /
    ``audioset`` for ``audioset-mn04``, ``default`` / ``imagenet`` / a timm tag for ImageNet backbones. ``weights``: a local file instead of a download.
    ``img_size``: resize the input to (height, width) inside the model (ViT default: its native size).
    """

    what = "model spec"

    arch: str = "cnn"
    pretrained: str | None = None
    weights: str | None = None
    img_size: tuple[int, int] | None = None
    dropout: float | None = None

    def __post_init__(self) -> None:
        family = arch_family(self.arch)
        if family == "cnn" and (self.pretrained or self.weights):
            raise ConfigError("the scratch cnn has no pretrained weights — pick a pretrained --arch (musicnn, resnet18…)")
        if family == "tagger":
            if self.pretrained is not None and self.pretrained not in TAGGER_DATASETS + DEFAULT_PRETRAINED:
                raise ConfigError(
                    f"--pretrained {self.pretrained!r} is not a tagger dataset — use one of {', '.join(TAGGER_DATASETS)}"
                )
            if self.img_size is not None:
                raise ConfigError(f"--img-size does not apply to the {self.arch} tagger — drop it")
        if family == "efficientat":
            if self.pretrained not in (None, "default", "audioset"):
                raise ConfigError(f"--pretrained {self.pretrained!r} does not apply to {self.arch} — use --pretrained "
                                  "alone (its AudioSet weights) or --weights FILE")
            if self.img_size is not None:
                raise ConfigError(f"--img-size does not apply to {self.arch} (it reads any number of frames) — drop it")
        if family in ("backbone", "timm") and self.pretrained in TAGGER_DATASETS:
            raise ConfigError(
                f"--pretrained {self.pretrained} is a music-tagger dataset; {self.arch} is an ImageNet arch — "
                "use --pretrained alone (ImageNet) or --arch musicnn"
            )
        if self.img_size is not None:
            object.__setattr__(self, "img_size", (int(self.img_size[0]), int(self.img_size[1])))

    @property
    def family(self) -> str:
        return arch_family(self.arch)

    @property
    def tagger_dataset(self) -> str | None:
        """The tagger checkpoint's dataset (``mtat`` for ``--pretrained`` without a value)."""
        if self.family != "tagger" or (self.pretrained is None and self.weights is None):
            return None
        return "mtat" if self.pretrained in (None, *DEFAULT_PRETRAINED) else self.pretrained


class TaggerClassifier(nn.Module):
    """A pretrained music tagger without its 50-tag layer, plus a new head on its pooled embedding.

    Input: the tagger's dB mel ``[batch, 1, 96, frames]`` (its ``spec_bn`` normalises it).
    """

    head_name = "fc"

    def __init__(self, tagger: nn.Module, n_classes: int, dropout: float = 0.2) -> None:
        super().__init__()
        from specmusic.models.taggers import TAGGER_ARCHS

        self.arch = tagger.arch
        #: the convolutional front end (``--freeze-front`` keeps it frozen when finetuning)
        self.front_prefixes = ("tagger.spec_bn.", "tagger.layers.") if tagger.arch == "musicnn" else (
            "tagger.spec_bn.", "tagger.layer1.", "tagger.layer2.")
        tagger.dense2 = nn.Identity()  # the embedding passes through; the old tags are dropped
        self.tagger = tagger
        self.embedding_dim = TAGGER_ARCHS[tagger.arch].embedding_dim
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.embedding_dim, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """dB mel [batch, 1, 96, frames] → pooled embedding [batch, embedding_dim]."""
        return self.tagger(x)[1]

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(embedding))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.embed(x)
        return self.classify(emb), emb


class AudioSetClassifier(nn.Module):
    """EfficientAT's ``mn04_as`` with a new last layer.

    ``features``: the MobileNet (its pooled last feature map is the 384-d ``embedding``); ``head``: its
    MLP head (``Linear(384 → 512)``, Hardswish, dropout) with the 527-class layer replaced by
    ``Linear(512 → n_classes)``, initialised as EfficientAT initialises it. Batch norms use EfficientAT's
    momentum (0.01). Input: the normalised Kaldi log-mel ``[batch, 1, 128, frames]``.
    """

    head_name = "head"
    #: the stem and the first three blocks, at a quarter of the input resolution (``--freeze-front``)
    front_prefixes = ("features.0.", "features.1.", "features.2.", "features.3.")

    def __init__(self, net: nn.Module, n_classes: int, dropout: float = 0.2, arch: str = "audioset-mn04") -> None:
        super().__init__()
        self.arch = arch
        self.features = net.features
        self.embedding_dim = int(net.embedding_dim)
        hidden: nn.Linear = net.classifier[2]
        last = nn.Linear(hidden.out_features, n_classes)
        nn.init.normal_(last.weight, 0.0, 0.01)
        nn.init.zeros_(last.bias)
        self.head = nn.Sequential(hidden, nn.Hardswish(), nn.Dropout(dropout), last)
        for module in self.features.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = 0.01

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised log-mel [batch, 1, 128, frames] → pooled embedding [batch, 384]."""
        return self.features(x).mean(dim=(2, 3))

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.head(embedding)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.embed(x)
        return self.classify(emb), emb


class TimmClassifier(nn.Module):
    """Any ``timm`` model (when timm is installed) behind the specmusic contract."""

    def __init__(self, model: nn.Module, arch: str) -> None:
        super().__init__()
        self.model = model
        self.arch = arch
        self.head_name = "model"  # frozen warm-up is not supported for arbitrary timm models

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.model.get_classifier()(embedding)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.embed(x)
        return self.classify(emb), emb


def build_model(
    spec: ModelSpec, *, n_classes: int, progress: bool | None = None, log: Callable[[str], None] = lambda _: None
) -> tuple[nn.Module, dict[str, Any]]:
    """The network of ``spec`` with ``n_classes`` outputs and its starting weights loaded.

    Returns
    -------
    model : torch.nn.Module with ``forward(x) -> (logits, embedding)``, ``embed``, ``classify``, ``head_name``
    info : JSON-ready description (arch, family, config, where the weights came from) for config.json
        and the ONNX metadata

    Raises
    ------
    ConfigError
        Unknown arch / pretrained source.
    ModelError
        Weights that cannot be found, downloaded or loaded.
    """
    family = spec.family
    info: dict[str, Any] = {"arch": spec.arch, "family": family, "init": "random"}
    if family == "timm":
        import timm  # type: ignore[import-not-found]

        if spec.weights is not None:
            raise ConfigError("--weights works with the built-in archs only; with timm use --pretrained")
        net = timm.create_model(spec.arch, pretrained=spec.pretrained is not None, in_chans=1, num_classes=n_classes)
        info.update(init="timm-pretrained" if spec.pretrained else "random", config={"n_classes": n_classes})
        return TimmClassifier(net, spec.arch).train(), info
    if family == "cnn":  # "cnn" goes through training's own path
        from specmusic.models.cnn import CNNConfig, SpecCNN

        model = SpecCNN(CNNConfig(n_classes=n_classes))
        info["config"] = model.config.to_dict()
        return model, info
    build = {"tagger": _build_tagger, "efficientat": _build_audioset, "backbone": _build_backbone}[family]
    model, more = build(spec, n_classes=n_classes, progress=progress, log=log)
    info.update(more)
    return model.train(), info


def _build_tagger(spec: ModelSpec, *, n_classes: int, progress: bool | None, log: Callable[[str], None]) -> tuple[nn.Module, dict[str, Any]]:
    from specmusic.models.taggers import build_tagger
    from specmusic.models.zoo.cache import fetch_checkpoint
    from specmusic.models.zoo.convert import load_tagger
    from specmusic.models.zoo.registry import TAGGER_CREDIT, get_tagger

    info: dict[str, Any] = {}
    dataset = spec.tagger_dataset
    dropout = 0.2 if spec.dropout is None else spec.dropout
    if dataset is None:
        tagger = build_tagger(spec.arch)
    else:
        entry = get_tagger(f"{dataset}-{spec.arch}")
        ckpt = fetch_checkpoint(entry, weights=spec.weights, progress=progress)
        tagger = load_tagger(entry, ckpt)
        info.update(init=f"tagger:{entry.name}", weights={"name": entry.name, "sha256": entry.sha256,
                                                          "url": entry.url, "license": "MIT", "credit": TAGGER_CREDIT})
        log(f"backbone: {entry.name} tagger weights from {ckpt}")
    model = TaggerClassifier(tagger, n_classes, dropout)
    info["config"] = {"n_classes": n_classes, "dropout": dropout, "embedding_dim": model.embedding_dim}
    return model, info


def _build_audioset(spec: ModelSpec, *, n_classes: int, progress: bool | None, log: Callable[[str], None]) -> tuple[nn.Module, dict[str, Any]]:
    """``audioset-mn04``: the released state dict (loaded strictly), or random init, with a new last layer."""
    from specmusic.models.efficientat import build_efficientat, load_efficientat
    from specmusic.models.zoo.cache import fetch_checkpoint
    from specmusic.models.zoo.registry import EFFICIENTAT_CREDIT, EFFICIENTAT_REPO_URL, get_network

    info: dict[str, Any] = {}
    dropout = 0.2 if spec.dropout is None else spec.dropout
    if spec.pretrained is None and spec.weights is None:
        net = build_efficientat()
    else:
        entry = get_network(spec.arch)
        path = fetch_checkpoint(entry, weights=spec.weights, progress=progress)  # sha256-checked, as for taggers
        net = load_efficientat(path)
        info.update(init=f"file:{path}" if spec.weights else "audioset:mn04_as",
                    weights={"file": path.name, "sha256": entry.sha256, "source": entry.checkpoint,
                             "url": EFFICIENTAT_REPO_URL, "license": "MIT", "credit": EFFICIENTAT_CREDIT})
        log(f"backbone: EfficientAT mn04_as weights from {path}")
    model = AudioSetClassifier(net, n_classes, dropout, arch=spec.arch)
    info["config"] = {"n_classes": n_classes, "dropout": dropout, "embedding_dim": model.embedding_dim}
    return model, info


def _build_backbone(spec: ModelSpec, *, n_classes: int, progress: bool | None, log: Callable[[str], None]) -> tuple[nn.Module, dict[str, Any]]:
    from specmusic.models.backbones import BackboneConfig, adapt_state_dict, build_backbone
    from specmusic.models.hub import ensure_imagenet_weights, load_weights_file

    info: dict[str, Any] = {}
    kwargs: dict[str, Any] = {"arch": spec.arch, "n_classes": n_classes, "img_size": spec.img_size}
    if spec.dropout is not None:
        kwargs["dropout"] = spec.dropout
    path = None
    if spec.weights is not None:
        path = spec.weights
    elif spec.pretrained is not None:
        tag = None if spec.pretrained in DEFAULT_PRETRAINED else spec.pretrained
        path = ensure_imagenet_weights(spec.arch, tag=tag, progress=progress)
    state = load_weights_file(path) if path is not None else None
    if state is not None and spec.arch == "efficientnet_lite0" and any(k.startswith("_conv_stem") for k in state):
        kwargs["bn_eps"] = 1e-3  # efficientnet_pytorch layout: weights ported from TensorFlow
    config = BackboneConfig(**kwargs)
    model = build_backbone(config)
    if state is not None:
        try:
            model.load_state_dict(adapt_state_dict(model, state), strict=True)
        except RuntimeError as exc:
            raise ModelError(f"{path}: does not load into {spec.arch} ({exc}) — pass a {spec.arch} checkpoint") from None
        info.update(init=f"file:{path}" if spec.weights else f"imagenet:{spec.pretrained}",
                    weights={"file": str(path).rsplit("/", 1)[-1]})
        log(f"backbone: {spec.arch} weights from {path}")
    info["config"] = config.to_dict()
    return model, info
