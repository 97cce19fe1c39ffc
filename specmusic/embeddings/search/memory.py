"""Recommending from a library or a table held in memory: :class:`InMemoryRecommender`.

Cosine top-k over the library's search space (:mod:`~specmusic.embeddings.search.space`), exact or
with an ANN index (:func:`specmusic.index.build_index`), with query resolution
(:mod:`~specmusic.embeddings.search.queries`), exclusion by group key
(:mod:`~specmusic.embeddings.records`; a table also by any of its columns), conditions on the tracks'
tags (:mod:`~specmusic.embeddings.search.filters`: the rows that meet them are searched exactly) and
explanations (:mod:`~specmusic.embeddings.search.explain`). Queries are answered one by one: an
unknown id, an unreadable audio file or a silent one is reported (``on_error``) while the other
queries are answered.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from specmusic.embeddings.description import ModelDescription
from specmusic.embeddings.embedders import Embedder
from specmusic.embeddings.records import GROUP_KEYS, Tags, TrackRow, folder_of, group_column
from specmusic.embeddings.search.adapt import Space, library_space, note_fallback
from specmusic.embeddings.search.explain import SeveralFolders, explain_columns, explain_match
from specmusic.embeddings.search.filters import TagsOnDemand, TrackFilter
from specmusic.embeddings.search.queries import IdLookup, LibraryEmbedder, Query, audio_query
from specmusic.embeddings.search.recommender import Neighbour, query_result
from specmusic.embeddings.search.space import column_statistics, identity_vectors, query_space
from specmusic.embeddings.search.tabular import TabularSource
from specmusic.embeddings.store.library import EmbeddingLibrary
from specmusic.errors import InputError
from specmusic.fileio import display_path
from specmusic.index import IndexConfig, VectorIndex, build_index, check_finite, l2_normalize, standardize_columns
from specmusic.metadata import TrackMetadata

__all__ = ["InMemoryRecommender"]

_NOTE = Callable[[str], None]


class InMemoryRecommender:
    """Cosine top-k over a library or a table, with query resolution, exclusion and explanations
    (a :class:`~specmusic.embeddings.search.recommender.Recommender`).

    Build with :meth:`from_library` or :meth:`from_tabular`; call :meth:`recommend`.
    """

    def __init__(
        self,
        *,
        vectors: np.ndarray,
        ids: list[str],
        labels: list[str | None],
        groups: list[str | None],
        model: ModelDescription,
        standardize: bool,
        columns: list[str] | None = None,
        raw: np.ndarray | None = None,
        rows: list[dict[str, str]] | None = None,
        tags: list[Tags | None] | None = None,
        warnings: list[list[str]] | None = None,
        index_config: IndexConfig | None = None,
        on_note: _NOTE | None = None,
        index_cache: str | None = None,
        metadata: list[TrackMetadata | None] | None = None,
        name: str = "the library",
    ) -> None:
        self.ids, self.labels, self.groups, self.model = ids, labels, groups, model
        self.columns, self.raw, self.rows = columns, raw, rows
        self.tags = tags if tags is not None else [None] * len(ids)
        self.warnings = warnings if warnings is not None else [[] for _ in ids]
        self.metadata: list[TrackMetadata | None] = list(metadata) if metadata is not None else [None] * len(ids)
        # A library kept without tags (or a table: none to read) reads them when needed.
        self._tags_on_demand = TagsOnDemand(name, on_note) if columns is None else None
        self.standardize = standardize
        base = np.asarray(vectors, dtype=np.float32)
        if base.ndim != 2 or base.shape[0] == 0:
            raise InputError("the library is empty — embed some tracks first (`specmusic embed DIR -o library.npz`)")
        check_finite(base, "the library", ids)
        packed = model.adapt_groups
        self.space: Space | None = library_space(base, packed, blocks=model.adapt_blocks, learn=standardize) if packed else None
        if self.space is not None:
            note_fallback(self.space, standardize, on_note)
            self.z, self.mean, self.scale = self.space.apply(base), None, None
        elif standardize:
            self.z, self.mean, self.scale = standardize_columns(base)
        else:
            self.z, self.mean, self.scale = base, None, None
        key = ""
        if index_cache is not None:
            st = os.stat(index_cache)
            key = f"{st.st_size}:{st.st_mtime_ns}:standardize={standardize}"
            if self.space is not None:
                key += f":{self.space.key()}"
        self.index = build_index(
            l2_normalize(self.z), config=index_config, ids=ids, on_note=on_note, cache=index_cache, cache_key=key
        )
        self._stored_dim = int(base.shape[1])
        self.stored = base  # as the library stores them (L2-normalised rows; a table: raw values)
        self._identity_stats: tuple[np.ndarray, np.ndarray] | None = None
        self._lookup = IdLookup(ids, paths=columns is None)
        self._library_embedder = LibraryEmbedder(model)
        self._several_folders = SeveralFolders(ids)

    @classmethod
    def from_library(
        cls,
        library: EmbeddingLibrary,
        *,
        standardize: bool | None = None,
        index_config: IndexConfig | None = None,
        on_note: _NOTE | None = None,
        index_cache: str | None = None,
    ) -> InMemoryRecommender:
        """Search a library; ``standardize`` defaults to what its model asks (MFCC stats: yes).

        ``index_cache``: the library's file; an ANN index built for it is saved beside it and
        reused while the file is unchanged (see :func:`specmusic.index.build_index`).

        Raises
        ------
        InputError
            An empty library, or vectors holding NaN.
        """
        std = bool(library.model.standardize) if standardize is None else standardize
        return cls(
            vectors=library.vectors, ids=library.ids, labels=library.labels, groups=library.groups,
            model=library.model, standardize=std, tags=library.tags, warnings=library.warnings,
            index_config=index_config, on_note=on_note, index_cache=index_cache, metadata=library.metadata,
            name=display_path(index_cache) if index_cache else "the library",
        )  # fmt: skip

    @classmethod
    def from_tabular(
        cls, source: TabularSource, *, index_config: IndexConfig | None = None, on_note: _NOTE | None = None
    ) -> InMemoryRecommender:
        """Search table rows, each column z-scored first (so tempo in BPM cannot swamp 0–1 columns).

        Raises
        ------
        InputError
            An empty table.
        """
        n = len(source.ids)
        return cls(
            vectors=source.values, ids=source.ids, labels=[None] * n, groups=[None] * n,
            model=ModelDescription(kind="tabular", columns=list(source.columns)), standardize=True,
            columns=source.columns, raw=source.values, rows=source.rows, index_config=index_config, on_note=on_note,
        )  # fmt: skip

    @property
    def has_tags(self) -> bool:
        """Whether any track carries tags (libraries embedded with an ONNX model)."""
        return any(t for t in self.tags)

    def track(self, j: int) -> TrackRow:
        """Library row ``j`` as results show it, its tags read (on demand for a library kept without them)."""
        row = TrackRow(self.ids[j], self.labels[j], self.groups[j], self.tags[j], list(self.warnings[j]), self.metadata[j])
        if row.meta is None and self._tags_on_demand is not None:
            row = self._tags_on_demand(row)
            self.metadata[j] = row.meta
        return row

    # -- queries ----------------------------------------------------------------------------
    def find_id(self, query: str) -> int | None:
        """Row of ``query``: exact id, same absolute path, or a unique path suffix; else None.

        A byte of a file name that is not UTF-8 may be given as itself or escaped (``\\xNN``).

        Raises
        ------
        InputError
            The suffix matches several ids.
        """
        return self._lookup.find(query)

    def identity(self, stored: np.ndarray) -> np.ndarray:
        """Stored rows [shape=(n, d)] or one [shape=(d,)] as duplicate tests compare them
        (:func:`~specmusic.embeddings.search.space.identity_vectors`, with this library's column statistics)."""
        if self._identity_stats is None:
            self._identity_stats = column_statistics(self.stored)
        return identity_vectors(stored, *self._identity_stats)

    def _query_vector(self, vec: np.ndarray) -> np.ndarray:
        return query_space(vec, self._stored_dim, self.mean, self.scale, self.space)

    def _resolve(self, query: str, embedder: Embedder | None) -> Query:
        row = self.find_id(query)
        if row is not None:
            return Query(query, self.z[row], row, self.track(row), self.identity(self.stored[row])).checked()
        if self.columns is None:
            found = audio_query(query, embedder or self._library_embedder, self._query_vector, self.identity)
            if found is not None and self._tags_on_demand is not None:
                found.track = self._tags_on_demand(found.track, library_row=False)
            if found is not None:
                return found
        hint = "one of the CSV's --id values" if self.columns is not None else "a path in the library or an audio file"
        raise InputError(f"unknown query {display_path(query)!r} — give {hint}")

    def resolve(self, query: str, *, embedder: Embedder | None = None) -> tuple[np.ndarray, int | None]:
        """The (search-space) vector of a query and its library row (None for a new audio file).

        Raises
        ------
        InputError
            Unknown id, or a query audio file whose embedding does not fit the library.
        """
        q = self._resolve(query, embedder)
        return q.vector, q.row

    def resolve_queries(
        self, queries: Sequence[str], *, embedder: Embedder | None = None, on_error: _NOTE | None = None
    ) -> list[Query]:
        """Each query resolved (:meth:`specmusic.embeddings.search.recommender.Recommender.resolve_queries`).

        Raises
        ------
        InputError
            Unknown or silent query (without ``on_error``).
        """
        return self._resolve_all(queries, embedder, on_error)

    def _resolve_all(self, queries: Sequence[str], embedder: Embedder | None, on_error: _NOTE | None) -> list[Query]:
        """Resolve each query; with ``on_error``, a query that cannot be answered is reported and left out."""
        resolved = []
        for q in queries:
            try:
                resolved.append(self._resolve(q, embedder))
            except InputError as exc:  # this query only (ModelError: every audio query would fail alike)
                if on_error is None:
                    raise
                on_error(str(exc))
        return resolved

    # -- groups and explanations ------------------------------------------------------------
    def _group_values(self, key: str) -> list[str | None]:
        if key in GROUP_KEYS or self.rows is None or self.columns is None:
            metadata = [self.track(j).meta for j in range(len(self.ids))] if key in ("artist", "album") else None
            return group_column(key, ids=self.ids, labels=self.labels, groups=self.groups, metadata=metadata)
        if key not in self.rows[0]:
            raise InputError(f"--group-key {key!r} is not a column — columns are {', '.join(self.rows[0])}")
        return [r.get(key) or None for r in self.rows]

    def _group_codes(self, key: str, queries: list[Query]) -> tuple[np.ndarray, list[int]]:
        """Each library row's group code and each query's (``-1``: no group)."""
        table: dict[str, int] = {}
        codes = np.array(
            [table.setdefault(v, len(table)) if v is not None else -1 for v in self._group_values(key)], np.int64
        )
        qcodes = []
        for q in queries:
            if q.row is not None:
                qcodes.append(int(codes[q.row]))
            elif key == "dir":
                qcodes.append(table.get(folder_of(q.text) or "", -1))
            elif key in ("artist", "album"):
                qcodes.append(table.get(q.track.value(key) or "", -1))
            else:
                qcodes.append(-1)
        return codes, qcodes

    def explain(self, query: Query, j: int) -> dict[str, Any]:
        """What library row ``j`` shares with ``query`` (see :mod:`specmusic.embeddings.search.explain`)."""
        if self.columns is not None:
            assert self.raw is not None and query.row is not None
            info: dict[str, Any] = {"shared": []}
            info.update(explain_columns(
                query.vector, self.z[j], columns=self.columns, raw_query=self.raw[query.row], raw_match=self.raw[j]
            ))  # fmt: skip
            return info
        return explain_match(query.track, self.track(j), several_folders=self._several_folders)

    # -- search -----------------------------------------------------------------------------
    def recommend(
        self,
        queries: Sequence[str],
        *,
        k: int = 10,
        group_key: str | None = None,
        explain: bool = False,
        embedder: Embedder | None = None,
        on_error: _NOTE | None = None,
        where: TrackFilter | None = None,
    ) -> list[dict[str, Any]]:
        """The ``k`` nearest tracks to each query, excluding the query and (``group_key``) its group
        (:meth:`specmusic.embeddings.search.recommender.Recommender.recommend`).

        Raises
        ------
        InputError
            Unknown or silent query (without ``on_error``), mismatched dimensions, NaN vectors.
        """
        resolved = self._resolve_all(queries, embedder, on_error)
        qz = np.stack([q.vector for q in resolved]) if resolved else np.zeros((0, self.index.dim), np.float32)
        codes, qcodes = self._group_codes(group_key, resolved) if group_key else (None, None)
        exclude = [[q.row] if q.row is not None else [] for q in resolved]
        idx, scores = self._search(l2_normalize(qz), k, exclude, codes, qcodes, where)
        out = []
        for qi, query in enumerate(resolved):
            found = itertools.takewhile(lambda hit: hit[0] >= 0, zip(idx[qi].tolist(), scores[qi].tolist(), strict=True))
            out.append(query_result(query, (
                (self.track(j), s, self.explain(query, j) if explain else None) for j, s in found
            )))  # fmt: skip
        return out

    def _allowed(self, where: TrackFilter) -> np.ndarray:
        """The rows meeting ``where`` [shape=(m,)] int64, ascending."""
        return np.flatnonzero([where.matches(self.track(j)) for j in range(len(self.ids))]).astype(np.int64)

    def _search(
        self, qn: np.ndarray, k: int, exclude: list[list[int]], codes: np.ndarray | None, qcodes: list[int] | None,
        where: TrackFilter | None,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """:meth:`specmusic.index.VectorIndex.search` over the whole library, or exactly over the rows meeting ``where``."""
        if where is None:
            return self.index.search(qn, k, exclude=exclude, groups=codes, query_groups=qcodes)
        allowed = self._allowed(where)
        if not len(allowed):
            return np.full((len(qn), k), -1, np.int64), np.full((len(qn), k), -np.inf, np.float32)
        sub = VectorIndex(self.index.vectors[allowed], backend="exact", config=self.index.config)
        local = []
        for rows in exclude:  # library rows → positions among the allowed ones
            e = np.asarray(rows, np.int64)
            pos = np.searchsorted(allowed, e)
            local.append(pos[(pos < len(allowed)) & (allowed[np.minimum(pos, len(allowed) - 1)] == e)])
        idx, scores = sub.search(qn, k, exclude=local, groups=codes[allowed] if codes is not None else None,
                                 query_groups=qcodes)  # fmt: skip
        return np.where(idx >= 0, allowed[np.maximum(idx, 0)], -1), scores

    def neighbours(self, vectors: np.ndarray, *, k: int, where: TrackFilter | None = None) -> list[list[Neighbour]]:
        """The ``k`` tracks nearest to each vector
        (:meth:`specmusic.embeddings.search.recommender.Recommender.neighbours`).

        Raises
        ------
        InputError
            Mismatched dimensions or NaN.
        """
        qn = l2_normalize(np.atleast_2d(np.asarray(vectors, np.float32)))
        idx, scores = self._search(qn, min(k, len(self.ids)), [[] for _ in qn], None, None, where)
        out = []
        for qi in range(len(qn)):
            out.append([
                Neighbour(self.track(j), float(s), self.index.vectors[j], self.identity(self.stored[j]))
                for j, s in zip(idx[qi].tolist(), scores[qi].tolist()) if j >= 0
            ])  # fmt: skip
        return out
