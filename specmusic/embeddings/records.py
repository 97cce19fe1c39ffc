"""The small records the store and search pass around: a track's top tags, a library row as search
results show it, and the keys that group rows (``recommend --group-key``).

Group keys leave out the neighbours that share the query's value:

    group   the library's group (a manifest's group column)
    label   the track's label (from its parent folder, or a manifest)
    dir     the name of the track's immediate parent folder (``rock`` for ``/music/rock/a.mp3``);
            names, not whole paths, so a query file elsewhere (``~/new/rock/b.mp3``) matches too

(a table searched by ``recommend`` also groups by any of its columns).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from specmusic.errors import InputError

__all__ = ["GROUP_KEYS", "TOP_TAGS", "Tags", "TrackRow", "folder_of", "group_column", "top_tags"]

#: A track's top labels from the model that embedded it, best first: ``{"rock": 0.62, ...}``.
Tags = dict[str, float]
#: Labels kept per track in a library (the most probable first).
TOP_TAGS = 10
GROUP_KEYS = ("group", "label", "dir")


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


def group_column(
    key: str, *, ids: Sequence[str], labels: Sequence[str | None], groups: Sequence[str | None]
) -> list[str | None]:
    """Each row's value for the group key ``key`` (``group`` | ``label`` | ``dir``; None: no value).

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
    raise InputError(f"--group-key {key!r} is unknown — use one of {', '.join(GROUP_KEYS)}")


@dataclass(frozen=True)
class TrackRow:
    """One library row as a search result shows it (its vector aside); a query that is a new audio
    file is one too: its path as ``id``, no label or group, the tags and warnings of its embedding."""

    id: str
    label: str | None = None
    group: str | None = None
    tags: Tags | None = None
    warnings: list[str] = field(default_factory=list)

    def value(self, key: str) -> str | None:
        """The row's value for a group key (:func:`group_column`).

        Raises
        ------
        InputError
            An unknown key.
        """
        return group_column(key, ids=[self.id], labels=[self.label], groups=[self.group])[0]
