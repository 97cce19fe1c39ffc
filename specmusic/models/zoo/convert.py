"""Pretrained checkpoints → specmusic ONNX models (the torch side; torch and onnx are imported only
inside the functions that convert).

* Won et al.'s taggers: a ``best_model.pth`` state dict loaded strictly into
  :mod:`specmusic.models.taggers` and exported (:func:`convert_tagger`);
* Pons' models: the ``musicnn`` wheel's TF1 checkpoint read without TensorFlow into
  :mod:`specmusic.models.musicnn` and exported (:func:`convert_pons_model`);
* EfficientAT's ``mn04_as``: its released state dict loaded strictly into
  :mod:`specmusic.models.efficientat` and exported (:func:`~specmusic.models.efficientat.convert_efficientat`).

All write the metadata of the model contract with :func:`specmusic.inference.contract.model_metadata`.
Each family has a :class:`Conversion` in :data:`CONVERSIONS` (where its source comes from, how it
converts, which licence goes with it), through which :func:`specmusic.models.zoo.ensure.ensure_model`
and the maintainer's ``--bundle`` treat every family alike.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, Protocol

from specmusic.errors import ModelError
from specmusic.export import export_module
from specmusic.fileio import atomic_path, atomic_write
from specmusic.inference.contract import METADATA_KEY, model_metadata
from specmusic.models.efficientat import convert_efficientat
from specmusic.models.musicnn import CHUNK_FRAMES, MUSICNN_FEATURES, load_pons_model
from specmusic.models.zoo.cache import fetch_checkpoint, how_to_supply
from specmusic.models.zoo.registry import (
    EFFICIENTAT_REPO_URL,
    PONS_CONVERTER_VERSION,
    PONS_CREDIT,
    PONS_WHEEL_URL,
    TAGGER_CONVERTER_VERSION,
    TAGGER_CREDIT,
    TAGGER_REPO_URL,
    EfficientATModel,
    PonsModel,
    PretrainedNetwork,
    PretrainedTagger,
    PublishedCheckpoint,
    bundled_names,
    get_pons_model,
)

__all__ = [
    "CONVERSIONS",
    "HOW_TO_GET_WHEEL",
    "MUSICNN_WHEEL_ENV",
    "Conversion",
    "append_licence",
    "conversion_for",
    "convert_pons_model",
    "convert_tagger",
    "load_tagger",
    "pons_metadata",
    "require_conversion_deps",
    "tagger_metadata",
]

MUSICNN_WHEEL_ENV = "SPECMUSIC_MUSICNN_WHEEL"
TRAIN_EXTRA = "pip install 'specmusic[train]'"
HOW_TO_GET_WHEEL = (f"pip download --no-deps musicnn -d DIR and pass --weights DIR/musicnn-0.1.0-py3-none-any.whl "
                    f"(or set {MUSICNN_WHEEL_ENV})")  # fmt: skip


def require_conversion_deps(network: PretrainedNetwork) -> None:
    """Raise one clear line when torch or onnx (the ``train`` extra) is missing for a conversion.

    Raises
    ------
    ModelError
        torch or onnx cannot be imported.
    """
    import importlib.util

    def importable(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a finder that refuses it, or a half-imported module
            return False

    missing = [m for m in ("torch", "onnx") if not importable(m)]
    if missing:
        raise ModelError(
            f"the {network.name} tagger is not bundled with specmusic and converting it to ONNX needs PyTorch "
            f"({' and '.join(missing)} not installed) — {TRAIN_EXTRA}, or use a bundled tagger "
            f"({', '.join(bundled_names())})"
        )


# -- Won et al.'s taggers ------------------------------------------------------------------------
def tagger_metadata(tagger: PretrainedTagger) -> dict[str, Any]:
    """The ``specmusic`` metadata JSON object stored in the converted ONNX model."""
    from specmusic.models.taggers import TAGGER_ARCHS, tagger_feature_config

    spec = TAGGER_ARCHS[tagger.arch]
    return model_metadata(
        labels=list(tagger.labels),
        feature_config=tagger_feature_config(),
        chunk_frames=spec.chunk_frames,
        # 29 s FCN/CRNN chunks overlap by half; MusiCNN's 3 s chunks tile the track.
        chunk_hop_frames=spec.chunk_frames if tagger.arch == "musicnn" else spec.chunk_frames // 2,
        input_norm=None,  # spec_bn, inside the graph, normalises the dB mel input
        arch=tagger.arch,
        task="multilabel",
        outputs="logits",  # pre-sigmoid; the original models end in a sigmoid, the export stops before it
        pretrained={
            "name": tagger.name,
            "dataset": tagger.dataset,
            "url": tagger.url,
            "sha256": tagger.sha256,
            "license": "MIT",
            "credit": TAGGER_CREDIT,
            "converter_version": TAGGER_CONVERTER_VERSION,
        },
    )


def load_tagger(tagger: PretrainedTagger, checkpoint: str | os.PathLike[str]) -> Any:
    """The torch module of ``tagger`` with ``checkpoint`` loaded strictly (``weights_only=True``), eval mode.

    Raises
    ------
    ModelError
        The file is not a loadable state dict for this architecture.
    """
    import torch

    from specmusic.models.taggers import build_tagger

    model = build_tagger(tagger.arch)
    try:
        state = torch.load(checkpoint, weights_only=True, map_location="cpu")
        model.load_state_dict(state, strict=True)
    except Exception as exc:  # noqa: BLE001 — torch raises many kinds; all mean "not this checkpoint"
        raise ModelError(
            f"{checkpoint} is not a {tagger.arch} state dict ({type(exc).__name__}) — " + how_to_supply(tagger)
        ) from exc
    return model.eval()


def convert_tagger(tagger: PretrainedTagger, checkpoint: str | os.PathLike[str], out_path: Path) -> Path:
    """Export ``checkpoint`` to a self-contained ONNX model (opset 17) at ``out_path``, atomically.

    Input ``spec`` [batch, 1, 96, chunk_frames] dB mel; outputs ``logits`` [batch, 50] and
    ``embedding`` [batch, dim]; metadata ``specmusic`` = :func:`tagger_metadata`.

    Raises
    ------
    ModelError
        The checkpoint does not load.
    """
    import warnings

    import onnx
    import torch

    from specmusic.models.taggers import TAGGER_ARCHS

    model = load_tagger(tagger, checkpoint)
    spec = TAGGER_ARCHS[tagger.arch]
    example = torch.zeros(1, 1, 96, spec.chunk_frames)
    with atomic_path(out_path, suffix=".onnx") as tmp:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and GRU notes
            torch.onnx.export(
                model,
                (example,),
                str(tmp),
                input_names=["spec"],
                output_names=["logits", "embedding"],
                dynamic_axes={"spec": {0: "batch"}, "logits": {0: "batch"}, "embedding": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key = METADATA_KEY
        entry.value = json.dumps(tagger_metadata(tagger))  # unsorted, as the bundled files were written
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
    return out_path


# -- Pons' models (the musicnn wheel) ------------------------------------------------------------
def pons_metadata(name: str) -> dict[str, Any]:
    """The ``specmusic`` metadata JSON object stored in the converted ONNX model of Pons' ``name``."""
    model = get_pons_model(name)
    return model_metadata(
        labels=list(model.labels),
        feature_config=MUSICNN_FEATURES,
        chunk_frames=CHUNK_FRAMES,
        chunk_hop_frames=CHUNK_FRAMES,  # the extractor's default: 3 s windows, no overlap
        input_norm=None,  # a one-channel batch norm inside the graph normalises the input
        arch=f"pons-{model.arch}",
        task="multilabel",
        outputs="logits",  # pre-sigmoid
        pretrained={
            "name": model.name,
            "dataset": model.dataset,
            "url": PONS_WHEEL_URL,
            "source": f"musicnn-0.1.0 wheel, musicnn/{model.folder}/",
            "license": "ISC",
            "credit": PONS_CREDIT,
            "converter_version": PONS_CONVERTER_VERSION,
        },
    )


def convert_pons_model(name: str, source: str | os.PathLike[str], out_path: Path) -> Path:
    """Export Pons model ``name`` from the wheel ``source`` to ONNX (opset 17) at ``out_path``, atomically.

    Input ``spec`` [batch, 1, 96, 187] (:data:`~specmusic.models.musicnn.MUSICNN_FEATURES`); outputs
    ``logits`` [batch, 50], ``embedding`` and, for MusiCNN, ``mean_pool`` and ``max_pool`` [batch, 753].

    Raises
    ------
    ModelError
        The checkpoint cannot be read or does not fit.
    """
    import torch

    net = load_pons_model(name, source)
    outputs = ["logits", "embedding"] + (["mean_pool", "max_pool"] if get_pons_model(name).arch == "musicnn" else [])
    example = torch.zeros(2, 1, MUSICNN_FEATURES.n_mels, CHUNK_FRAMES)  # 2: the batch axis is not folded to 1
    export_module(
        net, (example,), out_path, input_names=["spec"], output_names=outputs,
        dynamic_axes={n: {0: "batch"} for n in ["spec", *outputs]}, metadata_key=METADATA_KEY,
        metadata=pons_metadata(name), what=name,
    )  # fmt: skip
    return out_path


# -- one interface for every family ------------------------------------------------------------------
class Conversion(Protocol):
    """How one family of pretrained networks becomes a specmusic ONNX model.

    ``noun`` names a network of the family in progress lines ("tagger", "model"); ``source_option`` is
    the option of ``python -m specmusic.models.zoo --bundle`` that hands it its source.
    """

    noun: str
    source_option: str

    def find_source(
        self, network: Any, *, weights: str | os.PathLike[str] | None, progress: bool | None, rebuilding: bool
    ) -> str | os.PathLike[str]:
        """The source (checkpoint, wheel) to convert ``network`` from into the cache; ``rebuilding``: a corrupt
        cached copy was just deleted. Raises ModelError (no source, no torch)."""
        ...

    def bundle_source(
        self, network: Any, *, weights: str | os.PathLike[str] | None, progress: bool | None
    ) -> str | os.PathLike[str]:
        """The same for the maintainer's ``--bundle``. Raises ModelError."""
        ...

    def convert(self, network: Any, source: str | os.PathLike[str], out: Path) -> Path:
        """Write the ONNX model of ``network`` to ``out``, atomically. Raises ModelError."""
        ...

    def add_licence(self, source: str | os.PathLike[str], folder: Path) -> None:
        """Make ``folder/LICENSE`` hold the licence of the weights. Raises ModelError."""
        ...


class TaggerConversion:
    """Won et al.'s taggers: a sha256-checked ``best_model.pth`` (``--weights``, the cache, or a download)."""

    noun = "tagger"
    source_option = "--weights"

    def find_source(
        self, network: PublishedCheckpoint, *, weights: str | os.PathLike[str] | None, progress: bool | None,
        rebuilding: bool,
    ) -> Path:  # fmt: skip
        require_conversion_deps(network)
        try:
            return fetch_checkpoint(network, weights=weights, progress=progress)
        except ModelError as exc:
            if not rebuilding:
                raise
            raise ModelError(f"the cached {network.name} tagger was corrupt and was deleted; rebuilding it needs "
                             f"the checkpoint: {exc}") from exc  # fmt: skip

    def bundle_source(
        self, network: PublishedCheckpoint, *, weights: str | os.PathLike[str] | None, progress: bool | None
    ) -> Path:
        require_conversion_deps(network)
        return fetch_checkpoint(network, weights=weights, progress=progress)

    def convert(self, network: PretrainedTagger, source: str | os.PathLike[str], out: Path) -> Path:
        return convert_tagger(network, source, out)

    def add_licence(self, source: str | os.PathLike[str], folder: Path) -> None:
        """The authors' MIT licence, from the folders above the checkpoint (a clone of their repository)."""
        licence = folder / "LICENSE"
        if licence.is_file():
            return
        found = _licences_above(source)
        if not found:
            raise ModelError(
                f"no LICENSE beside {source} or in the folders above it — copy the authors' LICENSE "
                f"({TAGGER_REPO_URL}/blob/master/LICENSE) to {licence}"
            )
        atomic_write(licence, lambda f: f.write(found[0].read_bytes()))


class EfficientATConversion(TaggerConversion):
    """EfficientAT's AudioSet taggers: a sha256-checked release file (``--weights``, the cache, or a
    download from the GitHub release), found and checked as a tagger's checkpoint is."""

    def convert(self, network: EfficientATModel, source: str | os.PathLike[str], out: Path) -> Path:
        return convert_efficientat(source, out)

    def add_licence(self, source: str | os.PathLike[str], folder: Path) -> None:
        """EfficientAT's MIT licence (the ``LICENSE`` beside the checkpoint or above it), appended to
        ``folder/LICENSE`` (once)."""
        marker = "Florian Schmid"
        found = [p for p in _licences_above(source) if marker in p.read_text(encoding="utf-8", errors="replace")]
        if not found:
            raise ModelError(f"no LICENSE of EfficientAT beside {source} or in the folders above it — copy "
                             f"{EFFICIENTAT_REPO_URL}/blob/main/LICENSE beside the checkpoint")  # fmt: skip
        heading = "EfficientAT (Schmid, Koutini, Widmer's mn04_as weights: audioset-mn04.onnx), MIT licence:"
        append_licence(folder, marker=marker, heading=heading, text=found[0].read_text(encoding="utf-8"))


def _licences_above(source: str | os.PathLike[str]) -> list[Path]:
    """The ``LICENSE`` files beside ``source`` and in the folders above it, nearest first."""
    return [p / "LICENSE" for p in Path(source).resolve().parents if (p / "LICENSE").is_file()]


def append_licence(folder: Path, *, marker: str, heading: str, text: str) -> None:
    """Append the licence ``text`` under ``heading`` to ``folder/LICENSE`` (after a ``---`` rule), unless
    that file already holds ``marker``; an empty or missing file gets ``text`` alone."""
    licence = folder / "LICENSE"
    old = licence.read_text(encoding="utf-8") if licence.is_file() else ""
    if marker in old:
        return
    block = f"\n\n---\n\n{heading}\n\n" if old else ""
    atomic_write(licence, lambda f: f.write(old.rstrip("\n") + block + text.strip() + "\n"), "w")


class PonsConversion:
    """Pons' models: the ``musicnn`` 0.1.0 wheel or its unzipped folder (never downloaded)."""

    noun = "model"
    source_option = "--musicnn-wheel"
    LICENCE_MEMBER = "musicnn-0.1.0.dist-info/LICENSE.md"

    def find_source(
        self, network: PonsModel, *, weights: str | os.PathLike[str] | None, progress: bool | None,
        rebuilding: bool,
    ) -> str | os.PathLike[str]:  # fmt: skip
        source = weights if weights is not None else os.environ.get(MUSICNN_WHEEL_ENV) or None
        if source is None:
            raise ModelError(f"the {network.name} model is not bundled and converting it needs the musicnn wheel — "
                             f"{HOW_TO_GET_WHEEL}")  # fmt: skip
        require_conversion_deps(network)
        return source

    def bundle_source(
        self, network: PonsModel, *, weights: str | os.PathLike[str] | None, progress: bool | None
    ) -> str | os.PathLike[str]:
        wheel = weights or os.environ.get(MUSICNN_WHEEL_ENV)
        if not wheel:
            how = HOW_TO_GET_WHEEL.replace("--weights", self.source_option)
            raise ModelError(f"rebuilding {network.name} needs the musicnn wheel — {how}")
        require_conversion_deps(network)
        return wheel

    def convert(self, network: PonsModel, source: str | os.PathLike[str], out: Path) -> Path:
        return convert_pons_model(network.name, source, out)

    def add_licence(self, source: str | os.PathLike[str], folder: Path) -> None:
        """The wheel's ISC licence, appended to ``folder/LICENSE`` (once)."""
        src, member = Path(source), self.LICENCE_MEMBER
        if src.is_file():
            with zipfile.ZipFile(src) as whl:
                isc = whl.read(member).decode("utf-8") if member in whl.namelist() else ""
        else:
            isc = (src / member).read_text(encoding="utf-8") if (src / member).is_file() else ""
        if "Jordi Pons" not in isc:
            raise ModelError(f"{src} has no {member} (the ISC licence of the weights) — pass the musicnn 0.1.0 wheel")
        heading = "musicnn (Pons' MusiCNN and VGG weights: pons-*.onnx), ISC licence:"
        append_licence(folder, marker="Jordi Pons", heading=heading, text=isc)


#: Each family's conversion, keyed by its entries' ``family`` (:mod:`specmusic.models.zoo.registry`).
CONVERSIONS: dict[str, Conversion] = {
    "tagger": TaggerConversion(), "pons": PonsConversion(), "efficientat": EfficientATConversion(),
}


def conversion_for(network: PretrainedNetwork) -> Conversion:
    """The :class:`Conversion` of ``network``'s family."""
    return CONVERSIONS[network.family]
