"""Why a match was recommended, in words a listener knows.

* Tables (CSV): the columns on which the two rows are *actually* close, i.e. whose z-scored values
  differ by at most :data:`CLOSE_SD` standard deviations, each with both values and the difference;
  and the column on which they differ most when that is more than :data:`FAR_SD` deviations.
* Embeddings: what the two tracks share — label, group, parent folder, and the artist, album and
  genres their own tags name (:mod:`specmusic.metadata`; not guesses from folder names) — and, when
  the library keeps each track's top tags (embedded with a tagger or another ONNX model), the tags
  both have, ranked by the lower of the two probabilities. Embedding dimensions are never named: they mean
  nothing to a listener.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from specmusic.embeddings.records import Tags, TrackRow, album_key, artist_key, folder_of
from specmusic.metadata import TrackMetadata

__all__ = [
    "CLOSE_SD", "FAR_SD", "SeveralFolders", "explain_columns", "explain_match", "explain_tags", "explain_text",
    "shared_metadata",
]  # fmt: skip

#: Columns at most this many standard deviations apart are "close".
CLOSE_SD = 0.5
#: The most different column is named when it is more than this many standard deviations apart.
FAR_SD = 1.0


def _num(x: Any) -> Any:
    x = float(x)
    return int(x) if x.is_integer() else round(x, 6)


def _column(name: str, q: float, m: float, z_diff: float) -> dict[str, Any]:
    return {"column": name, "query": _num(q), "match": _num(m), "diff": _num(abs(q - m)), "z_diff": round(z_diff, 4)}


def explain_columns(
    query_z: np.ndarray,
    match_z: np.ndarray,
    *,
    columns: Sequence[str],
    raw_query: np.ndarray,
    raw_match: np.ndarray,
    top: int = 3,
) -> dict[str, Any]:
    """The columns on which two table rows are close, and the one on which they differ most.

    Parameters
    ----------
    query_z, match_z : np.ndarray [shape=(d,)], z-scored rows (a difference of 1 is one standard
        deviation of that column)
    columns : names of the ``d`` columns
    raw_query, raw_match : [shape=(d,)], the values in the columns' own units
    top : at most this many close columns

    Returns
    -------
    dict
        ``closest_columns``: ``[{"column", "query", "match", "diff", "z_diff"}]``, best first, only
        those within :data:`CLOSE_SD` (may be empty); ``farthest_column``: the same fields for the
        most different column when it is more than :data:`FAR_SD` apart, else None.
    """
    diff = np.abs(np.asarray(query_z, np.float64) - np.asarray(match_z, np.float64))
    order = np.argsort(diff, kind="stable")
    close = [i for i in order[:top] if diff[i] <= CLOSE_SD]
    far = int(order[-1])
    return {
        "closest_columns": [_column(columns[i], raw_query[i], raw_match[i], float(diff[i])) for i in close],
        "farthest_column": _column(columns[far], raw_query[far], raw_match[far], float(diff[far]))
        if diff[far] > FAR_SD
        else None,
    }


def explain_tags(query: Tags | None, match: Tags | None, *, top: int = 3) -> dict[str, Any]:
    """The top tags two tracks share, ranked by the lower of their two probabilities.

    Returns
    -------
    dict
        ``{}`` when either track has no tags; else ``shared_tags``: ``[{"tag", "query", "match"}]``
        (may be empty) and each track's three most probable tags (``query_tags``, ``match_tags``).
    """
    if not query or not match:
        return {}
    both = sorted((t for t in query if t in match), key=lambda t: -min(query[t], match[t]))
    return {
        "shared_tags": [{"tag": t, "query": query[t], "match": match[t]} for t in both[:top]],
        "query_tags": list(query)[:3],
        "match_tags": list(match)[:3],
    }


def _genres(meta: TrackMetadata) -> dict[str, str]:
    return {g.strip().casefold(): g.strip() for g in (meta.genre or "").replace("/", ";").split(";") if g.strip()}


def shared_metadata(query: TrackMetadata | None, match: TrackMetadata | None) -> list[str]:
    """What two tracks' own tags share: ``["artist=Nina Simone", "album=Pastel Blues", "genre=Jazz"]``
    (values read from tags only: a guess from folder names says nothing new)."""
    if query is None or match is None or query.source != "tags" or match.source != "tags":
        return []
    shared = []
    if artist_key(query) is not None and artist_key(query) == artist_key(match):
        shared.append(f"artist={query.artist or query.albumartist}")
    if album_key(query) is not None and album_key(query) == album_key(match):
        shared.append(f"album={query.album}")
    genres = _genres(match)
    shared += [f"genre={name}" for key, name in _genres(query).items() if key in genres]
    return shared


def explain_match(query: TrackRow, match: TrackRow, *, several_folders: Callable[[], bool]) -> dict[str, Any]:
    """What a match shares with its query: label and group, parent folder (when the library spans
    several: a folder every track shares says nothing), artist, album and genres
    (:func:`shared_metadata`), top tags (:func:`explain_tags`).

    Parameters
    ----------
    query : the query's library row, or (a new audio file) its path with no label or group and its tags
    match : the neighbour's row
    several_folders : whether the library's tracks lie in more than one folder (asked only when needed)

    Returns
    -------
    dict
        ``shared``: ``["label=rock", "group=g1", "folder=rock", "artist=…"]`` (what applies), and the tag
        fields of :func:`explain_tags`.
    """
    shared = []
    for name, q, m in (("label", query.label, match.label), ("group", query.group, match.group)):
        if q is not None and q == m:
            shared.append(f"{name}={q}")
    folder = folder_of(query.id)
    if folder is not None and folder == folder_of(match.id) and f"label={folder}" not in shared:
        if several_folders():
            shared.append(f"folder={folder}")
    shared += shared_metadata(query.meta, match.meta)
    return {"shared": shared, **explain_tags(query.tags, match.tags)}


class SeveralFolders:
    """Whether the tracks ``ids`` lie in more than one folder, worked out on the first call."""

    def __init__(self, ids: Sequence[str]) -> None:
        self._ids: Sequence[str] | None = ids
        self._answer = False

    def __call__(self) -> bool:
        if self._ids is not None:
            self._answer = len({folder_of(i) for i in self._ids}) > 1
            self._ids = None
        return self._answer


def _fmt(x: Any) -> str:
    return f"{x:g}" if isinstance(x, (int, float)) else str(x)


def _text_columns(info: dict[str, Any]) -> list[str]:
    parts = []
    close = info.get("closest_columns") or []
    if close:
        parts.append(
            "close: " + ", ".join(f"{c['column']} {_fmt(c['query'])} vs {_fmt(c['match'])} ({c['z_diff']:.2f} SD)" for c in close)
        )
    else:
        parts.append(f"no column within {CLOSE_SD:g} SD")
    far = info.get("farthest_column")
    if far:
        parts.append(
            f"apart: {far['column']} {_fmt(far['query'])} vs {_fmt(far['match'])} "
            f"(differ by {_fmt(far['diff'])}, {far['z_diff']:.1f} SD)"
        )
    return parts


def explain_text(info: dict[str, Any]) -> str:
    """One line for ``recommend --explain``'s text output."""
    if "closest_columns" in info:
        return "; ".join(_text_columns(info))
    parts = [f"same {key}: {value}" for key, value in (s.split("=", 1) for s in info.get("shared", []))]
    if info.get("shared_tags"):
        parts.append("shared tags: " + ", ".join(t["tag"] for t in info["shared_tags"]))
    elif "query_tags" in info:
        parts.append(f"no top tag in common (query: {', '.join(info['query_tags'])}; match: {', '.join(info['match_tags'])})")
    if not parts:
        parts.append("no label, folder or tags in common — the match is close in sound only")
    return "; ".join(parts)
