"""Frozen features for a head (onnxruntime and numpy, no torch): each track's per-window ``embedding``
from a pretrained network, exactly as ``classify`` would compute it, cached.

A *backbone* is any specmusic ONNX model with an ``embedding`` output: a network the zoo knows
(``audioset-mn04``, ``pons-msd-musicnn``, ``jamendo-fcn``…, found or converted once as ``classify
--model NAME`` does) or a ``model.onnx`` path (:func:`open_backbone`). A track's features are the
``embedding`` of each window :func:`specmusic.inference.analyse_track` analyses — the same windows,
decoding, features and network that ``classify`` runs on that file — so that a head applied to
each window and the window probabilities averaged is what ``classify`` computes with the exported
model (:mod:`specmusic.training.probe`).

Cache (``RUN/features/`` unless given)::

    <backbone>-<sha12>-w<windows>/<sha1 of the file's path>.npz   embedding [n_windows, dim], source, stamp
    errors.jsonl                                                   files left out

A file's features are reused while its size and modification time are those recorded; a run with
another seed or split therefore reads them back instead of running the network again.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from specmusic.errors import InputError, ModelError
from specmusic.fileio import (
    display_path,
    save_npz_atomic,
    sha256_file,
    write_jsonl_atomic,
)
from specmusic.training.data import TrainingFile

__all__ = ["Backbone", "WindowFeatures", "backbone_features", "embed_windows", "open_backbone"]

Log = Callable[[str], None]
ERRORS_NAME = "errors.jsonl"


@dataclass(frozen=True)
class Backbone:
    """A pretrained network whose pooled ``embedding`` a head reads.

    Attributes
    ----------
    name : as given (a zoo name or a path)
    path : its ONNX file
    sha256 : of that file (names its feature cache)
    meta : its specmusic metadata (``feature_config`` as a dict, chunking, ``input_norm``, ``arch``…)
    dim : width of its ``embedding``
    """

    name: str
    path: Path
    sha256: str
    meta: dict[str, Any]
    dim: int

    def describe(self) -> dict[str, Any]:
        """What a run's ``config.json`` and model metadata say of the backbone."""
        keep = ("arch", "task", "pretrained", "embedding")
        return {"name": self.name, "file": self.path.name, "sha256": self.sha256, "embedding_dim": self.dim,
                **{k: self.meta[k] for k in keep if k in self.meta}}


def open_backbone(name: str, *, progress: bool | None = None) -> Backbone:
    """The backbone ``name``: a network the zoo knows (bundled, cached, or converted once) or an ONNX path.

    Raises
    ------
    ModelError
        Unknown name, a file that is not a specmusic model, or a model without an ``embedding`` output.
    """
    from specmusic.inference import load_model
    from specmusic.models.resolve import resolve_model

    path = Path(resolve_model(name, allow=("named", "file")).ensure_path(progress=progress))
    model = load_model(path, threads=1)
    shape = next((o.shape for o in model.session.get_outputs() if o.name == "embedding"), None)
    if shape is None or len(shape) != 2 or not isinstance(shape[1], int):
        raise ModelError(f"{display_path(path)}: has no 'embedding' output [batch, dim] for a head to read — "
                         "use a network name (audioset-mn04, pons-msd-musicnn…) or a model.onnx from `specmusic train`")
    return Backbone(name, path, sha256_file(path), model.meta, int(shape[1]))


@dataclass
class WindowFeatures:
    """One track's frozen features (:class:`~specmusic.training.data.Labelled`, so it splits as tracks do)."""

    key: str
    label: str | None
    group: str
    source: str
    windows: np.ndarray  # [n_windows, dim] float32: the backbone's embedding of each window classify analyses


def _cache_folder(cache_dir: Path, backbone: Backbone, windows: int | None) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(backbone.name).stem)[:40]
    return cache_dir / f"{safe}-{backbone.sha256[:12]}-w{windows if windows is not None else 'all'}"


def _stamp(path: Path) -> np.ndarray:
    st = os.stat(path)
    return np.array([st.st_size, st.st_mtime_ns], dtype=np.int64)


def _cached(file: Path, source: Path) -> np.ndarray | None:
    """The cached windows of ``source`` when ``file`` holds them for its current size and modification time."""
    try:
        with np.load(file, allow_pickle=False) as z:
            if np.array_equal(z["stamp"], _stamp(source)) and str(z["source"]) == str(source.resolve()):
                return np.asarray(z["embedding"], dtype=np.float32)
    except (OSError, ValueError, KeyError, EOFError):
        return None  # absent or torn: computed again
    return None


def embed_windows(path: str, model_path: str, windows: int | None, threads: int | None) -> np.ndarray:
    """The ``embedding`` of each window ``classify`` analyses in ``path`` (a worker task: the model is
    loaded once per process).

    Returns
    -------
    np.ndarray [shape=(n_windows, dim)], float32

    Raises
    ------
    SpecmusicError
        An unreadable file (one line).
    """
    from specmusic.batch import require_visible, worker_cached
    from specmusic.inference import analyse_track, load_model

    require_visible(path)
    model = worker_cached(("backbone", model_path, threads), lambda: load_model(model_path, threads=threads))
    try:
        result = analyse_track(model, path, windows=windows, outputs=("embedding",))
    except MemoryError:
        raise InputError(f"{display_path(path)}: out of memory — split the file") from None
    except OSError as exc:
        raise InputError(f"{display_path(path)}: cannot read ({exc.strerror or exc}) — check the file") from None
    return np.asarray(result.per_window["embedding"], dtype=np.float32)


def backbone_features(
    files: list[TrainingFile],
    backbone: Backbone,
    *,
    cache_dir: str | os.PathLike[str],
    windows: int | None,
    jobs: int = 1,
    threads: int | None = None,
    failed: list[dict[str, str]] | None = None,
    progress: bool | None = None,
    log: Log = lambda _: None,
) -> list[WindowFeatures]:
    """Each file's per-window backbone embedding, from the cache or computed (and cached).

    Parameters
    ----------
    files : audio files, or ``.npz`` arrays computed with the backbone's features
    backbone : from :func:`open_backbone`
    cache_dir : the feature cache (a folder per backbone and window count inside it)
    windows : windows per track at most, as ``classify --windows`` (None: every chunk)
    jobs : worker processes (each runs onnxruntime on one thread)
    threads : onnxruntime threads in this process when ``jobs`` is 1 (None: every core)
    failed : receives ``{"source", "error"}`` for each file left out (also logged, and written to
        ``errors.jsonl`` in ``cache_dir`` with those already in it)
    progress : progress bar on stderr (None: only on a terminal)

    Returns
    -------
    list of WindowFeatures, in the order of ``files``, less those that failed
    """
    from tqdm import tqdm

    from specmusic.batch import TaskFailure, open_executor, run_tasks

    failed = [] if failed is None else failed
    folder = _cache_folder(Path(cache_dir), backbone, windows)
    found: dict[int, np.ndarray] = {}
    todo: dict[str, list[int]] = {}  # file → its places in files (a file given twice is run once)
    for i, f in enumerate(files):
        cached = _cached(folder / _entry_name(f.path), f.path) if f.path.exists() else None
        if cached is None:
            todo.setdefault(str(f.path), []).append(i)
        else:
            found[i] = cached
    if todo:
        log(f"features: {len(todo)} file(s) through {backbone.name} ({len(found)} cached)")
        folder.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(todo), desc="features", unit="file", file=sys.stderr, dynamic_ncols=True,
               disable=None if progress is None else not progress)
    with bar, open_executor(jobs=jobs, n_items=len(todo)) as executor:
        args = (str(backbone.path), windows, threads if executor is None else 1)
        for path, result in run_tasks(executor, embed_windows, list(todo), args=args):
            bar.update(1)
            first = files[todo[path][0]]
            if isinstance(result, TaskFailure):
                failed.append({"source": first.source, "error": result.error})
                log(f"skipped: {result.error}")
                continue
            _store(folder / _entry_name(first.path), first.path, result)
            found.update((i, result) for i in todo[path])
    if failed:
        write_jsonl_atomic(Path(cache_dir) / ERRORS_NAME, [{"severity": "error", **row} for row in failed])
        log(f"{len(failed)} file(s) could not be read and are left out (see {display_path(Path(cache_dir) / ERRORS_NAME)})")
    return [WindowFeatures(f.key, f.label, f.group, f.source, found[i]) for i, f in enumerate(files) if i in found]


def _entry_name(path: Path) -> str:
    return hashlib.sha1(str(path.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:20] + ".npz"


def _store(file: Path, source: Path, embedding: np.ndarray) -> None:
    save_npz_atomic(file, {"embedding": embedding, "source": np.array(str(source.resolve())), "stamp": _stamp(source)})
