"""The per-user cache of pretrained networks: checkpoints (looked up, downloaded, sha256-checked) and
converted ONNX models with the sha256 recorded beside each.

Cache (``$SPECMUSIC_CACHE``, else ``$XDG_CACHE_HOME/specmusic``, else ``~/.cache/specmusic``)::

    weights/<dataset>/<arch>/best_model.pth      downloaded tagger checkpoints (sha256-checked)
    weights/efficientat/<release file>.pt        downloaded EfficientAT checkpoints (sha256-checked)
    onnx/<dataset>-<arch>-<sha12>-c<N>.onnx      converted taggers (N: converter version)
    onnx/<name>-<sha12>-c<N>.onnx                converted EfficientAT models
    onnx/<name>-c<N>.onnx                        converted Pons models
    onnx/<…>.onnx.sha256                         the converted model's sha256, written with it

A cached ONNX file is checked before it is used: its sha256 must be the one recorded beside it
when it was converted. A corrupt one is deleted (with a note on stderr) for the caller to rebuild;
one cached by an older specmusic without the record is checked by loading it once.

Torch-free: nothing here converts (:mod:`specmusic.models.zoo.convert` does).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from specmusic.errors import ModelError, SpecmusicError
from specmusic.fileio import atomic_write, cache_dir, display_path, download, sha256_file
from specmusic.models.zoo.registry import PretrainedNetwork, PublishedCheckpoint

__all__ = [
    "WEIGHTS_ENV",
    "cached_model_ok",
    "cached_model_path",
    "download_checkpoint",
    "fetch_checkpoint",
    "find_checkpoint",
    "how_to_supply",
    "progress_line",
    "record_sha",
]

WEIGHTS_ENV = "SPECMUSIC_WEIGHTS"


def how_to_supply(tagger: PublishedCheckpoint) -> str:
    """How to hand specmusic ``tagger``'s checkpoint without the network (the end of an error line)."""
    return (
        f"download it by hand ({tagger.url}) and pass --weights FILE or set {WEIGHTS_ENV}=FILE "
        f"(or {WEIGHTS_ENV}=DIR holding {tagger.folder_layout})"
    )


def _check_sha(path: Path, tagger: PublishedCheckpoint, source: str) -> None:
    got = sha256_file(path)
    if got != tagger.sha256:
        raise ModelError(
            f"{source} has sha256 {got[:16]}…, not that of the {tagger.name} checkpoint "
            f"({tagger.sha256[:16]}…) — it is corrupt or another file; " + how_to_supply(tagger)
        )


def find_checkpoint(tagger: PublishedCheckpoint, *, weights: str | os.PathLike[str] | None = None) -> Path | None:
    """The checkpoint from ``weights`` / ``$SPECMUSIC_WEIGHTS``, else the cache; ``None`` if neither has it.

    Parameters
    ----------
    weights : the checkpoint file, or a folder holding it as ``tagger.search_paths`` say (a tagger's
        ``<dataset>/<arch>/best_model.pth``, ``models/<dataset>/…`` too; EfficientAT's release file,
        ``efficientat/<file>`` too); defaults to ``$SPECMUSIC_WEIGHTS``.

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
            for candidate in (root / relative for relative in tagger.search_paths):
                if candidate.is_file():
                    _check_sha(candidate, tagger, str(candidate))
                    return candidate
            raise ModelError(
                f"{root} has no {tagger.search_paths[0]} — point --weights/{WEIGHTS_ENV} at the folder that holds "
                f"{tagger.folder_layout}, or at the file itself"
            )
        raise ModelError(f"weights path {root} does not exist — fix --weights or {WEIGHTS_ENV}")
    cached = cache_dir() / "weights" / tagger.relpath
    if cached.is_file():
        _check_sha(cached, tagger, str(cached))
        return cached
    return None


def download_checkpoint(tagger: PublishedCheckpoint, dest: Path, *, progress: bool | None = None) -> Path:
    """Download ``tagger.url`` to ``dest`` (temp file beside it, sha256 check, then rename).

    Raises
    ------
    ModelError
        No network / HTTP error (the message says how to supply the file), or a sha256 mismatch.
    """
    return download(
        tagger.url, dest, what=f"{tagger.name} tagger", how_to_fix=how_to_supply(tagger),
        sha256=tagger.sha256, progress=progress,
    )  # fmt: skip


def fetch_checkpoint(
    tagger: PublishedCheckpoint, *, weights: str | os.PathLike[str] | None = None, progress: bool | None = None
) -> Path:
    """The checkpoint of ``tagger``: :func:`find_checkpoint`, else downloaded into the cache.

    Raises
    ------
    ModelError
        As :func:`find_checkpoint` and :func:`download_checkpoint`.
    """
    checkpoint = find_checkpoint(tagger, weights=weights)
    if checkpoint is None:
        checkpoint = download_checkpoint(tagger, cache_dir() / "weights" / tagger.relpath, progress=progress)
    return checkpoint


# -- converted models ---------------------------------------------------------------------------
def cached_model_path(network: PretrainedNetwork) -> Path:
    """Where the converted ONNX model of ``network`` lives in the cache (it may not exist yet)."""
    return cache_dir() / "onnx" / network.onnx_name


def _sha_path(onnx_path: Path) -> Path:
    """The sidecar holding a converted model's sha256: ``<model>.onnx.sha256``."""
    return onnx_path.with_name(onnx_path.name + ".sha256")


def record_sha(onnx_path: Path, digest: str) -> None:
    """Write ``<model>.onnx.sha256`` (``sha256sum`` format) beside a model just converted into the cache."""
    atomic_write(_sha_path(onnx_path), lambda f: f.write(f"{digest}  {onnx_path.name}\n"), "w")


def cached_model_ok(out: Path, network: PretrainedNetwork) -> bool:
    """Whether the cached ONNX file of ``network`` is intact: its sha256 is the one recorded when it was
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
        from specmusic.inference.model import load_model

        try:
            load_model(out)
        except SpecmusicError:
            why = "it does not load"
        else:
            record_sha(out, digest)
            return True
    elif recorded == digest:
        return True
    progress_line(True, f"note: the cached {network.name} tagger {display_path(out)} is corrupt ({why}) — "
                        "rebuilding it from the checkpoint")  # fmt: skip
    out.unlink(missing_ok=True)
    sidecar.unlink(missing_ok=True)
    return False


def progress_line(progress: bool | None, line: str) -> None:
    """Write ``line`` to stderr when ``progress`` is on (None: only on a terminal)."""
    if progress or (progress is None and sys.stderr.isatty()):
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
