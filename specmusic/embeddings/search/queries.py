"""What a query is and how one is found: a library id (path), or an audio file embedded on the spot.

Ids are paths as the OS decodes them (lone surrogates for bytes that are not UTF-8); a query may
give such a byte as itself or as ``\\xNN`` (the form text output shows) or ``\\udcNN``.

Audio that embeds to a meaningless vector is handled by what :func:`specmusic.audio.signal_warnings`
says about it: digital silence is refused (:meth:`Query.checked`: any neighbour of silence would be a
confident-looking accident), whether it is a new audio file or a library entry embedded from silence;
mis-scaled samples or a clip shorter than the model's window are answered, with the warning on the query.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from specmusic.embeddings.description import ModelDescription
from specmusic.embeddings.embedders import Embedder, embedder_from_description
from specmusic.embeddings.records import Tags, TrackRow
from specmusic.errors import InputError
from specmusic.fileio import display_path

__all__ = ["IdLookup", "LibraryEmbedder", "Query", "as_os_text", "audio_query"]

#: What :func:`specmusic.audio.signal_warnings` says of digital silence: such a query is refused.
_SILENCE = "digital silence"
_ESCAPED = re.compile(
    r"\\x(?P<byte>[89a-fA-F][0-9a-fA-F])|\\x(?P<control>[01][0-9a-fA-F]|7[fF])|\\(?P<short>[nrt])"
    r"|\\u(?P<char>[dD][cC][89a-fA-F][0-9a-fA-F]|202[89])"
)
_SHORT = {"n": "\n", "r": "\r", "t": "\t"}


def _unescape(m: re.Match[str]) -> str:
    if m["byte"]:
        return chr(0xDC00 + int(m["byte"], 16))  # a byte that is not UTF-8, as os.fsdecode keeps it
    if m["short"]:
        return _SHORT[m["short"]]
    return chr(int(m["control"] or m["char"], 16))


def as_os_text(query: str) -> str:
    """``query`` with the escapes that :func:`specmusic.fileio.display_path` writes turned back into what
    they stand for: ``\\xNN``/``\\udcNN`` of non-UTF-8 bytes into the lone surrogates ``os.fsdecode``
    gives them, ``\\n``, ``\\t``, ``\\x01``… into control characters (a name copied from text output)."""
    return _ESCAPED.sub(_unescape, query)


@dataclass
class Query:
    """A resolved query: its search-space vector, its library row (None: a new audio file), and the
    query as a row (:class:`~specmusic.embeddings.records.TrackRow`: the library's record, or the audio
    file's path with the tags and warnings of its embedding)."""

    text: str
    vector: np.ndarray
    row: int | None
    track: TrackRow
    #: The query's vector as duplicate tests compare it
    #: (:func:`~specmusic.embeddings.search.space.identity_vectors`), when known.
    identity: np.ndarray | None = None

    @property
    def tags(self) -> Tags | None:
        """The query's top tags (None: none kept)."""
        return self.track.tags

    @property
    def warnings(self) -> list[str]:
        """Why the query's vector may mean little (``[]``: no reason)."""
        return self.track.warnings

    def checked(self) -> Query:
        """The query, unless its audio is digital silence (then no neighbour would mean anything).

        Raises
        ------
        InputError
            The query's audio (or the library entry it names) is silent.
        """
        silent = next((w for w in self.warnings if _SILENCE in w), None)
        if silent is not None:
            what = silent.split(" — ")[0]
            raise InputError(f"{what} — no neighbours of silence would mean anything; query with audio that is not silent")
        return self


class IdLookup:
    """Find a query among ids: exact id, same absolute path, or a unique path suffix (``paths``)."""

    def __init__(self, ids: Sequence[str], *, paths: bool = True) -> None:
        self.ids, self.paths = ids, paths
        self._by_id = {id_: i for i, id_ in enumerate(ids)}
        self._abs: dict[str, int] | None = None

    def find(self, query: str) -> int | None:
        """Row of ``query``, else None (``\\xNN`` escapes of non-UTF-8 bytes accepted).

        Raises
        ------
        InputError
            The suffix matches several ids.
        """
        for form in dict.fromkeys((query, as_os_text(query))):
            hit = self._find(form)
            if hit is not None:
                return hit
        return None

    def _find(self, query: str) -> int | None:
        if query in self._by_id:
            return self._by_id[query]
        if not self.paths:
            return None
        if self._abs is None:
            self._abs = {os.path.abspath(os.path.expanduser(i)): n for n, i in enumerate(self.ids)}
        hit = self._abs.get(os.path.abspath(os.path.expanduser(query)))
        if hit is not None:
            return hit
        tail = "/" + query.lstrip("./")
        matches = [n for n, i in enumerate(self.ids) if i.endswith(tail)]
        if len(matches) > 1:
            raise InputError(
                f"query {display_path(query)!r} matches {len(matches)} library ids ({display_path(self.ids[matches[0]])}, "
                "…) — give more of the path"
            )
        return matches[0] if matches else None


class LibraryEmbedder:
    """The embedder that made a library (:func:`~specmusic.embeddings.embedders.embedder_from_description`),
    built on the first audio query that needs it and kept."""

    def __init__(self, model: ModelDescription) -> None:
        self.model = model
        self._embedder: Embedder | None = None

    def __call__(self) -> Embedder:
        """The embedder.

        Raises
        ------
        ModelError
            The library does not say how it was made, or its model file is gone or changed.
        """
        if self._embedder is None:
            self._embedder = embedder_from_description(self.model)
        return self._embedder


def audio_query(
    query: str, embedder: Embedder | Callable[[], Embedder], to_space: Callable[[np.ndarray], np.ndarray],
    to_identity: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Query | None:
    """``query`` as an audio file that is not in the library, or None when it names none: embedded with
    ``embedder`` (or the one a function returns, asked only for a file), its vector mapped into the
    search space by ``to_space`` and (``to_identity``, given it L2-normalised as a library stores it)
    into the space of duplicate tests.

    Raises
    ------
    InputError
        The audio is silent (:meth:`Query.checked`), or the embedding fails.
    """
    from specmusic.audio import AUDIO_EXTENSIONS

    path = next((p for p in dict.fromkeys((query, as_os_text(query))) if os.path.isfile(p)), None)
    if path is None or Path(path).suffix.lower() not in AUDIO_EXTENSIONS:
        return None
    if not isinstance(embedder, Embedder):
        embedder = embedder()
    warnings: list[str] = []
    vec, tags = embedder.embed_file_tagged(path, warnings=warnings)
    row = TrackRow(query, None, None, tags, warnings)
    stored = np.asarray(vec, np.float32).reshape(-1)
    stored = stored / max(float(np.linalg.norm(stored)), 1e-12)
    return Query(query, to_space(vec), None, row, to_identity(stored) if to_identity else None).checked()
