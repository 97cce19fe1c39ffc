"""Pretrained music taggers from minzwon/sota-music-tagging-models, as specmusic ONNX models.

Won, Ferraro, Bogdanov and Serra, "Evaluation of CNN-based automatic music tagging models",
SMC 2020 — code and weights under the MIT licence (c) 2020 Music Technology Group, Universitat
Pompeu Fabra. specmusic re-implements the architectures (:mod:`specmusic.models.taggers`) and
loads the published state dicts.

The taggers named in :data:`BUNDLED_TAGGERS` (the default one among them) ship inside the package
as ONNX files under ``specmusic/models/bundled/`` (sha256 in ``bundled/SHA256SUMS``, the authors'
MIT licence in ``bundled/LICENSE``): they work on a fresh, offline machine without torch, and each
load checks the file against its recorded sha256. ``python -m specmusic.models.pretrained --bundle``
rebuilds them from the checkpoints (maintainers; needs torch and onnx).

The first use of any other tagger:

1. finds its checkpoint — ``weights=`` / ``$SPECMUSIC_WEIGHTS`` (a ``best_model.pth`` file, or a
   folder holding ``<dataset>/<arch>/best_model.pth`` such as a clone of the repository's
   ``models/``), else the per-user cache, else downloads it from GitHub with urllib;
2. checks its sha256 against the registry below;
3. converts it once to ``model.onnx`` under the contract of :mod:`specmusic.inference` (this step
   imports torch), stored in the cache.

Every later use finds the cached ONNX file and never imports torch or touches the network: this
module imports torch only inside :func:`load_tagger` and :func:`convert_tagger`, so ``specmusic
classify`` without ``--model`` (which calls :func:`ensure_default_model`) stays on the torch-free path.
Without torch (the runtime install, ``pip install specmusic``) a tagger that is not bundled stops
with one line saying to ``pip install 'specmusic[train]'``.

A cached ONNX file is checked before it is used: its sha256 must be the one recorded beside it
when it was converted. A corrupt one is rebuilt from the checkpoint (with a note on stderr); one
cached by an older specmusic without the record is checked by loading it once.

Pons' MusiCNN and VGG models (``pons-msd-musicnn``, ``pons-mtt-musicnn``, ``pons-msd-vgg``,
``pons-mtt-vgg``; :mod:`specmusic.models.musicnn`, ISC licence) are resolved by the same
:func:`ensure_model`: bundled when named in :data:`BUNDLED_PONS`, else converted once from the PyPI
``musicnn`` wheel (``weights=`` / ``$SPECMUSIC_MUSICNN_WHEEL``: the ``.whl`` or its unzipped folder;
nothing is downloaded) into ``onnx/<name>-c<N>.onnx`` of the cache.

Cache (``$SPECMUSIC_CACHE``, else ``$XDG_CACHE_HOME/specmusic``, else ``~/.cache/specmusic``)::

    weights/<dataset>/<arch>/best_model.pth      downloaded checkpoints (sha256-checked)
    onnx/<dataset>-<arch>-<sha12>-c<N>.onnx      converted models (N: converter version)
    onnx/<…>.onnx.sha256                         the converted model's sha256, written with it
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specmusic.errors import ConfigError, ModelError
from specmusic.fileio import CACHE_ENV, atomic_path, atomic_write, cache_dir, display_path, download, sha256_file
from specmusic.models.musicnn import PONS_MODELS, PonsModel
from specmusic.models.tags import MSD_TAGS, MTAT_TAGS

__all__ = [
    "DEFAULT_TAGGER",
    "BUNDLED_TAGGERS",
    "BUNDLED_PONS",
    "MUSICNN_WHEEL_ENV",
    "TAGGERS",
    "PretrainedTagger",
    "WEIGHTS_ENV",
    "sha256_file",
    "find_checkpoint",
    "download_checkpoint",
    "convert_tagger",
    "ensure_model",
    "ensure_default_model",
    "bundled_model",
    "bundle_tagger",
]

WEIGHTS_ENV = "SPECMUSIC_WEIGHTS"
REPO_URL = "https://github.com/minzwon/sota-music-tagging-models"
CREDIT = (
    "Minz Won, Andres Ferraro, Dmitry Bogdanov, Xavier Serra: Evaluation of CNN-based automatic music "
    "tagging models, SMC 2020; weights (c) 2020 Music Technology Group, Universitat Pompeu Fabra, MIT licence"
)
#: Bumped whenever the conversion changes, so stale cached ONNX files are not reused.
CONVERTER_VERSION = 1

# -- tag vocabularies (output order of each checkpoint; MTAT_TAGS, MSD_TAGS in models/tags.py) ----
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

    @property
    def name(self) -> str:
        return f"{self.dataset}-{self.arch}"

    @property
    def relpath(self) -> str:
        """Path inside the repository's ``models/`` folder (and inside a ``$SPECMUSIC_WEIGHTS`` tree)."""
        return f"{self.dataset}/{self.arch}/best_model.pth"

    @property
    def url(self) -> str:
        return f"{REPO_URL}/raw/master/models/{self.relpath}"

    @property
    def labels(self) -> tuple[str, ...]:
        return _TAGS[self.dataset]

    @property
    def onnx_name(self) -> str:
        return f"{self.name}-{self.sha256[:12]}-c{CONVERTER_VERSION}.onnx"


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
#: The tagger ``specmusic classify`` uses without ``--model``; chosen by benchmarks/tagger_choice.py.
DEFAULT_TAGGER = "jamendo-fcn"
#: The taggers shipped inside the package as ONNX (``specmusic/models/bundled/<name>.onnx``): the one
#: list. To ship another, add its name here and run ``python -m specmusic.models.pretrained --bundle
#: --weights DIR`` (see :func:`bundle_tagger`); the files are package data (pyproject.toml).
BUNDLED_TAGGERS: tuple[str, ...] = (DEFAULT_TAGGER, "mtat-musicnn")  # mtat-musicnn: with jamendo-fcn, embed's earlier default
#: Pons' models (:data:`specmusic.models.musicnn.PONS_MODELS`) shipped as ONNX beside them; rebuilt with
#: ``python -m specmusic.models.pretrained --bundle NAME --musicnn-wheel musicnn-0.1.0-py3-none-any.whl``.
BUNDLED_PONS: tuple[str, ...] = ("pons-msd-musicnn",)  # embed's default (specmusic.embeddings.DEFAULT_EMBEDDING)
MUSICNN_WHEEL_ENV = "SPECMUSIC_MUSICNN_WHEEL"
BUNDLE_DIR = Path(__file__).resolve().with_name("bundled")
BUNDLE_SUMS = "SHA256SUMS"
_TRAIN_EXTRA = "pip install 'specmusic[train]'"

_HOW_TO_SUPPLY = (
    f"download it by hand ({{url}}) and pass --weights FILE or set {WEIGHTS_ENV}=FILE "
    f"(or {WEIGHTS_ENV}=DIR holding <dataset>/<arch>/best_model.pth, e.g. a clone's models/ folder)"
)


def get_tagger(name: str) -> PretrainedTagger:
    """Registry entry for ``name`` ("mtat-musicnn", …).

    Raises
    ------
    ConfigError
        Unknown name.
    """
    if name not in TAGGERS:
        raise ConfigError(f"unknown pretrained tagger {name!r} — use one of {', '.join(TAGGERS)}")
    return TAGGERS[name]


def _check_sha(path: Path, tagger: PretrainedTagger, source: str) -> None:
    got = sha256_file(path)
    if got != tagger.sha256:
        raise ModelError(
            f"{source} has sha256 {got[:16]}…, not that of the {tagger.name} checkpoint "
            f"({tagger.sha256[:16]}…) — it is corrupt or another file; "
            + _HOW_TO_SUPPLY.format(url=tagger.url)
        )


def find_checkpoint(tagger: PretrainedTagger, *, weights: str | os.PathLike[str] | None = None) -> Path | None:
    """The checkpoint from ``weights`` / ``$SPECMUSIC_WEIGHTS``, else the cache; ``None`` if neither has it.

    Parameters
    ----------
    weights : a ``best_model.pth`` file, or a folder holding ``<dataset>/<arch>/best_model.pth``
        (``models/<dataset>/…`` is accepted too); defaults to ``$SPECMUSIC_WEIGHTS``.

    Raises
    ------
    ModelError
        ``weights`` names something that does not exist or lacks this checkpoint, or a file
        whose sha256 is not the published one.
    """
    local = weights if weights is not None else os.environ.get(WEIGHTS_ENV) or None
    if local is not None:
        root = Path(local).expanduser()
        if root.is_file():
            _check_sha(root, tagger, str(root))
            return root
        if root.is_dir():
            for candidate in (root / tagger.relpath, root / "models" / tagger.relpath):
                if candidate.is_file():
                    _check_sha(candidate, tagger, str(candidate))
                    return candidate
            raise ModelError(
                f"{root} has no {tagger.relpath} — point --weights/{WEIGHTS_ENV} at the folder that holds "
                f"<dataset>/<arch>/best_model.pth, or at the file itself"
            )
        raise ModelError(f"weights path {root} does not exist — fix --weights or {WEIGHTS_ENV}")
    cached = cache_dir() / "weights" / tagger.relpath
    if cached.is_file():
        _check_sha(cached, tagger, str(cached))
        return cached
    return None


def download_checkpoint(tagger: PretrainedTagger, dest: Path, *, progress: bool | None = None) -> Path:
    """Download ``tagger.url`` to ``dest`` (temp file beside it, sha256 check, then rename).

    Raises
    ------
    ModelError
        No network / HTTP error (the message says how to supply the file), or a sha256 mismatch.
    """
    return download(
        tagger.url, dest, what=f"{tagger.name} tagger", how_to_fix=_HOW_TO_SUPPLY.format(url=tagger.url),
        sha256=tagger.sha256, progress=progress,
    )


# -- conversion (torch, lazily) ---------------------------------------------------------------
def tagger_metadata(tagger: PretrainedTagger) -> dict[str, Any]:
    """The ``specmusic`` metadata JSON object stored in the converted ONNX model."""
    from specmusic import __version__
    from specmusic.models.taggers import TAGGER_ARCHS, tagger_feature_config

    spec = TAGGER_ARCHS[tagger.arch]
    return {
        "format_version": 1,
        "task": "multilabel",
        "labels": list(tagger.labels),
        "feature_config": tagger_feature_config().to_dict(),
        "chunk_frames": spec.chunk_frames,
        # 29 s FCN/CRNN chunks overlap by half; MusiCNN's 3 s chunks tile the track.
        "chunk_hop_frames": spec.chunk_frames if tagger.arch == "musicnn" else spec.chunk_frames // 2,
        "input_norm": None,  # spec_bn, inside the graph, normalises the dB mel input
        "arch": tagger.arch,
        "specmusic_version": __version__,
        "outputs": "logits",  # pre-sigmoid; the original models end in a sigmoid, the export stops before it
        "pretrained": {
            "name": tagger.name,
            "dataset": tagger.dataset,
            "url": tagger.url,
            "sha256": tagger.sha256,
            "license": "MIT",
            "credit": CREDIT,
            "converter_version": CONVERTER_VERSION,
        },
    }


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
            f"{checkpoint} is not a {tagger.arch} state dict ({type(exc).__name__}) — "
            + _HOW_TO_SUPPLY.format(url=tagger.url)
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
        entry.key = "specmusic"
        entry.value = json.dumps(tagger_metadata(tagger))
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        digest = sha256_file(tmp)
    _record_sha(out_path, digest)
    return out_path


def _sha_path(onnx_path: Path) -> Path:
    """The sidecar holding a converted model's sha256: ``<model>.onnx.sha256``."""
    return onnx_path.with_name(onnx_path.name + ".sha256")


def _record_sha(onnx_path: Path, digest: str) -> None:
    atomic_write(_sha_path(onnx_path), lambda f: f.write(f"{digest}  {onnx_path.name}\n"), "w")


def _cached_model_ok(out: Path, tagger: PretrainedTagger | PonsModel) -> bool:
    """Whether the cached ONNX file of ``tagger`` is intact: its sha256 is the one recorded when it was
    converted (a file cached without the record is loaded once to check it, then recorded).
    A corrupt file and its record are deleted, with a note on stderr."""
    sidecar = _sha_path(out)
    try:
        digest = sha256_file(out)
        recorded = sidecar.read_text(encoding="utf-8").split()[0] if sidecar.is_file() else None
    except (OSError, IndexError):
        digest, recorded = "", "unreadable"
    why = "its sha256 is not the one recorded when it was converted"
    if recorded is None:  # converted by a specmusic that kept no record
        from specmusic.errors import SpecmusicError
        from specmusic.inference import load_model

        try:
            load_model(out)
        except SpecmusicError:
            why = "it does not load"
        else:
            _record_sha(out, digest)
            return True
    elif recorded == digest:
        return True
    _say(True, f"note: the cached {tagger.name} tagger {display_path(out)} is corrupt ({why}) — "
               "rebuilding it from the checkpoint")  # fmt: skip
    out.unlink(missing_ok=True)
    sidecar.unlink(missing_ok=True)
    return False


def _say(progress: bool | None, line: str) -> None:
    if progress or (progress is None and sys.stderr.isatty()):
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


# -- bundled models (package data) -------------------------------------------------------------
_VERIFIED: dict[Path, str] = {}  # bundled files already checked in this process → their sha256


def _recorded_sums(folder: Path) -> dict[str, str]:
    """``SHA256SUMS`` of ``folder`` (``sha256sum`` format: ``<hex>  <file name>``) as {file name: hex}."""
    try:
        text = (folder / BUNDLE_SUMS).read_text(encoding="utf-8")
    except OSError:
        return {}
    sums = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0]
    return sums


def bundled_model(name: str) -> Path | None:
    """The ONNX model of tagger ``name`` shipped inside the package, checked against its sha256.

    Returns ``None`` when ``name`` is not in :data:`BUNDLED_TAGGERS` or this install lacks the file
    (a source tree without its package data): the caller falls back to the cache and the download.

    Raises
    ------
    ModelError
        The file's sha256 is not the one recorded in ``bundled/SHA256SUMS`` (a damaged install).
    """
    if name not in BUNDLED_TAGGERS and name not in BUNDLED_PONS:
        return None
    path = BUNDLE_DIR / f"{name}.onnx"
    if path in _VERIFIED:
        return path
    if not path.is_file():
        return None
    expected = _recorded_sums(BUNDLE_DIR).get(path.name)
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise ModelError(f"cannot read the bundled {name} tagger {display_path(path)} ({exc.strerror}) — "
                         "reinstall specmusic: pip install --force-reinstall specmusic") from exc  # fmt: skip
    if digest != expected:
        recorded = f"{expected[:16]}…" if expected else f"no entry in {BUNDLE_SUMS}"
        raise ModelError(
            f"the bundled {name} tagger {display_path(path)} is damaged (sha256 {digest[:16]}…, recorded {recorded}) — "
            "reinstall specmusic: pip install --force-reinstall specmusic"
        )
    _VERIFIED[path] = digest
    return path


def _require_conversion_deps(tagger: PretrainedTagger | PonsModel) -> None:
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
        bundled = ", ".join(BUNDLED_TAGGERS + BUNDLED_PONS)
        raise ModelError(
            f"the {tagger.name} tagger is not bundled with specmusic and converting it to ONNX needs PyTorch "
            f"({' and '.join(missing)} not installed) — {_TRAIN_EXTRA}, or use a bundled tagger ({bundled})"
        )


def bundle_tagger(
    name: str,
    *,
    weights: str | os.PathLike[str] | None = None,
    folder: Path | None = None,
    progress: bool | None = None,
) -> Path:
    """Convert tagger ``name`` into ``folder`` as package data: ``<name>.onnx``, its line in
    ``SHA256SUMS`` and the authors' ``LICENSE`` (maintainers; imports torch and onnx).

    The file is exactly what :func:`convert_tagger` writes for the cache (the conversion is
    deterministic), so a library embedded with the cached model matches the bundled one.

    Parameters
    ----------
    name : a key of :data:`BUNDLED_TAGGERS`
    weights : local ``best_model.pth`` or a folder of ``<dataset>/<arch>/best_model.pth`` (else the
        cache or a download, as :func:`ensure_model`)
    folder : where to write (default :data:`BUNDLE_DIR`, the package's ``bundled/``)

    Raises
    ------
    ConfigError
        ``name`` is not in :data:`BUNDLED_TAGGERS`.
    ModelError
        The checkpoint cannot be found, downloaded or converted, or no licence text is at hand.
    """
    tagger = get_tagger(name)
    if name not in BUNDLED_TAGGERS:
        raise ConfigError(
            f"{name} is not in BUNDLED_TAGGERS — add it to the tuple in specmusic/models/pretrained.py first "
            "(the one list of bundled taggers), then rerun --bundle"
        )
    _require_conversion_deps(tagger)
    checkpoint = find_checkpoint(tagger, weights=weights)
    if checkpoint is None:
        checkpoint = download_checkpoint(tagger, cache_dir() / "weights" / tagger.relpath, progress=progress)
    folder = BUNDLE_DIR if folder is None else folder
    folder.mkdir(parents=True, exist_ok=True)
    licence = folder / "LICENSE"
    if not licence.is_file():
        found = [p / "LICENSE" for p in Path(checkpoint).resolve().parents if (p / "LICENSE").is_file()]
        if not found:
            raise ModelError(
                f"no LICENSE beside {checkpoint} or in the folders above it — copy the authors' LICENSE "
                f"({REPO_URL}/blob/master/LICENSE) to {licence}"
            )
        atomic_write(licence, lambda f: f.write(found[0].read_bytes()))
    out = convert_tagger(tagger, checkpoint, folder / f"{name}.onnx")
    _sha_path(out).unlink(missing_ok=True)  # the cache's per-file record; the bundle keeps one SHA256SUMS
    sums = _recorded_sums(folder)
    sums[out.name] = sha256_file(out)
    atomic_write(folder / BUNDLE_SUMS, lambda f: f.writelines(f"{h}  {n}\n" for n, h in sorted(sums.items())), "w")
    _VERIFIED.pop(out, None)
    return out


def ensure_model(
    name: str = DEFAULT_TAGGER,
    *,
    weights: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
) -> Path:
    """Path of the ONNX model of tagger ``name``: the bundled one, else the cached conversion,
    downloading and converting it on first use.

    A bundled (:data:`BUNDLED_TAGGERS`) or cached model is returned at once (no torch, no network;
    ``weights`` is not needed then and is not read). Otherwise the checkpoint comes from
    ``weights`` / ``$SPECMUSIC_WEIGHTS``, the cache, or a download (in that order), is checked
    against its sha256 and converted once (torch is imported for this step only).

    Parameters
    ----------
    name : a key of :data:`TAGGERS`
    weights : local ``best_model.pth`` or a folder of ``<dataset>/<arch>/best_model.pth``
    progress : download bar and conversion note on stderr (default: only on a terminal)

    Raises
    ------
    ConfigError
        Unknown name.
    ModelError
        No local copy and no network, a sha256 mismatch, a file that does not load, a damaged bundled
        model, or no torch/onnx for a conversion.
    """
    if name in PONS_MODELS:
        return _ensure_pons(name, wheel=weights, progress=progress)
    tagger = get_tagger(name)
    bundled = bundled_model(name)
    if bundled is not None:
        return bundled
    out = cache_dir() / "onnx" / tagger.onnx_name
    rebuilding = out.is_file() and not _cached_model_ok(out, tagger)
    if out.is_file():
        return out
    _require_conversion_deps(tagger)
    try:
        checkpoint = find_checkpoint(tagger, weights=weights)
        if checkpoint is None:
            checkpoint = download_checkpoint(tagger, cache_dir() / "weights" / tagger.relpath, progress=progress)
    except ModelError as exc:
        if not rebuilding:
            raise
        raise ModelError(
            f"the cached {tagger.name} tagger was corrupt and was deleted; rebuilding it needs the checkpoint: {exc}"
        ) from exc
    _say(progress, f"converting the {tagger.name} tagger to ONNX (once) → {out}")
    try:
        return convert_tagger(tagger, checkpoint, out)
    except PermissionError as exc:
        raise ModelError(
            f"cannot write the converted model to {out.parent} ({exc.strerror}) — "
            f"set {CACHE_ENV} to a writable folder"
        ) from exc


# -- Pons' musicnn-wheel models ------------------------------------------------------------------
_HOW_TO_WHEEL = (f"pip download --no-deps musicnn -d DIR and pass --weights DIR/musicnn-0.1.0-py3-none-any.whl "
                 f"(or set {MUSICNN_WHEEL_ENV})")  # fmt: skip


def _ensure_pons(name: str, *, wheel: str | os.PathLike[str] | None, progress: bool | None) -> Path:
    """:func:`ensure_model` for a Pons model: bundled, else cached, else converted from the wheel."""
    from specmusic.models.musicnn import CONVERTER_VERSION, convert_pons_model

    model = PONS_MODELS[name]
    bundled = bundled_model(name)
    if bundled is not None:
        return bundled
    out = cache_dir() / "onnx" / f"{name}-c{CONVERTER_VERSION}.onnx"
    if out.is_file() and _cached_model_ok(out, model):
        return out
    source = wheel if wheel is not None else os.environ.get(MUSICNN_WHEEL_ENV) or None
    if source is None:
        raise ModelError(f"the {name} model is not bundled and converting it needs the musicnn wheel — "
                         f"{_HOW_TO_WHEEL}")
    _require_conversion_deps(model)
    _say(progress, f"converting the {name} model to ONNX (once) → {out}")
    try:
        convert_pons_model(name, source, out)
    except PermissionError as exc:
        raise ModelError(f"cannot write the converted model to {out.parent} ({exc.strerror}) — "
                         f"set {CACHE_ENV} to a writable folder") from exc  # fmt: skip
    _record_sha(out, sha256_file(out))
    return out


def ensure_default_model(*, weights: str | None = None, progress: bool | None = None) -> Path:
    """:func:`ensure_model` of :data:`DEFAULT_TAGGER`: the model ``specmusic classify`` uses without --model."""
    return ensure_model(DEFAULT_TAGGER, weights=weights, progress=progress)


def main(argv: list[str] | None = None) -> int:
    """``python -m specmusic.models.pretrained --bundle [NAME ...] --weights DIR`` (maintainers)."""
    import argparse

    from specmusic.errors import SpecmusicError

    parser = argparse.ArgumentParser(
        prog="python -m specmusic.models.pretrained",
        description="Rebuild the taggers shipped inside the package (specmusic/models/bundled/) from their "
        "checkpoints: ONNX file, SHA256SUMS line, LICENSE. Needs torch and onnx (pip install -e '.[train]').",
    )
    parser.add_argument("--bundle", nargs="*", metavar="NAME", required=True,
                        help=f"taggers to rebuild (default: all of BUNDLED_TAGGERS: {', '.join(BUNDLED_TAGGERS)})")
    parser.add_argument("--musicnn-wheel", help="the musicnn wheel or its unzipped folder, for "
                        f"{', '.join(PONS_MODELS)} "
                        f"(default: ${MUSICNN_WHEEL_ENV})")  # fmt: skip
    parser.add_argument("--weights", help=f"best_model.pth or a folder of <dataset>/<arch>/best_model.pth "
                        f"(default: ${WEIGHTS_ENV}, the cache, else a download)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        for name in args.bundle or BUNDLED_TAGGERS + BUNDLED_PONS:
            if name in PONS_MODELS:
                wheel = args.musicnn_wheel or os.environ.get(MUSICNN_WHEEL_ENV)
                if not wheel:
                    how = _HOW_TO_WHEEL.replace("--weights", "--musicnn-wheel")
                    raise ModelError(f"rebuilding {name} needs the musicnn wheel — {how}")
                from specmusic.models.musicnn import bundle_pons_model

                out = bundle_pons_model(name, wheel=wheel)
            else:
                out = bundle_tagger(name, weights=args.weights, progress=True)
            print(f"{sha256_file(out)}  {display_path(out)}  ({out.stat().st_size:,} bytes)")
    except SpecmusicError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
