"""A FAISS index of a sharded library, built part by part: ``library/index.faiss``.

Two kinds, both inverted lists over cosine (inner product of L2-normalised vectors, after the
library-wide z-scoring when the library's model asks for it — the same search space as exact
search):

* ``ivf`` (IVF-Flat): the vectors themselves in the lists, 4·d bytes per track plus an 8-byte id;
  scores are exact cosines, misses come only from the lists not probed.
* ``ivfpq`` (IVF-PQ): each vector stored as ``pq_m`` bytes of product-quantisation codes (plus the
  id), for libraries whose vectors do not fit in memory; PQ scores are coarse, so by default the
  best ``rerank`` × k candidates (16 × k) are re-scored exactly from their parts.

Building never holds the library: the column statistics are streamed
(:func:`~specmusic.embeddings.store.shard_stats.shard_statistics`), the coarse quantiser (and the PQ codebooks)
are trained on a bounded sample drawn from every part in proportion to its live rows, then the
parts are added one at a time (memory: one part plus the index). Search maps the index file
(``IO_FLAG_MMAP``) rather than reading it, so only the probed lists are paged in. Each vector's FAISS id is
``part << 32 | row``, so a result names its part and row without a separate map. The index is
written atomically and recorded in ``index.json`` (``"ann"``) with the library's fingerprint: a
library changed since (parts added, ids removed) makes it stale, which :meth:`ShardIndex.load`
notices (a note; search is exact, or the index is rebuilt when asked).

Defaults (one block)::

    nlist       = 0        # inverted lists; 0: about sqrt(n), at least 39 training rows per list
    pq_m        = 0        # ivfpq bytes per vector; 0: d/8 (a divisor of d), e.g. 32 for 256-d
    pq_bits     = 8        # bits per PQ code
    train_size  = 0        # training sample; 0: 64 rows per list (at least 10,000), at most n
    nprobe      = 32       # lists scanned per query (recommend --nprobe)
    rerank      = 16       # ivfpq: re-score rerank × k candidates exactly (0: PQ scores as they are)
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from specmusic.embeddings.search.adapt import Space
from specmusic.embeddings.store.shard_catalog import (
    ShardCatalog,
    index_model,
    iter_live_parts,
    lock_folder,
    read_catalog,
    unlock_folder,
    write_index,
)
from specmusic.embeddings.store.shard_stats import shard_space, shard_statistics
from specmusic.errors import ConfigError, InputError
from specmusic.fileio import atomic_path, display_path
from specmusic.index import l2_normalize

__all__ = ["ANN_KINDS", "INDEX_FILE", "ShardIndex", "build_shard_index", "search_space"]

ANN_KINDS = ("ivf", "ivfpq")
INDEX_FILE = "index.faiss"
_NOTE = Callable[[str], None]


def search_space(
    vectors: np.ndarray, mean: np.ndarray | None, scale: np.ndarray | None, space: Space | None = None
) -> np.ndarray:
    """Library vectors as searched: z-scored with the library's column statistics (when given), as
    :func:`specmusic.index.standardize_columns` does, or mapped by the library's learnt ``space``
    (packed rows, :mod:`specmusic.embeddings.search.adapt`), then L2-normalised. [shape=(n, d)] float32."""
    if space is not None:
        return l2_normalize(space.apply(vectors))
    if mean is None or scale is None:
        return l2_normalize(vectors)
    return l2_normalize(((np.asarray(vectors, np.float64) - mean) / scale).astype(np.float32))


def _default_pq_m(dim: int) -> int:
    want = max(1, dim // 8)
    return max(m for m in range(1, want + 1) if dim % m == 0)


def _sample(folder: Path, index: dict[str, Any], cat: ShardCatalog, size: int, seed: int, stats: Any) -> np.ndarray:
    """About ``size`` live rows drawn from every part in proportion to its live rows."""
    rng = np.random.default_rng(seed)
    n = len(cat)
    chunks = []
    for _, _, lib in iter_live_parts(folder, index, cat):
        take = min(len(lib), int(round(size * len(lib) / n)))
        if take:
            rows = np.sort(rng.choice(len(lib), size=take, replace=False))
            chunks.append(search_space(lib.vectors[rows], *stats))
    return np.ascontiguousarray(np.concatenate(chunks))


def build_shard_index(
    folder: str | os.PathLike[str],
    *,
    kind: str = "ivf",
    nlist: int = 0,
    pq_m: int = 0,
    pq_bits: int = 8,
    train_size: int = 0,
    standardize: bool | None = None,
    seed: int = 0,
    threads: int = 0,
    on_note: _NOTE | None = None,
) -> dict[str, Any]:
    """Build ``folder/index.faiss`` from the parts (see the module docstring) and record it in the index.

    Parameters
    ----------
    kind : ``ivf`` | ``ivfpq``
    standardize : z-score the columns first; default: what the library's model asks
    threads : FAISS threads; 0: all cores (on a busy machine, fewer can be much faster)

    Returns
    -------
    the ``"ann"`` record written to ``index.json`` (kind, parameters, fingerprint, bytes)

    Raises
    ------
    InputError
        Empty library, damaged part, another process writing the folder, faiss not installed.
    ConfigError
        Unknown kind, ``pq_m`` not dividing the dimension.
    """
    if kind not in ANN_KINDS:
        raise ConfigError(f"unknown shard index {kind!r} — use one of {', '.join(ANN_KINDS)}")
    try:
        import faiss
    except ImportError:
        raise InputError("faiss-cpu is not installed — pip install 'specmusic[ann]' to build a FAISS index") from None
    if threads:
        faiss.omp_set_num_threads(threads)
    path = Path(folder)
    fd = lock_folder(path)
    try:
        index, cat = read_catalog(path)
        n, dim = len(cat), int(index.get("dim") or 0)
        if n == 0:
            raise InputError(f"{display_path(path)}: the library is empty — embed some tracks first")
        model = index_model(index)
        std = bool(model.standardize) if standardize is None else standardize
        groups = model.adapt_groups
        space = shard_space(path, groups, blocks=model.adapt_blocks, learn=std, catalog=(index, cat), on_note=on_note) if groups else None
        if space is not None:
            stats: tuple[Any, Any, Any] = (None, None, space)
            dim = space.dim
        else:
            stats = (*shard_statistics(path, on_note=on_note, catalog=(index, cat))[1:], None) if std else (None, None, None)
        nlist = nlist or max(1, min(n // 39, int(math.sqrt(n))))
        pq_m = pq_m or _default_pq_m(dim)
        if kind == "ivfpq" and dim % pq_m:
            raise ConfigError(f"pq_m={pq_m} does not divide the dimension {dim} — choose a divisor of {dim}")
        train = _sample(path, index, cat, min(n, train_size or max(64 * nlist, 10_000)), seed, stats)
        quantizer = faiss.IndexFlatIP(dim)
        if kind == "ivf":
            ann = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        else:
            bits = min(pq_bits, max(1, int(math.log2(max(2, len(train) // 39)))))  # tiny libraries: fewer bits
            ann = faiss.IndexIVFPQ(quantizer, dim, nlist, pq_m, bits, faiss.METRIC_INNER_PRODUCT)
        ann.cp.seed = seed
        ann.train(train)
        del train
        for p, rows, lib in iter_live_parts(path, index, cat):
            ann.add_with_ids(search_space(lib.vectors, *stats), (np.int64(p) << 32) | rows.astype(np.int64))
        target = path / INDEX_FILE
        with atomic_path(target) as tmp:
            faiss.write_index(ann, str(tmp))
        record = {
            "kind": kind, "file": INDEX_FILE, "fingerprint": index["fingerprint"], "standardize": std, "n": n,
            "dim": dim, "nlist": nlist, "pq_m": pq_m if kind == "ivfpq" else None, "bytes": target.stat().st_size,
            "space": space.key() if space is not None else None,
        }  # fmt: skip
        index["ann"] = record
        write_index(path, index)
    finally:
        unlock_folder(fd)
    if on_note is not None:
        on_note(f"note: built the {kind} index of {n} tracks ({record['bytes'] / n:.0f} bytes/track) in {display_path(target)}")
    return record


class ShardIndex:
    """A built, current FAISS index of a sharded library, loaded for search (:meth:`load`)."""

    def __init__(self, ann: Any, record: dict[str, Any], nprobe: int) -> None:
        self.ann, self.record = ann, record
        self.kind: str = record["kind"]
        ann.nprobe = nprobe

    @classmethod
    def load(
        cls,
        folder: str | os.PathLike[str],
        index: dict[str, Any],
        *,
        kind: str | None,
        standardize: bool,
        nprobe: int = 32,
        on_note: _NOTE | None = None,
        space: Space | None = None,
    ) -> ShardIndex | None:
        """The folder's index when it exists, is of ``kind`` (None: any) and matches the library as
        it is now; else None, with a note when it is stale or of another kind."""
        record = index.get("ann")
        target = Path(folder) / INDEX_FILE
        if not record or not target.is_file():
            return None
        why = ""
        if record.get("fingerprint") != index.get("fingerprint"):
            why = "the library changed since it was built"
        elif bool(record.get("standardize")) != standardize:
            why = "it was built with another --standardize"
        elif record.get("space") != (space.key() if space is not None else None):
            why = "it was built in another search space"
        elif kind is not None and record.get("kind") != kind:
            why = f"it is an {record.get('kind')} index, not {kind}"
        if why:
            if on_note is not None:
                on_note(f"note: not using {display_path(target)} — {why}")
            return None
        import faiss

        try:  # mapped, not read: the lists stay on disk until a probe touches them
            ann = faiss.read_index(str(target), faiss.IO_FLAG_MMAP)
        except RuntimeError as exc:
            if on_note is not None:
                on_note(f"note: not using {display_path(target)} — unreadable ({str(exc).splitlines()[0][:80]})")
            return None
        return cls(ann, record, nprobe)

    def search(self, queries: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``fetch`` candidates per query: ``(parts, rows, scores)`` arrays [shape=(q, fetch)], part ``-1`` padding."""
        scores, labels = self.ann.search(np.ascontiguousarray(queries, np.float32), min(fetch, self.ann.ntotal))
        parts = np.where(labels >= 0, labels >> 32, -1)
        rows = np.where(labels >= 0, labels & 0xFFFFFFFF, -1)
        return parts, rows, scores.astype(np.float32)

