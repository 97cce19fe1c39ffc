"""What search needs of a whole sharded library, streamed part by part and cached in the folder.

* :func:`shard_statistics`: the column mean and scale of the live rows (``library/stats.npz``);
* :func:`shard_space`: the learnt search space of a library of packed rows (``library/space.npz``,
  :mod:`specmusic.embeddings.search.adapt`).

Each cache is keyed by the library's fingerprint (:func:`~specmusic.embeddings.store.shard_catalog.index_fingerprint`),
so a library changed since is read again; a folder that cannot be written is read each time, with a note.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from specmusic.embeddings.search.adapt import COMPONENTS, MIN_TRACKS, REG, VERSION, Space, SpaceStats, library_space
from specmusic.embeddings.store.shard_catalog import (
    SPACE_NAME,
    STATS_NAME,
    ShardCatalog,
    index_fingerprint,
    iter_live_parts,
    read_index,
    scan_catalog,
)
from specmusic.errors import InputError
from specmusic.fileio import display_path, save_npz_atomic
from specmusic.index import check_finite

__all__ = ["shard_space", "shard_statistics"]

_NOTE = Callable[[str], None]


def _cached(path: Path, key_name: str, key: str) -> dict[str, np.ndarray] | None:
    """The arrays of the cache ``path`` when its ``key_name`` array is ``key``, else None."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z[key_name]) == key:
                return {name: z[name] for name in z.files}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        pass
    return None


def _save_cache(path: Path, arrays: dict[str, Any], what: str, on_note: _NOTE | None) -> None:
    try:
        save_npz_atomic(path, arrays)
    except OSError as exc:
        if on_note is not None:
            on_note(f"note: could not cache the {what} in {display_path(path)} ({exc.strerror})")


def shard_space(
    folder: str | os.PathLike[str], groups: int, *, blocks: tuple[int, ...] = (), learn: bool = True,
    catalog: tuple[dict[str, Any], ShardCatalog] | None = None, on_note: _NOTE | None = None,
) -> Space:  # fmt: skip
    """The search space of a library of packed rows (:func:`specmusic.embeddings.search.adapt.library_space`),
    its statistics streamed over the live rows, one part at a time.

    Cached in ``folder/space.npz`` under the library's fingerprint and the space's settings (not
    written when the folder is read-only), so a search with a current FAISS index reads no part.

    Parameters
    ----------
    groups, blocks : the library's window groups and, for joined models, each model's feature size
        (its model's ``adapt``)
    learn : False (``--no-standardize``): the plain means, nothing read
    catalog : the ``(index, catalog)`` the caller already read (:func:`read_catalog`)

    Raises
    ------
    InputError
        An empty library, a damaged part, vectors holding NaN.
    """
    folder = Path(folder)
    index = catalog[0] if catalog is not None else read_index(folder)
    cat = catalog[1] if catalog is not None else scan_catalog(folder, index)
    if not len(cat):
        raise InputError(f"{display_path(folder)}: the library is empty — embed some tracks first")
    if not learn:
        return Space.plain(groups, int(index.get("dim") or 0) // groups, len(cat))
    key = f"{index_fingerprint(index)}:v{VERSION}:g{groups}:b{'-'.join(map(str, blocks))}:c{COMPONENTS}:r{REG}:m{MIN_TRACKS}"
    cache = folder / SPACE_NAME
    z = _cached(cache, "key", key)
    if z is not None:
        return Space(groups, z["center"], z["matrix"], bool(z["adapted"]), int(z["n"]))
    stats = SpaceStats(groups, blocks)
    for p, _, lib in iter_live_parts(folder, index, cat):
        check_finite(lib.vectors, display_path(folder / index["parts"][p]["name"]), lib.ids)
        stats.add(lib.vectors)
    space = library_space(stats, groups)
    _save_cache(cache, {"key": np.array(key), "center": space.center, "matrix": space.matrix,
                        "adapted": np.array(space.adapted), "n": np.array(space.n_tracks)}, "search space", on_note)  # fmt: skip
    return space


def shard_statistics(
    folder: str | os.PathLike[str], *, on_note: _NOTE | None = None,
    catalog: tuple[dict[str, Any], ShardCatalog] | None = None,
) -> tuple[int, np.ndarray, np.ndarray]:
    """Column mean and scale of the live vectors, streamed part by part (Chan's parallel update in
    float64, as :func:`specmusic.index.standardize_columns` computes them on the whole matrix).

    Cached in ``folder/stats.npz`` under the library's fingerprint (not written when the folder is
    read-only). Returns ``(n, mean, scale)``; constant columns get scale 1. ``catalog``: the
    ``(index, catalog)`` the caller already read (:func:`read_catalog`); else the index is read, and
    the parts' columns only when the cache is stale.

    Raises
    ------
    InputError
        Not a sharded library, or a damaged part.
    """
    folder = Path(folder)
    index = catalog[0] if catalog is not None else read_index(folder)
    key = index_fingerprint(index)
    cache = folder / STATS_NAME
    z = _cached(cache, "fingerprint", key)
    if z is not None:
        return int(z["n"]), z["mean"].astype(np.float64), z["scale"].astype(np.float64)
    cat = catalog[1] if catalog is not None else scan_catalog(folder, index)
    n, mean, m2 = 0, None, None
    for _, _, lib in iter_live_parts(folder, index, cat):
        x = lib.vectors.astype(np.float64)
        nb, mb = len(x), x.mean(axis=0)
        x -= mb  # in place: one float64 copy of the part
        x *= x
        m2b = x.sum(axis=0)
        del x
        if mean is None:
            n, mean, m2 = nb, mb, m2b
            continue
        delta = mb - mean
        total = n + nb
        mean = mean + delta * (nb / total)
        m2 = m2 + m2b + delta**2 * (n * nb / total)
        n = total
    dim = int(index.get("dim") or 0)
    mean = mean if mean is not None else np.zeros(dim)
    scale = np.sqrt(m2 / n) if n else np.ones(dim)
    scale[~(scale > 1e-12)] = 1.0
    arrays = {"fingerprint": np.array(key), "n": np.array(n), "mean": mean, "scale": scale}
    _save_cache(cache, arrays, "column statistics", on_note)
    return n, mean, scale
