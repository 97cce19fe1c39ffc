"""What a playlist is: :class:`Playlist` of :class:`PlaylistEntry`, and the settings that chose it
(:class:`PlaylistConfig`). Records with ``to_dict``/``from_dict``: ``specmusic playlist`` writes them,
a server can send them as they are.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from specmusic.errors import ConfigError
from specmusic.metadata import TrackMetadata

__all__ = ["DEFAULT_JOURNEY_TRACKS", "DEFAULT_TRACKS", "ROLES", "Playlist", "PlaylistConfig", "PlaylistEntry"]

#: Tracks in a playlist when neither a count nor minutes are given (a journey: endpoints included).
DEFAULT_TRACKS = 20
DEFAULT_JOURNEY_TRACKS = 12
#: ``seed``: a track the playlist starts from (not among its entries); ``from``/``to``: a journey's
#: endpoints (its first and last entries); ``track``: a track the playlist chose.
ROLES = ("track", "seed", "from", "to")


@dataclass(frozen=True)
class PlaylistConfig:
    """How each next track is chosen (``specmusic playlist`` flags; docs/playlists.md measures them).

    Defaults (one block)::

        balance          = 0.25   # 0: each track close to the last one only; 1: close to the seeds only
                                  #   (a journey: to the point on the way from start to end)
        artist_gap       = 3      # no artist twice within this many tracks (0: off)
        album_gap        = 5      # no album twice within this many tracks (0: off)
        duplicate_cosine = 0.96   # identity vectors this close are one recording (docs/playlists.md)
        audio_duplicates = False  # also compare audio fingerprints (finds other edits; decodes each track)
        variety          = 3      # each track drawn from this many best candidates (1: always the best)
        temperature      = 0.02   # the draw's weights: exp((score - best) / temperature)
        pool             = 0      # candidates gathered per seed or waypoint; 0: max(200, 20 × tracks)
    """

    balance: float = 0.25
    artist_gap: int = 3
    album_gap: int = 5
    duplicate_cosine: float = 0.96
    audio_duplicates: bool = False
    variety: int = 3
    temperature: float = 0.02
    pool: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.balance <= 1.0:
            raise ConfigError(f"balance {self.balance} is outside 0..1 — 0 follows the last track, 1 stays by the seeds")
        if self.artist_gap < 0 or self.album_gap < 0 or self.variety < 1 or self.pool < 0 or self.temperature <= 0:
            raise ConfigError("gaps and pool must be 0 or more, variety 1 or more, temperature above 0 — fix the flags")
        if not 0.0 < self.duplicate_cosine <= 1.0:
            raise ConfigError(f"duplicate_cosine {self.duplicate_cosine} must be in (0, 1]")

    def to_dict(self) -> dict[str, Any]:
        """Every setting, by name."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlaylistConfig:
        """The inverse of :meth:`to_dict` (unknown keys ignored).

        Raises
        ------
        ConfigError
            A value out of range.
        """
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class PlaylistEntry:
    """One track of a playlist.

    ``id`` is the track's path as the OS decodes it (as the library holds it); ``score`` what chose it:
    ``(1 - balance) × to_previous + balance × to_seeds`` (cosines in the library's search space; 1.0
    for a journey's endpoints and for seeds); ``to_previous`` its cosine with the track before it (the
    first entry: with the last seed; None for a journey's start and for seeds); ``to_seeds`` its mean
    cosine with the seeds (a journey: with its point on the way).
    """

    id: str
    score: float
    to_previous: float | None = None
    to_seeds: float | None = None
    metadata: TrackMetadata | None = None
    label: str | None = None
    role: str = "track"

    @property
    def duration(self) -> float | None:
        """Seconds, when the tags or the file header gave them."""
        return self.metadata.duration if self.metadata is not None else None

    @property
    def title_line(self) -> str:
        """``Artist - Title`` as players show it (M3U ``#EXTINF``), else the file name without extension."""
        m = self.metadata
        if m is not None and m.title:
            artist = m.artist or m.albumartist
            return f"{artist} - {m.title}" if artist else m.title
        return os.path.splitext(os.path.basename(self.id))[0]

    def to_dict(self) -> dict[str, Any]:
        """A JSON record: id, score, to_previous, to_seeds, role[, label][, metadata]."""
        rec: dict[str, Any] = {
            "id": self.id, "score": round(self.score, 6),
            "to_previous": round(self.to_previous, 6) if self.to_previous is not None else None,
            "to_seeds": round(self.to_seeds, 6) if self.to_seeds is not None else None, "role": self.role,
        }  # fmt: skip
        if self.label is not None:
            rec["label"] = self.label
        if self.metadata is not None:
            rec["metadata"] = self.metadata.to_dict()
        return rec

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlaylistEntry:
        """The inverse of :meth:`to_dict`.

        Raises
        ------
        KeyError, ValueError
            No id, or a field of the wrong kind.
        """
        meta = data.get("metadata")
        return cls(
            id=str(data["id"]), score=float(data.get("score", 0.0)),
            to_previous=None if data.get("to_previous") is None else float(data["to_previous"]),
            to_seeds=None if data.get("to_seeds") is None else float(data["to_seeds"]),
            metadata=TrackMetadata.from_dict(meta) if meta else None, label=data.get("label"),
            role=str(data.get("role", "track")),
        )  # fmt: skip


@dataclass
class Playlist:
    """Entries in playing order, and what they were chosen from.

    ``mode``: ``seeds`` (near one or more seed tracks), ``journey`` (from one track to another, both
    among the entries) or ``extend`` (continuing a playlist: its tracks are the seeds); ``seeds``: the
    tracks it started from (role ``seed``; not among the entries, except a journey's endpoints);
    ``notes``: what the rules could not keep (a relaxed gap, a pool used up).
    """

    entries: list[PlaylistEntry]
    mode: str = "seeds"
    seeds: list[PlaylistEntry] = field(default_factory=list)
    config: PlaylistConfig = field(default_factory=PlaylistConfig)
    random_seed: int = 0
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[PlaylistEntry]:
        return iter(self.entries)

    @property
    def ids(self) -> list[str]:
        """The entries' ids, in order."""
        return [e.id for e in self.entries]

    @property
    def duration(self) -> float:
        """Seconds of the entries whose duration is known."""
        return float(sum(e.duration or 0.0 for e in self.entries))

    def to_dict(self) -> dict[str, Any]:
        """The whole playlist as one JSON object."""
        return {
            "mode": self.mode, "entries": [e.to_dict() for e in self.entries], "seeds": [s.to_dict() for s in self.seeds],
            "config": self.config.to_dict(), "random_seed": self.random_seed, "notes": list(self.notes),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Playlist:
        """The inverse of :meth:`to_dict`.

        Raises
        ------
        KeyError, ValueError, ConfigError
            A malformed record.
        """
        return cls(
            entries=[PlaylistEntry.from_dict(e) for e in data["entries"]], mode=str(data.get("mode", "seeds")),
            seeds=[PlaylistEntry.from_dict(s) for s in data.get("seeds", [])],
            config=PlaylistConfig.from_dict(data.get("config", {})), random_seed=int(data.get("random_seed", 0)),
            notes=[str(n) for n in data.get("notes", [])],
        )  # fmt: skip
