"""A library that grows in shards: ``library/`` holds ``part-NNNNN.npz`` files and an ``index.json``.

``embed -o library/`` writes each batch of finished tracks as one *part* (a regular library
``.npz``, :func:`~specmusic.embeddings.store.library.save_library`, written atomically) and then rewrites
``index.json`` atomically, so whatever was finished before a crash, a kill or Ctrl-C is kept and a
rerun embeds only the rest. Readers never lock: a part is never rewritten once listed (append-only,
except :func:`~specmusic.embeddings.store.shard_writer.compact`), and a reader sees either the old or the new ``index.json``.

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
    library/index.faiss     see :mod:`specmusic.embeddings.store.shard_index`

Which rows are live (the library's content): parts are read in order and **the newest row of an
id wins** (a changed file re-embedded is simply appended to a later part). A removed id
(``--prune``) gets a tombstone ``removed[id] = P``: its rows in parts ``0 .. P-1`` are dead; a row
in part ``P`` or later (the id embedded again afterwards) is live. So removal never rewrites a part,
and the order of events is kept without per-row bookkeeping. :func:`~specmusic.embeddings.store.shard_writer.compact`
rewrites the live rows into fresh parts and clears the tombstones.

Crash safety: a part is written (temporary file + rename) before the index lists it. A part found
on disk but missing from the index (the process died between the two renames) is *adopted* when
readable and made by the same model; leftover temporary files are deleted. The folder is locked
(``flock`` on the folder itself) while a writer holds it: one writer at a time. Every part read
whole is checked against its sha256, so a damaged part is named in a one-line error.

Memory: a writer keeps the ids and two numbers per track (the :class:`ShardCatalog`, for the
incremental check) and the tracks buffered for the next part; readers stream one part at a time
(:func:`iter_shards`) or, for :func:`read_sharded`, build the whole library.

This module reads the folder and holds what every user of it shares (the index, the catalog of
live rows, the folder's lock); :mod:`~specmusic.embeddings.store.shard_writer` writes it and
:mod:`~specmusic.embeddings.store.shard_stats` streams its column statistics and learnt space.
"""


from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from specmusic.embeddings.description import ModelDescription
from specmusic.embeddings.store.library import EmbeddingLibrary, concat_libraries, read_npz_library
from specmusic.errors import InputError
from specmusic.fileio import HAS_FLOCK, display_path, lock_fd, numpy_load_reason, printable_text, write_json_atomic

__all__ = [
    "INDEX_NAME",
    "PART_PATTERN",
    "SHARD_FORMAT",
    "SHARD_FORMAT_VERSION",
    "SPACE_NAME",
    "STATS_NAME",
    "ShardCatalog",
    "index_fingerprint",
    "index_model",
    "is_sharded",
    "iter_live_parts",
    "iter_shards",
    "load_part",
    "lock_folder",
    "part_name",
    "part_path",
    "part_number",
    "read_catalog",
    "read_index",
    "read_sharded",
    "scan_catalog",
    "unlock_folder",
    "write_index",
]

INDEX_NAME = "index.json"
SHARD_FORMAT = "specmusic-sharded-library"
SHARD_FORMAT_VERSION = 1
STATS_NAME = "stats.npz"
SPACE_NAME = "space.npz"  # the learnt search space of a library of packed rows (adapt)
PART_PATTERN = re.compile(r"^part-(\d{5,})\.npz$")


def is_sharded(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a sharded library: an existing folder, or a path ending in ``/``."""
    p = os.fspath(path)
    return p.endswith(("/", os.sep)) or os.path.isdir(p)


def part_name(number: int) -> str:
    """The file name of part ``number``: ``part-00042.npz``."""
    return f"part-{number:05d}.npz"


def part_number(name: str) -> int:
    """The number of the part file ``name`` (``part-00042.npz``: 42), or -1 when it names no part."""
    m = PART_PATTERN.match(name)
    return int(m.group(1)) if m else -1


def _fingerprint(parts: list[dict[str, Any]], removed: dict[str, int]) -> str:
    text = json.dumps({"parts": [(p["name"], p["sha256"]) for p in parts], "removed": removed}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def index_fingerprint(index: dict[str, Any]) -> str:
    """What the library holds, as a digest of its parts and tombstones (the index's own, else computed)."""
    return index.get("fingerprint") or _fingerprint(index["parts"], index["removed"])


def index_model(index: dict[str, Any]) -> ModelDescription:
    """The model that made the library, as its index records it."""
    return ModelDescription.from_dict(index.get("model") or None)


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
        index = json.loads(path.read_text(encoding="utf-8-sig"))  # a byte-order mark is no damage
    except (OSError, ValueError, RecursionError) as exc:
        why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise InputError(f"{name}: unreadable ({why}) — restore it or re-embed into a new folder") from None
    if not isinstance(index, dict) or index.get("format") != SHARD_FORMAT or not isinstance(index.get("parts"), list):
        raise InputError(f"{name}: not a sharded library index — re-embed into a new folder")
    if int(index.get("format_version", 1)) > SHARD_FORMAT_VERSION:
        raise InputError(f"{name}: sharded library format {index['format_version']} is newer than this specmusic — upgrade")
    for entry in index["parts"]:
        part_path(folder, entry)  # each part a file of this folder, checked before any is read or written
    index.setdefault("removed", {})
    return index


def part_path(folder: str | os.PathLike[str], entry: dict[str, Any]) -> Path:
    """Where the part an index entry names lies: ``folder/part-NNNNN.npz``, never outside ``folder``.

    Raises
    ------
    InputError
        The entry names no part file (``../x.npz``, an absolute path, a sub-folder), or the part is a
        symbolic link to a file outside the folder.
    """
    index_name = display_path(Path(folder) / INDEX_NAME)
    name = entry.get("name") if isinstance(entry, dict) else None
    if not isinstance(name, str) or not PART_PATTERN.match(name):
        raise InputError(
            f"{index_name}: lists a part named {printable_text(repr(name))}, not a file of the library's folder "
            "(part-NNNNN.npz) — restore index.json, or re-embed into a new folder"
        )
    path = Path(folder) / name
    if path.is_symlink():
        real, root = os.path.realpath(path), os.path.realpath(folder)
        if not real.startswith(root.rstrip(os.sep) + os.sep):
            raise InputError(
                f"{display_path(path)}: a link to {display_path(real)}, outside the library's folder — copy the part "
                "into the folder, or re-embed into a new folder"
            )
    return path


def write_index(folder: Path, index: dict[str, Any]) -> None:
    """Write ``folder/index.json`` (atomically), its fingerprint brought up to date."""
    index["fingerprint"] = _fingerprint(index["parts"], index["removed"])
    write_json_atomic(folder / INDEX_NAME, index)


def lock_folder(folder: Path) -> int:
    """Lock ``folder`` (``flock`` on its descriptor, held until :func:`unlock_folder`); -1 where there is no flock.

    Raises
    ------
    InputError
        Another process holds the folder.
    """
    if not HAS_FLOCK:  # Windows
        return -1
    fd = os.open(folder, os.O_RDONLY)
    if not lock_fd(fd, wait=False):
        os.close(fd)
        raise InputError(
            f"another `specmusic` process is writing {display_path(folder)} — wait for it to finish, or give another -o"
        )
    return fd


def unlock_folder(fd: int) -> None:
    """Release a lock :func:`lock_folder` took."""
    if fd >= 0:
        os.close(fd)  # closing releases the lock


# -- reading --------------------------------------------------------------------------------
def _part_columns(
    path: Path,
) -> tuple[list[str], np.ndarray, np.ndarray, list[str | None], list[str | None], np.ndarray]:
    """A part's ids, source sizes and mtimes, labels and groups, and which rows keep tags, without reading
    its vectors."""

    def text(z: Any, key: str, n: int) -> list[str | None]:
        return [str(v) or None for v in z[key]] if key in z.files else [None] * n

    try:
        with np.load(path, allow_pickle=False) as z:
            ids = [str(s) for s in z["ids"]]
            size = z["source_size"].astype(np.int64) if "source_size" in z.files else np.full(len(ids), -1, np.int64)
            mtime = z["source_mtime"].astype(np.float64) if "source_mtime" in z.files else np.full(len(ids), np.nan)
            labels, groups = text(z, "labels", len(ids)), text(z, "groups", len(ids))
            has_meta = z["meta_source"] != "" if "meta_source" in z.files else np.zeros(len(ids), bool)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        reason = numpy_load_reason(exc, path)
        raise InputError(
            f"{display_path(path)}: cannot read this part ({reason}) — the part is damaged; restore it, or re-embed "
            "into a new folder"
        ) from None
    if len({len(ids), len(size), len(mtime), len(labels), len(groups), len(has_meta)}) != 1:
        raise InputError(f"{display_path(path)}: fields of different lengths — the part is damaged; re-embed")
    return ids, size, mtime, labels, groups, np.asarray(has_meta, bool)


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
    has_metadata: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # the row keeps its tags

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


def scan_catalog(folder: Path, index: dict[str, Any]) -> ShardCatalog:
    """The :class:`ShardCatalog` of the parts ``index`` lists: their ids scanned (newest row of an id wins;
    tombstones drop older rows), not their vectors."""
    removed: dict[str, int] = index.get("removed", {})
    where: dict[str, tuple[int, int]] = {}
    sizes, mtimes, labels, groups, metas = [], [], [], [], []
    for p, entry in enumerate(index["parts"]):
        ids, size, mtime, label, group, meta = _part_columns(part_path(folder, entry))
        metas.append(meta)
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
    cat.has_metadata = np.asarray([metas[p][r] for p, r in zip(cat.part, cat.row)], bool)
    return cat


def read_catalog(folder: str | os.PathLike[str]) -> tuple[dict[str, Any], ShardCatalog]:
    """The index and the :class:`ShardCatalog` of a sharded library."""
    index = read_index(folder)
    return index, scan_catalog(Path(folder), index)


def load_part(folder: str | os.PathLike[str], entry: dict[str, Any]) -> EmbeddingLibrary:
    """One part, read whole and checked against its sha256 in the index.

    Raises
    ------
    InputError
        Missing, damaged (sha256 differs) or unreadable part — named.
    """
    path = part_path(folder, entry)
    name = display_path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{name}: cannot read this part ({exc.strerror}) — restore it, or re-embed into a new folder") from None
    if entry.get("sha256") and hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise InputError(f"{name}: damaged (its sha256 differs from {INDEX_NAME}) — restore it, or re-embed into a new folder")
    lib = read_npz_library(io.BytesIO(data), name=name)
    if len(lib) != int(entry.get("tracks", len(lib))):
        raise InputError(f"{name}: holds {len(lib)} tracks, {INDEX_NAME} says {entry['tracks']} — re-embed into a new folder")
    return lib


def iter_live_parts(
    folder: Path, index: dict[str, Any], cat: ShardCatalog
) -> Iterator[tuple[int, np.ndarray, EmbeddingLibrary]]:
    """``(part number, its live rows, the part restricted to them)`` for each part holding live rows
    (memory: one part)."""
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
    for _, _, lib in iter_live_parts(Path(folder), index, cat):
        lib.model = index_model(index)
        yield lib


def read_sharded(folder: str | os.PathLike[str]) -> EmbeddingLibrary:
    """A sharded library as one :class:`EmbeddingLibrary` (an id embedded twice: the newest row).

    Raises
    ------
    InputError
        Not a sharded library, or a part is missing or damaged.
    """
    index, cat = read_catalog(folder)
    model = index_model(index)
    if index.get("dim"):
        model.dim = int(index["dim"])
    vectors = np.empty((len(cat), int(index.get("dim") or 0)), np.float32)  # filled part by part: no 2nd copy
    pieces: list[EmbeddingLibrary] = []
    at = 0
    for _, _, lib in iter_live_parts(Path(folder), index, cat):
        vectors[at : at + len(lib)] = lib.vectors
        at += len(lib)
        pieces.append(lib)
        lib.vectors = np.zeros((len(lib), 0), np.float32)  # its rows are in `vectors` now
    rest = concat_libraries(pieces, model) if pieces else None
    if rest is None:
        return EmbeddingLibrary(vectors[:0], [], [], [], model)
    return EmbeddingLibrary(vectors[:at], rest.ids, rest.labels, rest.groups, model, rest.source_size,
                            rest.source_mtime, rest.tags, rest.warnings, rest.metadata)  # fmt: skip
