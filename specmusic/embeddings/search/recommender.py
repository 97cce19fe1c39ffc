"""What a recommender is (:class:`Recommender`), what it answers (:func:`query_result`, built here for
every recommender), and how an answer reads as text (:func:`result_lines`, :func:`result_notes`).

Two recommenders satisfy the protocol: :class:`~specmusic.embeddings.search.memory.InMemoryRecommender`
(a library or a table held in memory) and :class:`~specmusic.embeddings.search.sharded.ShardedRecommender`
(a sharded folder, part by part). ``recommend`` opens either with
:func:`~specmusic.embeddings.search.sources.open_recommender`.

An answer, one per query (JSON Lines with ``recommend --json``)::

    {"query": str, "warnings": [...],
     "neighbors": [{"rank": 1, "id": str, "score": float, "label": str|null, "group": str|null
                    [, "metadata": {"artist": ..., "title": ..., "source": "tags"}]
                    [, "warnings": [...]][, "explain": {...}]}, ...]}

``id`` and ``query`` as the OS decodes paths; ``metadata`` what the track's tags say
(:class:`specmusic.metadata.TrackMetadata`; ``"source": "folders"``: guessed from its folders); a
neighbour's ``warnings`` only when its library entry was flagged (silent, mis-scaled or too short
audio); ``explain`` with ``--explain`` (:mod:`~specmusic.embeddings.search.explain`).

Besides ``recommend``, a recommender answers what a playlist needs (:mod:`specmusic.playlists`):
:meth:`Recommender.resolve_queries` (tracks or audio files as :class:`~specmusic.embeddings.search.queries.Query`)
and :meth:`Recommender.neighbours` (the tracks nearest to any vectors, as :class:`Neighbour` records
holding their vectors).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from specmusic.embeddings.description import ModelDescription
from specmusic.embeddings.embedders import Embedder
from specmusic.embeddings.records import TrackRow
from specmusic.embeddings.search.explain import explain_text
from specmusic.embeddings.search.filters import TrackFilter
from specmusic.embeddings.search.queries import Query
from specmusic.fileio import display_path
from specmusic.metadata import TrackMetadata

__all__ = ["Neighbour", "Recommender", "query_result", "result_lines", "result_notes"]


@dataclass(frozen=True)
class Neighbour:
    """A library track near a query vector (:meth:`Recommender.neighbours`).

    ``vector``: the track in the search space, L2-normalised [shape=(d,)] (its cosine with the query is
    ``score``); ``identity``: its stored vector as duplicate tests compare it
    (:func:`~specmusic.embeddings.search.space.identity_vectors`) [shape=(d_stored,)]: what tells two
    copies of one recording from two similar recordings.
    """

    row: TrackRow
    score: float
    vector: np.ndarray
    identity: np.ndarray


@runtime_checkable
class Recommender(Protocol):
    """Cosine top-k over a library: what ``recommend`` calls, whatever holds the vectors."""

    #: What made the library's vectors (``tabular`` for a table).
    model: ModelDescription

    @property
    def has_tags(self) -> bool:
        """Whether the library keeps tracks' top tags (``--explain`` names the shared ones)."""
        ...

    def recommend(
        self,
        queries: Sequence[str],
        *,
        k: int = 10,
        group_key: str | None = None,
        explain: bool = False,
        embedder: Embedder | None = None,
        on_error: Callable[[str], None] | None = None,
        where: TrackFilter | None = None,
    ) -> list[dict[str, Any]]:
        """The ``k`` nearest tracks to each query, excluding the query and (``group_key``) its group.

        Parameters
        ----------
        queries : ids in the library, or audio files (embedded with ``embedder`` or the library's model)
        k : neighbours per query
        group_key : ``group`` | ``label`` | ``dir`` | a CSV column; neighbours sharing the query's value
            are left out (:mod:`specmusic.embeddings.records`)
        explain : add what each match shares with its query
        embedder : embeds audio queries (default: the library's own recipe)
        on_error : report a query that cannot be answered (unknown, unreadable, silent, …) here and
            answer the others; without it, the first such query raises
        where : only tracks meeting these conditions (:mod:`~specmusic.embeddings.search.filters`)

        Returns
        -------
        list of :func:`query_result` records, one per answered query

        Raises
        ------
        InputError
            Unknown or silent query (without ``on_error``), mismatched dimensions, NaN vectors.
        """
        ...

    def resolve_queries(
        self,
        queries: Sequence[str],
        *,
        embedder: Embedder | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> list[Query]:
        """Each query as a :class:`~specmusic.embeddings.search.queries.Query`: its search-space vector, its
        library row (None: an audio file embedded now), its record with its tags (``track.meta``) and its
        vector for duplicate tests (``identity``).

        Raises
        ------
        InputError
            Unknown or silent query (without ``on_error``: with it, reported there and left out).
        """
        ...

    def neighbours(self, vectors: np.ndarray, *, k: int, where: TrackFilter | None = None) -> list[list[Neighbour]]:
        """The ``k`` library tracks nearest to each vector, best first, their tags read.

        Parameters
        ----------
        vectors : np.ndarray [shape=(q, d)], in the search space (a :class:`Query`'s ``vector``, or a
            mix of them); normalised here
        k : tracks per vector (fewer when the library or ``where`` holds fewer)
        where : only tracks meeting these conditions

        Raises
        ------
        InputError
            Mismatched dimensions, NaN, a damaged part.
        """
        ...


def query_result(query: Query, hits: Iterable[tuple[TrackRow, float, dict[str, Any] | None]]) -> dict[str, Any]:
    """The answer to one query (see the module docstring): ``hits`` are its neighbours, best first, each
    ``(row, cosine score, what it shares with the query or None)``."""
    neighbours = []
    for rank, (row, score, explained) in enumerate(hits, 1):
        rec: dict[str, Any] = {"rank": rank, "id": row.id, "score": round(float(score), 6), "label": row.label, "group": row.group}
        if row.meta is not None:
            rec["metadata"] = row.meta.to_dict()
        if row.warnings:
            rec["warnings"] = list(row.warnings)
        if explained is not None:
            rec["explain"] = explained
        neighbours.append(rec)
    return {"query": query.text, "warnings": list(query.warnings), "neighbors": neighbours}


def result_lines(result: dict[str, Any], *, explain: bool = False) -> list[str]:
    """A query's neighbours as text: ``# query``, then ``rank<TAB>score<TAB>id[<TAB>Artist — Title][<TAB>label][<TAB>why]``
    (``Artist — Title`` where the tags give them); paths shown with ``\\xNN`` for bytes that are not UTF-8."""
    lines = [f"# {display_path(result['query'])}"]
    for n in result["neighbors"]:
        line = f"{n['rank']}\t{n['score']:.4f}\t{display_path(n['id'])}"
        shown = TrackMetadata.from_dict(n["metadata"]).display if n.get("metadata") else None
        if shown:
            line += f"\t{shown}"
        if n.get("label"):
            line += f"\t{n['label']}"
        if explain and "explain" in n:
            line += "\t" + explain_text(n["explain"])
        lines.append(line)
    return lines


def result_notes(results: list[dict[str, Any]], *, k: int, as_json: bool) -> list[str]:
    """Notes for stderr: queries with fewer than ``k`` neighbours, neighbours flagged when embedded."""
    notes = []
    short = [r["query"] for r in results if len(r["neighbors"]) < k]
    if short:
        notes.append(f"note: fewer than {k} eligible neighbours for {len(short)} query(ies), e.g. {display_path(short[0])}")
    flagged = list(dict.fromkeys(n["id"] for r in results for n in r["neighbors"] if n.get("warnings")))
    if flagged:
        where = "their `warnings`" if as_json else "--json"
        notes.append(
            f"note: {len(flagged)} neighbour(s) were flagged when embedded (silent, mis-scaled or too short audio, "
            f"e.g. {display_path(flagged[0])}) — their scores may mean little; see {where}"
        )
    return notes
