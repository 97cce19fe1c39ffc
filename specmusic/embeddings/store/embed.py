"""One ``embed`` run, from the tracks to the library on disk or stdout: :func:`embed_library`.

The destination (``output``) chooses how the run keeps its work:

* a library file (``.npz``, ``.jsonl``): the tracks already in it are reused when unchanged, each new
  track is appended to the run's journal (:mod:`~specmusic.embeddings.store.journal`) as it finishes,
  and the library is written once, at the end (temporary file + rename), the journal then deleted;
* stdout (``None`` or ``-``): JSON Lines, record by record as tracks finish
  (:class:`~specmusic.embeddings.store.library.JsonlLibraryStream`);
* a folder (or a path ending in ``/``): a sharded library, written part by part
  (:class:`~specmusic.embeddings.store.shard_writer.ShardedLibraryWriter`), never held in memory.

Adding tracks to a library file made by another model would drop its tracks that are not among the
inputs: that is refused in one line (``prune`` asks for just the inputs; ``force`` never reads the
library; when every track is among the inputs, all are embedded again with the new model and nothing
is lost). A sharded folder refuses another model itself. On Ctrl-C, a line says what was kept.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO

from specmusic.data import Track
from specmusic.embeddings.embedders import Embedder
from specmusic.embeddings.store.incremental import EmbedReport, embed_into_shards, embed_tracks
from specmusic.embeddings.store.journal import EmbedJournal
from specmusic.embeddings.store.library import EmbeddingLibrary, JsonlLibraryStream, save_library, write_library_jsonl_file
from specmusic.embeddings.store.read import read_library
from specmusic.embeddings.store.shard_catalog import is_sharded, read_sharded
from specmusic.embeddings.store.shard_writer import ShardedLibraryWriter
from specmusic.errors import InputError
from specmusic.fileio import display_path, ensure_writable_dir, sweep_stale_temps
from specmusic.outputs import check_not_an_input

__all__ = ["LIBRARY_FORMATS", "EmbedOutcome", "embed_library", "library_format"]

#: ``embed --format``: ``auto`` takes the format from the extension (stdout: JSON Lines).
LIBRARY_FORMATS = ("auto", "npz", "jsonl")
_NOTE = Callable[[str], None]


@dataclass(frozen=True)
class _Run:
    """How :func:`embed_library` was asked to run, whatever the destination."""

    prune: bool
    force: bool
    progress: bool | None
    jobs: int
    cluster: str | None
    on_note: _NOTE | None
    on_error: _NOTE | None
    #: When the run started: temporary files older than this that no process holds are a killed run's.
    started: float


@dataclass
class EmbedOutcome:
    """What :func:`embed_library` did, for the command to print (:meth:`summary`) and exit by (:attr:`ok`)."""

    report: EmbedReport
    #: Where the library went: a file or folder, or None for stdout.
    output: str | None
    #: Tracks the library holds now.
    tracks: int
    #: The vector size (None for a sharded folder, whose summary does not give it).
    dim: int | None
    #: The library written (None for a sharded folder: never held in memory; :meth:`load_library` reads it).
    library: EmbeddingLibrary | None
    #: Inputs that could not even be listed (counted among the failures).
    listing_failures: int = 0

    @property
    def ok(self) -> bool:
        """Whether every track went in."""
        return not (self.report.failed or self.listing_failures)

    def summary(self) -> str:
        """``embed: N embedded, N unchanged[, N resumed], N failed[, N flagged …] → N tracks[ × d dims] in WHERE``."""
        r = self.report
        resumed = f", {len(r.resumed)} resumed" if r.resumed else ""
        flagged = f", {len(r.flagged)} flagged (see the warnings)" if r.flagged else ""
        dims = f" × {self.dim} dims" if self.dim is not None else ""
        where = display_path(self.output) if self.output is not None else "stdout"
        return (
            f"embed: {len(r.embedded)} embedded, {len(r.reused)} unchanged{resumed}, "
            f"{len(r.failed) + self.listing_failures} failed{flagged} → {self.tracks} tracks{dims} in {where}"
        )

    def load_library(self) -> EmbeddingLibrary:
        """The library as written (a sharded folder read whole).

        Raises
        ------
        InputError
            A part of the folder is damaged.
        """
        if self.library is not None:
            return self.library
        assert self.output is not None
        return read_sharded(self.output)


def library_format(output: str | None, output_format: str = "auto") -> str:
    """``npz`` or ``jsonl``: ``output_format``, else from the extension; stdout is always JSON Lines.

    Raises
    ------
    InputError
        An ``.npz`` library asked for on stdout.
    """
    to_stdout = output in (None, "-")
    fmt = output_format
    if fmt == "auto":
        fmt = "jsonl" if to_stdout or not str(output).lower().endswith(".npz") else "npz"
    if to_stdout and fmt == "npz":
        raise InputError("an .npz library cannot go to stdout — give -o library.npz, or --format jsonl")
    return fmt


def embed_library(
    tracks: Sequence[Track],
    *,
    embedder: Embedder | Callable[[], Embedder],
    output: str | None = None,
    output_format: str = "auto",
    prune: bool = False,
    force: bool = False,
    progress: bool | None = None,
    jobs: int = 1,
    cluster: str | None = None,
    listing_failures: int = 0,
    stdout: IO[str] | None = None,
    on_note: _NOTE | None = None,
    on_error: _NOTE | None = None,
) -> EmbedOutcome:
    """Embed ``tracks`` into the library ``output`` (see the module docstring), incrementally.

    Parameters
    ----------
    tracks : what to embed (:func:`specmusic.data.discover_tracks`)
    embedder : the embedder, or a function making it (called once the inputs and ``output`` are
        checked, so that no model is loaded for a run that cannot start)
    output : a ``.npz``/``.jsonl`` file, a folder (sharded), or None/``-`` for JSON Lines on ``stdout``
    output_format : one of :data:`LIBRARY_FORMATS`
    prune : keep only the inputs (drop the library's other tracks)
    force : embed every track again (an earlier library, journal or folder is replaced)
    progress, jobs, cluster : as :func:`~specmusic.embeddings.store.incremental.embed_tracks`
    listing_failures : inputs that could not be listed, counted among the failures
    stdout : where a library on stdout goes (default: the process's stdout)
    on_note : ``note:`` lines (resumed work, adopted parts) and the line that says what Ctrl-C kept
    on_error : ``Error:``, ``warning:`` and ``note:`` lines about tracks

    Returns
    -------
    EmbedOutcome

    Raises
    ------
    InputError
        No tracks, an ``.npz`` on stdout, an output file that is one of the tracks, a library made by another model (without ``prune`` or
        ``force``), another run writing the same library, an unwritable destination.
    ModelError, ConfigError
        The embedder cannot be made.
    KeyboardInterrupt
        Ctrl-C, after the work done is kept (journal or parts) and ``on_note`` told where.
    """
    started = time.time()
    if not tracks:
        raise InputError("no audio files found in the inputs — extensions read: .wav .flac .mp3 .ogg .opus .au .aiff")
    to_stdout = output is None or output == "-"
    sharded = not to_stdout and is_sharded(output)  # type: ignore[arg-type]
    if not sharded:
        check_not_an_input(output, [t.path for t in tracks])  # embed song.wav -o song.wav
    fmt = "npz" if sharded else library_format(output, output_format)
    if not isinstance(embedder, Embedder):
        embedder = embedder()
    run = _Run(prune, force, progress, jobs, cluster, on_note, on_error, started)
    if to_stdout or output is None:
        outcome = _embed_stdout(tracks, embedder, stdout if stdout is not None else sys.stdout, run)
    elif sharded:
        outcome = _embed_sharded(tracks, embedder, output, run)
    else:
        outcome = _embed_file(tracks, embedder, output, fmt, run)
    outcome.listing_failures = listing_failures
    return outcome


def _refuse_another_model(existing: EmbeddingLibrary, embedder: Embedder, output: str, prune: bool,
                          tracks: Sequence[Track]) -> None:  # fmt: skip
    """The rule in the module docstring: refuse to add tracks to a library made by another model."""
    if prune or not len(existing) or existing.model.same_as(embedder.description):
        return
    if set(existing.ids) <= {t.path for t in tracks}:
        return
    name = existing.model.label
    raise InputError(
        f"{display_path(output)} was made by another model ({name}) — pass -m {name} to add tracks to it, "
        "or --force to embed these tracks into it anew with this model (its other tracks are dropped)"
    )


def _embed_file(tracks: Sequence[Track], embedder: Embedder, output: str, fmt: str, run: _Run) -> EmbedOutcome:
    """A library file: what it holds reused, progress in its journal, written once at the end."""
    existing = None
    if os.path.exists(output) and not run.force:
        existing = read_library(output)
        _refuse_another_model(existing, embedder, output, run.prune, tracks)
    folder = ensure_writable_dir(os.path.dirname(os.path.abspath(output)), option="-o")
    sweep_stale_temps(folder, before=run.started, targets=[os.path.basename(output)])  # what a killed run left
    journal = EmbedJournal.open(output, embedder.description, fresh=run.force, on_note=run.on_note)
    try:
        library, report = embed_tracks(
            tracks, embedder, existing=existing, resumed=journal.resumed, keep_others=not run.prune,
            progress=run.progress, on_error=run.on_error, jobs=run.jobs, cluster=run.cluster, on_embedded=journal.add,
        )  # fmt: skip
        if fmt == "npz":
            save_library(library, output)
        else:
            write_library_jsonl_file(library, output)
        journal.finish()
    except KeyboardInterrupt:
        if journal.kept and run.on_note is not None:
            run.on_note(
                f"embed: interrupted — {journal.kept} embedded track(s) are kept in {display_path(journal.path)}; "
                "rerun the same command to embed only the rest"
            )
        raise
    finally:
        journal.close()
    return EmbedOutcome(report, output, len(library), library.dim, library)


def _embed_stdout(tracks: Sequence[Track], embedder: Embedder, stdout: IO[str], run: _Run) -> EmbedOutcome:
    """JSON Lines on stdout, record by record (nothing to reuse: every track is embedded)."""
    stream = JsonlLibraryStream(stdout, embedder.description)
    library, report = embed_tracks(
        tracks, embedder, keep_others=not run.prune, progress=run.progress, on_error=run.on_error, jobs=run.jobs,
        cluster=run.cluster, on_embedded=stream.add,
    )  # fmt: skip
    stream.finish(library.model)
    return EmbedOutcome(report, None, len(library), library.dim, library)


def _embed_sharded(tracks: Sequence[Track], embedder: Embedder, output: str, run: _Run) -> EmbedOutcome:
    """A sharded folder: what it lacks embedded part by part (the library is never held in memory)."""
    writer = ShardedLibraryWriter.open(output, embedder.description, fresh=run.force, on_note=run.on_note)
    sweep_stale_temps(output, before=run.started, recursive=True)  # a sharded library's folder, now locked: ours
    try:
        report = embed_into_shards(
            tracks, embedder, writer, prune=run.prune, progress=run.progress, on_error=run.on_error, jobs=run.jobs,
            cluster=run.cluster,
        )  # fmt: skip
        writer.finish()
    except KeyboardInterrupt:
        writer.close()
        if run.on_note is not None:
            run.on_note(
                f"embed: interrupted — {writer.kept} track(s) are kept in {display_path(output)}; "
                "rerun the same command to embed only the rest"
            )
        raise
    finally:
        writer.close()
    return EmbedOutcome(report, output, writer.kept, None, None)
