"""The registry of pretrained networks: every network a name can pick, what it outputs, whose it is,
and which ship inside the package.

Torch-free and light (tag vocabularies and dataclasses): ``classify``'s cold path reads it.

Three families today, each a ``dict`` of entries keyed by specmusic's name plus the tuple of its
members bundled as ONNX under ``specmusic/models/bundled/``:

* Won et al.'s taggers (:data:`TAGGERS`, :class:`PretrainedTagger`, :data:`BUNDLED_TAGGERS`):
  FCN / CRNN / MusiCNN trained on MagnaTagATune, the Million Song Dataset and MTG-Jamendo, weights
  from minzwon/sota-music-tagging-models (MIT);
* Pons' MusiCNN and VGG (:data:`PONS_MODELS`, :class:`PonsModel`, :data:`BUNDLED_PONS`): the TF1
  checkpoints of PyPI's ``musicnn`` wheel (ISC);
* EfficientAT's AudioSet taggers (:data:`EFFICIENTAT_MODELS`, :class:`EfficientATModel`,
  :data:`BUNDLED_EFFICIENTAT`): ``mn04_as`` of Schmid, Koutini and Widmer, 527 AudioSet classes,
  from the GitHub release of fschmid56/EfficientAT (MIT).

Every entry is a :class:`PretrainedNetwork`: a ``name``, a ``family`` (which converter of
:mod:`specmusic.models.zoo.convert` turns it into ONNX), its ``labels`` in output order, and the
``onnx_name`` of its converted file in the cache. To add a family (its own front end, its own
labels): write its entry dataclass, its dict and its bundled tuple here, list them in
:func:`families`, and register its :class:`~specmusic.models.zoo.convert.Conversion` in
:data:`specmusic.models.zoo.convert.CONVERSIONS`; names, ``--model``, the cache, the bundle check and
the maintainer's ``--bundle`` then take it without further changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol, TypeVar

from specmusic.errors import ConfigError, ModelError, SpecmusicError
from specmusic.models.audioset import audioset_labels
from specmusic.models.tags import MSD_TAGS, MTAT_TAGS

__all__ = [
    "BUNDLED_EFFICIENTAT",
    "BUNDLED_PONS",
    "BUNDLED_TAGGERS",
    "DEFAULT_TAGGER",
    "EFFICIENTAT_MODELS",
    "JAMENDO_TAGS",
    "PONS_MODELS",
    "TAGGERS",
    "EfficientATModel",
    "PonsModel",
    "PretrainedNetwork",
    "PretrainedTagger",
    "PublishedCheckpoint",
    "bundled_list",
    "bundled_names",
    "families",
    "get_network",
    "get_pons_model",
    "get_tagger",
    "network_names",
]


_Entry = TypeVar("_Entry")


class PretrainedNetwork(Protocol):
    """What the zoo's rooms (cache, conversion, bundle, ``--model``) need of any registry entry."""

    @property
    def name(self) -> str: ...  # specmusic's name, as --model takes it

    @property
    def family(self) -> str: ...  # the key of its converter in specmusic.models.zoo.convert.CONVERSIONS

    @property
    def labels(self) -> tuple[str, ...]: ...  # output order of its logits

    @property
    def onnx_name(self) -> str: ...  # its converted model's file name in the cache's onnx/ folder


class PublishedCheckpoint(PretrainedNetwork, Protocol):
    """A network converted from one checkpoint file published at a URL: what the cache needs to find it
    under ``--weights`` / ``$SPECMUSIC_WEIGHTS``, download it and check it (:mod:`specmusic.models.zoo.cache`)."""

    @property
    def url(self) -> str: ...  # where it is published

    @property
    def sha256(self) -> str: ...  # of the published file

    @property
    def relpath(self) -> str: ...  # where it lies in the cache's weights/ folder

    @property
    def search_paths(self) -> tuple[str, ...]: ...  # where it may lie inside a --weights folder

    @property
    def folder_layout(self) -> str: ...  # what a --weights folder holds, for messages


# -- Won et al.'s taggers (minzwon/sota-music-tagging-models, MIT) ------------------------------------
TAGGER_REPO_URL = "https://github.com/minzwon/sota-music-tagging-models"
TAGGER_CREDIT = (
    "Minz Won, Andres Ferraro, Dmitry Bogdanov, Xavier Serra: Evaluation of CNN-based automatic music "
    "tagging models, SMC 2020; weights (c) 2020 Music Technology Group, Universitat Pompeu Fabra, MIT licence"
)
#: Bumped whenever the tagger conversion changes, so stale cached ONNX files are not reused.
TAGGER_CONVERTER_VERSION = 1

# Tag vocabularies: output order of each checkpoint (MTAT_TAGS, MSD_TAGS in models/tags.py).
#: MTG-Jamendo top 50. The authors binarised labels with scikit-learn's LabelBinarizer, whose
#: columns are the *sorted* tag names ("genre---…" < "instrument---…" < "mood/theme---…"); the
#: category prefixes are dropped here (the names stay unique).
JAMENDO_TAGS: tuple[str, ...] = (
    "alternative", "ambient", "atmospheric", "chillout", "classical", "dance", "downtempo", "easylistening",
    "electronic", "experimental", "folk", "funk", "hiphop", "house", "indie", "instrumentalpop", "jazz",
    "lounge", "metal", "newage", "orchestral", "pop", "popfolk", "poprock", "reggae", "rock", "soundtrack",
    "techno", "trance", "triphop", "world", "acousticguitar", "bass", "computer", "drummachine", "drums",
    "electricguitar", "electricpiano", "guitar", "keyboard", "piano", "strings", "synthesizer", "violin",
    "voice", "emotional", "energetic", "film", "happy", "relaxing",
)  # fmt: skip
_TAGS = {"mtat": MTAT_TAGS, "msd": MSD_TAGS, "jamendo": JAMENDO_TAGS}


@dataclass(frozen=True)
class PretrainedTagger:
    """One published checkpoint: where it lives, how to check it, what it outputs."""

    dataset: str  # "mtat" | "msd" | "jamendo"
    arch: str  # "fcn" | "crnn" | "musicnn"
    sha256: str  # of best_model.pth as published
    size: int  # bytes

    family: ClassVar[str] = "tagger"

    @property
    def name(self) -> str:
        return f"{self.dataset}-{self.arch}"

    @property
    def relpath(self) -> str:
        """Path inside the repository's ``models/`` folder (and inside a ``$SPECMUSIC_WEIGHTS`` tree)."""
        return f"{self.dataset}/{self.arch}/best_model.pth"

    @property
    def url(self) -> str:
        return f"{TAGGER_REPO_URL}/raw/master/models/{self.relpath}"

    @property
    def search_paths(self) -> tuple[str, ...]:
        return self.relpath, f"models/{self.relpath}"  # a clone's models/ folder, or the clone

    @property
    def folder_layout(self) -> str:
        return "<dataset>/<arch>/best_model.pth, e.g. a clone's models/ folder"

    @property
    def labels(self) -> tuple[str, ...]:
        return _TAGS[self.dataset]

    @property
    def onnx_name(self) -> str:
        return f"{self.name}-{self.sha256[:12]}-c{TAGGER_CONVERTER_VERSION}.onnx"


TAGGERS: dict[str, PretrainedTagger] = {
    t.name: t
    for t in (
        PretrainedTagger("mtat", "fcn", "e89d751202d38c3ae69855782bc27010f87051958dbec64f5aa762364dbac271", 1902811),
        PretrainedTagger("mtat", "crnn", "cd22fc70cafd06f8f2bfc7dd795abccb1f4b50d5b09094c39ad100baf87475a3", 1687630),
        PretrainedTagger(
            "mtat", "musicnn", "690ace3bb5d49d90dd38fe3ec05a1185350b3bc3742bd7ee941f56b649b2c893", 3257172
        ),
        PretrainedTagger("msd", "fcn", "6012aa7eecf864a8081faedca56af054521e8dfb9c5c98659a3dd5d3e1e66f21", 1902815),
        PretrainedTagger("msd", "crnn", "ebb99855ed0c83f38845db9cfb383dd6fc70938bc58701dcb66e18af9ee7fbea", 1687711),
        PretrainedTagger(
            "jamendo", "fcn", "7bce08a66dbc70d096b0a330f44b4cacd9aa25519b83489fbb98f2164a194e2b", 1902815
        ),
        PretrainedTagger(
            "jamendo", "crnn", "0a558989c0793f488cb677d188464c91f47c007f7c70473230e55537ca598215", 1687626
        ),
        PretrainedTagger(
            "jamendo", "musicnn", "66280f4859376377c47f64313c7ac889a3201fdb06a01bf6e94ac6e619081bb5", 3257168
        ),
    )
}
#: The tagger ``specmusic classify`` uses without ``--model`` (benchmarks/tagger_choice.py): no bundled
#: network beats it by benchmarks/similarity_generalise.py's rule without losing to it on a collection
#: (docs/similarity.md, "classify's default").
DEFAULT_TAGGER = "jamendo-fcn"
#: The taggers shipped inside the package as ONNX (``specmusic/models/bundled/<name>.onnx``): the one
#: list. To ship another, add its name here and run ``python -m specmusic.models.zoo --bundle
#: --weights DIR`` (:func:`specmusic.models.zoo.rebuild.bundle_network`); the files are package data
#: (pyproject.toml).
BUNDLED_TAGGERS: tuple[str, ...] = ("jamendo-fcn", "mtat-musicnn")  # classify's default; embed's earlier default beside it


def get_tagger(name: str) -> PretrainedTagger:
    """Registry entry of Won et al.'s tagger ``name`` ("mtat-musicnn", …).

    Raises
    ------
    ConfigError
        Unknown name.
    """
    return _entry(TAGGERS, name, ConfigError, "pretrained tagger")


# -- Pons' MusiCNN and VGG (PyPI musicnn 0.1.0 wheel, ISC) --------------------------------------------
PONS_WHEEL_URL = "https://pypi.org/project/musicnn/0.1.0/"
PONS_CREDIT = (
    "Jordi Pons, Xavier Serra: musicnn: pre-trained convolutional neural networks for music audio tagging, "
    "ISMIR 2019 LBD; code and weights (c) 2019 Music Technology Group, Universitat Pompeu Fabra, ISC licence"
)
#: Bumped whenever the Pons conversion changes, so stale cached ONNX files are not reused.
PONS_CONVERTER_VERSION = 1


@dataclass(frozen=True)
class PonsModel:
    """One checkpoint of the ``musicnn`` wheel (Pons trained on the same top-50 lists: models/tags.py)."""

    name: str  # specmusic's name, e.g. "pons-msd-musicnn"
    folder: str  # the wheel's folder, e.g. "MSD_musicnn"
    arch: str  # "musicnn" | "vgg"

    family: ClassVar[str] = "pons"

    @property
    def labels(self) -> tuple[str, ...]:
        return MSD_TAGS if self.folder.startswith("MSD") else MTAT_TAGS

    @property
    def dataset(self) -> str:
        return "msd" if self.folder.startswith("MSD") else "mtt"

    @property
    def onnx_name(self) -> str:
        return f"{self.name}-c{PONS_CONVERTER_VERSION}.onnx"


PONS_MODELS: dict[str, PonsModel] = {
    m.name: m
    for m in (
        PonsModel("pons-msd-musicnn", "MSD_musicnn", "musicnn"),
        PonsModel("pons-mtt-musicnn", "MTT_musicnn", "musicnn"),
        PonsModel("pons-msd-vgg", "MSD_vgg", "vgg"),
        PonsModel("pons-mtt-vgg", "MTT_vgg", "vgg"),
    )
}
#: Pons' models shipped as ONNX beside the taggers; rebuilt with ``python -m specmusic.models.zoo
#: --bundle NAME --musicnn-wheel musicnn-0.1.0-py3-none-any.whl``.
BUNDLED_PONS: tuple[str, ...] = ("pons-msd-musicnn",)  # embed's default (specmusic.embeddings.DEFAULT_EMBEDDING)


def get_pons_model(name: str) -> PonsModel:
    """Registry entry of Pons' model ``name`` ("pons-msd-musicnn", …).

    Raises
    ------
    ModelError
        Unknown name.
    """
    return _entry(PONS_MODELS, name, ModelError, "musicnn model")


# -- EfficientAT's AudioSet taggers (fschmid56/EfficientAT, MIT) ------------------------------------
EFFICIENTAT_REPO_URL = "https://github.com/fschmid56/EfficientAT"
#: The release the authors' code (``models/mn/model.py``) downloads checkpoints from.
EFFICIENTAT_RELEASE_URL = f"{EFFICIENTAT_REPO_URL}/releases/download/v0.0.1"
EFFICIENTAT_CREDIT = (
    "Florian Schmid, Khaled Koutini, Gerhard Widmer: Efficient Large-Scale Audio Tagging via "
    "Transformer-to-CNN Knowledge Distillation, ICASSP 2023; weights (c) 2022 Florian Schmid, MIT licence"
)
#: Bumped whenever the EfficientAT conversion changes, so stale cached ONNX files are not reused.
EFFICIENTAT_CONVERTER_VERSION = 1


@dataclass(frozen=True)
class EfficientATModel:
    """One EfficientAT checkpoint trained on AudioSet (527 classes; :mod:`specmusic.models.efficientat`)."""

    name: str  # specmusic's name, e.g. "audioset-mn04"
    checkpoint: str  # the release's file name, e.g. "mn04_as_mAP_432.pt"
    sha256: str  # of that file as released
    size: int  # bytes

    family: ClassVar[str] = "efficientat"

    @property
    def url(self) -> str:
        return f"{EFFICIENTAT_RELEASE_URL}/{self.checkpoint}"

    @property
    def relpath(self) -> str:
        return f"efficientat/{self.checkpoint}"

    @property
    def search_paths(self) -> tuple[str, ...]:
        return self.checkpoint, self.relpath  # the file in the folder given, or in its efficientat/

    @property
    def folder_layout(self) -> str:
        return f"{self.checkpoint} (or efficientat/{self.checkpoint})"

    @property
    def labels(self) -> tuple[str, ...]:
        return audioset_labels()

    @property
    def onnx_name(self) -> str:
        return f"{self.name}-{self.sha256[:12]}-c{EFFICIENTAT_CONVERTER_VERSION}.onnx"


EFFICIENTAT_MODELS: dict[str, EfficientATModel] = {
    m.name: m
    for m in (
        EfficientATModel(
            "audioset-mn04", "mn04_as_mAP_432.pt", "899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c",
            4_066_513,
        ),
    )
}
#: EfficientAT's networks shipped as ONNX; rebuilt with ``python -m specmusic.models.zoo --bundle
#: audioset-mn04 --weights mn04_as_mAP_432.pt``.
BUNDLED_EFFICIENTAT: tuple[str, ...] = ("audioset-mn04",)


# -- every family ---------------------------------------------------------------------------------------
def families() -> tuple[tuple[Mapping[str, PretrainedNetwork], tuple[str, ...], str], ...]:
    """Each family of networks: its registry, its bundled members and that tuple's name here.

    The one list of families (a new one is one more line). Read at call time, so that a tuple rebound
    in this module (a test, or benchmarks/cold_start.py's "before" run) counts.
    """
    return (
        (TAGGERS, BUNDLED_TAGGERS, "BUNDLED_TAGGERS"),
        (PONS_MODELS, BUNDLED_PONS, "BUNDLED_PONS"),
        (EFFICIENTAT_MODELS, BUNDLED_EFFICIENTAT, "BUNDLED_EFFICIENTAT"),
    )


def network_names() -> tuple[str, ...]:
    """Every network a name can pick, family by family."""
    return tuple(name for networks, _, _ in families() for name in networks)


def bundled_names() -> tuple[str, ...]:
    """Every network shipped inside the package, in the order ``--bundle`` rebuilds them."""
    return tuple(name for _, bundled, _ in families() for name in bundled)


def bundled_list(network: PretrainedNetwork) -> str:
    """The name of the tuple above that lists the bundled members of ``network``'s family (for messages)."""
    return next(list_name for networks, _, list_name in families() if network.name in networks)


def get_network(name: str) -> PretrainedNetwork:
    """Registry entry of any pretrained network ``name`` (a tagger, a Pons model, …).

    Raises
    ------
    ConfigError
        Unknown name.
    """
    every = {key: network for networks, _, _ in families() for key, network in networks.items()}
    return _entry(every, name, ConfigError, "pretrained tagger")


def _entry(table: Mapping[str, _Entry], name: str, error: type[SpecmusicError], what: str) -> _Entry:
    """``table[name]``, or ``error`` naming what was asked and every name there is."""
    if name not in table:
        raise error(f"unknown {what} {name!r} — use one of {', '.join(table)}")
    return table[name]
