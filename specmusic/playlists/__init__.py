"""Playlists from an embedding library: a mix near seed tracks, a journey from one track to another,
or more of a playlist; the rules a good mix keeps; the files players read.

* :mod:`~specmusic.playlists.model`: :class:`Playlist`, :class:`PlaylistEntry` (id, score, metadata),
  :class:`PlaylistConfig` (the weights and rules, every default in one block)
* :mod:`~specmusic.playlists.rules`: no seed echo, artist and album gaps, no duplicate recording
  (:func:`rule_violations` checks a playlist)
* :mod:`~specmusic.playlists.build`: :func:`make_playlist`, over any
  :class:`~specmusic.embeddings.Recommender` (a library file or a sharded folder)
* :mod:`~specmusic.playlists.formats`: M3U8, XSPF and JSON Lines written (:func:`write_playlist`,
  :func:`render_playlist`) and read back (:func:`read_playlist`)

``specmusic playlist`` is a thin command over these; docs/playlists.md measures them.
"""

from __future__ import annotations

from specmusic.playlists.build import make_playlist
from specmusic.playlists.formats import (
    PLAYLIST_FORMATS,
    playlist_format,
    read_playlist,
    render_playlist,
    write_playlist,
)
from specmusic.playlists.model import (
    DEFAULT_JOURNEY_TRACKS,
    DEFAULT_TRACKS,
    ROLES,
    Playlist,
    PlaylistConfig,
    PlaylistEntry,
)
from specmusic.playlists.rules import rule_violations, same_recording_by_tags

__all__ = [
    "DEFAULT_JOURNEY_TRACKS",
    "DEFAULT_TRACKS",
    "PLAYLIST_FORMATS",
    "ROLES",
    "Playlist",
    "PlaylistConfig",
    "PlaylistEntry",
    "make_playlist",
    "playlist_format",
    "read_playlist",
    "render_playlist",
    "rule_violations",
    "same_recording_by_tags",
    "write_playlist",
]
