"""The library being served, read again when it changes: :class:`LiveLibrary`.

A thread looks at the library every ``poll_seconds`` (:func:`~specmusic.serve.library.library_signature`:
the file's inode, size and mtime, or the fingerprint of a sharded folder's parts in its ``index.json``,
which ``embed`` rewrites by rename after each new part). When it changed, the new library is read in that thread while requests go on being answered
from the old one; then :attr:`LiveLibrary.current` is swapped in one assignment. A request holds the
snapshot it started with to the end, so none fails or mixes two libraries, and the old snapshot is
freed when the last request using it ends.

A library that cannot be read when it changed (a file copied in place, half written; a part being
removed by ``compact``) keeps the old one serving, with one note; it is read again when it changes
again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from specmusic.errors import SpecmusicError
from specmusic.fileio import display_path
from specmusic.serve.library import ServedLibrary, library_signature, load_served_library

__all__ = ["LiveLibrary"]


class LiveLibrary:
    """The :class:`~specmusic.serve.library.ServedLibrary` of ``path``, reloaded when it changes.

    Parameters
    ----------
    path : a library file or a sharded folder
    poll_seconds : how often the watching thread (:meth:`start`) looks for a change
    on_note : where reloads and unreadable changes are told (stderr in ``specmusic serve``)

    Raises
    ------
    InputError
        The library cannot be read now (at start there is nothing to fall back on).
    """

    def __init__(self, path: str, *, poll_seconds: float = 2.0, on_note: Callable[[str], None] | None = None) -> None:
        self.path, self.poll_seconds, self.on_note = path, float(poll_seconds), on_note
        self._current = load_served_library(path, on_note=on_note)
        self._tried = self._current.signature
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> ServedLibrary:
        """The snapshot to answer a request from (hold it for the whole request)."""
        return self._current

    def _note(self, line: str) -> None:
        if self.on_note is not None:
            self.on_note(line)

    def reload_if_changed(self) -> bool:
        """Read the library again if it changed since it was read (or since a read of it failed); True when
        a new snapshot is now :attr:`current`."""
        with self._reload_lock:
            signature = library_signature(self.path)
            if signature is None or signature in (self._current.signature, self._tried):
                return False
            self._tried = signature
            old = self._current
            try:
                fresh = load_served_library(self.path, generation=old.generation + 1, on_note=self.on_note)
            except (SpecmusicError, OSError, ValueError, MemoryError) as exc:
                self._note(f"note: {display_path(self.path)} changed but cannot be read ({exc}) — still serving the "
                           f"{len(old)} tracks read before; it is read again when it changes")  # fmt: skip
                return False
            self._current = fresh
            self._note(f"serve: reloaded {display_path(self.path)}: {len(fresh)} tracks (was {len(old)}), "
                       f"generation {fresh.generation}")  # fmt: skip
            return True

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.reload_if_changed()
            except Exception as exc:  # noqa: BLE001 — the watcher outlives any one bad read
                self._note(f"warning: checking {display_path(self.path)} for changes failed ({type(exc).__name__}: {exc})")

    def start(self) -> None:
        """Start watching the library (a daemon thread)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._watch, name="specmusic-serve-reload", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop watching (waits for a reload under way to finish)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
