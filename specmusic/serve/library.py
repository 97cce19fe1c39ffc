"""One library as ``specmusic serve`` answers from it: :class:`ServedLibrary`, read by :func:`load_served_library`.

A served library is read whole into memory once (a ``.npz`` or ``.jsonl`` file, or a sharded folder
read part by part into one matrix) and searched by :class:`~specmusic.embeddings.InMemoryRecommender`,
the recommender ``recommend`` uses for a library file: ``/similar`` answers what ``recommend --json``
prints (:func:`~specmusic.embeddings.query_result`) and ``/playlist`` what ``specmusic playlist``
chooses (:func:`~specmusic.playlists.make_playlist`).

Requests name tracks by their library id (the path ``embed`` stored) or, like ``recommend -q``, by
a unique tail of it (``\\xNN`` for a byte of a file name that is not UTF-8). A name that is not in
the library is a :class:`RequestError` with status 404 — never a file read: the service embeds no
audio and opens no file that a client names. Bad parameters are a :class:`RequestError` 400 naming
the parameter.

Every method answers from this one snapshot, so a request is consistent even while
:class:`~specmusic.serve.live.LiveLibrary` swaps in a newer one.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from specmusic.embeddings import GROUP_KEYS, InMemoryRecommender, TrackFilter, TrackRow, parse_filter, read_library
from specmusic.embeddings.store.shard_catalog import index_fingerprint, is_sharded, read_index
from specmusic.errors import InputError
from specmusic.fileio import display_path
from specmusic.metadata import metadata_from_path
from specmusic.playlists import Playlist, make_playlist

__all__ = [
    "MAX_K",
    "MAX_LIMIT",
    "MAX_MINUTES",
    "MAX_SEEDS",
    "MAX_TRACKS",
    "RequestError",
    "ServedLibrary",
    "library_signature",
    "load_served_library",
    "track_record",
]

#: Bounds of the parameters (a request beyond them is a 400): neighbours per /similar, playlist
#: tracks and minutes, seeds per playlist, tracks per /tracks page.
MAX_K = 1000
MAX_TRACKS = 1000
MAX_MINUTES = 24 * 60
MAX_SEEDS = 50
MAX_LIMIT = 1000
_NOTE = Callable[[str], None]


class RequestError(InputError):
    """A request the service cannot answer: ``status`` (400 a bad parameter, 404 an unknown track, 422 a
    track that cannot be answered) and the ``parameter`` it is about."""

    def __init__(self, message: str, *, parameter: str | None, status: int = 400) -> None:
        super().__init__(message)
        self.parameter, self.status = parameter, status

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body: ``{"error": message, "parameter": name}``."""
        return {"error": str(self), "parameter": self.parameter}


def library_signature(path: str) -> tuple[int | str, ...] | None:
    """What changes when the library at ``path`` does: ``(inode, size, mtime_ns)`` of a file; a sharded folder's
    fingerprint (its parts and removals, from ``index.json``: an index rewritten with the same content, or with
    a FAISS index built, is no change); None while there is none to read."""
    if is_sharded(path):
        try:
            return ("parts", index_fingerprint(read_index(path)))
        except (InputError, OSError, KeyError, TypeError):
            return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _bounded(value: float | None, name: str, low: float, high: float, *, above: bool = False) -> None:
    if value is None:
        return
    if (value <= low if above else value < low) or value > high:
        side = f"above {low:g}" if above else f"from {low:g}"
        raise RequestError(f"{name}={value:g} is out of range — give {name} {side} to {high:g}", parameter=name)


class ServedLibrary:
    """A library in memory and the service's answers from it (see the module docstring).

    Build with :func:`load_served_library`; ``generation`` counts the loads (1: at start), ``signature``
    is :func:`library_signature` as it was read.
    """

    def __init__(self, path: str, recommender: InMemoryRecommender, *, signature: tuple[int | str, ...] | None,
                 generation: int = 1) -> None:  # fmt: skip
        self.path, self.recommender, self.signature, self.generation = path, recommender, signature, generation
        self.loaded_at = time.time()
        self._texts: list[str] | None = None
        self._texts_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.recommender.ids)

    # -- names ------------------------------------------------------------------------------
    def find(self, text: str, *, parameter: str, exact: bool = False) -> str:
        """The library id that ``text`` names (``exact``: only the id itself, else also a unique tail).

        Raises
        ------
        RequestError
            Empty (400), a tail that several ids end with (400), no such track (404).
        """
        if not text.strip():
            raise RequestError(f"{parameter} is empty — give a library id (GET /tracks?q=… finds them)", parameter=parameter)
        try:
            row = self.recommender.find_id(text)
        except InputError as exc:  # several ids end with it
            raise RequestError(str(exc), parameter=parameter) from None
        found = self.recommender.ids[row] if row is not None else None
        if found is None or exact and found not in (text, _escaped(text, found)):
            hint = "an id exactly as /tracks and /similar give it" if exact else "a library id or a unique tail of one"
            raise RequestError(
                f"unknown track {display_path(text)!r} — give {hint} (GET /tracks?q=… finds them); the service never "
                "reads audio files that are not in its library", parameter=parameter, status=404,
            )  # fmt: skip
        return found

    def _filter(self, where: Sequence[str], year: str | None) -> TrackFilter | None:
        try:
            parse_filter(None, year=year)
        except InputError as exc:
            raise RequestError(str(exc), parameter="year") from None
        try:
            return parse_filter(list(where), year=year)
        except InputError as exc:
            raise RequestError(str(exc), parameter="where") from None

    # -- answers ----------------------------------------------------------------------------
    def similar(
        self, *, track: str | None = None, track_id: str | None = None, k: int = 10, where: Sequence[str] = (),
        year: str | None = None, group_key: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """The ``k`` tracks nearest to one track, as ``recommend --json`` writes them
        (:func:`specmusic.embeddings.query_result`).

        Parameters
        ----------
        track : a library id or a unique tail of one; or
        track_id : the exact library id
        k : neighbours (1 to :data:`MAX_K`)
        where, year : only tracks meeting these conditions (``recommend --where``/``--year``)
        group_key : leave out the track's ``artist``, ``album``, ``dir``, ``label`` or ``group``

        Raises
        ------
        RequestError
            Neither or both of ``track`` and ``track_id``, a bad parameter (400); an unknown track (404);
            a track whose audio was silent (422).
        """
        if (track is None) == (track_id is None):
            raise RequestError("give track= (a library id or a unique tail of one) or id= (an exact id) — one of them",
                               parameter="track")  # fmt: skip
        _bounded(k, "k", 1, MAX_K)
        if group_key is not None and group_key not in GROUP_KEYS:
            raise RequestError(f"group_key={group_key!r} is not a group key — give one of {', '.join(GROUP_KEYS)}", parameter="group_key")
        condition = self._filter(where, year)
        name = "track" if track is not None else "id"
        found = self.find(track if track is not None else str(track_id), parameter=name, exact=track is None)
        try:
            result = self.recommender.recommend([found], k=k, where=condition, group_key=group_key)[0]
        except InputError as exc:  # the track's audio was silent: no neighbour would mean anything
            raise RequestError(str(exc), parameter=name, status=422) from None
        result["query"] = track if track is not None else track_id
        return result

    def playlist(
        self, *, seeds: Sequence[str] = (), start: str | None = None, end: str | None = None, tracks: int | None = None,
        minutes: float | None = None, where: Sequence[str] = (), year: str | None = None, random_seed: int = 0,
    ) -> Playlist:  # fmt: skip
        """A playlist near ``seeds``, or a journey from ``start`` to ``end``, as ``specmusic playlist`` makes it.

        Raises
        ------
        RequestError
            No seed, too many, both seeds and a journey, one end of a journey, ``minutes`` for a journey,
            a number out of range (400); a seed or an end not in the library (404).
        """
        _bounded(tracks, "tracks", 1, MAX_TRACKS)
        _bounded(minutes, "minutes", 0, MAX_MINUTES, above=True)
        if len(seeds) > MAX_SEEDS:
            raise RequestError(f"{len(seeds)} seeds are too many — give at most {MAX_SEEDS}", parameter="seed")
        journey = start is not None or end is not None
        if journey and seeds:
            raise RequestError("from= and to= make a journey on their own — drop seed=", parameter="seed")
        if journey and (start is None or end is None):
            raise RequestError("a journey needs both ends — give from= and to=", parameter="to" if end is None else "from")
        if journey and minutes is not None:
            raise RequestError("a journey takes tracks= (its ends included), not minutes=", parameter="minutes")
        if journey and tracks is not None and tracks < 2:
            raise RequestError("a journey has at least 2 tracks (its two ends) — raise tracks=", parameter="tracks")
        if not journey and not seeds:
            raise RequestError("no seed — give seed=ID (repeatable), or from=ID&to=ID for a journey", parameter="seed")
        condition = self._filter(where, year)
        ids = [self.find(s, parameter="seed") for s in seeds]
        first = self.find(start, parameter="from") if start is not None else None
        last = self.find(end, parameter="to") if end is not None else None
        if first is not None and first == last:
            raise RequestError(f"from= and to= are the same track ({display_path(first)}) — give two tracks", parameter="to")
        try:
            return make_playlist(self.recommender, seeds=ids, start=first, end=last, tracks=tracks, minutes=minutes,
                                 where=condition, random_seed=random_seed)  # fmt: skip
        except InputError as exc:  # a silent seed
            raise RequestError(str(exc), parameter="from" if journey else "seed", status=422) from None

    def tracks(
        self, *, q: str = "", limit: int = 20, offset: int = 0, where: Sequence[str] = (), year: str | None = None
    ) -> dict[str, Any]:
        """Library tracks whose id or tags (artist, album artist, album, title, genre, year) contain every word
        of ``q`` (without case; a track without tags: the guess from its path), in library order.

        Returns
        -------
        dict
            ``{"query": q, "offset": o, "limit": l, "more": bool, "tracks": [{"id", "label", "group",
            "metadata"}, …]}``; ``more``: tracks beyond this page match too.

        Raises
        ------
        RequestError
            ``limit`` or ``offset`` out of range, a bad condition (400).
        """
        _bounded(limit, "limit", 1, MAX_LIMIT)
        _bounded(offset, "offset", 0, float(len(self)))
        condition = self._filter(where, year)
        words = q.casefold().split()
        texts = self._search_texts()
        rows: list[int] = []
        for j, text in enumerate(texts):
            if all(w in text for w in words) and (condition is None or condition.matches(self.recommender.track(j))):
                rows.append(j)
                if len(rows) > offset + limit:
                    break
        page = rows[offset : offset + limit]
        return {"query": q, "offset": offset, "limit": limit, "more": len(rows) > offset + limit,
                "tracks": [track_record(self.recommender.track(j)) for j in page]}  # fmt: skip

    def _search_texts(self) -> list[str]:
        """Each track's id and tags as one lower-cased text (built on the first search, kept)."""
        with self._texts_lock:
            if self._texts is None:
                rec = self.recommender
                self._texts = [_search_text(i, m if m is not None else metadata_from_path(i))
                               for i, m in zip(rec.ids, rec.metadata)]  # fmt: skip
            return self._texts

    def health(self) -> dict[str, Any]:
        """What is served: ``{"status": "ok", "library", "tracks", "dim", "model", "generation", "loaded_at"}``."""
        rec = self.recommender
        loaded = datetime.fromtimestamp(self.loaded_at, timezone.utc).isoformat(timespec="seconds")
        return {"status": "ok", "library": display_path(self.path), "tracks": len(self), "dim": rec.index.dim,
                "model": rec.model.label, "generation": self.generation, "loaded_at": loaded}  # fmt: skip


def _escaped(text: str, found: str) -> str:
    """``found`` when ``text`` names it with ``\\xNN`` escapes (as text output shows a non-UTF-8 byte)."""
    return found if display_path(found) == text else ""


def _search_text(id_: str, meta: Any) -> str:
    fields = (display_path(id_), meta.artist, meta.albumartist, meta.album, meta.title, meta.genre, meta.year)
    return "\x00".join(str(f) for f in fields if f).casefold()


def track_record(row: TrackRow) -> dict[str, Any]:
    """A track as ``/tracks`` lists it: ``{"id", "label", "group"[, "metadata"]}`` (the fields of a
    ``/similar`` neighbour that are not about the query)."""
    rec: dict[str, Any] = {"id": row.id, "label": row.label, "group": row.group}
    if row.meta is not None:
        rec["metadata"] = row.meta.to_dict()
    return rec


def load_served_library(path: str, *, generation: int = 1, on_note: _NOTE | None = None) -> ServedLibrary:
    """Read the library at ``path`` (a ``.npz``/``.jsonl`` file or a sharded folder) into memory, ready to answer:
    one search is run before it is returned, so what it computes once is computed before a client waits.

    Raises
    ------
    InputError
        ``-`` (stdin cannot be read again), a table, a missing, empty or unreadable library.
    """
    if path == "-":
        raise InputError("serve reads the library again when it changes — give a library file or folder, not '-'")
    if path.lower().endswith((".csv", ".tsv")):
        raise InputError(f"{display_path(path)}: serve answers from an embedding library, not a table — give the .npz, "
                         ".jsonl or folder that `specmusic embed` wrote")  # fmt: skip
    signature = library_signature(path)
    library = read_library(path)
    rec = InMemoryRecommender.from_library(library, on_note=on_note, index_cache=None if is_sharded(path) else path)
    rec.recommend([rec.ids[0]], k=1, on_error=lambda _: None)  # column statistics, the BLAS controller: now
    return ServedLibrary(path, rec, signature=signature, generation=generation)
