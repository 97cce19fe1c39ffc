"""Recommending from a sharded library (``library/``) without holding its vectors.

:class:`ShardedRecommender` answers like :class:`~specmusic.embeddings.search.memory.InMemoryRecommender`
(the same :class:`~specmusic.embeddings.search.recommender.Recommender` protocol: same queries, exclusions,
group keys, explanations and output records) over a folder of parts:

* exact (the default): the parts are streamed one at a time (memory: one part, the ids, and the
  running top-k); each part is put in the search space with the library-wide column statistics
  (:func:`~specmusic.embeddings.store.shard_stats.shard_statistics`, streamed and cached), so the neighbours
  and scores are those of the same library in one ``.npz``;
* with the folder's FAISS index (:mod:`~specmusic.embeddings.store.shard_index`, IVF or IVF-PQ), when it
  is current: candidates come from the index; their parts are read for exclusion by group or by
  ``where``, for the output records and (IVF-PQ) for exact re-scoring.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from specmusic.embeddings.description import ModelDescription
from specmusic.embeddings.embedders import Embedder
from specmusic.embeddings.records import TrackRow, folder_of, group_column
from specmusic.embeddings.search.adapt import note_fallback
from specmusic.embeddings.search.explain import SeveralFolders, explain_match
from specmusic.embeddings.search.filters import TagsOnDemand, TrackFilter
from specmusic.embeddings.search.queries import IdLookup, LibraryEmbedder, Query, audio_query
from specmusic.embeddings.search.recommender import Neighbour, query_result
from specmusic.embeddings.search.space import identity_vectors, query_space
from specmusic.embeddings.store.library import EmbeddingLibrary
from specmusic.embeddings.store.shard_catalog import index_model, load_part, part_path, read_catalog, read_index
from specmusic.embeddings.store.shard_index import ShardIndex, build_shard_index
from specmusic.embeddings.store.shard_stats import shard_space, shard_statistics
from specmusic.errors import InputError
from specmusic.fileio import display_path
from specmusic.index import l2_normalize

__all__ = ["ShardedRecommender"]

#: What a search keeps of one library row: its record, its search-space (z-scored) vector and its stored one.
_Row = tuple[TrackRow, np.ndarray, np.ndarray]


class ShardedRecommender:
    """Cosine top-k over a sharded library (see the module docstring); call :meth:`recommend`.

    Parameters
    ----------
    folder : the library folder
    standardize : z-score the columns first; default: what the library's model asks
    ann : ``auto`` (the folder's FAISS index when current, else exact) | ``exact`` | ``ivf`` | ``ivfpq``
        (that index, built first when missing or stale and ``build``)
    build : build a missing or stale ``ivf``/``ivfpq`` index (saved in the folder)
    nprobe, rerank : FAISS lists scanned per query; IVF-PQ candidates re-scored exactly (× k, 0: none)
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        standardize: bool | None = None,
        ann: str = "auto",
        build: bool = True,
        nprobe: int = 32,
        rerank: int = 16,
        on_note: Callable[[str], None] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.index, self.cat = read_catalog(self.folder)
        if not len(self.cat):
            raise InputError(f"{display_path(self.folder)}: the library is empty — embed some tracks first")
        self.model: ModelDescription = index_model(self.index)
        self.dim = int(self.index.get("dim") or 0)
        self.standardize = bool(self.model.standardize) if standardize is None else standardize
        groups = self.model.adapt_groups
        self.space = (
            shard_space(self.folder, groups, blocks=self.model.adapt_blocks, learn=self.standardize, catalog=(self.index, self.cat), on_note=on_note)
            if groups else None
        )  # fmt: skip
        if self.space is not None:
            note_fallback(self.space, self.standardize, on_note)
        self.mean, self.scale = (
            shard_statistics(self.folder, on_note=on_note, catalog=(self.index, self.cat))[1:]
            if self.standardize and not groups else (None, None)
        )  # fmt: skip
        self.rerank = rerank
        self._lookup = IdLookup(self.cat.ids)
        self._info: dict[tuple[int, int], _Row] = {}
        self._library_embedder = LibraryEmbedder(self.model)
        self._several_folders = SeveralFolders(self.cat.ids)
        self._tags = TagsOnDemand(display_path(self.folder), on_note)  # parts written before tags were kept
        self._identity_stats: tuple[np.ndarray, np.ndarray] | None = None
        self._on_note = on_note
        self.ann = self._open_ann(ann, build, nprobe, on_note)

    def _open_ann(self, ann: str, build: bool, nprobe: int, on_note: Callable[[str], None] | None) -> ShardIndex | None:
        if ann == "exact":
            return None
        kind = None if ann == "auto" else ann
        found = ShardIndex.load(self.folder, self.index, kind=kind, standardize=self.standardize, nprobe=nprobe, on_note=on_note,
                                  space=self.space)
        if found is not None or kind is None:
            return found
        if not build:
            if on_note is not None:
                on_note(f"note: {display_path(self.folder)} has no current {kind} index — searching exactly")
            return None
        try:
            build_shard_index(self.folder, kind=kind, standardize=self.standardize, on_note=on_note)
        except InputError as exc:
            if "another `specmusic` process" not in str(exc):
                raise
            if on_note is not None:  # an embed is writing the folder: the index waits, the query does not
                on_note(f"note: {display_path(self.folder)} is being written — searching exactly, without the {kind} index")
            return None
        self.index = read_index(self.folder)
        return ShardIndex.load(self.folder, self.index, kind=kind, standardize=self.standardize, nprobe=nprobe, on_note=on_note,
                                  space=self.space)

    @property
    def has_tags(self) -> bool:
        """Whether the parts keep tags (libraries embedded with an ONNX model)."""
        for entry in self.index["parts"]:
            try:
                with zipfile.ZipFile(part_path(self.folder, entry)) as z:
                    if "tags.npy" in z.namelist():
                        return True
            except (OSError, zipfile.BadZipFile):
                continue
        return False

    # -- parts and rows ---------------------------------------------------------------------
    def _space(self, vectors: np.ndarray) -> np.ndarray:
        """Z-scored (when standardised) or in the learnt space, but not normalised, as ``InMemoryRecommender.z``."""
        if self.space is not None:
            return self.space.apply(vectors)
        if self.mean is None or self.scale is None:
            return np.asarray(vectors, np.float32)
        x = np.array(vectors, np.float64)  # in place: one float64 copy of the part
        x -= self.mean
        x /= self.scale
        return x.astype(np.float32)

    def _where(self, i: int) -> tuple[int, int]:
        return int(self.cat.part[i]), int(self.cat.row[i])

    def _rows(self, wanted: set[tuple[int, int]], info: dict[tuple[int, int], _Row]) -> None:
        """Fill ``info`` for the ``(part, row)`` pairs it lacks, reading each part once."""
        by_part: dict[int, list[int]] = {}
        for p, r in wanted - info.keys():
            by_part.setdefault(p, []).append(r)
        for p in sorted(by_part):
            lib = load_part(self.folder, self.index["parts"][p])
            for r in by_part[p]:
                info[(p, r)] = (self._tags(lib.track(r)), self._space(lib.vectors[r : r + 1])[0], lib.vectors[r].copy())

    def _values(self, lib: EmbeddingLibrary, rows: np.ndarray, key: str) -> list[str | None]:
        metadata = [self._tags(lib.track(r)).meta for r in rows] if key in ("artist", "album") else None
        return group_column(key, ids=[lib.ids[r] for r in rows], labels=[lib.labels[r] for r in rows],
                            groups=[lib.groups[r] for r in rows], metadata=metadata)  # fmt: skip

    def _allowed(self, lib: EmbeddingLibrary, rows: np.ndarray, where: TrackFilter | None) -> np.ndarray | None:
        """Which of ``rows`` meet ``where`` [shape=(len(rows),)] bool (None: no condition)."""
        if where is None:
            return None
        return np.asarray([where.matches(self._tags(lib.track(int(r)))) for r in rows], bool)

    # -- queries ----------------------------------------------------------------------------
    def _resolve(
        self, queries: Sequence[str], embedder: Embedder | None, on_error: Callable[[str], None] | None
    ) -> list[Query]:
        """Each query's search-space vector; library rows read part by part, each part once."""
        found: list[tuple[str, int | None]] = []
        for q in queries:
            try:
                found.append((q, self._lookup.find(q)))
            except InputError as exc:
                if on_error is None:
                    raise
                on_error(str(exc))
        self._rows({self._where(i) for _, i in found if i is not None}, self._info)
        resolved = []
        for q, i in found:
            try:
                resolved.append(self._resolve_one(q, i, embedder))
            except InputError as exc:  # this query only
                if on_error is None:
                    raise
                on_error(str(exc))
        return resolved

    def _resolve_one(self, query: str, i: int | None, embedder: Embedder | None) -> Query:
        if i is not None:
            track, z, stored = self._info[self._where(i)]
            return Query(query, z, i, track, self.identity(stored)).checked()
        found = audio_query(query, embedder or self._library_embedder, self._query_vector, self.identity)
        if found is not None:
            found.track = self._tags(found.track, library_row=False)
            return found
        raise InputError(f"unknown query {display_path(query)!r} — give a path in the library or an audio file")

    def identity(self, stored: np.ndarray) -> np.ndarray:
        """Stored rows as duplicate tests compare them (:func:`~specmusic.embeddings.search.space.identity_vectors`,
        with the library's column statistics, streamed once and cached in the folder)."""
        if self._identity_stats is None:
            stats = shard_statistics(self.folder, on_note=self._on_note, catalog=(self.index, self.cat))
            self._identity_stats = (stats[1], stats[2])
        return identity_vectors(stored, *self._identity_stats)

    def _query_vector(self, vec: np.ndarray) -> np.ndarray:
        return query_space(vec, self.dim, self.mean, self.scale, self.space)

    def _query_value(self, q: Query, key: str) -> str | None:
        if q.row is not None:
            return self._info[self._where(q.row)][0].value(key)
        if key in ("artist", "album"):
            return q.track.value(key)
        return folder_of(q.text) if key == "dir" else None

    # -- search -----------------------------------------------------------------------------
    def _exact(self, qn: np.ndarray, k: int, keys: list[tuple[int, int] | None], key: str | None,
               qvals: list[str | None], where: TrackFilter | None = None) -> list[list[tuple[float, int, int]]]:  # fmt: skip
        """Per query, the best ``(score, part, row)``, streaming over the parts (each read once)."""
        nq = len(qn)
        best_s = np.full((nq, 0), -np.inf, np.float32)
        best_p = np.zeros((nq, 0), np.int64)
        best_r = np.zeros((nq, 0), np.int64)
        qrows = np.arange(nq)[:, None]
        for p, entry in enumerate(self.index["parts"]):
            rows = self.cat.live_rows(p)
            if not len(rows):
                continue
            lib = load_part(self.folder, entry)
            z = self._space(lib.vectors[rows])
            s = qn @ l2_normalize(z).T
            allowed = self._allowed(lib, rows, where)
            if allowed is not None:
                s[:, ~allowed] = -np.inf
            for qi, at in enumerate(keys):
                if at is not None and at[0] == p:
                    s[qi, np.searchsorted(rows, at[1])] = -np.inf
            if key is not None and any(v is not None for v in qvals):
                values = np.asarray([v if v is not None else "\0none" for v in self._values(lib, rows, key)], dtype=object)
                for qi, v in enumerate(qvals):
                    if v is not None:
                        s[qi, values == v] = -np.inf
            m = min(k, s.shape[1])  # this part's best, then merged with the best so far (small arrays)
            top = np.argpartition(-s, m - 1, axis=1)[:, :m] if m < s.shape[1] else np.tile(np.arange(m), (nq, 1))
            cand_s = np.concatenate([best_s, s[qrows, top]], axis=1)
            cand_p = np.concatenate([best_p, np.full(top.shape, p, np.int64)], axis=1)
            cand_r = np.concatenate([best_r, rows[top]], axis=1)
            del s
            m = min(k, cand_s.shape[1])
            top = np.argpartition(-cand_s, m - 1, axis=1)[:, :m] if m < cand_s.shape[1] else np.tile(np.arange(m), (nq, 1))
            best_s, best_p, best_r = cand_s[qrows, top], cand_p[qrows, top], cand_r[qrows, top]
            local = {int(r): j for j, r in enumerate(rows)}
            for r in {int(r) for r in best_r[best_p == p]}:  # the records of this part's winners, kept now
                self._info.setdefault((p, r), (lib.track(r), z[local[r]].copy(), lib.vectors[r].copy()))  # copies: not the part
            if len(self._info) > 4 * best_s.size + len(keys):  # forget rows no longer among the best
                keep = set(zip(best_p.ravel().tolist(), best_r.ravel().tolist())) | {w for w in keys if w is not None}
                self._info = {w: row for w, row in self._info.items() if w in keep}
        out = []
        for qi in range(nq):
            order = np.argsort(-best_s[qi], kind="stable")
            out.append([(float(best_s[qi, j]), int(best_p[qi, j]), int(best_r[qi, j])) for j in order if np.isfinite(best_s[qi, j])])
        return out

    def _approximate(self, qn: np.ndarray, k: int, keys: list[tuple[int, int] | None], key: str | None,
                     qvals: list[str | None], where: TrackFilter | None = None) -> list[list[tuple[float, int, int]]]:  # fmt: skip
        """Per query, the best ``(score, part, row)`` from the FAISS index (IVF-PQ: re-scored exactly)."""
        assert self.ann is not None
        total = int(self.ann.ann.ntotal)
        rerank = self.rerank if self.ann.kind == "ivfpq" else 0
        out: list[list[tuple[float, int, int]]] = [[] for _ in range(len(qn))]
        pending = list(range(len(qn)))
        fetch = max(k * max(rerank, 1), k) + 1 + (16 if key is not None or where is not None else 0)
        while pending:
            parts, rows, scores = self.ann.search(qn[pending], fetch)
            if key is not None or rerank or where is not None:  # read the candidates' parts, each once
                self._rows({(int(p), int(r)) for p, r in zip(parts.ravel(), rows.ravel()) if p >= 0}, self._info)
            still = []
            for n, qi in enumerate(pending):
                found = []
                for p, r, s in zip(parts[n].tolist(), rows[n].tolist(), scores[n].tolist()):
                    if p < 0 or keys[qi] == (p, r):
                        continue
                    if key is not None and qvals[qi] is not None and self._info[(p, r)][0].value(key) == qvals[qi]:
                        continue
                    if where is not None and not where.matches(self._info[(p, r)][0]):
                        continue
                    if rerank:
                        s = float(l2_normalize(self._info[(p, r)][1]) @ qn[qi])
                    found.append((s, p, r))
                if len(found) < k and fetch < total:
                    still.append(qi)
                    continue
                out[qi] = sorted(found, key=lambda t: -t[0])[:k]
            pending = still
            fetch = min(total, fetch * 4)
        return out

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
        """The ``k`` nearest tracks to each query, as
        :meth:`specmusic.embeddings.search.recommender.Recommender.recommend` returns them.

        Raises
        ------
        InputError
            Unknown or silent query (without ``on_error``), mismatched dimensions, damaged part.
        """
        self._info = {}
        resolved = self._resolve(queries, embedder, on_error)
        if not resolved:
            return []
        qn = l2_normalize(np.stack([q.vector for q in resolved]))
        keys = [self._where(q.row) if q.row is not None else None for q in resolved]
        qvals = [self._query_value(q, group_key) for q in resolved] if group_key else [None] * len(resolved)
        search = self._approximate if self.ann is not None else self._exact
        hits = search(qn, k, keys, group_key, qvals, where)
        self._rows({(p, r) for found in hits for _, p, r in found}, self._info)
        out = [self._result(q, found, explain) for q, found in zip(resolved, hits)]
        self._info = {}
        return out

    def resolve_queries(
        self, queries: Sequence[str], *, embedder: Embedder | None = None, on_error: Callable[[str], None] | None = None
    ) -> list[Query]:
        """Each query resolved (:meth:`specmusic.embeddings.search.recommender.Recommender.resolve_queries`).

        Raises
        ------
        InputError
            Unknown or silent query (without ``on_error``), a damaged part.
        """
        self._info = {}
        try:
            return self._resolve(queries, embedder, on_error)
        finally:
            self._info = {}

    def neighbours(self, vectors: np.ndarray, *, k: int, where: TrackFilter | None = None) -> list[list[Neighbour]]:
        """The ``k`` tracks nearest to each vector, streaming the parts once for all of them
        (:meth:`specmusic.embeddings.search.recommender.Recommender.neighbours`).

        Raises
        ------
        InputError
            Mismatched dimensions, NaN, a damaged part.
        """
        qn = l2_normalize(np.atleast_2d(np.asarray(vectors, np.float32)))
        if qn.shape[1] != (self.space.dim if self.space is not None else self.dim):
            raise InputError(f"vectors of {qn.shape[1]} dimensions for a library searched in "
                             f"{self.space.dim if self.space is not None else self.dim} — embed with the library's model")  # fmt: skip
        self._info = {}
        nothing: list[tuple[int, int] | None] = [None] * len(qn)
        search = self._approximate if self.ann is not None else self._exact
        hits = search(qn, min(k, len(self.cat)), nothing, None, [None] * len(qn), where)
        self._rows({(p, r) for found in hits for _, p, r in found}, self._info)
        out = []
        for found in hits:
            rows = [(self._info[(p, r)], s) for s, p, r in found]
            out.append([Neighbour(self._tags(t), s, l2_normalize(z[None, :])[0], self.identity(v))
                        for (t, z, v), s in rows])  # fmt: skip
        self._info = {}
        return out

    def _result(self, query: Query, found: list[tuple[float, int, int]], explain: bool) -> dict[str, Any]:
        hits = []
        for s, p, r in found:
            track = self._tags(self._info[(p, r)][0])
            hits.append((track, s, explain_match(query.track, track, several_folders=self._several_folders) if explain else None))
        return query_result(query, hits)
