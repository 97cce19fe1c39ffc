"""A track's metadata: artist, album, title… read from its tags, or guessed from its folders.

:func:`read_metadata` reads the tags of one audio file with mutagen (ID3 in MP3, WAV and AIFF;
Vorbis comments in Ogg Vorbis, Opus and FLAC; MP4/M4A atoms): only the file's headers and tag
blocks are read, never its audio. It never fails: a file whose tags cannot be read gives a
``warning:`` line (through ``warnings``) and the guess from its path, as does a file with no tags.

The guess from the path (:func:`metadata_from_path`), for the usual ``Artist/Album/NN Title.ext``
layout: the title is the file name without its extension and leading track number (``03 - ``), split
at `` - `` into artist and title when it reads ``Artist - Title``; the album is the parent folder's
name, the artist (unless the file name gave one) the grandparent's. :attr:`TrackMetadata.source` says
which it is (``tags`` or ``folders``); a field the tags leave out is taken from the guess.

Fields (:class:`TrackMetadata`)::

    artist, albumartist, album, title, genre      text (several genres joined by "; ")
    track, year                                    whole numbers (year: the first 4 digits of the date)
    duration                                       seconds (from the file's header)
    musicbrainz_recording, musicbrainz_album,      MusicBrainz ids, when the file was tagged with
    musicbrainz_artist                             Picard or another MusicBrainz tagger
    source                                         "tags" | "folders"

Each text field keeps at most :data:`MAX_TEXT` characters (a library stores them as fixed-width
columns: one huge tag would widen every row). :func:`metadata_columns` and
:func:`metadata_from_columns` are the columns a library file keeps (``meta_<field>``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

__all__ = [
    "MAX_TEXT",
    "METADATA_FIELDS",
    "NUMBER_FIELDS",
    "TEXT_FIELDS",
    "TrackMetadata",
    "metadata_columns",
    "metadata_from_columns",
    "metadata_from_path",
    "read_metadata",
]

TEXT_FIELDS = (
    "artist", "albumartist", "album", "title", "genre",
    "musicbrainz_recording", "musicbrainz_album", "musicbrainz_artist",
)  # fmt: skip
NUMBER_FIELDS = ("track", "year", "duration")
#: Every field a filter or a group key may name (``source`` aside).
METADATA_FIELDS = TEXT_FIELDS + NUMBER_FIELDS
#: Characters kept of a text field.
MAX_TEXT = 200
_SOURCES = ("tags", "folders")


@dataclass(frozen=True)
class TrackMetadata:
    """What a track's tags (or, without tags, its folders) say about it (see the module docstring)."""

    artist: str | None = None
    albumartist: str | None = None
    album: str | None = None
    title: str | None = None
    genre: str | None = None
    track: int | None = None
    year: int | None = None
    duration: float | None = None  # seconds
    musicbrainz_recording: str | None = None
    musicbrainz_album: str | None = None
    musicbrainz_artist: str | None = None
    source: str = "tags"  # "tags" | "folders"

    def to_dict(self) -> dict[str, Any]:
        """The known fields (None left out) and ``source``: a JSON Lines record's ``"metadata"``."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrackMetadata:
        """The inverse of :meth:`to_dict` (unknown keys ignored, values checked and converted).

        Raises
        ------
        ValueError
            A number field that is not a number.
        """
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known or value in (None, ""):
                continue
            if key in ("track", "year"):
                values[key] = int(value)
            elif key == "duration":
                values[key] = float(value)
            else:
                values[key] = _clean(str(value))
        if values.get("source") not in _SOURCES:
            values["source"] = "tags"
        return cls(**values)

    def value(self, name: str) -> str | int | float | None:
        """The field ``name`` (one of :data:`METADATA_FIELDS`)."""
        return getattr(self, name)

    @property
    def display(self) -> str | None:
        """``Artist — Title`` (or whichever of the two is known); None when the tags give neither."""
        if self.source != "tags":
            return None
        parts = [p for p in (self.artist or self.albumartist, self.title) if p]
        return " — ".join(parts) or None


def _clean(text: str) -> str | None:
    text = text.replace("\x00", " ").strip()
    return text[:MAX_TEXT] or None


# -- the guess from the path ----------------------------------------------------------------
_TRACK_PREFIX = re.compile(r"^(\d{1,3})(?:\s*[-._)]\s*|\s+)(?=\S)")


def metadata_from_path(path: str, *, duration: float | None = None) -> TrackMetadata:
    """The guess from a path (module docstring): ``Artist/Album/03 - Title.mp3`` → artist, album, 3, title."""
    norm = os.path.normpath(path)
    stem = os.path.splitext(os.path.basename(norm))[0]
    parent = os.path.dirname(norm)
    album = os.path.basename(parent) or None
    artist = os.path.basename(os.path.dirname(parent)) or None
    track = None
    m = _TRACK_PREFIX.match(stem)
    if m:
        track, stem = int(m.group(1)), stem[m.end() :]
    title = stem
    if " - " in stem:
        artist, title = (s.strip() for s in stem.split(" - ", 1))
    return TrackMetadata(
        artist=_clean(artist) if artist not in (None, ".", "..") else None,
        album=_clean(album) if album not in (None, ".", "..") else None,
        title=_clean(title), track=track, duration=duration, source="folders",
    )  # fmt: skip


# -- reading tags ---------------------------------------------------------------------------
#: ID3 frames (MP3 without the easy interface: WAV, AIFF) → fields.
_ID3_FRAMES = {
    "TPE1": "artist", "TPE2": "albumartist", "TALB": "album", "TIT2": "title", "TCON": "genre",
    "TRCK": "tracknumber", "TDRC": "date", "TDOR": "originaldate", "UFID:http://musicbrainz.org": "musicbrainz_trackid",
    "TXXX:MusicBrainz Album Id": "musicbrainz_albumid", "TXXX:MusicBrainz Artist Id": "musicbrainz_artistid",
}  # fmt: skip
#: Tag keys (lower case) → fields, in order of preference.
_KEYS = {
    "artist": ("artist",),
    "albumartist": ("albumartist", "album artist", "album_artist", "aart"),
    "album": ("album",),
    "title": ("title",),
    "genre": ("genre",),
    "track": ("tracknumber", "track"),
    "year": ("date", "originaldate", "year"),
    "musicbrainz_recording": ("musicbrainz_trackid",),
    "musicbrainz_album": ("musicbrainz_albumid",),
    "musicbrainz_artist": ("musicbrainz_artistid",),
}


def _as_text(value: Any) -> list[str]:
    """A tag value as text: mutagen gives lists of str, ID3 frames, MP4 free-form bytes."""
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        if hasattr(item, "text"):  # an ID3 text frame
            out += [str(t) for t in item.text]
        elif hasattr(item, "data") and hasattr(item, "owner"):  # an ID3 UFID frame
            out.append(bytes(item.data).decode("ascii", "replace"))
        elif isinstance(item, bytes):
            out.append(item.decode("utf-8", "replace"))
        else:
            out.append(str(item))
    return [t for t in (s.strip() for s in out) if t]


def _tag_dict(tags: Any) -> dict[str, list[str]]:
    """Any mutagen tag object as ``{lower-case key: [text, …]}``."""
    try:
        from mutagen.id3 import ID3
    except ImportError:  # pragma: no cover - mutagen is a dependency
        ID3 = ()  # type: ignore[assignment,misc]
    if isinstance(tags, ID3):
        return {name: _as_text(tags.getall(frame) or []) for frame, name in _ID3_FRAMES.items() if tags.getall(frame)}
    out: dict[str, list[str]] = {}
    for key, value in tags.items():
        out.setdefault(str(key).lower(), []).extend(_as_text(value))
    return out


def _first_number(texts: list[str], pattern: str) -> int | None:
    for text in texts:
        m = re.search(pattern, text)
        if m:
            return int(m.group(0))
    return None


def _from_tags(tags: dict[str, list[str]]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, keys in _KEYS.items():
        texts = next((tags[k] for k in keys if tags.get(k)), [])
        if not texts:
            continue
        if name == "track":
            values[name] = _first_number(texts, r"\d+")
        elif name == "year":
            values[name] = _first_number(texts, r"\d{4}")
        elif name == "genre":
            values[name] = _clean("; ".join(dict.fromkeys(texts)))
        else:
            values[name] = _clean(texts[0])
    return {k: v for k, v in values.items() if v is not None}


def _header_duration(path: str) -> float | None:
    """Seconds from the audio header (soundfile), for files mutagen does not know (AU…)."""
    try:
        from specmusic.audio import read_info

        info = read_info(path)
        return info.frames / info.sample_rate if info.sample_rate and info.frames > 0 else None
    except Exception:  # noqa: BLE001 — metadata never fails a track
        return None


def read_metadata(path: str, *, warnings: list[str] | None = None) -> TrackMetadata:
    """The metadata of the audio file ``path``: its tags, the rest guessed from its folders (module docstring).

    Never raises: unreadable tags add one line to ``warnings`` and give the guess from the path; a
    missing file (or an install without mutagen) gives the guess alone.
    """
    from specmusic.fileio import display_path

    values: dict[str, Any] = {}
    duration = None
    if not os.path.isfile(path):  # gone since it was embedded: the path is all there is
        return metadata_from_path(path)
    try:
        import mutagen

        audio = mutagen.File(path, easy=True)
        if audio is not None:
            length = getattr(audio.info, "length", None)
            duration = float(length) if length and math.isfinite(length) and length > 0 else None
            if audio.tags is not None:
                values = _from_tags(_tag_dict(audio.tags))
    except ImportError:  # a broken install (mutagen is a dependency): the guess from the path, quietly
        pass
    except Exception as exc:  # noqa: BLE001 — a broken tag is a warning, never a failed track
        if warnings is not None:
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:100]}" if str(exc) else type(exc).__name__
            warnings.append(f"{display_path(path)}: its tags are unreadable ({reason}) — artist and album are "
                            "guessed from its folders; fix the tags with a tag editor")  # fmt: skip
    if duration is None:
        duration = _header_duration(path)
    guess = metadata_from_path(path, duration=round(duration, 3) if duration else None)
    if not any(values.get(k) for k in ("artist", "albumartist", "album", "title")):
        return TrackMetadata(**{**asdict(guess), **values, "source": "folders"})
    merged = {**asdict(guess), "artist": None, **values, "source": "tags"}
    if merged["artist"] is None and merged["albumartist"] is None:
        merged["artist"] = guess.artist
    return TrackMetadata(**merged)


# -- library columns ------------------------------------------------------------------------
def metadata_columns(metadata: Sequence[TrackMetadata | None]) -> dict[str, np.ndarray]:
    """Library columns ``meta_<field>`` [shape=(n,)] (text ``""``, track/year ``-1``, duration NaN where
    unknown; ``meta_source`` ``""`` where none was read); nothing when no row has metadata."""
    if not any(m is not None for m in metadata):
        return {}
    out: dict[str, np.ndarray] = {}
    for name in TEXT_FIELDS + ("source",):
        out[f"meta_{name}"] = np.array([(getattr(m, name) or "") if m else "" for m in metadata], dtype=np.str_)
    for name in ("track", "year"):
        out[f"meta_{name}"] = np.array([v if m and (v := getattr(m, name)) is not None else -1 for m in metadata], np.int64)
    out["meta_duration"] = np.array([m.duration if m and m.duration is not None else np.nan for m in metadata], np.float64)
    return out


def metadata_from_columns(column: Callable[[str], np.ndarray | None], n: int) -> list[TrackMetadata | None] | None:
    """The rows' metadata from library columns (``column(name)``: the array, or None when absent);
    None when the library keeps no metadata (``meta_source`` absent).

    Raises
    ------
    ValueError
        A column whose length is not ``n``.
    """
    source = column("meta_source")
    if source is None:
        return None
    cols: dict[str, np.ndarray | None] = {name: column(f"meta_{name}") for name in METADATA_FIELDS}
    if any(c is not None and len(c) != n for c in (source, *cols.values())):
        raise ValueError("metadata columns of different lengths")
    out: list[TrackMetadata | None] = []
    for i in range(n):
        src = str(source[i])
        if not src:
            out.append(None)
            continue
        values: dict[str, Any] = {"source": src if src in _SOURCES else "tags"}
        for name, col in cols.items():
            if col is None:
                continue
            v = col[i]
            if name in TEXT_FIELDS:
                values[name] = str(v) or None
            elif name == "duration":
                values[name] = float(v) if math.isfinite(float(v)) else None
            else:
                values[name] = int(v) if int(v) >= 0 else None
        out.append(TrackMetadata(**values))
    return out
