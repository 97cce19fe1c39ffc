"""The rules a playlist keeps, in one place for the builder and for whoever checks a playlist.

* **No seed echo**: a seed (or a track of the playlist being extended) is never an entry.
* **No artist within N tracks, no album within M** (``artist_gap``, ``album_gap``): counted over the
  seeds (in order) and then the entries, so the first tracks keep away from the seeds' artists too.
  A journey's ends, chosen by the listener, are exempt. Artists and albums compare without case, an album with its album artist
  (:func:`specmusic.embeddings.records.artist_key`, :func:`~specmusic.embeddings.records.album_key`); a
  track whose tags give none is guessed from its folders (:mod:`specmusic.metadata`).
* **No duplicate recording**: the same audio under two paths or on two albums plays once. Two tracks
  are one recording when (a) both carry a MusicBrainz recording id and the ids are equal, (b) their
  tags give the same artist and the same title, compared without case and without a trailing
  bracketed version note (``Song (Remastered 2011)``, ``Song [Radio Edit]``: one song, which a mix
  plays once), or (c) their stored vectors, each column z-scored with the library's
  statistics (:func:`specmusic.embeddings.search.space.identity_vectors`), have a cosine of at least
  ``duplicate_cosine`` (docs/playlists.md measures this test against describe's audio fingerprint on
  copied and re-encoded soundtrack clips). ``audio_duplicates`` adds (d), describe's audio fingerprint
  (:mod:`specmusic.playlists.audio`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from specmusic.embeddings.records import album_key, artist_key
from specmusic.metadata import TrackMetadata
from specmusic.playlists.model import Playlist, PlaylistEntry

__all__ = ["RecordingKey", "rule_violations", "same_recording_by_tags", "song_title", "spacing_conflict"]

_VERSION_NOTE = re.compile(r"\s*[(\[][^)\]]*[)\]]\s*$")


def song_title(title: str) -> str:
    """A title without case and without a trailing version note: ``Song (Remastered 2011)`` → ``song``."""
    bare = _VERSION_NOTE.sub("", title).strip()
    return (bare or title).casefold()


class RecordingKey:
    """What identifies a recording in a track's tags: its MusicBrainz recording id, and its artist and
    song title (rules (a) and (b) of the module docstring)."""

    def __init__(self, meta: TrackMetadata | None) -> None:
        self.mbid = meta.musicbrainz_recording if meta is not None else None
        tagged = meta is not None and meta.source == "tags" and meta.title and artist_key(meta)
        self.name = (artist_key(meta), song_title(meta.title)) if tagged and meta is not None and meta.title else None

    def same(self, other: RecordingKey) -> bool:
        """Whether the tags say the two are one recording."""
        if self.mbid and other.mbid:
            return self.mbid == other.mbid
        return self.name is not None and self.name == other.name


def same_recording_by_tags(a: TrackMetadata | None, b: TrackMetadata | None) -> bool:
    """Rules (a) and (b) of the module docstring: the tags say ``a`` and ``b`` are one recording."""
    return RecordingKey(a).same(RecordingKey(b))


def spacing_conflict(
    meta: TrackMetadata | None, history: Sequence[TrackMetadata | None], *, artist_gap: int, album_gap: int
) -> str | None:
    """``"artist"`` or ``"album"`` when a track with ``meta`` would follow ``history`` (oldest first) too
    soon after another of its artist or album; None when it may."""
    artist, album = artist_key(meta), album_key(meta)
    if artist is not None and artist_gap and any(artist_key(h) == artist for h in history[-artist_gap:]):
        return "artist"
    if album is not None and album_gap and any(album_key(h) == album for h in history[-album_gap:]):
        return "album"
    return None


def rule_violations(
    playlist: Playlist, *, same_recording: Callable[[PlaylistEntry, PlaylistEntry], bool] | None = None
) -> dict[str, list[str]]:
    """Every break of the rules in ``playlist`` (the module docstring), by rule.

    Parameters
    ----------
    playlist : what :func:`specmusic.playlists.make_playlist` made (its ``config`` gives the gaps)
    same_recording : a further test of two entries for one recording (e.g. a benchmark's known
        copies); the tags' test (:func:`same_recording_by_tags`) is always applied

    Returns
    -------
    dict
        ``seed_echo``, ``artist_gap``, ``album_gap``, ``duplicate``: the ids that break each rule
        (empty lists when none).
    """
    out: dict[str, list[str]] = {"seed_echo": [], "artist_gap": [], "album_gap": [], "duplicate": []}
    seeds = {s.id for s in playlist.seeds}
    history = [s.metadata for s in playlist.seeds]
    earlier: list[PlaylistEntry] = list(playlist.seeds)
    cfg = playlist.config
    for entry in playlist.entries:
        if entry.id in seeds:
            out["seed_echo"].append(entry.id)
        why = spacing_conflict(entry.metadata, history, artist_gap=cfg.artist_gap, album_gap=cfg.album_gap)
        if why is not None and entry.role == "track":  # a journey's ends were chosen by the listener
            out[f"{why}_gap"].append(entry.id)
        if any(
            e.id != entry.id and (same_recording_by_tags(e.metadata, entry.metadata) or (same_recording and same_recording(e, entry)))
            for e in earlier
        ):
            out["duplicate"].append(entry.id)
        history.append(entry.metadata)
        earlier.append(entry)
    return out
