"""The small records the store and search pass around: a track's top tags, a library row as search
results show it, and the keys that group rows (``recommend --group-key``).

Group keys leave out the neighbours that share the query's value:

    group   the library's group (a manifest's group column)
    label   the track's label (from its parent folder, or a manifest)
    dir     the name of the track's immediate parent folder (``rock`` for ``/music/rock/a.mp3``);
            names, not whole paths, so a query file elsewhere (``~/new/rock/b.mp3``) matches too
    artist  the track's artist (its tags, else the guess from its folders: :mod:`specmusic.metadata`),
            compared without case
    album   its album, with its album artist (two "Greatest Hits" of two artists are two albums)

(a table searched by ``recommend`` also groups by any of its columns).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from specmusic.errors import InputError
from specmusic.metadata import TrackMetadata

__all__ = [
    "GROUP_KEYS", "TOP_TAGS", "Tags", "TrackRow", "album_key", "artist_key", "folder_of", "group_column", "top_tags",
]  # fmt: skip

#: A track's top labels from the model that embedded it, best first: ``{"rock": 0.62, ...}``.
Tags = dict[str, float]
#: Labels kept per track in a library (the most probable first).
TOP_TAGS = 10
GROUP_KEYS = ("group", "label", "dir", "artist", "album")


def top_tags(probabilities: np.ndarray, labels: list[str], n: int = TOP_TAGS) -> Tags:
    """The ``n`` most probable labels, best first: ``{"rock": 0.62, ...}`` (4 decimals).

    Parameters
    ----------
    probabilities : np.ndarray [shape=(n_classes,)], in ``labels`` order
    labels : the model's class names
    n : how many to keep
    """
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    order = np.argsort(-p, kind="stable")[:n]
    return {labels[i]: round(float(p[i]), 4) for i in order}


def folder_of(path: str) -> str | None:
    """The name of the immediate parent folder of ``path`` (``rock`` for ``/music/rock/a.mp3``), or None."""
    return os.path.basename(os.path.dirname(os.path.normpath(path))) or None


def artist_key(meta: TrackMetadata | None) -> str | None:
    """The artist a playlist spaces out and ``--group-key artist`` compares: the artist (else the album
    artist), without case; None when unknown."""
    name = (meta.artist or meta.albumartist) if meta is not None else None
    return name.casefold() if name else None


def album_key(meta: TrackMetadata | None) -> str | None:
    """The album, with its album artist (else artist), without case: ``"nina simone\x1fpastel blues"``;
    None when the album is unknown."""
    if meta is None or not meta.album:
        return None
    return f"{(meta.albumartist or meta.artist or '').casefold()}\x1f{meta.album.casefold()}"


def group_column(
    key: str, *, ids: Sequence[str], labels: Sequence[str | None], groups: Sequence[str | None],
    metadata: Sequence[TrackMetadata | None] | None = None,
) -> list[str | None]:  # fmt: skip
    """Each row's value for the group key ``key`` (one of :data:`GROUP_KEYS`; None: no value).

    Raises
    ------
    InputError
        An unknown key.
    """
    if key == "group":
        return list(groups)
    if key == "label":
        return list(labels)
    if key == "dir":
        return [folder_of(i) for i in ids]
    if key in ("artist", "album"):
        meta = metadata if metadata is not None else [None] * len(ids)
        return [artist_key(m) if key == "artist" else album_key(m) for m in meta]
    raise InputError(f"--group-key {key!r} is unknown — use one of {', '.join(GROUP_KEYS)}")


@dataclass(frozen=True)
class TrackRow:
    """One library row as a search result shows it (its vector aside); a query that is a new audio
    file is one too: its path as ``id``, no label or group, the tags and warnings of its embedding.
    ``meta``: what its tags say (None: not read, as in a library embedded before tags were kept)."""

    id: str
    label: str | None = None
    group: str | None = None
    tags: Tags | None = None
    warnings: list[str] = field(default_factory=list)
    meta: TrackMetadata | None = None

    def value(self, key: str) -> str | None:
        """The row's value for a group key (:func:`group_column`).

        Raises
        ------
        InputError
            An unknown key.
        """
        return group_column(key, ids=[self.id], labels=[self.label], groups=[self.group], metadata=[self.meta])[0]
