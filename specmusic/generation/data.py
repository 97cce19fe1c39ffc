"""Training data of the generator: normalised log-mel spectrograms of labelled clips, cached in ``features.npz``."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from specmusic.errors import InputError
from specmusic.fileio import display_path, save_npz_atomic
from specmusic.generation.config import FORMAT_VERSION, GenConfig, normalize_db
from specmusic.training.data import load_training_data as load_tracks

__all__ = ["load_training_data"]


def load_training_data(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    config: GenConfig,
    train_list: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[list[np.ndarray], list[int], list[str]]:
    """Normalised log-mel spectrograms of the training clips and their labels.

    ``inputs`` are audio files/folders (label = first sub-folder, as ``specmusic train``) or
    ``.npz`` arrays from ``specmusic spectro`` computed with the same mel settings. With
    ``train_list`` (one relative path a line, e.g. ``splits/train_filtered.txt``) only those clips
    are used. ``cache`` (a ``.npz``) stores the result and is reused when the settings match. Reading is
    :func:`specmusic.training.data.load_training_data`'s: features computed into ``features/`` beside the
    cache, a file that cannot be read skipped (a ``log`` line, a row in ``features/errors.jsonl``).

    Returns
    -------
    specs : list of np.ndarray [shape=(n_mels, n_frames_i)], float32 in [-1, 1]
    labels : list of int, index into ``names`` (all 0 and ``names == []`` when unlabelled)
    names : sorted label names

    Raises
    ------
    InputError
        No usable clip, a clip shorter than a patch, or an array with other settings.
    """
    fc = config.feature_config
    key = json.dumps({"features": fc.digest(), "db_range": config.db_range,
                      "inputs": [os.path.abspath(p) for p in inputs],
                      "train_list": os.path.abspath(train_list) if train_list else None}, sort_keys=True)
    cached = _read_cache(cache, key) if cache is not None else None
    if cached is not None:
        return cached
    say = log or (lambda _: None)
    with _features_dir(cache) as features:
        # top_db ignored: normalize_db floors every clip at -db_range itself
        tracks, _ = load_tracks(inputs, cache_dir=features, feature_config=fc, ignore=("top_db",), split_list=train_list,
                                unlabelled=True, dtype=np.float32, progress=progress, log=say)
    for t in tracks:
        if t.spec.shape[1] < config.patch_frames:
            say(f"skipping {display_path(t.source)}: {t.spec.shape[1]} frames < patch of {config.patch_frames}")
    tracks = [t for t in tracks if t.spec.shape[1] >= config.patch_frames]
    if not tracks:
        raise InputError(f"every clip is shorter than a patch of {config.patch_frames} frames — use longer clips or a smaller --patch-frames")
    names = sorted({t.label for t in tracks if t.label is not None})
    if names and any(t.label is None for t in tracks):
        raise InputError("some clips have a label folder and some do not — put every clip in a label folder, or none")
    specs = [normalize_db(t.spec, db_range=config.db_range) for t in tracks]
    labels = [names.index(t.label) if t.label is not None else 0 for t in tracks]
    if cache is not None:
        _write_cache(cache, key, specs, labels, names)
    return specs, labels, names


@contextlib.contextmanager
def _features_dir(cache: str | os.PathLike[str] | None) -> Iterator[Path]:
    """Where the clips' arrays (and ``errors.jsonl``) go: ``features/`` beside the cache, else a temporary folder."""
    if cache is not None:
        yield Path(cache).parent / "features"
        return
    with tempfile.TemporaryDirectory(prefix="specmusic-gen-") as tmp:
        yield Path(tmp)


def _read_cache(cache: str | os.PathLike[str], key: str) -> tuple[list[np.ndarray], list[int], list[str]] | None:
    """The cached result when ``cache`` exists and was written for ``key`` by this format; else None."""
    if not os.path.exists(cache):
        return None
    with np.load(cache, allow_pickle=False) as z:
        if str(z["key"]) != key or int(z["format_version"]) != FORMAT_VERSION:
            return None
        flat, offsets = z["specs"], z["offsets"]
        specs = [flat[:, offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
        return specs, [int(v) for v in z["labels"]], [str(v) for v in z["names"]]


def _write_cache(cache: str | os.PathLike[str], key: str, specs: list[np.ndarray], labels: list[int],
                 names: list[str]) -> None:
    offsets = np.cumsum([0] + [s.shape[1] for s in specs])
    save_npz_atomic(cache, {
        "specs": np.concatenate(specs, axis=1), "offsets": offsets, "labels": np.asarray(labels, dtype=np.int64),
        "names": np.asarray(names, dtype=str), "key": np.asarray(key), "format_version": np.asarray(FORMAT_VERSION),
    })
