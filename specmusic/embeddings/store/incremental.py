"""Embedding a collection into a library, re-embedding only new and changed files.

Each newly embedded track is handed to ``on_embedded`` as soon as it is done (``embed`` appends it
to the run's journal, :mod:`specmusic.embeddings.store.journal`, or streams it to stdout), so an
interrupted run loses at most the tracks in progress; the records of an interrupted run
(``resumed``) are reused like those of the library being updated.

Which tracks need embedding is decided here, in the client (path, size and modification time
against the library); only those are handed to :mod:`specmusic.batch`: in this process, on
``jobs`` local processes or on a Dask cluster (``cluster``). A worker rebuilds the embedder from
its JSON description once per process (:func:`_embed_task`; ONNX sessions cannot be pickled) and
runs it on one thread. Tracks finish in any order; the library's rows are put back in input order
at the end, so every mode gives the same library. :func:`embed_into_shards` does the same into a
sharded library folder (:mod:`specmusic.embeddings.store.shard_writer`) without holding the vectors
in memory. Both walk the tracks in one loop (:func:`_embed_missing`): stat each file, keep it when
the destination (a *sink*) holds it unchanged, embed the rest and hand each to the sink.

Each embedded track's tags are read beside its vector (:func:`specmusic.metadata.read_metadata`:
headers only; a broken tag is a ``warning:``, never a failure). An unchanged track kept from a library
written before tags were kept has its tags read then (no audio is decoded): rerunning ``embed`` on the
same inputs fills in the library's tag columns (``EmbedReport.tags_read``).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from specmusic.data import Track
from specmusic.embeddings.description import ModelDescription
from specmusic.embeddings.embedders import Embedder, embedder_from_description
from specmusic.embeddings.records import Tags
from specmusic.embeddings.store.library import EmbeddingLibrary, track_record
from specmusic.embeddings.store.shard_catalog import load_part, read_index
from specmusic.embeddings.store.shard_writer import ShardedLibraryWriter
from specmusic.errors import InputError, ModelError
from specmusic.fileio import display_path
from specmusic.index import l2_normalize
from specmusic.metadata import TrackMetadata, read_metadata

__all__ = ["EmbedReport", "embed_into_shards", "embed_tracks"]


@dataclass
class EmbedReport:
    """What an embed run did."""

    embedded: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)  # unchanged since the library was written
    failed: list[dict[str, str]] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)  # embedded by an interrupted earlier run
    flagged: list[str] = field(default_factory=list)  # embedded now, with warnings (silence, …)
    tags_read: list[str] = field(default_factory=list)  # unchanged, kept without tags: their tags read now

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failed


@dataclass
class _Rows:
    """The library being built, one track at a time."""

    vectors: list[np.ndarray] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    labels: list[str | None] = field(default_factory=list)
    groups: list[str | None] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    mtimes: list[float] = field(default_factory=list)
    tags: list[Tags | None] = field(default_factory=list)
    warnings: list[list[str]] = field(default_factory=list)
    metadata: list[TrackMetadata | None] = field(default_factory=list)
    order: list[int] = field(default_factory=list)  # where each row goes in the library (input order)

    def add(
        self, vec: np.ndarray, id_: str, label: str | None, group: str | None, size: int, mtime: float,
        tags: Tags | None, warnings: list[str], order: int = -1, metadata: TrackMetadata | None = None,
    ) -> None:  # fmt: skip
        self.order.append(order if order >= 0 else len(self.order) + (1 << 40))
        self.vectors.append(vec)
        self.ids.append(id_)
        self.labels.append(label)
        self.groups.append(group)
        self.sizes.append(size)
        self.mtimes.append(mtime)
        self.tags.append(tags)
        self.warnings.append(warnings)
        self.metadata.append(metadata)

    def add_from(
        self, library: EmbeddingLibrary, j: int, track: Track | None = None, order: int = -1,
        metadata: TrackMetadata | None = None,
    ) -> None:  # fmt: skip
        """Row ``j`` of ``library``; with ``track``, under its id, label and group; ``metadata`` for its own."""
        assert library.tags is not None and library.warnings is not None and library.metadata is not None
        id_, label, group = (track.path, track.label, track.group) if track else (
            library.ids[j], library.labels[j], library.groups[j]
        )
        self.add(
            library.vectors[j], id_, label, group, int(library.source_size[j]), float(library.source_mtime[j]),
            library.tags[j], library.warnings[j], order, metadata if metadata is not None else library.metadata[j],
        )  # fmt: skip

    def record(self, i: int) -> dict[str, Any]:
        """Row ``i`` as a JSON Lines record without its vector (:func:`track_record`)."""
        return track_record(
            self.ids[i], self.labels[i], self.groups[i], self.sizes[i], self.mtimes[i], self.tags[i], self.warnings[i],
            self.metadata[i],
        )  # fmt: skip

    def library(self, description: ModelDescription) -> EmbeddingLibrary:
        """The rows in input order, L2-normalised, under ``description`` (its ``dim`` filled in)."""
        if self.order != sorted(self.order):  # tracks finished out of order: back to input order
            perm = sorted(range(len(self.order)), key=self.order.__getitem__)
            for name in ("vectors", "ids", "labels", "groups", "sizes", "mtimes", "tags", "warnings", "metadata"):
                values = getattr(self, name)
                setattr(self, name, [values[i] for i in perm])
        model = description.copy()
        if self.vectors:
            model.dim = int(self.vectors[0].shape[0])
        dim = int(model.dim or 0)
        matrix = l2_normalize(np.stack(self.vectors)) if self.vectors else np.zeros((0, dim), np.float32)
        return EmbeddingLibrary(
            matrix, self.ids, self.labels, self.groups, model,
            np.asarray(self.sizes, np.int64), np.asarray(self.mtimes, np.float64), self.tags, self.warnings,
            self.metadata,
        )  # fmt: skip


def _stat(path: str) -> tuple[int, float]:
    st = os.stat(path)
    return int(st.st_size), float(st.st_mtime)


def _embed_one(embedder: Embedder, path: str, warnings: list[str]) -> tuple[np.ndarray, Tags | None]:
    vec, tags = embedder.embed_file_tagged(path, warnings=warnings)
    vec = np.asarray(vec, dtype=np.float32).reshape(-1)
    if not np.isfinite(vec).all():
        raise InputError(f"{display_path(path)}: embedding holds NaN — the audio may be corrupt")
    return vec, tags


def _worker_embedder(description: str) -> Embedder:
    """The embedder a description names, built in a worker process, its ONNX sessions on one thread."""
    model = ModelDescription.from_dict(json.loads(description))
    return embedder_from_description(model, threads=1)  # the workers are the parallelism


@dataclass(frozen=True)
class _Todo:
    """A track to embed: where it goes in the library, and the size and mtime it was embedded from."""

    order: int
    track: Track
    size: int
    mtime: float


@dataclass(frozen=True)
class _Embedded:
    """What a worker sends back for one track."""

    vector: np.ndarray
    tags: Tags | None
    warnings: list[str]  # about its audio (kept in the library)
    metadata: TrackMetadata
    notes: list[str]  # about its tags (printed, not kept)


def _embed_task(todo: _Todo, embedder: Embedder | str) -> _Embedded:
    """One track's vector, model tags, warnings and metadata; ``embedder`` as a JSON description is built
    once per worker."""
    from specmusic.batch import require_visible, worker_cached

    if isinstance(embedder, str):
        require_visible(todo.track.path)
        embedder = worker_cached(("embed", embedder), lambda: _worker_embedder(embedder))  # type: ignore[arg-type]
    warnings: list[str] = []
    vec, tags = _embed_one(embedder, todo.track.path, warnings)  # type: ignore[arg-type]
    notes: list[str] = []
    return _Embedded(vec, tags, warnings, read_metadata(todo.track.path, warnings=notes), notes)


def _embed_todo(
    todo: list[_Todo], embedder: Embedder, report: EmbedReport, *, jobs: int, cluster: str | None,
    on_error: Callable[[str], None] | None, bar: Any,
) -> Iterator[tuple[_Todo, _Embedded]]:  # fmt: skip
    """Embed ``todo`` where ``jobs``/``cluster`` say; yields each success (L2-normalised) as it finishes,
    records failures and warnings in ``report``."""
    from specmusic.batch import TaskFailure, open_executor, run_tasks

    if not todo:  # nothing changed: no cluster to start
        return
    dim: tuple[int, ...] | None = None
    with open_executor(jobs=jobs, cluster=cluster, n_items=len(todo)) as executor:
        target: Embedder | str = embedder if executor is None else json.dumps(embedder.description.to_dict(), sort_keys=True)
        for item, result in run_tasks(executor, _embed_task, todo, args=(target,)):
            path = item.track.path
            if isinstance(result, TaskFailure):
                bar.update(1)
                report.failed.append({"path": path, "error": result.error})
                if on_error:
                    on_error(f"Error: {result.error}")
                continue
            vec = result.vector
            if dim is not None and vec.shape != dim:
                raise ModelError(f"{display_path(path)}: embedding size changed mid-run — check the model")
            dim = vec.shape
            report.embedded.append(path)
            if result.warnings:
                report.flagged.append(path)
            for line in [*result.warnings, *result.notes]:
                if on_error:
                    on_error(f"warning: {line}")
            yield item, _Embedded(l2_normalize(vec[None, :])[0], result.tags, result.warnings, result.metadata, [])
            bar.update(1)  # after the sink kept it: the bar never counts a track an interrupt would lose
    if dim is not None and embedder.description.dim is None:
        embedder.description.dim = int(dim[0])  # workers built their own embedder: record the size here


def _unchanged(library: EmbeddingLibrary | None, rows: dict[str, int], path: str, size: int, mtime: float) -> int | None:
    """Row of ``path`` in ``library`` when it was embedded from a file of this size and mtime."""
    j = rows.get(path)
    if j is None or library is None:
        return None
    return j if library.source_size[j] == size and library.source_mtime[j] == mtime else None


def _stat_tracks(
    tracks: Sequence[Track], report: EmbedReport, on_error: Callable[[str], None] | None
) -> Iterator[tuple[int, Track, int, float]]:
    """Each distinct track with its input position, size and mtime; unreadable ones go to ``report``."""
    seen: set[str] = set()
    for order, track in enumerate(tracks):
        if track.path in seen:
            continue
        seen.add(track.path)
        try:
            size, mtime = _stat(track.path)
        except OSError as exc:
            report.failed.append({"path": track.path, "error": f"{display_path(track.path)}: {exc.strerror}"})
            if on_error:
                on_error(f"Error: {display_path(track.path)}: cannot read ({exc.strerror}) — check the path")
            continue
        yield order, track, size, mtime


def _bar(total: int, progress: bool | None) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="embed", unit="track", file=sys.stderr, dynamic_ncols=True,
                disable=(not progress) if progress is not None else None)  # fmt: skip




class _Sink(Protocol):
    """Where :func:`_embed_missing` puts tracks: what it already holds unchanged, and each new one."""

    def reuse(self, order: int, track: Track, size: int, mtime: float, report: EmbedReport) -> bool:
        """Keep ``track`` when held unchanged (embedded from a file of this size and mtime): True, noted in ``report``."""
        ...

    def add(self, item: _Todo, embedded: _Embedded) -> None:
        """One newly embedded track (its vector L2-normalised), as soon as it is done."""
        ...


def _embed_missing(
    tracks: Sequence[Track], embedder: Embedder, sink: _Sink, report: EmbedReport, *, progress: bool | None,
    on_error: Callable[[str], None] | None, jobs: int, cluster: str | None,
) -> set[str]:  # fmt: skip
    """The one loop of an embed run: stat each track, let ``sink`` keep what it holds unchanged, embed
    the rest (``jobs``/``cluster``) and hand each to ``sink``. Returns the paths of the tracks read."""
    seen: set[str] = set()
    todo: list[_Todo] = []
    bar = _bar(len(tracks), progress)
    try:
        for order, track, size, mtime in _stat_tracks(tracks, report, on_error):
            seen.add(track.path)
            if sink.reuse(order, track, size, mtime, report):
                bar.update(1)
                continue
            todo.append(_Todo(order, track, size, mtime))
        for item, embedded in _embed_todo(
            todo, embedder, report, jobs=jobs, cluster=cluster, on_error=on_error, bar=bar
        ):
            sink.add(item, embedded)
    finally:
        bar.close()
    if report.tags_read and on_error is not None:
        on_error(f"note: read the tags of {len(report.tags_read)} unchanged track(s) kept without them "
                 "(a library from before tags were kept)")  # fmt: skip
    return seen


def _tags_now(path: str, report: EmbedReport, on_error: Callable[[str], None] | None) -> TrackMetadata:
    """The tags of an unchanged track kept without them, read now (noted in ``report``)."""
    notes: list[str] = []
    metadata = read_metadata(path, warnings=notes)
    report.tags_read.append(path)
    for line in notes:
        if on_error is not None:
            on_error(f"warning: {line}")
    return metadata


class _LibrarySink:
    """A library held in memory (:func:`embed_tracks`): unchanged tracks are taken from the records of an
    interrupted run (``resumed``) first, then from the library being updated (``existing``)."""

    def __init__(
        self, existing: EmbeddingLibrary | None, resumed: EmbeddingLibrary | None,
        on_embedded: Callable[[dict[str, Any], np.ndarray], None] | None, on_error: Callable[[str], None] | None,
    ) -> None:  # fmt: skip
        self.rows = _Rows()
        self.existing, self.resumed, self.on_embedded, self.on_error = existing, resumed, on_embedded, on_error
        self.old = {id_: i for i, id_ in enumerate(existing.ids)} if existing is not None else {}
        self.journal = {id_: i for i, id_ in enumerate(resumed.ids)} if resumed is not None else {}

    def reuse(self, order: int, track: Track, size: int, mtime: float, report: EmbedReport) -> bool:
        for library, rows, kept in ((self.resumed, self.journal, report.resumed), (self.existing, self.old, report.reused)):
            j = _unchanged(library, rows, track.path, size, mtime)
            if j is not None and library is not None:
                assert library.metadata is not None
                fresh = _tags_now(track.path, report, self.on_error) if library.metadata[j] is None else None
                self.rows.add_from(library, j, track, order, fresh)
                kept.append(track.path)
                return True
        return False

    def add(self, item: _Todo, embedded: _Embedded) -> None:
        t, e = item.track, embedded
        self.rows.add(e.vector, t.path, t.label, t.group, item.size, item.mtime, e.tags, e.warnings, item.order, e.metadata)
        if self.on_embedded is not None:
            self.on_embedded(self.rows.record(-1), e.vector)

    def keep_others(self, seen: set[str]) -> None:
        """Add the held tracks that were not among the inputs (the resumed ones first)."""
        if self.resumed is not None:
            for id_, j in self.journal.items():
                if id_ not in seen:
                    self.rows.add_from(self.resumed, j)
        if self.existing is not None:
            for id_, j in self.old.items():
                if id_ not in seen and id_ not in self.journal:
                    self.rows.add_from(self.existing, j)


class _ShardSink:
    """A sharded library folder (:func:`embed_into_shards`): unchanged tracks are those its catalog holds;
    one whose label or group changed, or kept without tags, is noted in :attr:`relabel` (same audio, new
    label, group or tags)."""

    def __init__(self, writer: ShardedLibraryWriter, on_error: Callable[[str], None] | None) -> None:
        self.writer, self.catalog, self.on_error = writer, writer.catalog, on_error
        self.relabel: list[tuple[int, Track, TrackMetadata | None]] = []

    def reuse(self, order: int, track: Track, size: int, mtime: float, report: EmbedReport) -> bool:
        if not self.catalog.unchanged(track.path, size, mtime):
            return False
        j = self.catalog.rows[track.path]
        report.reused.append(track.path)
        fresh = None if self.catalog.has_metadata[j] else _tags_now(track.path, report, self.on_error)
        if fresh is not None or (self.catalog.labels[j], self.catalog.groups[j]) != (track.label, track.group):
            self.relabel.append((j, track, fresh))  # same audio, new label, group or tags (as a single file takes them)
        return True

    def add(self, item: _Todo, embedded: _Embedded) -> None:
        t, e = item.track, embedded
        record = track_record(t.path, t.label, t.group, item.size, item.mtime, e.tags, e.warnings, e.metadata)
        self.writer.add(record, e.vector)


def embed_tracks(
    tracks: Sequence[Track],
    embedder: Embedder,
    *,
    existing: EmbeddingLibrary | None = None,
    resumed: EmbeddingLibrary | None = None,
    keep_others: bool = True,
    progress: bool | None = None,
    on_error: Callable[[str], None] | None = None,
    on_embedded: Callable[[dict[str, Any], np.ndarray], None] | None = None,
    jobs: int = 1,
    cluster: str | None = None,
) -> tuple[EmbeddingLibrary, EmbedReport]:
    """Embed tracks into a library, reusing vectors of unchanged files from ``existing``.

    A track is reused when ``resumed`` or ``existing`` (made by the same model) holds its path
    with the same size and modification time; everything else is embedded. Failures are reported
    and skipped; audio that gives a meaningless vector (silence, mis-scaled, too short) is
    embedded, its warnings printed and kept in the library's ``warnings``.

    Parameters
    ----------
    tracks : what to embed (ids are ``track.path``)
    embedder : :func:`~specmusic.embeddings.embedders.make_embedder`'s result
    existing : a library to update; ignored when made by another model
    resumed : records of an interrupted run of the same model (its journal); they win over ``existing``
    keep_others : keep ``existing``/``resumed`` entries that are not among ``tracks`` (appending to a library)
    progress : a progress bar on stderr (None: only on a terminal)
    on_error : where ``Error: …``, ``warning: …`` and note lines go (stderr in the CLI)
    on_embedded : called with each newly embedded track's record (:meth:`EmbeddingLibrary.record`)
        and its L2-normalised vector [shape=(dim,)], as soon as it is done (in completion order)
    jobs : local worker processes (1: in this process)
    cluster : run on Dask instead: ``local[:N]`` | ``tcp://HOST:PORT`` (:mod:`specmusic.distributed`)

    Returns
    -------
    library, report

    Raises
    ------
    ModelError
        The model's vector size changed mid-run.
    """
    report = EmbedReport()
    if existing is not None and len(existing) and not existing.model.same_as(embedder.description):
        if on_error is not None:
            on_error("note: the existing library was made by another model — embedding everything again")
        existing, keep_others = None, False
    sink = _LibrarySink(existing if existing is not None and len(existing) else None, resumed, on_embedded, on_error)
    seen = _embed_missing(
        tracks, embedder, sink, report, progress=progress, on_error=on_error, jobs=jobs, cluster=cluster
    )
    if keep_others:
        sink.keep_others(seen)
    return sink.rows.library(embedder.description), report


def embed_into_shards(
    tracks: Sequence[Track],
    embedder: Embedder,
    writer: ShardedLibraryWriter,
    *,
    prune: bool = False,
    progress: bool | None = None,
    on_error: Callable[[str], None] | None = None,
    jobs: int = 1,
    cluster: str | None = None,
) -> EmbedReport:
    """Embed what a sharded library folder lacks, straight into it: memory does not grow with its size.

    The reuse check reads ``writer.catalog`` (ids, sizes and mtimes of what the folder holds from
    the same model; no vectors); each new track goes to ``writer.add`` as it finishes, so Ctrl-C
    (then ``writer.close()``) keeps every finished track for the rerun.

    Parameters
    ----------
    writer : an open :class:`~specmusic.embeddings.store.shard_writer.ShardedLibraryWriter`; the caller finishes it
    prune : remove the folder's tracks that are not among ``tracks``
    progress, on_error, jobs, cluster : as :func:`embed_tracks`

    Returns
    -------
    EmbedReport
        ``reused``: tracks the folder already held unchanged.

    Raises
    ------
    ModelError
        The model's vector size changed mid-run.
    InputError
        A part of the folder is damaged (read to relabel a track).
    """
    report = EmbedReport()
    sink = _ShardSink(writer, on_error)
    seen = _embed_missing(
        tracks, embedder, sink, report, progress=progress, on_error=on_error, jobs=jobs, cluster=cluster
    )
    _relabel(writer, sink.relabel)
    if prune:
        gone = [id_ for id_ in sink.catalog.ids if id_ not in seen]
        if gone:
            writer.remove(gone)
    return report


def _relabel(writer: ShardedLibraryWriter, relabel: list[tuple[int, Track, TrackMetadata | None]]) -> None:
    """Rewrite unchanged tracks whose label, group or tags changed: their vectors read from their parts,
    one part at a time, appended with the new label, group and tags (the newest row of an id wins)."""
    if not relabel:
        return
    catalog, parts = writer.catalog, read_index(writer.folder)["parts"]
    by_part: dict[int, list[tuple[int, Track, TrackMetadata | None]]] = {}
    for j, track, metadata in relabel:
        by_part.setdefault(int(catalog.part[j]), []).append((j, track, metadata))
    for p, items in sorted(by_part.items()):
        part = load_part(writer.folder, parts[p])
        for j, track, metadata in items:
            record = {**part.record(int(catalog.row[j])), "label": track.label, "group": track.group}
            if metadata is not None:
                record["metadata"] = metadata.to_dict()
            writer.add(record, part.vectors[int(catalog.row[j])])
