"""Nearest-neighbour search over embedding vectors: exact cosine top-k (numpy) or an ANN index.

Exact search multiplies the queries by the library chunk by chunk (memory bounded by
``chunk_rows``), keeps each chunk's best ``k`` with ``argpartition`` and merges; it is the default
up to ``ann_threshold`` vectors (about a million: ~1 GB of float32 at 256-d). Above that, or with
``backend="hnsw"``/``"faiss"``, an approximate index is built when the optional ``ann`` extra is
installed (``pip install 'specmusic[ann]'``: faiss-cpu IVF, else hnswlib HNSW); without it, search stays
exact and a note says so.

Exclusion (the query itself, its whole group) is applied inside the search, so ``k`` results come
back whenever the library holds ``k`` eligible vectors.

Defaults (one block)::

    backend          = "auto"     # auto | exact | hnsw | faiss
    ann_threshold    = 1_000_000  # auto: exact up to this many vectors, ANN above
    chunk_rows       = 65_536     # library rows per matrix product (exact)
    hnsw_m           = 12         # HNSW graph degree (lower: faster build, lower recall)
    ef_construction  = 64         # HNSW build beam (lower: faster build, lower recall)
    ef_search        = 128        # HNSW query beam (raised to >= fetched k)
    faiss_nlist      = 0          # faiss IVF lists; 0: about sqrt(n)
    faiss_nprobe     = 32         # faiss IVF lists scanned per query
    threads          = 0          # ANN build/query threads; 0: all cores
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from specmusic.errors import ConfigError, InputError
from specmusic.fileio import atomic_path, atomic_write

__all__ = [
    "IndexConfig",
    "VectorIndex",
    "ann_backends",
    "build_index",
    "check_finite",
    "l2_normalize",
    "standardize_columns",
]

_BACKENDS = ("auto", "exact", "hnsw", "faiss")


@dataclass(frozen=True)
class IndexConfig:
    """How to search; every default in the module docstring."""

    backend: str = "auto"
    ann_threshold: int = 1_000_000
    chunk_rows: int = 65_536
    hnsw_m: int = 12
    ef_construction: int = 64
    ef_search: int = 128
    faiss_nlist: int = 0
    faiss_nprobe: int = 32
    threads: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.backend not in _BACKENDS:
            raise ConfigError(f"unknown index backend {self.backend!r} — use one of {', '.join(_BACKENDS)}")
        if self.chunk_rows <= 0 or self.hnsw_m <= 1 or self.ef_construction <= 0 or self.ef_search <= 0:
            raise ConfigError("chunk_rows, hnsw_m, ef_construction and ef_search must be positive — fix the options")


def ann_backends() -> list[str]:
    """The ANN libraries importable here, preferred first (``[]`` without the ``ann`` extra)."""
    # faiss first: its IVF index builds in seconds where an HNSW graph of a million vectors takes
    # minutes on a laptop (benchmarks/recommend_scale.py), and `recommend` builds per invocation
    return [name for name, mod in (("faiss", "faiss"), ("hnsw", "hnswlib")) if importlib.util.find_spec(mod)]


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero).

    Parameters
    ----------
    vectors : np.ndarray [shape=(n, d)] or [shape=(d,)]

    Returns
    -------
    np.ndarray, float32, same shape
    """
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)


def standardize_columns(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-score each column (constant columns get scale 1), so no one column's units dominate cosine.

    Parameters
    ----------
    vectors : np.ndarray [shape=(n, d)]

    Returns
    -------
    scaled : np.ndarray [shape=(n, d)], float32
    mean, scale : np.ndarray [shape=(d,)], float64; apply to a query as ``(q - mean) / scale``
    """
    x = np.asarray(vectors, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[~(scale > 1e-12)] = 1.0
    return ((x - mean) / scale).astype(np.float32), mean, scale


def check_finite(vectors: np.ndarray, what: str, ids: Sequence[str] | None = None) -> None:
    """Refuse vectors holding NaN or infinite values, naming the first such row.

    Parameters
    ----------
    vectors : np.ndarray [shape=(n, d)] or [shape=(d,)]
    what : how the error names them ("the library", "the query")
    ids : names of the rows (default: their numbers)

    Raises
    ------
    InputError
        A vector holds NaN or an infinite value.
    """
    bad = ~np.isfinite(vectors).all(axis=-1)
    if bad.any():
        rows = np.flatnonzero(np.atleast_1d(bad))
        first = ids[rows[0]] if ids is not None else f"row {rows[0]}"
        raise InputError(
            f"{what} has {len(rows)} vector(s) with NaN or infinite values (first: {first}) — "
            "re-embed those tracks or drop them"
        )


class VectorIndex:
    """Cosine top-k over L2-normalised vectors; build with :func:`build_index`."""

    def __init__(self, vectors: np.ndarray, *, backend: str, config: IndexConfig, ann: Any = None) -> None:
        self.vectors = vectors
        self.backend = backend
        self.config = config
        self._ann = ann

    @property
    def size(self) -> int:
        """Number of indexed vectors."""
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self.vectors.shape[1])

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        exclude: Sequence[Sequence[int] | np.ndarray] | None = None,
        groups: np.ndarray | None = None,
        query_groups: Sequence[int] | np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most cosine-similar vectors to each query, best first.

        Parameters
        ----------
        queries : np.ndarray [shape=(q, d)], L2-normalised
        k : results per query
        exclude : per query, library rows never returned (e.g. the query itself)
        groups : np.ndarray [shape=(n,)], int group code of each library row (``-1``: no group)
        query_groups : [shape=(q,)], each query's group code; rows sharing it are excluded (``-1``: none)

        Returns
        -------
        indices : np.ndarray [shape=(q, k)], int64 library rows, ``-1`` where fewer than ``k`` are eligible
        scores : np.ndarray [shape=(q, k)], float32 cosine similarities, ``-inf`` padding

        Raises
        ------
        InputError
            Query dimension differs from the index's, or a query holds NaN.
        """
        q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if q.shape[1] != self.dim:
            raise InputError(
                f"query vectors have {q.shape[1]} dimensions but the library has {self.dim} — "
                "embed the query with the same model as the library"
            )
        check_finite(q, "the query")
        if k <= 0:
            raise ConfigError(f"k={k} must be at least 1 — fix -k")
        excl = [np.asarray(e, dtype=np.int64) for e in exclude] if exclude is not None else [np.empty(0, np.int64)] * len(q)
        qg = np.asarray(query_groups if query_groups is not None else [-1] * len(q), dtype=np.int64)
        if groups is None:
            qg = np.full(len(q), -1, np.int64)
        if self.backend == "exact":
            return self._search_exact(q, k, excl, groups, qg)
        return self._search_ann(q, k, excl, groups, qg)

    # -- exact ------------------------------------------------------------------------------
    def _search_exact(
        self, q: np.ndarray, k: int, excl: list[np.ndarray], groups: np.ndarray | None, qg: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        if len(q) <= 4:
            # a few queries are matrix-vector products, bound by memory: one BLAS thread is as fast
            # and, on a busy machine, avoids OpenBLAS threads spinning (10x slower measured at load 5)
            with _blas_controller().limit(limits=1, user_api="blas"):
                return self._search_exact_blocks(q, k, excl, groups, qg)
        return self._search_exact_blocks(q, k, excl, groups, qg)

    def _search_exact_blocks(
        self, q: np.ndarray, k: int, excl: list[np.ndarray], groups: np.ndarray | None, qg: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        n = self.size
        kk = min(k, n)
        best_i = np.full((len(q), kk), -1, np.int64)
        best_s = np.full((len(q), kk), -np.inf, np.float32)
        # keep each product block near 64 MB whatever the number of queries
        rows = max(1024, min(self.config.chunk_rows, (16 << 20) // max(1, len(q))))
        qrows = np.arange(len(q))
        for start in range(0, n, rows):
            block = self.vectors[start : start + rows]
            s = q @ block.T  # [q, rows]
            for i, e in enumerate(excl):
                hit = e[(e >= start) & (e < start + len(block))] - start
                s[i, hit] = -np.inf
            if groups is not None and (qg >= 0).any():
                g = groups[start : start + len(block)]
                same = (g[None, :] == qg[:, None]) & (qg[:, None] >= 0)
                s[same] = -np.inf
            m = min(kk, s.shape[1])
            part = np.argpartition(-s, m - 1, axis=1)[:, :m] if m < s.shape[1] else np.tile(np.arange(m), (len(q), 1))
            cand_s = np.concatenate([best_s, s[qrows[:, None], part]], axis=1)
            cand_i = np.concatenate([best_i, part + start], axis=1)
            top = np.argpartition(-cand_s, kk - 1, axis=1)[:, :kk] if cand_s.shape[1] > kk else np.tile(
                np.arange(kk), (len(q), 1)
            )
            best_s = cand_s[qrows[:, None], top]
            best_i = cand_i[qrows[:, None], top]
        return _finish(best_i, best_s, k)

    # -- approximate ------------------------------------------------------------------------
    def _ann_query(self, q: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray]:
        fetch = min(fetch, self.size)
        if self.backend == "hnsw":
            self._ann.set_ef(max(self.config.ef_search, fetch))
            labels, dist = self._ann.knn_query(q, k=fetch, num_threads=self.config.threads or -1)
            return labels.astype(np.int64), (1.0 - dist).astype(np.float32)
        self._ann.nprobe = self.config.faiss_nprobe
        scores, labels = self._ann.search(q, fetch)
        return labels.astype(np.int64), scores.astype(np.float32)

    def _search_ann(
        self, q: np.ndarray, k: int, excl: list[np.ndarray], groups: np.ndarray | None, qg: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        out_i = np.full((len(q), k), -1, np.int64)
        out_s = np.full((len(q), k), -np.inf, np.float32)
        pending = np.arange(len(q))
        fetch = k + max((len(e) for e in excl), default=0) + (16 if groups is not None else 0)
        while len(pending):
            labels, scores = self._ann_query(q[pending], fetch)
            still = []
            for row, qi in enumerate(pending):
                lab, sc = labels[row], scores[row]
                keep = lab >= 0
                if len(excl[qi]):
                    keep &= ~np.isin(lab, excl[qi])
                if groups is not None and qg[qi] >= 0:
                    keep &= groups[np.maximum(lab, 0)] != qg[qi]
                lab, sc = lab[keep][:k], sc[keep][:k]
                if len(lab) < k and fetch < self.size:
                    still.append(qi)
                    continue
                out_i[qi, : len(lab)], out_s[qi, : len(lab)] = lab, sc
            pending = np.asarray(still, dtype=np.int64)
            fetch = min(self.size, fetch * 4)
        return out_i, out_s


@functools.lru_cache(maxsize=1)
def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _finish(idx: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores, axis=1, kind="stable")
    rows = np.arange(len(idx))[:, None]
    idx, scores = idx[rows, order], scores[rows, order]
    idx[~np.isfinite(scores)] = -1
    if idx.shape[1] < k:
        pad = k - idx.shape[1]
        idx = np.pad(idx, ((0, 0), (0, pad)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    return idx, scores


def build_index(
    vectors: np.ndarray,
    *,
    config: IndexConfig | None = None,
    ids: Sequence[str] | None = None,
    on_note: Any = None,
    cache: str | os.PathLike[str] | None = None,
    cache_key: str = "",
) -> VectorIndex:
    """Index L2-normalised vectors for cosine search.

    Parameters
    ----------
    vectors : np.ndarray [shape=(n, d)], float32, rows L2-normalised
    config : IndexConfig (backend, ANN parameters)
    ids : names of the rows, for error messages
    on_note : callable(str) told when an ANN backend was asked for but is not installed, and
        when an ANN index is saved to or loaded from ``cache``
    cache : where to keep a built ANN index (``<cache>.<backend>`` + a ``.json`` key file), so the
        next call with the same ``cache_key`` loads it instead of building it again
    cache_key : identifies the vectors (e.g. the library file's size and mtime)

    Returns
    -------
    VectorIndex

    Raises
    ------
    InputError
        Empty library, or vectors holding NaN/inf.
    """
    config = config or IndexConfig()
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    if v.ndim != 2 or v.shape[0] == 0:
        raise InputError("the library is empty — embed some tracks first (`specmusic embed DIR -o library.npz`)")
    check_finite(v, "the library", ids)
    backend = config.backend
    if backend == "auto":
        backend = "exact" if len(v) <= config.ann_threshold else "ann"
    if backend in ("ann", "hnsw", "faiss"):
        available = ann_backends()
        wanted = available if backend == "ann" else [b for b in available if b == backend]
        if not wanted:
            if on_note is not None:
                need = "hnswlib or faiss-cpu" if backend == "ann" else ("hnswlib" if backend == "hnsw" else "faiss-cpu")
                on_note(f"note: {need} is not installed, searching exactly — pip install 'specmusic[ann]' for ANN")
            return VectorIndex(v, backend="exact", config=config)
        backend = wanted[0]
        return VectorIndex(v, backend=backend, config=config, ann=_cached_ann(v, backend, config, cache, cache_key, on_note))
    return VectorIndex(v, backend="exact", config=config)


def _cached_ann(
    v: np.ndarray, backend: str, config: IndexConfig, cache: Any, cache_key: str, on_note: Any
) -> Any:
    build = _build_hnsw if backend == "hnsw" else _build_faiss
    if cache is None:
        return build(v, config)
    path = Path(f"{os.fspath(cache)}.{backend}")
    key_path = Path(f"{path}.json")
    params = {k: getattr(config, k) for k in ("hnsw_m", "ef_construction", "faiss_nlist", "seed")}
    key = {"key": cache_key, "n": int(v.shape[0]), "dim": int(v.shape[1]), "backend": backend, "params": params}
    try:
        if path.is_file() and json.loads(key_path.read_text()) == key:
            index = _load_ann(path, backend, v)
            if on_note is not None:
                on_note(f"note: loaded the {backend} index from {path}")
            return index
    except (OSError, ValueError, RuntimeError):
        pass  # unreadable or stale: rebuild
    index = build(v, config)
    try:
        with atomic_path(path) as tmp:  # locked until the rename; a killed run's leftover is swept as stale
            if backend == "hnsw":
                index.save_index(str(tmp))
            else:
                import faiss

                faiss.write_index(index, str(tmp))
        atomic_write(key_path, lambda f: f.write(json.dumps(key)), "w")
        if on_note is not None:
            on_note(f"note: saved the {backend} index to {path} (reused while the library is unchanged)")
    except (OSError, RuntimeError) as exc:
        if on_note is not None:
            on_note(f"note: could not save the {backend} index beside the library ({exc}) — it is rebuilt each time")
    return index


def _load_ann(path: Path, backend: str, v: np.ndarray) -> Any:
    if backend == "hnsw":
        import hnswlib

        index = hnswlib.Index(space="cosine", dim=v.shape[1])
        index.load_index(str(path), max_elements=len(v))
        return index
    import faiss

    return faiss.read_index(str(path))


def _build_hnsw(v: np.ndarray, config: IndexConfig) -> Any:
    import hnswlib

    index = hnswlib.Index(space="cosine", dim=v.shape[1])
    index.init_index(
        max_elements=len(v), ef_construction=config.ef_construction, M=config.hnsw_m, random_seed=config.seed + 100
    )
    index.add_items(v, np.arange(len(v)), num_threads=config.threads or -1)
    index.set_ef(config.ef_search)
    return index


def _build_faiss(v: np.ndarray, config: IndexConfig) -> Any:
    import faiss

    if config.threads:
        faiss.omp_set_num_threads(config.threads)
    nlist = config.faiss_nlist or max(1, min(len(v) // 39, int(math.sqrt(len(v)))))
    quantizer = faiss.IndexFlatIP(v.shape[1])
    index = faiss.IndexIVFFlat(quantizer, v.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(config.seed)
    train = v[np.sort(rng.choice(len(v), size=min(len(v), 40 * nlist), replace=False))]
    index.train(train)
    index.add(v)
    index.nprobe = config.faiss_nprobe
    return index
