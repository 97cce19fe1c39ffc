"""Embedding a collection into a library, re-embedding only new and changed files.

Each newly embedded track is handed to ``on_embedded`` as soon as it is done (``embed`` appends it
to the run's journal, :mod:`specmusic.embeddings.journal`, or streams it to stdout), so an
interrupted run loses at most the track in progress; the records of an interrupted run
(``resumed``) are reused like those of the library being updated.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from specmusic.data import Track
from specmusic.embeddings.embedders import Embedder, same_model
from specmusic.embeddings.library import EmbeddingLibrary, Tags, track_record
from specmusic.errors import InputError, ModelError, SpecmusicError
from specmusic.fileio import display_path
from specmusic.index import l2_normalize

__all__ = ["EmbedReport", "embed_tracks"]


@dataclass
class EmbedReport:
    """What an embed run did."""

    embedded: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)  # unchanged since the library was written
    failed: list[dict[str, str]] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)  # embedded by an interrupted earlier run
    flagged: list[str] = field(default_factory=list)  # embedded now, with warnings (silence, …)

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

    def add(
        self, vec: np.ndarray, id_: str, label: str | None, group: str | None, size: int, mtime: float,
        tags: Tags | None, warnings: list[str],
    ) -> None:  # fmt: skip
        self.vectors.append(vec)
        self.ids.append(id_)
        self.labels.append(label)
        self.groups.append(group)
        self.sizes.append(size)
        self.mtimes.append(mtime)
        self.tags.append(tags)
        self.warnings.append(warnings)

    def add_from(self, library: EmbeddingLibrary, j: int, track: Track | None = None) -> None:
        """Row ``j`` of ``library``; with ``track``, under its id, label and group."""
        assert library.tags is not None and library.warnings is not None
        id_, label, group = (track.path, track.label, track.group) if track else (
            library.ids[j], library.labels[j], library.groups[j]
        )
        self.add(
            library.vectors[j], id_, label, group, int(library.source_size[j]), float(library.source_mtime[j]),
            library.tags[j], library.warnings[j],
        )  # fmt: skip

    def record(self, i: int) -> dict[str, Any]:
        """Row ``i`` as a JSON Lines record without its vector (:func:`track_record`)."""
        return track_record(
            self.ids[i], self.labels[i], self.groups[i], self.sizes[i], self.mtimes[i], self.tags[i], self.warnings[i]
        )

    def library(self, description: dict) -> EmbeddingLibrary:
        model = dict(description)
        if self.vectors:
            model["dim"] = int(self.vectors[0].shape[0])
        dim = int(model.get("dim") or 0)
        matrix = l2_normalize(np.stack(self.vectors)) if self.vectors else np.zeros((0, dim), np.float32)
        return EmbeddingLibrary(
            matrix, self.ids, self.labels, self.groups, model,
            np.asarray(self.sizes, np.int64), np.asarray(self.mtimes, np.float64), self.tags, self.warnings,
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


def _unchanged(library: EmbeddingLibrary | None, rows: dict[str, int], path: str, size: int, mtime: float) -> int | None:
    """Row of ``path`` in ``library`` when it was embedded from a file of this size and mtime."""
    j = rows.get(path)
    if j is None or library is None:
        return None
    return j if library.source_size[j] == size and library.source_mtime[j] == mtime else None


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
) -> tuple[EmbeddingLibrary, EmbedReport]:
    """Embed tracks into a library, reusing vectors of unchanged files from ``existing``.

    A track is reused when ``resumed`` or ``existing`` (made by the same model) holds its path
    with the same size and modification time; everything else is embedded. Failures are reported
    and skipped; audio that gives a meaningless vector (silence, mis-scaled, too short) is
    embedded, its warnings printed and kept in the library's ``warnings``.

    Parameters
    ----------
    tracks : what to embed (ids are ``track.path``)
    embedder : :func:`make_embedder`'s result
    existing : a library to update; ignored when made by another model
    resumed : records of an interrupted run of the same model (its journal); they win over ``existing``
    keep_others : keep ``existing``/``resumed`` entries that are not among ``tracks`` (appending to a library)
    on_error : where ``Error: …``, ``warning: …`` and note lines go (stderr in the CLI)
    on_embedded : called with each newly embedded track's record (:meth:`EmbeddingLibrary.record`)
        and its L2-normalised vector [shape=(dim,)], as soon as it is done

    Returns
    -------
    library, report
    """
    from tqdm import tqdm

    report = EmbedReport()
    old: dict[str, int] = {}
    if existing is not None and len(existing) and same_model(existing.model, embedder.description):
        old = {id_: i for i, id_ in enumerate(existing.ids)}
    elif existing is not None and len(existing):
        if on_error is not None:
            on_error("note: the existing library was made by another model — embedding everything again")
        keep_others = False
    journal = {id_: i for i, id_ in enumerate(resumed.ids)} if resumed is not None else {}
    rows = _Rows()
    seen: set[str] = set()
    bar = tqdm(tracks, desc="embed", unit="track", file=sys.stderr, disable=(not progress) if progress is not None else None)
    for track in bar:
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
        j = _unchanged(resumed, journal, track.path, size, mtime)
        if j is not None and resumed is not None:
            rows.add_from(resumed, j, track)
            report.resumed.append(track.path)
            continue
        j = _unchanged(existing, old, track.path, size, mtime)
        if j is not None and existing is not None:
            rows.add_from(existing, j, track)
            report.reused.append(track.path)
            continue
        warnings: list[str] = []
        try:
            vec, tags = _embed_one(embedder, track.path, warnings)
        except SpecmusicError as exc:
            report.failed.append({"path": track.path, "error": str(exc)})
            if on_error:
                on_error(f"Error: {exc}")
            continue
        if rows.vectors and vec.shape != rows.vectors[0].shape:
            raise ModelError(f"{display_path(track.path)}: embedding size changed mid-run — check the model")
        vec = l2_normalize(vec[None, :])[0]
        rows.add(vec, track.path, track.label, track.group, size, mtime, tags, warnings)
        report.embedded.append(track.path)
        if warnings:
            report.flagged.append(track.path)
            for line in warnings:
                if on_error:
                    on_error(f"warning: {line}")
        if on_embedded is not None:
            on_embedded(rows.record(-1), vec)
    if keep_others:
        if resumed is not None:
            for id_, j in journal.items():
                if id_ not in seen:
                    rows.add_from(resumed, j)
        if existing is not None:
            for id_, j in old.items():
                if id_ not in seen and id_ not in journal:
                    rows.add_from(existing, j)
    return rows.library(embedder.description), report
