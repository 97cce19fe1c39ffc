"""A library that grows in shards: ``library/`` holds ``part-NNNNN.npz`` files and an ``index.json``.

``embed -o library/`` writes each batch of finished tracks as one *part* (a regular library
``.npz``, :func:`~specmusic.embeddings.library.save_library`, written atomically) and then rewrites
``index.json`` atomically, so whatever was finished before a crash, a kill or Ctrl-C is kept and a
rerun embeds only the rest. Readers never lock: a part is never rewritten once listed (append-only,
except :func:`compact`), and a reader sees either the old or the new ``index.json``.

Layout::

    library/index.json      {"format": "specmusic-sharded-library", "format_version": 1,
                             "model": {... "dim": d}, "dim": d,
                             "parts": [{"name": "part-00000.npz", "tracks": n, "bytes": b, "sha256": "…"}, …],
                             "removed": {"<id>": P, …},        # tombstones (see below)
                             "fingerprint": "…",               # digest of parts + removed: what the library holds
                             "ann": {...}}                     # the FAISS index built from it, if any
    library/part-00000.npz  …                               # regular libraries, listed in order
    library/stats.npz       column mean/scale of the live rows (cache, keyed by the fingerprint)
    library/space.npz       the learnt search space of packed rows (``adapt``; cache, keyed likewise)
    library/index.faiss     see :mod:`specmusic.embeddings.shard_index`

Which rows are live (the library's content): parts are read in order and **the newest row of an
id wins** (a changed file re-embedded is simply appended to a later part). A removed id
(``--prune``) gets a tombstone ``removed[id] = P``: its rows in parts ``0 .. P-1`` are dead; a row
in part ``P`` or later (the id embedded again afterwards) is live. So removal never rewrites a part,
and the order of events is kept without per-row bookkeeping. :func:`compact` rewrites the live rows
into fresh parts and clears the tombstones.

Crash safety: a part is written (temporary file + rename) before the index lists it. A part found
on disk but missing from the index (the process died between the two renames) is *adopted* when
readable and made by the same model; leftover temporary files are deleted. The folder is locked
(``flock`` on the folder itself) while a writer holds it: one writer at a time. Every part read
whole is checked against its sha256, so a damaged part is named in a one-line error.

Memory: a writer keeps the ids and two numbers per track (the :class:`ShardCatalog`, for the
incremental check) and the tracks buffered for the next part; readers stream one part at a time
(:func:`iter_shards`) or, for :func:`read_sharded`, build the whole library.

Defaults (one block)::

    shard_size     = 1024   # tracks per part
    flush_seconds  = 60.0   # also write a part when this long has passed since the last one
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from specmusic.embeddings.embedders import model_label, same_model
from specmusic.embeddings.library import EmbeddingLibrary, Tags, _library_from_npz, concat_libraries, save_library
from specmusic.errors import InputError
from specmusic.fileio import HAS_FLOCK, display_path, lock_fd, numpy_load_reason, save_npz_atomic, write_json_atomic

__all__ = [
    "INDEX_NAME",
    "ShardCatalog",
    "load_part",
    "read_catalog",
    "read_index",
    "SHARD_FORMAT",
    "ShardedLibraryWriter",
    "compact",
    "is_sharded",
    "iter_shards",
    "read_sharded",
    "shard_space",
    "shard_statistics",
]

INDEX_NAME = "index.json"
SHARD_FORMAT = "specmusic-sharded-library"
SHARD_FORMAT_VERSION = 1
STATS_NAME = "stats.npz"
SPACE_NAME = "space.npz"  # the learnt search space of a library of packed rows (adapt)
_PART = re.compile(r"^part-(\d{5,})\.npz$")
_NOTE = Callable[[str], None]


def is_sharded(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a sharded library: an existing folder, or a path ending in ``/``."""
    p = os.fspath(path)
    return p.endswith(("/", os.sep)) or os.path.isdir(p)


def part_name(number: int) -> str:
    """The file name of part ``number``: ``part-00042.npz``."""
    return f"part-{number:05d}.npz"


def _fingerprint(parts: list[dict[str, Any]], removed: dict[str, int]) -> str:
    text = json.dumps({"parts": [(p["name"], p["sha256"]) for p in parts], "removed": removed}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def read_index(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """``folder/index.json``, checked.

    Raises
    ------
    InputError
        No index (not a sharded library), unreadable index, newer format.
    """
    path = Path(folder) / INDEX_NAME
    name = display_path(path)
    if not path.is_file():
        raise InputError(
            f"{display_path(folder)}: no sharded library here (no {INDEX_NAME}) — create one with "
            f"`specmusic embed DIR -o {display_path(folder).rstrip('/')}/`"
        )
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{name}: unreadable ({exc}) — restore it or re-embed into a new folder") from None
    if not isinstance(index, dict) or index.get("format") != SHARD_FORMAT or not isinstance(index.get("parts"), list):
        raise InputError(f"{name}: not a sharded library index — re-embed into a new folder")
    if int(index.get("format_version", 1)) > SHARD_FORMAT_VERSION:
        raise InputError(f"{name}: sharded library format {index['format_version']} is newer than this specmusic — upgrade")
    index.setdefault("removed", {})
    return index


def _empty_index(model: dict[str, Any]) -> dict[str, Any]:
    return {"format": SHARD_FORMAT, "format_version": SHARD_FORMAT_VERSION, "model": dict(model),
            "dim": int(model.get("dim") or 0), "parts": [], "removed": {}}  # fmt: skip


def _write_index(folder: Path, index: dict[str, Any]) -> None:
    index["fingerprint"] = _fingerprint(index["parts"], index["removed"])
    write_json_atomic(folder / INDEX_NAME, index)


# -- reading --------------------------------------------------------------------------------
def _part_columns(path: Path) -> tuple[list[str], np.ndarray, np.ndarray, list[str | None], list[str | None]]:
    """A part's ids, source sizes and mtimes, labels and groups, without reading its vectors."""

    def text(z: Any, key: str, n: int) -> list[str | None]:
        return [str(v) or None for v in z[key]] if key in z.files else [None] * n

    try:
        with np.load(path, allow_pickle=False) as z:
            ids = [str(s) for s in z["ids"]]
            size = z["source_size"].astype(np.int64) if "source_size" in z.files else np.full(len(ids), -1, np.int64)
            mtime = z["source_mtime"].astype(np.float64) if "source_mtime" in z.files else np.full(len(ids), np.nan)
            labels, groups = text(z, "labels", len(ids)), text(z, "groups", len(ids))
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        reason = numpy_load_reason(exc, path)
        raise InputError(
            f"{display_path(path)}: cannot read this part ({reason}) — the part is damaged; restore it, or re-embed "
            "into a new folder"
        ) from None
    if len({len(ids), len(size), len(mtime), len(labels), len(groups)}) != 1:
        raise InputError(f"{display_path(path)}: fields of different lengths — the part is damaged; re-embed")
    return ids, size, mtime, labels, groups


@dataclass
class ShardCatalog:
    """What a sharded library holds, without its vectors: the live rows in library order.

    ``ids[i]`` lives in part ``part[i]`` at row ``row[i]``; ``rows`` maps an id to ``i``.
    """

    ids: list[str] = field(default_factory=list)
    source_size: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    source_mtime: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    rows: dict[str, int] = field(default_factory=dict)
    part: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    row: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    labels: list[str | None] = field(default_factory=list)
    groups: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def unchanged(self, id_: str, size: int, mtime: float) -> bool:
        """Whether ``id_`` is held, embedded from a file of this size and mtime (the incremental check)."""
        i = self.rows.get(id_)
        return i is not None and self.source_size[i] == size and self.source_mtime[i] == mtime

    def live_rows(self, p: int) -> np.ndarray:
        """The live rows of part ``p``, in order (the catalog is sorted by part, then row)."""
        lo, hi = np.searchsorted(self.part, [p, p + 1])
        return self.row[lo:hi].astype(np.int64)


def _catalog(folder: Path, index: dict[str, Any]) -> ShardCatalog:
    """Scan the parts' ids (newest row of an id wins; tombstones drop older rows)."""
    removed: dict[str, int] = index.get("removed", {})
    where: dict[str, tuple[int, int]] = {}
    sizes, mtimes, labels, groups = [], [], [], []
    for p, entry in enumerate(index["parts"]):
        ids, size, mtime, label, group = _part_columns(folder / entry["name"])
        sizes.append(size)
        mtimes.append(mtime)
        labels.append(label)
        groups.append(group)
        for r, id_ in enumerate(ids):
            if removed.get(id_, -1) <= p:
                where.pop(id_, None)  # re-inserted: library order follows the newest row
                where[id_] = (p, r)
    ids = list(where)  # insertion order is (part, row) order: a re-inserted id moved to the end
    loc = np.asarray(list(where.values()), np.int64).reshape(-1, 2)
    cat = ShardCatalog(ids=ids, rows={id_: i for i, id_ in enumerate(ids)},
                       part=loc[:, 0].astype(np.int32), row=loc[:, 1].astype(np.int32))  # fmt: skip
    cat.source_size = np.asarray([sizes[p][r] for p, r in zip(cat.part, cat.row)], np.int64)
    cat.source_mtime = np.asarray([mtimes[p][r] for p, r in zip(cat.part, cat.row)], np.float64)
    cat.labels = [labels[p][r] for p, r in zip(cat.part, cat.row)]
    cat.groups = [groups[p][r] for p, r in zip(cat.part, cat.row)]
    return cat


def read_catalog(folder: str | os.PathLike[str]) -> tuple[dict[str, Any], ShardCatalog]:
    """The index and the :class:`ShardCatalog` of a sharded library."""
    index = read_index(folder)
    return index, _catalog(Path(folder), index)


def load_part(folder: str | os.PathLike[str], entry: dict[str, Any]) -> EmbeddingLibrary:
    """One part, read whole and checked against its sha256 in the index.

    Raises
    ------
    InputError
        Missing, damaged (sha256 differs) or unreadable part — named.
    """
    path = Path(folder) / entry["name"]
    name = display_path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{name}: cannot read this part ({exc.strerror}) — restore it, or re-embed into a new folder") from None
    if entry.get("sha256") and hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise InputError(f"{name}: damaged (its sha256 differs from {INDEX_NAME}) — restore it, or re-embed into a new folder")
    lib = _library_from_npz(io.BytesIO(data), name=name)
    if len(lib) != int(entry.get("tracks", len(lib))):
        raise InputError(f"{name}: holds {len(lib)} tracks, {INDEX_NAME} says {entry['tracks']} — re-embed into a new folder")
    return lib


def _iter_live(folder: Path, index: dict[str, Any], cat: ShardCatalog) -> Iterator[tuple[int, np.ndarray, EmbeddingLibrary]]:
    """``(part number, its live rows, the part restricted to them)`` for each part holding live rows."""
    for p, entry in enumerate(index["parts"]):
        rows = cat.live_rows(p)
        if not len(rows):
            continue
        lib = load_part(folder, entry)
        yield p, rows, (lib if len(rows) == len(lib) else lib.subset(rows))


def iter_shards(folder: str | os.PathLike[str]) -> Iterator[EmbeddingLibrary]:
    """The live rows of a sharded library, one part at a time (memory: one part).

    Raises
    ------
    InputError
        Not a sharded library, or a part is missing or damaged.
    """
    index, cat = read_catalog(folder)
    for _, _, lib in _iter_live(Path(folder), index, cat):
        lib.model = dict(index["model"])
        yield lib


def read_sharded(folder: str | os.PathLike[str]) -> EmbeddingLibrary:
    """A sharded library as one :class:`EmbeddingLibrary` (an id embedded twice: the newest row).

    Raises
    ------
    InputError
        Not a sharded library, or a part is missing or damaged.
    """
    index, cat = read_catalog(folder)
    model = {**index["model"], "dim": int(index.get("dim") or 0)} if index.get("dim") else dict(index["model"])
    vectors = np.empty((len(cat), int(index.get("dim") or 0)), np.float32)  # filled part by part: no 2nd copy
    pieces: list[EmbeddingLibrary] = []
    at = 0
    for _, _, lib in _iter_live(Path(folder), index, cat):
        vectors[at : at + len(lib)] = lib.vectors
        at += len(lib)
        pieces.append(lib)
        lib.vectors = np.zeros((len(lib), 0), np.float32)  # its rows are in `vectors` now
    rest = concat_libraries(pieces, model) if pieces else None
    if rest is None:
        return EmbeddingLibrary(vectors[:0], [], [], [], model)
    return EmbeddingLibrary(vectors[:at], rest.ids, rest.labels, rest.groups, model, rest.source_size,
                            rest.source_mtime, rest.tags, rest.warnings)  # fmt: skip


def shard_space(
    folder: str | os.PathLike[str], groups: int, *, learn: bool = True,
    catalog: tuple[dict[str, Any], ShardCatalog] | None = None, on_note: _NOTE | None = None,
) -> Any:
    """The search space of a library of packed rows (:func:`specmusic.embeddings.adapt.library_space`),
    its statistics streamed over the live rows, one part at a time.

    Cached in ``folder/space.npz`` under the library's fingerprint and the space's settings (not
    written when the folder is read-only), so a search with a current FAISS index reads no part.
    ``learn=False`` (``--no-standardize``): the plain means, nothing read.
    """
    from specmusic.embeddings.adapt import COMPONENTS, MIN_TRACKS, REG, VERSION, Space, SpaceStats, library_space

    folder = Path(folder)
    index = catalog[0] if catalog is not None else read_index(folder)
    cat = catalog[1] if catalog is not None else _catalog(folder, index)
    if not len(cat):
        raise InputError(f"{display_path(folder)}: the library is empty — embed some tracks first")
    if not learn:
        return Space.plain(groups, int(index.get("dim") or 0) // groups, len(cat))
    fingerprint = index.get("fingerprint") or _fingerprint(index["parts"], index["removed"])
    key = f"{fingerprint}:v{VERSION}:g{groups}:c{COMPONENTS}:r{REG}:m{MIN_TRACKS}"
    cache = folder / SPACE_NAME
    try:
        with np.load(cache, allow_pickle=False) as z:
            if str(z["key"]) == key:
                return Space(groups, z["center"], z["matrix"], bool(z["adapted"]), int(z["n"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        pass
    from specmusic.index import _check_finite

    stats = SpaceStats(groups)
    for p, _, lib in _iter_live(folder, index, cat):
        _check_finite(lib.vectors, display_path(folder / index["parts"][p]["name"]), lib.ids)
        stats.add(lib.vectors)
    space = library_space(stats, groups)
    try:
        save_npz_atomic(cache, {"key": np.array(key), "center": space.center, "matrix": space.matrix,
                                "adapted": np.array(space.adapted), "n": np.array(space.n_tracks)})  # fmt: skip
    except OSError as exc:
        if on_note is not None:
            on_note(f"note: could not cache the search space in {display_path(cache)} ({exc.strerror})")
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
    """
    folder = Path(folder)
    index = catalog[0] if catalog is not None else read_index(folder)
    key = index.get("fingerprint") or _fingerprint(index["parts"], index["removed"])
    cache = folder / STATS_NAME
    try:
        with np.load(cache, allow_pickle=False) as z:
            if str(z["fingerprint"]) == key:
                return int(z["n"]), z["mean"].astype(np.float64), z["scale"].astype(np.float64)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        pass
    cat = catalog[1] if catalog is not None else _catalog(folder, index)
    n, mean, m2 = 0, None, None
    for _, _, lib in _iter_live(folder, index, cat):
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
    try:
        save_npz_atomic(cache, {"fingerprint": np.array(key), "n": np.array(n), "mean": mean, "scale": scale})
    except OSError as exc:
        if on_note is not None:
            on_note(f"note: could not cache the column statistics in {display_path(cache)} ({exc.strerror})")
    return n, mean, scale


# -- writing --------------------------------------------------------------------------------
def _lock_folder(folder: Path) -> int:
    """Lock ``folder`` (``flock`` on its descriptor, held until :func:`_unlock`); -1 where there is no flock."""
    if not HAS_FLOCK:  # Windows
        return -1
    fd = os.open(folder, os.O_RDONLY)
    if not lock_fd(fd, wait=False):
        os.close(fd)
        raise InputError(
            f"another `specmusic` process is writing {display_path(folder)} — wait for it to finish, or give another -o"
        )
    return fd


def _unlock(fd: int) -> None:
    if fd >= 0:
        os.close(fd)  # closing releases the lock


def _part_entry(path: Path, tracks: int) -> dict[str, Any]:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"name": path.name, "tracks": int(tracks), "bytes": path.stat().st_size, "sha256": digest}


def _discard(folder: Path) -> None:
    """Delete a library's parts and derived files (``--force`` or another model)."""
    for f in folder.iterdir():
        if _PART.match(f.name) or f.name in (STATS_NAME, SPACE_NAME, "index.faiss"):
            f.unlink(missing_ok=True)


def _number(name: str) -> int:
    m = _PART.match(name)
    return int(m.group(1)) if m else -1


def _adopt(folder: Path, index: dict[str, Any], on_note: _NOTE | None) -> None:
    """List complete parts written just before a crash (numbered after the last listed part); delete
    leftovers: temporary files, and unlisted parts numbered below it (an interrupted :func:`compact`)."""
    listed = {p["name"] for p in index["parts"]}
    top = max((_number(n) for n in listed), default=-1)
    for f in sorted(folder.iterdir(), key=lambda f: f.name):
        if f.name.startswith((".part-", f".{INDEX_NAME}.")) and f.name.endswith(".tmp"):
            f.unlink(missing_ok=True)
        elif _PART.match(f.name) and f.name not in listed and _number(f.name) < top:
            f.unlink(missing_ok=True)
    for f in sorted(folder.iterdir(), key=lambda f: f.name):
        if not _PART.match(f.name) or f.name in listed:
            continue
        try:
            lib = _library_from_npz(f)
            ok = same_model(lib.model, index["model"]) or not index["model"]
        except InputError:
            ok = False
        if not ok:
            if on_note is not None:
                on_note(f"note: ignoring {display_path(f)}, not listed in {INDEX_NAME} and unreadable or from another model")
            continue
        index["parts"].append(_part_entry(f, len(lib)))
        if not index["model"]:
            index["model"] = dict(lib.model)
            index["dim"] = lib.dim
        if on_note is not None:
            on_note(f"note: kept {display_path(f)} ({len(lib)} tracks), written just before an interruption")


class ShardedLibraryWriter:
    """Append tracks to a sharded library, one part at a time (see the module docstring).

    Open with :meth:`open`; :attr:`catalog` says what the folder already holds (for the
    incremental check); :meth:`add` buffers one finished track; :meth:`remove` drops ids;
    :meth:`finish` (or :meth:`close`, on an interruption) writes what is buffered.
    """

    def __init__(self, folder: Path, fd: int, index: dict[str, Any], catalog: ShardCatalog, *,
                 shard_size: int, flush_seconds: float) -> None:  # fmt: skip
        self.folder, self.catalog = folder, catalog
        self.added = 0
        self._fd: int | None = fd
        self._index = index
        self._shard_size, self._flush_seconds = max(1, int(shard_size)), float(flush_seconds)
        self._buffer: dict[str, tuple[dict[str, Any], np.ndarray]] = {}
        self._live: set[str] = set(catalog.ids)
        self._dirty = False
        self._next = 1 + max((_number(p["name"]) for p in index["parts"]), default=-1)
        self._clock = time.monotonic
        self._flushed = self._clock()

    @classmethod
    def open(
        cls,
        folder: str | os.PathLike[str],
        model: dict[str, Any],
        *,
        fresh: bool = False,
        shard_size: int = 1024,
        flush_seconds: float = 60.0,
        on_note: _NOTE | None = None,
    ) -> ShardedLibraryWriter:
        """Create or reopen ``folder`` and lock it.

        Parameters
        ----------
        model : the embedder's description; a library made by another model is refused (``fresh`` replaces it)
        fresh : discard what the folder holds (``embed --force``)
        shard_size, flush_seconds : write a part every ``shard_size`` tracks or ``flush_seconds``

        Raises
        ------
        InputError
            Another process holds the folder; the folder holds something that is not a sharded
            library; it was made by another model (without ``fresh``); a listed part is unreadable.
        """
        path = Path(folder)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create {display_path(path)} ({exc.strerror}) — choose a writable -o") from None
        fd = _lock_folder(path)
        try:
            index = read_index(path) if (path / INDEX_NAME).exists() else None
            if index is None and any(path.iterdir()) and not any(_PART.match(f.name) for f in path.iterdir()):
                raise InputError(f"{display_path(path)}: a folder that is not a sharded library — give an empty or new folder with -o")
            if index is None:
                index = {**_empty_index({}), "model": {}}
            if fresh:
                _discard(path)
                index = _empty_index(model)
            _adopt(path, index, on_note)
            if index["model"] and not same_model(index["model"], model):
                # Refused rather than discarded: a mistyped --model must not wipe a library of millions.
                made_by = model_label(index["model"])
                raise InputError(
                    f"{display_path(path)} was made by another model ({made_by}, or other settings) — give --force "
                    "to replace it, or another -o"
                )
            if not index["model"]:
                index["model"] = dict(model)
            _write_index(path, index)
            catalog = _catalog(path, index)
        except BaseException:
            _unlock(fd)
            raise
        if len(catalog) and on_note is not None:
            on_note(f"note: {display_path(path)} holds {len(catalog)} track(s) in {len(index['parts'])} part(s)")
        return cls(path, fd, index, catalog, shard_size=shard_size, flush_seconds=flush_seconds)

    @property
    def kept(self) -> int:
        """Tracks the library holds now (written parts and the buffer)."""
        return len(self._live)

    def add(self, record: dict[str, Any], vector: np.ndarray) -> None:
        """Buffer one finished track (a :func:`~specmusic.embeddings.library.track_record` and its
        L2-normalised vector); a part is written every ``shard_size`` tracks or ``flush_seconds``."""
        id_ = str(record["id"])
        if not self._buffer:
            self._flushed = self._clock()  # flush_seconds counts from the oldest buffered track
        self._buffer.pop(id_, None)
        self._buffer[id_] = (dict(record), np.asarray(vector, np.float32).reshape(-1))
        self._live.add(id_)
        self.added += 1
        if len(self._buffer) >= self._shard_size or self._clock() - self._flushed >= self._flush_seconds:
            self.flush()

    def remove(self, ids: Sequence[str] | set[str]) -> None:
        """Drop every row of ``ids`` (written or buffered); recorded as tombstones at the next write."""
        ids = [str(i) for i in ids]
        position = len(self._index["parts"])
        for id_ in ids:
            self._buffer.pop(id_, None)
            if id_ in self._live:
                self._live.discard(id_)
                self._index["removed"][id_] = position
                self._dirty = True

    def flush(self) -> None:
        """Write the buffered tracks as a part, then the index (both atomically)."""
        self._flushed = self._clock()
        if not self._buffer:
            if self._dirty:
                _write_index(self.folder, self._index)
                self._dirty = False
            return
        lib = _buffer_library(list(self._buffer.values()), self._index["model"])
        path = self.folder / part_name(self._next)
        save_library(lib, path)
        if not self._index.get("dim"):
            self._index["dim"] = lib.dim
            self._index["model"] = {**self._index["model"], "dim": lib.dim}
        self._index["parts"].append(_part_entry(path, len(lib)))
        self._next += 1
        self._buffer.clear()
        _write_index(self.folder, self._index)
        self._dirty = False

    def finish(self) -> None:
        """Write what is buffered and the final index, then release the folder."""
        self.close()

    def close(self) -> None:
        """Write what is buffered (an interruption keeps it too) and release the folder."""
        if self._fd is None:
            return
        try:
            self.flush()
        finally:
            _unlock(self._fd)
            self._fd = None


def _buffer_library(rows: list[tuple[dict[str, Any], np.ndarray]], model: dict[str, Any]) -> EmbeddingLibrary:
    """The buffered records as a library (one part)."""
    vectors = np.stack([v for _, v in rows]).astype(np.float32)
    recs = [r for r, _ in rows]
    tags: list[Tags | None] = [r.get("tags") or None for r in recs]
    return EmbeddingLibrary(
        vectors, [str(r["id"]) for r in recs], [r.get("label") for r in recs], [r.get("group") for r in recs],
        {**model, "dim": int(vectors.shape[1])},
        np.asarray([int(r.get("source_size", -1)) for r in recs], np.int64),
        np.asarray([float(r.get("source_mtime", np.nan)) for r in recs], np.float64),
        tags, [list(r.get("warnings") or []) for r in recs],
    )  # fmt: skip


def compact(folder: str | os.PathLike[str], *, shard_size: int = 1024, on_note: _NOTE | None = None) -> int:
    """Rewrite the live rows into fresh parts (dropping dead rows and tombstones); returns the parts written.

    Holds the folder's lock; the new parts are numbered after the old ones and the new index is
    written before the old parts are deleted, so an interruption leaves either library whole (old
    parts no longer listed are deleted when a writer next opens the folder).
    """
    path = Path(folder)
    fd = _lock_folder(path)
    try:
        index, cat = read_catalog(path)
        old = [p["name"] for p in index["parts"]]
        start = 1 + max((_number(n) for n in old), default=-1)
        new = {**index, "parts": [], "removed": {}}
        new.pop("ann", None)
        buf: list[EmbeddingLibrary] = []
        for _, _, lib in _iter_live(path, index, cat):
            buf.append(lib)
            while sum(len(b) for b in buf) >= shard_size:
                start = _write_compacted(path, new, buf, shard_size, start)
        while buf:
            start = _write_compacted(path, new, buf, shard_size, start)
        _write_index(path, new)
        for name in old:
            (path / name).unlink(missing_ok=True)
        (path / "index.faiss").unlink(missing_ok=True)
        if on_note is not None:
            on_note(f"note: compacted {display_path(path)}: {len(old)} part(s) → {len(new['parts'])}")
        return len(new["parts"])
    finally:
        _unlock(fd)


def _write_compacted(path: Path, index: dict[str, Any], buf: list[EmbeddingLibrary], size: int, number: int) -> int:
    whole = concat_libraries(buf, index["model"])
    head, rest = whole.subset(np.arange(min(size, len(whole)))), whole.subset(np.arange(min(size, len(whole)), len(whole)))
    buf.clear()
    if len(rest):
        buf.append(rest)
    target = path / part_name(number)
    save_library(head, target)
    index["parts"].append(_part_entry(target, len(head)))
    return number + 1

