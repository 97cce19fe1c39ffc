"""The search space: what a library's vectors and a new query's vector become before cosine search.

* a library of plain rows whose model asks for it (``standardize``: MFCC statistics, joined
  models) or when ``recommend --standardize`` says so: each column z-scored with the library's
  own statistics, then L2-normalised;
* a library of packed rows (``adapt``): the space learnt from the library itself
  (:mod:`specmusic.embeddings.search.adapt`);
* otherwise the stored rows as they are (already L2-normalised).

Apart from search, :func:`identity_vectors` tells copies of one recording from similar recordings
(playlists): the stored rows, each column z-scored with the library's statistics, L2-normalised.
A byte copy or a re-encode of a track gives (nearly) its vector; z-scoring spreads apart what every
track of the library shares (docs/playlists.md measures it: the search space, learnt to put similar
tracks together, cannot tell copies from neighbours).
"""

from __future__ import annotations

import numpy as np

from specmusic.embeddings.search.adapt import Space, library_space
from specmusic.embeddings.store.library import EmbeddingLibrary
from specmusic.errors import InputError
from specmusic.index import check_finite, l2_normalize, standardize_columns

__all__ = ["column_statistics", "identity_vectors", "query_space", "search_vectors"]


def search_vectors(library: EmbeddingLibrary, *, standardize: bool | None = None) -> np.ndarray:
    """The vectors that cosine search and cluster maps use: z-scored per column first when the
    library's model asks for it (MFCC statistics) or ``standardize`` says so, then L2-normalised.

    Returns
    -------
    np.ndarray [shape=(n, d)], float32

    Raises
    ------
    InputError
        A library of packed rows holding NaN or infinite values.
    """
    std = bool(library.model.standardize) if standardize is None else standardize
    groups = library.model.adapt_groups
    if groups and len(library):
        check_finite(library.vectors, "the library", library.ids)
        return l2_normalize(library_space(library.vectors, groups, blocks=library.model.adapt_blocks, learn=std).apply(library.vectors))
    if not std or len(library) < 2:
        return library.vectors
    return l2_normalize(standardize_columns(library.vectors)[0])


def column_statistics(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and scale [shape=(d,)] float64 of ``vectors`` [shape=(n, d)] (constant columns: scale 1),
    as :func:`specmusic.index.standardize_columns` computes them, without a scaled copy."""
    x = np.asarray(vectors)
    mean = x.mean(axis=0, dtype=np.float64)
    scale = x.std(axis=0, dtype=np.float64)
    scale[~(scale > 1e-12)] = 1.0
    return mean, scale


def identity_vectors(stored: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Stored rows [shape=(n, d)] (or one [shape=(d,)]) as duplicate tests compare them: each column
    z-scored with the library's ``mean``/``scale``, then L2-normalised. float32, same shape."""
    x = np.asarray(stored, np.float64)
    z = ((x - mean) / scale).astype(np.float32)
    return l2_normalize(z[None, :])[0] if z.ndim == 1 else l2_normalize(z)


def query_space(
    vec: np.ndarray, dim: int, mean: np.ndarray | None, scale: np.ndarray | None, space: Space | None = None
) -> np.ndarray:
    """A new (audio) query's vector in the library's search space: L2-normalised, then z-scored
    with the library's column ``mean``/``scale`` when it is standardised, or mapped by the library's
    learnt ``space`` (``dim``: the stored rows' size).

    Returns
    -------
    np.ndarray [shape=(d,)], float32, not normalised after z-scoring

    Raises
    ------
    InputError
        Another dimension than the library's, or NaN.
    """
    v = np.asarray(vec, dtype=np.float64).reshape(-1)
    if v.shape[0] != dim:
        raise InputError(
            f"the query's model gives {v.shape[0]}-d vectors but the library holds {dim}-d ones — "
            "embed the query with the library's model"
        )
    if not np.isfinite(v).all():
        raise InputError("the query vector holds NaN — the query audio may be silent or corrupt")
    if space is not None:
        return space.apply(v)[0]
    v = l2_normalize(v.astype(np.float32)).astype(np.float64)
    if mean is not None and scale is not None:
        v = (v - mean) / scale
    return v.astype(np.float32)
