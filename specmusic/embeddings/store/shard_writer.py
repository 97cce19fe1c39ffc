"""Writing a sharded library (:mod:`~specmusic.embeddings.store.shard_catalog` describes the folder):
:class:`ShardedLibraryWriter` appends tracks part by part, :func:`compact` rewrites the live rows.

Defaults (one block)::

    shard_size     = 1024   # tracks per part
    flush_seconds  = 60.0   # also write a part when this long has passed since the last one
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from specmusic.embeddings.description import ModelDescription
from specmusic.embeddings.records import Tags
from specmusic.embeddings.store.library import EmbeddingLibrary, concat_libraries, read_npz_library, save_library
from specmusic.embeddings.store.shard_catalog import (
    INDEX_NAME,
    PART_PATTERN,
    SHARD_FORMAT,
    SHARD_FORMAT_VERSION,
    SPACE_NAME,
    STATS_NAME,
    ShardCatalog,
    index_model,
    iter_live_parts,
    lock_folder,
    part_name,
    part_number,
    part_path,
    read_catalog,
    read_index,
    scan_catalog,
    unlock_folder,
    write_index,
)
from specmusic.errors import InputError
from specmusic.fileio import deferred_interrupts, display_path, sha256_file
from specmusic.metadata import TrackMetadata

__all__ = ["ShardedLibraryWriter", "compact"]

_NOTE = Callable[[str], None]


def _empty_index(model: ModelDescription) -> dict[str, Any]:
    return {"format": SHARD_FORMAT, "format_version": SHARD_FORMAT_VERSION, "model": model.to_dict(),
            "dim": int(model.dim or 0), "parts": [], "removed": {}}  # fmt: skip


def _part_entry(path: Path, tracks: int) -> dict[str, Any]:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"name": path.name, "tracks": int(tracks), "bytes": path.stat().st_size, "sha256": digest}


def _discard(folder: Path) -> None:
    """Delete a library's parts and derived files (``--force`` or another model)."""
    for f in folder.iterdir():
        if PART_PATTERN.match(f.name) or f.name in (STATS_NAME, SPACE_NAME, "index.faiss"):
            f.unlink(missing_ok=True)


def _adopt(folder: Path, index: dict[str, Any], on_note: _NOTE | None) -> None:
    """List complete parts written just before a crash (numbered after the last listed part); delete
    leftovers: temporary files, and unlisted parts numbered below it (an interrupted :func:`compact`)."""
    listed = {p["name"] for p in index["parts"]}
    top = max((part_number(n) for n in listed), default=-1)
    for f in sorted(folder.iterdir(), key=lambda f: f.name):
        if f.name.startswith((".part-", f".{INDEX_NAME}.")) and f.name.endswith(".tmp"):
            f.unlink(missing_ok=True)
        elif PART_PATTERN.match(f.name) and f.name not in listed and part_number(f.name) < top:
            f.unlink(missing_ok=True)
    for f in sorted(folder.iterdir(), key=lambda f: f.name):
        if not PART_PATTERN.match(f.name) or f.name in listed:
            continue
        try:
            lib = read_npz_library(f)
            held = index_model(index)
            ok = lib.model.same_as(held) or not held.recorded
        except InputError:
            ok = False
        if not ok:
            if on_note is not None:
                on_note(f"note: ignoring {display_path(f)}, not listed in {INDEX_NAME} and unreadable or from another model")
            continue
        index["parts"].append(_part_entry(f, len(lib)))
        if not held.recorded:
            index["model"] = lib.model.to_dict()
            index["dim"] = lib.dim
        if on_note is not None:
            on_note(f"note: kept {display_path(f)} ({len(lib)} tracks), written just before an interruption")


def _part_damage(path: Path, entry: dict[str, Any]) -> str | None:
    """Why a listed part cannot be trusted (its bytes differ from its sha256 in the index), or None. A missing
    or unreadable file is left to the catalog's scan, which refuses it (a folder not mounted is no damage)."""
    if not entry.get("sha256") or not path.is_file():
        return None
    try:
        digest = sha256_file(path)
    except OSError:
        return None
    return None if digest == entry["sha256"] else f"its sha256 differs from {INDEX_NAME}"


def _set_aside_damaged(folder: Path, index: dict[str, Any], on_note: _NOTE | None) -> None:
    """Unlist each damaged part (:func:`_part_damage`), renamed ``part-NNNNN.npz.damaged`` (kept, never read):
    its tracks are no longer held, so this run embeds them again (when they are among its inputs).
    Tombstones after it move down one part, as the parts do."""
    q = 0
    while q < len(index["parts"]):
        entry = index["parts"][q]
        path = part_path(folder, entry)
        why = _part_damage(path, entry)
        if why is None:
            q += 1
            continue
        aside = path.with_name(path.name + ".damaged")
        os.replace(path, aside)
        del index["parts"][q]
        index["removed"] = {id_: p - 1 if p > q else p for id_, p in index["removed"].items()}
        index.pop("ann", None)
        if on_note is not None:
            on_note(f"warning: {display_path(path)}: damaged ({why}) — set aside as {display_path(aside.name)}; "
                    f"its {entry.get('tracks', '?')} track(s) are embedded again when they are among the inputs")


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
        self._next = 1 + max((part_number(p["name"]) for p in index["parts"]), default=-1)
        self._clock = time.monotonic
        self._flushed = self._clock()

    @classmethod
    def open(
        cls,
        folder: str | os.PathLike[str],
        model: ModelDescription,
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
        fd = lock_folder(path)
        try:
            index = read_index(path) if (path / INDEX_NAME).exists() else None
            if index is None and any(path.iterdir()) and not any(PART_PATTERN.match(f.name) for f in path.iterdir()):
                raise InputError(f"{display_path(path)}: a folder that is not a sharded library — give an empty or new folder with -o")
            if index is None:
                index = _empty_index(ModelDescription())
            if fresh:
                _discard(path)
                index = _empty_index(model)
            _adopt(path, index, on_note)
            _set_aside_damaged(path, index, on_note)  # as recommend refuses them: embed replaces their tracks
            made_by = index_model(index)
            if made_by.recorded and not made_by.same_as(model):
                # Refused rather than discarded: a mistyped --model must not wipe a library of millions.
                raise InputError(
                    f"{display_path(path)} was made by another model ({made_by.label}, or other settings) — give --force "
                    "to replace it, or another -o"
                )
            if not made_by.recorded:
                index["model"] = model.to_dict()
            write_index(path, index)
            catalog = scan_catalog(path, index)
        except BaseException:
            unlock_folder(fd)
            raise
        if len(catalog) and on_note is not None:
            on_note(f"note: {display_path(path)} holds {len(catalog)} track(s) in {len(index['parts'])} part(s)")
        return cls(path, fd, index, catalog, shard_size=shard_size, flush_seconds=flush_seconds)

    @property
    def kept(self) -> int:
        """Tracks the library holds now (written parts and the buffer)."""
        return len(self._live)

    def add(self, record: dict[str, Any], vector: np.ndarray) -> None:
        """Buffer one finished track (a :func:`~specmusic.embeddings.store.library.track_record` and its
        L2-normalised vector); a part is written every ``shard_size`` tracks or ``flush_seconds``."""
        id_ = str(record["id"])
        row = (dict(record), np.asarray(vector, np.float32).reshape(-1))
        if not self._buffer:
            self._flushed = self._clock()  # flush_seconds counts from the oldest buffered track
        with deferred_interrupts():  # buffered and counted together (close() writes the buffer): kept is exact
            self._buffer.pop(id_, None)
            self._buffer[id_] = row
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
                write_index(self.folder, self._index)
                self._dirty = False
            return
        lib = _buffer_library(list(self._buffer.values()), index_model(self._index))
        path = self.folder / part_name(self._next)
        save_library(lib, path)
        entry = _part_entry(path, len(lib))
        with deferred_interrupts():  # listed once and the buffer emptied, or neither (close() would list it twice)
            if not self._index.get("dim"):
                self._index["dim"] = lib.dim
                self._index["model"] = index_model(self._index).with_dim(lib.dim).to_dict()
            self._index["parts"].append(entry)
            self._next += 1
            self._buffer.clear()
        write_index(self.folder, self._index)
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
            unlock_folder(self._fd)
            self._fd = None


def _buffer_library(rows: list[tuple[dict[str, Any], np.ndarray]], model: ModelDescription) -> EmbeddingLibrary:
    """The buffered records as a library (one part)."""
    vectors = np.stack([v for _, v in rows]).astype(np.float32)
    recs = [r for r, _ in rows]
    tags: list[Tags | None] = [r.get("tags") or None for r in recs]
    metadata = [TrackMetadata.from_dict(r["metadata"]) if r.get("metadata") else None for r in recs]
    return EmbeddingLibrary(
        vectors, [str(r["id"]) for r in recs], [r.get("label") for r in recs], [r.get("group") for r in recs],
        model.with_dim(int(vectors.shape[1])),
        np.asarray([int(r.get("source_size", -1)) for r in recs], np.int64),
        np.asarray([float(r.get("source_mtime", np.nan)) for r in recs], np.float64),
        tags, [list(r.get("warnings") or []) for r in recs], metadata,
    )  # fmt: skip


def compact(folder: str | os.PathLike[str], *, shard_size: int = 1024, on_note: _NOTE | None = None) -> int:
    """Rewrite the live rows into fresh parts (dropping dead rows and tombstones); returns the parts written.

    Holds the folder's lock; the new parts are numbered after the old ones and the new index is
    written before the old parts are deleted, so an interruption leaves either library whole (old
    parts no longer listed are deleted when a writer next opens the folder).
    """
    path = Path(folder)
    fd = lock_folder(path)
    try:
        index, cat = read_catalog(path)
        old = [p["name"] for p in index["parts"]]
        start = 1 + max((part_number(n) for n in old), default=-1)
        new = {**index, "parts": [], "removed": {}}
        new.pop("ann", None)
        buf: list[EmbeddingLibrary] = []
        for _, _, lib in iter_live_parts(path, index, cat):
            buf.append(lib)
            while sum(len(b) for b in buf) >= shard_size:
                start = _write_compacted(path, new, buf, shard_size, start)
        while buf:
            start = _write_compacted(path, new, buf, shard_size, start)
        write_index(path, new)
        for name in old:
            (path / name).unlink(missing_ok=True)
        (path / "index.faiss").unlink(missing_ok=True)
        if on_note is not None:
            on_note(f"note: compacted {display_path(path)}: {len(old)} part(s) → {len(new['parts'])}")
        return len(new["parts"])
    finally:
        unlock_folder(fd)


def _write_compacted(path: Path, index: dict[str, Any], buf: list[EmbeddingLibrary], size: int, number: int) -> int:
    whole = concat_libraries(buf, index_model(index))
    head, rest = whole.subset(np.arange(min(size, len(whole)))), whole.subset(np.arange(min(size, len(whole)), len(whole)))
    buf.clear()
    if len(rest):
        buf.append(rest)
    target = path / part_name(number)
    save_library(head, target)
    index["parts"].append(_part_entry(target, len(head)))
    return number + 1
