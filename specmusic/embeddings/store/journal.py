"""The progress of an ``embed`` run, kept as it goes: ``<library>.partial.jsonl`` beside the library.

``embed -o lib.npz`` writes the library itself once, at the end (temporary file + rename). Until
then, each newly embedded track is appended to the journal ``lib.npz.partial.jsonl`` as one line
(flushed at once, so it survives Ctrl-C and a killed process; synced to disk every few seconds).
When the library is written the journal is deleted. A run that is interrupted or killed leaves
it; the next run into the same library with the same model reads it and embeds only what is
still missing (``embed: … N resumed``). A journal made by another model, or with ``--force``,
is discarded with a note.

Why a journal rather than rewriting the library every N tracks: recording progress costs one
appended line per track whatever the library's size, where rewriting a million-track ``.npz``
every few tracks would dominate the run. The journal is itself a JSON Lines library (a header
line, then records whose vectors keep 9 significant digits, exact for float32): ``recommend``
can read it. A torn last line (a process killed mid-write) is dropped; a track listed twice
(re-embedded after its file changed) counts once, the last record. The journal is locked while a
run uses it, so two runs into one library cannot interleave.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from specmusic.embeddings.description import ModelDescription
from specmusic.embeddings.store.library import EmbeddingLibrary, header_line, read_jsonl_library, record_line
from specmusic.errors import InputError, SpecmusicError
from specmusic.fileio import deferred_interrupts, display_path, lock_fd, naming_write_errors

__all__ = ["JOURNAL_SUFFIX", "EmbedJournal", "journal_path"]

JOURNAL_SUFFIX = ".partial.jsonl"
_SYNC_SECONDS = 5.0


def journal_path(library: str | os.PathLike[str]) -> Path:
    """Where the progress of an embed run into ``library`` is kept: ``library`` + ``.partial.jsonl``."""
    return Path(os.fspath(library) + JOURNAL_SUFFIX)


def _lock(f: IO[bytes], library: str) -> None:
    if not lock_fd(f.fileno(), wait=False):
        f.close()
        raise InputError(
            f"another `specmusic embed` is writing {library} — wait for it to finish, or give another -o"
        )


class EmbedJournal:
    """Append-only record of the tracks an embed run has finished (see the module docstring).

    Open with :meth:`open`; :attr:`resumed` holds what an interrupted earlier run finished;
    :meth:`add` appends one track; :meth:`finish` deletes the journal once the library is written.
    """

    def __init__(self, path: Path, file: IO[bytes], model: ModelDescription, resumed: EmbeddingLibrary | None) -> None:
        self.path = path
        self.resumed = resumed
        self.added = 0
        self._ids = set(resumed.ids) if resumed is not None else set()  # the tracks it holds, each once
        self._file = file
        self._model = model
        self._has_header = file.tell() > 0
        self._synced = time.monotonic()

    @classmethod
    def open(
        cls,
        library: str | os.PathLike[str],
        model: ModelDescription,
        *,
        fresh: bool = False,
        on_note: Callable[[str], None] | None = None,
    ) -> EmbedJournal:
        """Open (creating it) and lock the journal of ``library``, reading what an earlier run left.

        Parameters
        ----------
        model : the embedder's description; a journal made by another model is discarded
        fresh : discard what an earlier run left (``embed --force``)

        Raises
        ------
        InputError
            Another run holds the journal.
        OSError
            The folder cannot be written.
        """
        path = journal_path(library)
        name = display_path(library)
        f = open(path, "a+b")  # noqa: SIM115 — held open (and locked) until finish/close
        _lock(f, name)
        f.seek(0)
        data = f.read()
        resumed = None if fresh else _read(data, model, path, on_note)
        keep = data[: data.rfind(b"\n") + 1] if resumed is not None else b""  # drop a torn last line
        if len(keep) != len(data):
            f.truncate(len(keep))
        f.seek(0, os.SEEK_END)
        if resumed is not None and len(resumed) and on_note is not None:
            on_note(
                f"note: resuming an interrupted run — {len(resumed)} track(s) it embedded are kept "
                f"({display_path(path)})"
            )
        return cls(path, f, model, resumed)

    def add(self, record: dict[str, Any], vector: np.ndarray) -> None:
        """Append one finished track (its record and L2-normalised vector); flushed at once.

        Ctrl-C and SIGTERM wait until the line is written and counted (:func:`~specmusic.fileio.deferred_interrupts`):
        :attr:`kept` is what the next run resumes, never one short or one over.
        """
        line = record_line(record, vector, digits=9).encode("utf-8")
        with deferred_interrupts(), naming_write_errors(self.path):  # a full disk names the journal
            if not self._has_header:
                self._file.write(header_line(self._model.with_dim(int(np.asarray(vector).size))).encode("utf-8"))
                self._has_header = True
            self._file.write(line)
            self._file.flush()
            self.added += 1
            self._ids.add(str(record["id"]))
            if time.monotonic() - self._synced > _SYNC_SECONDS:
                os.fsync(self._file.fileno())
                self._synced = time.monotonic()

    @property
    def kept(self) -> int:
        """Tracks the journal holds (what the next run resumes): resumed ones and those added by this run, each
        once (a resumed track embedded again, its file changed, counts once)."""
        return len(self._ids)

    def finish(self) -> None:
        """The library is written: delete the journal (then release it)."""
        self.path.unlink(missing_ok=True)
        self.close()

    def close(self) -> None:
        """Flush and release the journal, keeping it for the next run (deleted when it holds nothing)."""
        if not self._file.closed:
            with contextlib.suppress(OSError):
                if os.fstat(self._file.fileno()).st_size == 0:  # nothing kept (the disk was full from the start)
                    self.path.unlink(missing_ok=True)
            try:
                self._file.close()
            except OSError:  # its buffer could not be flushed (a full disk), as add() said; the file is closed all the same
                pass


def _read(
    data: bytes, model: ModelDescription, path: Path, on_note: Callable[[str], None] | None
) -> EmbeddingLibrary | None:
    """The records of an earlier run (last record per id), or None when there are none to reuse."""
    complete = data[: data.rfind(b"\n") + 1]
    if not complete.strip():
        return None
    why = ""
    try:
        found = read_jsonl_library(complete.decode("utf-8").splitlines(), display_path(path), unique=False)
        if not found.model.same_as(model):
            why = "it was made by another model"
    except (SpecmusicError, UnicodeDecodeError, ValueError) as exc:
        why = f"it is unreadable ({exc})"
    if why:
        if on_note is not None:
            on_note(f"note: discarding {display_path(path)}, the progress of an earlier run — {why}")
        return None
    last = {id_: i for i, id_ in enumerate(found.ids)}
    return found if len(last) == len(found) else found.subset(sorted(last.values()))
