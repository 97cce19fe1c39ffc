"""Making a playlist from a library: :func:`make_playlist`.

1. **Anchors**: the seeds (``seeds``; or the tracks of a playlist to ``extend``; or a journey's ``start``
   and ``end``) are resolved by the library's recommender (:meth:`~specmusic.embeddings.Recommender.resolve_queries`):
   a library track, or an audio file embedded now with the library's own model.
2. **Pool**: the ``pool`` tracks nearest to each anchor (a journey: to each point on its way) are
   gathered in one search (:meth:`~specmusic.embeddings.Recommender.neighbours`; ``where`` keeps only
   the tracks meeting its conditions), with their vectors and tags.
3. **Walk**: each next track is the pool track, not yet played, that keeps the rules
   (:mod:`specmusic.playlists.rules`) and scores best on ``(1 - balance) × cos(track, last track)
   + balance × mean cos(track, seeds)`` (a journey: cos with the point ``i / (n - 1)`` of the way from
   start to end, both normalised); it is drawn from the ``variety`` best with weights
   ``exp((score - best) / temperature)`` by a generator seeded with ``random_seed``, so one seed gives
   one playlist.
   With ``audio_duplicates``, the track drawn is also compared by its audio fingerprint with every
   track heard so far (:mod:`specmusic.playlists.audio`) and drawn again when it matches one.
4. **When the pool runs dry** (every track played or breaking a rule): the pool grows (4 × deeper);
   when the library has no more, the album gap and then the artist gap are relaxed for that step, with
   a note; a duplicate or a seed is never let through. A playlist that still cannot go on ends early,
   with a note.

A playlist of ``minutes`` stops at the track that brings its length closest to them (a track whose
duration is unknown counts as the pool's median).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from specmusic.embeddings.embedders import Embedder
from specmusic.embeddings.records import TrackRow, album_key, artist_key
from specmusic.embeddings.search.filters import TrackFilter
from specmusic.embeddings.search.queries import Query
from specmusic.embeddings.search.recommender import Recommender
from specmusic.errors import InputError
from specmusic.fileio import display_path
from specmusic.playlists.audio import AudioFingerprints
from specmusic.playlists.model import DEFAULT_JOURNEY_TRACKS, DEFAULT_TRACKS, Playlist, PlaylistConfig, PlaylistEntry
from specmusic.playlists.rules import RecordingKey

__all__ = ["make_playlist"]

_NOTE = Callable[[str], None]
#: Seconds a track of unknown duration counts for when the pool knows none.
_TYPICAL_SECONDS = 240.0


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class _Track:
    """A seed or a pool track: its record (tags read) and its vectors, both L2-normalised."""

    row: TrackRow
    vector: np.ndarray  # search space
    identity: np.ndarray  # for duplicate tests (:func:`specmusic.embeddings.search.space.identity_vectors`)

    @classmethod
    def of_query(cls, q: Query) -> _Track:
        identity = q.identity if q.identity is not None else q.vector
        return cls(q.track, _unit(q.vector), _unit(identity))

    def entry(self, score: float, to_previous: float | None, to_seeds: float | None, role: str) -> PlaylistEntry:
        return PlaylistEntry(self.row.id, float(score), to_previous, to_seeds, self.row.meta, self.row.label, role)


class _Pool:
    """The tracks the walk chooses from: the nearest to each query vector, as arrays (see the module docstring)."""

    def __init__(self, recommender: Recommender, queries: np.ndarray, k: int, where: TrackFilter | None) -> None:
        self.recommender, self.queries, self.where = recommender, queries, where
        self.k, self.complete = 0, False
        self.tracks: list[_Track] = []
        self._fill(k)

    def _fill(self, k: int) -> None:
        found = self.recommender.neighbours(self.queries, k=k, where=self.where)
        seen: dict[str, _Track] = {}
        for rank in range(max((len(f) for f in found), default=0)):  # interleaved: each query's best first
            for hits in found:
                if rank < len(hits) and hits[rank].row.id not in seen:
                    n = hits[rank]
                    seen[n.row.id] = _Track(n.row, _unit(n.vector), _unit(n.identity))
        self.k, self.complete = k, all(len(f) < k for f in found)
        self.tracks = list(seen.values())
        self.vectors = np.stack([t.vector for t in self.tracks]) if self.tracks else np.zeros((0, self.queries.shape[1]))
        self.identity = np.stack([t.identity for t in self.tracks]) if self.tracks else np.zeros((0, 1))
        self.keys = [RecordingKey(t.row.meta) for t in self.tracks]
        self.artists = [artist_key(t.row.meta) for t in self.tracks]
        self.albums = [album_key(t.row.meta) for t in self.tracks]
        known = [t.row.meta.duration for t in self.tracks if t.row.meta is not None and t.row.meta.duration]
        self.typical = float(np.median(known)) if known else _TYPICAL_SECONDS

    def grow(self) -> bool:
        """Gather 4 × deeper; False when the library (or ``where``) has no more."""
        if self.complete:
            return False
        self._fill(self.k * 4)
        return True


class _Walk:
    """The played tracks and the rules they impose on the next one."""

    def __init__(
        self, config: PlaylistConfig, anchors: Sequence[_Track], history: Sequence[_Track], seed: int,
        fingerprints: AudioFingerprints | None = None,
    ) -> None:  # fmt: skip
        self.config = config
        self.fingerprints = fingerprints if config.audio_duplicates else None
        self.rng = np.random.default_rng(seed)
        self.blocked = {t.row.id for t in anchors}  # never entries (journey endpoints are placed by the caller)
        self.played: list[_Track] = list(history)  # spacing counts from these, oldest first
        self.heard: list[_Track] = list({t.row.id: t for t in [*anchors, *history]}.values())  # for duplicates
        self.relaxed = {"album": 0, "artist": 0}

    def add(self, track: _Track) -> None:
        self.played.append(track)
        self.heard.append(track)
        self.blocked.add(track.row.id)

    def _eligible(self, pool: _Pool, after: Sequence[tuple[int, _Track]], gaps: tuple[int, int]) -> np.ndarray:
        """Which pool tracks may come next (``after``: ``(distance, track)`` of tracks already placed after
        it: a journey's end)."""
        n = len(pool.tracks)
        ok = np.array([t.row.id not in self.blocked for t in pool.tracks], bool)
        if self.heard and n:
            heard = np.stack([h.identity for h in self.heard])
            ok &= ~((pool.identity @ heard.T) >= self.config.duplicate_cosine).any(axis=1)
            keys = [RecordingKey(h.row.meta) for h in self.heard]
            ok &= np.array([not any(k.same(h) for h in keys) for k in pool.keys], bool)
        artist_gap, album_gap = gaps
        near = [*self.played[-artist_gap:], *(t for d, t in after if d <= artist_gap)] if artist_gap else []
        artists = {artist_key(t.row.meta) for t in near} - {None}
        near = [*self.played[-album_gap:], *(t for d, t in after if d <= album_gap)] if album_gap else []
        albums = {album_key(t.row.meta) for t in near} - {None}
        if artists or albums:
            ok &= np.array([a not in artists and b not in albums for a, b in zip(pool.artists, pool.albums)], bool)
        return ok

    def choose(
        self, pool: _Pool, score: Callable[[_Pool], np.ndarray], after: Sequence[tuple[int, _Track]] = ()
    ) -> int | None:
        """The pool index of the next track (module docstring, steps 3-4), or None when none may follow.

        ``score``: each pool track's score [shape=(len(pool.tracks),)] (asked again when the pool grows).
        """
        while True:
            i = self._choose(pool, score, after)
            if i is None or self.fingerprints is None:
                return i
            track = pool.tracks[i]
            if not self.fingerprints.same_as_any(track.row.id, [h.row.id for h in self.heard]):
                return i
            self.blocked.add(track.row.id)  # the same audio as a track heard: never again

    def _choose(
        self, pool: _Pool, score: Callable[[_Pool], np.ndarray], after: Sequence[tuple[int, _Track]]
    ) -> int | None:
        cfg = self.config
        for gaps, relax in (((cfg.artist_gap, cfg.album_gap), None), ((cfg.artist_gap, 0), "album"), ((0, 0), "artist")):
            if relax is not None and not (cfg.album_gap if relax == "album" else cfg.artist_gap):
                continue
            ok = self._eligible(pool, after, gaps)
            while not ok.any() and relax is None and pool.grow():
                ok = self._eligible(pool, after, gaps)
            if ok.any():
                if relax is not None:
                    self.relaxed[relax] += 1
                return self._draw(np.flatnonzero(ok), score(pool))
        return None

    def relaxed_notes(self, where: TrackFilter | None) -> list[str]:
        """A note for each gap that had to be relaxed."""
        within = " (or --where)" if where is not None else ""
        return [
            f"note: {n} track(s) follow another of their {what} within --{what}-gap {gap}: no other track was left "
            f"(the library{within} holds too few {what}s for that gap; tracks without tags count their folders)"
            for what, n, gap in (("album", self.relaxed["album"], self.config.album_gap),
                                 ("artist", self.relaxed["artist"], self.config.artist_gap)) if n
        ]  # fmt: skip

    def _draw(self, eligible: np.ndarray, scores: np.ndarray) -> int:
        order = eligible[np.argsort(-scores[eligible], kind="stable")][: self.config.variety]
        weights = np.exp((scores[order] - scores[order[0]]) / self.config.temperature)
        return int(self.rng.choice(order, p=weights / weights.sum()))



def _resolve(
    recommender: Recommender, texts: Sequence[str], embedder: Embedder | None, *, lenient: bool, notes: list[str]
) -> list[_Track]:
    """Tracks of the library or audio files; ``lenient``: leave out (with a note) what cannot be found."""
    failed: list[str] = []
    found = recommender.resolve_queries(list(texts), embedder=embedder, on_error=failed.append if lenient else None)
    if failed:
        notes.append(f"note: left out {len(failed)} track(s) that are neither in the library nor audio files, "
                     f"e.g. {failed[0]}")  # fmt: skip
    return [_Track.of_query(q) for q in found]


def _pool_size(config: PlaylistConfig, tracks: int) -> int:
    return config.pool or max(200, 20 * tracks)


def _from_seeds(
    recommender: Recommender, seeds: Sequence[str], extend: Sequence[str], *, tracks: int | None, minutes: float | None,
    config: PlaylistConfig, where: TrackFilter | None, random_seed: int, embedder: Embedder | None,
    fingerprints: AudioFingerprints | None,
) -> Playlist:  # fmt: skip
    """A playlist near ``seeds`` (and continuing ``extend``): steps 1-4 of the module docstring."""
    notes: list[str] = []
    before = _resolve(recommender, extend, embedder, lenient=True, notes=notes) if extend else []
    if extend and not before:
        raise InputError("none of the playlist's tracks is in the library or an audio file — check its paths "
                         "(relative ones are read from the playlist's folder)")  # fmt: skip
    anchors = [*before, *_resolve(recommender, seeds, embedder, lenient=False, notes=notes)]
    want = tracks if tracks is not None else (None if minutes is not None else DEFAULT_TRACKS)
    estimate = want or int(np.ceil((minutes or 0.0) * 60.0 / _TYPICAL_SECONDS)) or 1
    queries = [*(t.vector for t in before[-8:]), *(t.vector for t in anchors[len(before):])]
    pool = _Pool(recommender, np.stack(queries), _pool_size(config, estimate), where)
    walk = _Walk(config, anchors, anchors, random_seed, fingerprints)
    seeds_matrix = np.stack([t.vector for t in anchors])
    beta, entries, total = config.balance, [], 0.0

    def score(p: _Pool) -> np.ndarray:
        return (1 - beta) * (p.vectors @ walk.played[-1].vector) + beta * (p.vectors @ seeds_matrix.T).mean(axis=1)

    while want is None or len(entries) < want:
        target = (minutes or 0.0) * 60.0
        if minutes is not None and total >= target:
            break
        i = walk.choose(pool, score)
        if i is None:
            notes.append(f"note: the playlist ends after {len(entries)} track(s): no other track of the library"
                         f"{' meeting --where' if where is not None else ''} keeps the rules")  # fmt: skip
            break
        track = pool.tracks[i]
        seconds = (track.row.meta.duration if track.row.meta is not None else None) or pool.typical
        if minutes is not None and entries and abs(total + seconds - target) > abs(total - target):
            break
        previous = float(track.vector @ walk.played[-1].vector)
        near = float((seeds_matrix @ track.vector).mean())
        entries.append(track.entry((1 - beta) * previous + beta * near, previous, near, "track"))
        walk.add(track)
        total += seconds
    return Playlist(
        entries, "extend" if extend else "seeds", [t.entry(1.0, None, None, "seed") for t in anchors], config,
        random_seed, notes + walk.relaxed_notes(where),
    )  # fmt: skip


def _journey(
    recommender: Recommender, start: str, end: str, *, tracks: int, config: PlaylistConfig,
    where: TrackFilter | None, random_seed: int, embedder: Embedder | None, fingerprints: AudioFingerprints | None,
) -> Playlist:  # fmt: skip
    """From ``start`` to ``end`` in ``tracks`` entries (both ends among them)."""
    notes: list[str] = []
    a, b = _resolve(recommender, [start, end], embedder, lenient=False, notes=notes)
    if a.row.id == b.row.id:
        raise InputError(f"--from and --to are the same track ({display_path(a.row.id)}) — give two different tracks")
    steps = np.linspace(0.0, 1.0, tracks)[1:-1]
    waypoints = _unit(np.outer(1.0 - steps, a.vector) + np.outer(steps, b.vector)).reshape(len(steps), -1)
    pool = _Pool(recommender, np.vstack([a.vector[None, :], waypoints, b.vector[None, :]]), _pool_size(config, tracks), where)
    walk = _Walk(config, [a, b], [a], random_seed, fingerprints)
    beta = config.balance
    entries = [a.entry(1.0, None, 1.0, "from")]
    for i, point in enumerate(waypoints):

        def score(p: _Pool, point: np.ndarray = point) -> np.ndarray:
            return (1 - beta) * (p.vectors @ walk.played[-1].vector) + beta * (p.vectors @ point)

        j = walk.choose(pool, score, after=[(len(waypoints) - i, b)])
        if j is None:
            notes.append(f"note: the journey has {i} track(s) between its ends, not {len(waypoints)}: no other track of "
                         "the library keeps the rules")  # fmt: skip
            break
        track = pool.tracks[j]
        previous, near = float(track.vector @ walk.played[-1].vector), float(track.vector @ point)
        entries.append(track.entry((1 - beta) * previous + beta * near, previous, near, "track"))
        walk.add(track)
    entries.append(b.entry(1.0, float(b.vector @ walk.played[-1].vector), 1.0, "to"))
    return Playlist(entries, "journey", [], config, random_seed, notes + walk.relaxed_notes(where))


def make_playlist(
    recommender: Recommender,
    *,
    seeds: Sequence[str] = (),
    extend: Sequence[str] = (),
    start: str | None = None,
    end: str | None = None,
    tracks: int | None = None,
    minutes: float | None = None,
    config: PlaylistConfig | None = None,
    where: TrackFilter | None = None,
    random_seed: int = 0,
    embedder: Embedder | None = None,
    on_note: _NOTE | None = None,
    fingerprints: AudioFingerprints | None = None,
) -> Playlist:
    """A playlist from a library (see the module docstring).

    Parameters
    ----------
    recommender : the library (:func:`specmusic.embeddings.open_recommender`: a file or a sharded folder)
    seeds : tracks to start near (library ids, or audio files embedded now); not among the entries
    extend : the tracks of a playlist to continue (:func:`specmusic.playlists.read_playlist`): seeds too,
        the walk going on from the last; tracks neither in the library nor audio files are left out (a note)
    start, end : a journey from one track to another instead (both given; both among the entries)
    tracks : entries wanted (default 20; a journey 12, its ends included)
    minutes : or a length (not for journeys); with ``tracks`` too, the first reached ends the playlist
    config : the rules and weights (:class:`~specmusic.playlists.model.PlaylistConfig`)
    where : only tracks meeting these conditions are chosen (seeds and ends need not)
    random_seed : seeds the draw among the best candidates: one seed, one playlist
    embedder : embeds audio files that are not in the library (default: the library's own model)
    on_note : where notes go (relaxed gaps, a playlist that ended early, left-out tracks)
    fingerprints : audio fingerprints made before (``config.audio_duplicates``; default: made as needed)

    Returns
    -------
    Playlist

    Raises
    ------
    InputError
        No seed, a seed that is neither in the library nor an audio file (or is silent), a journey
        without both ends or with seeds too, ``minutes`` for a journey, nothing usable in ``extend``.
    """
    config = config or PlaylistConfig()
    if config.audio_duplicates and fingerprints is None:
        fingerprints = AudioFingerprints()
    if tracks is not None and tracks < 1 or minutes is not None and minutes <= 0:
        raise InputError("--tracks and --minutes must be above 0 — ask for at least one track")
    if start is not None or end is not None:
        if start is None or end is None:
            raise InputError("a journey needs both ends — give --from TRACK and --to TRACK")
        if seeds or extend:
            raise InputError("--from/--to make a journey on their own — drop --seed and --extend")
        if minutes is not None:
            raise InputError("--minutes is for seed and --extend playlists — a journey takes --tracks (its ends included)")
        n = tracks if tracks is not None else DEFAULT_JOURNEY_TRACKS
        if n < 2:
            raise InputError("a journey has at least 2 tracks (its two ends) — raise --tracks")
        playlist = _journey(recommender, start, end, tracks=n, config=config, where=where, random_seed=random_seed,
                            embedder=embedder, fingerprints=fingerprints)  # fmt: skip
    else:
        if not seeds and not extend:
            raise InputError("no seed — give --seed TRACK (repeatable), --extend PLAYLIST, or --from TRACK --to TRACK")
        playlist = _from_seeds(recommender, seeds, extend, tracks=tracks, minutes=minutes, config=config, where=where,
                               random_seed=random_seed, embedder=embedder, fingerprints=fingerprints)  # fmt: skip
    for line in playlist.notes:
        if on_note is not None:
            on_note(line)
    return playlist
