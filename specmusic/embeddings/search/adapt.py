"""A similarity space learnt from the library itself, without labels (``embed``'s default).

The windows of one track are positives. Directions along which a track's windows vary a lot (an
intro against a chorus, a drum fill) say little about which track it is; directions along which
tracks differ from one another while each track stays put carry what similarity search wants.
:func:`fit_space` keeps the :data:`COMPONENTS` directions with the largest ratio of between-track
to within-track variance: the leading generalised eigenvectors ``v`` of

    S_between v = lambda (S_within + REG * tr(S_within) / d * I) v

``S_between`` is the covariance of the tracks' mean features (every track weighs the same) and
``S_within`` the covariance of a track's windows around its mean, pooled over tracks. It is linear
discriminant analysis with one class per track: no label is needed, and it is learnt on the
user's own library when ``recommend`` (or ``embed --map``) searches it, like column z-scores.

What a library stores per track (:func:`pack_windows`, ``"adapt": {"groups": G}`` in its model,
:class:`~specmusic.embeddings.description.Adaptation`):
the L2-normalised mean of the track's window features (``d`` values), then ``G - 1`` Helmert
contrasts of ``G`` consecutive groups of its windows (the first ``k`` groups pooled against group
``k + 1``, scaled by ``sqrt(n_k n_{k+1} / (n_k + n_{k+1}))`` for their window counts), on the same
scale as the mean. Under windows drawn independently around the track's mean, each contrast has
mean zero and the covariance of one window's deviation, whatever the group sizes, so ``S_within``
is their covariance; a track with one window has zero contrasts and adds nothing.
Every row is thus self-contained: libraries can be appended to, pruned, sharded and streamed, and
the space follows the library as it is. Rows are ``G * d`` values (``G`` = 3: 600 for MusiCNN).

Joined models (``embed -m a+b --adapt``): each model packs its own windows and :func:`join_packed`
lays the rows out as one packed row (every model's mean, then every model's contrasts). The
library's model says where each model's block lies
(``adapt.blocks``, :attr:`~specmusic.embeddings.description.ModelDescription.adapt_blocks`), and :func:`fit_space` learns each
model's space from its own block, scales each to unit total variance (every model weighs the same)
and concatenates them: one linear map, so queries, sharded libraries and indexes treat it as they
treat one model's space. One space learnt from the joined rows instead lost on the soundtrack
benchmark by 2 to 9 points (benchmarks/similarity_generalise.py --study-only): it lets the model
whose windows vary least within a track (an FCN's two overlapping 29 s windows on a 30 s clip)
take every direction.

Libraries of fewer than :data:`MIN_TRACKS` tracks are too small to learn the space from (measured on
the soundtrack benchmark, docs/similarity.md): their search space is the track means with columns
z-scored, and :attr:`Space.adapted` says which one was used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from specmusic.errors import ConfigError, InputError

__all__ = ["COMPONENTS", "GROUPS", "MIN_TRACKS", "REG", "Space", "SpaceStats", "library_space", "note_fallback", "fit_space",
           "join_packed", "pack_windows", "unpack"]  # fmt: skip

#: Window groups per track: G - 1 contrasts are stored beside the mean.
GROUPS = 3
#: Dimensions of the learnt space.
COMPONENTS = 16
#: Ridge on the within-track covariance, relative to its mean eigenvalue.
REG = 0.1
#: Libraries smaller than this are searched on z-scored track means instead.
MIN_TRACKS = 32  # benchmarks/adapt_library_size.py
#: Bumped when the packing or the fit changes (caches of spaces and indexes record it).
VERSION = 1


def pack_windows(windows: np.ndarray, groups: int = GROUPS) -> np.ndarray:
    """One track's packed row: its mean window feature and ``groups - 1`` within-track contrasts.

    Parameters
    ----------
    windows : np.ndarray [shape=(n_windows, d)], in time order
    groups : window groups (2 or more)

    Returns
    -------
    np.ndarray [shape=(groups * d,)], float32: the mean, L2-normalised, then the contrasts scaled by
    the same factor (zeros when the track has fewer windows than needed for a contrast)
    """
    w = np.asarray(windows, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] == 0:
        raise ConfigError(f"expected window features of shape (n_windows>0, dim), got {w.shape}")
    if groups < 2:
        raise ConfigError(f"adapt needs at least 2 window groups, got {groups}")
    mean = w.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    factor = 1.0 / norm if norm > 0 else 1.0
    contrasts = np.zeros((groups - 1, w.shape[1]))
    g = min(groups, len(w))
    if g >= 2:  # the first k groups pooled against group k + 1 (Helmert, weighted by group sizes)
        parts = np.array_split(w, g)
        sizes = np.array([len(p) for p in parts], dtype=np.float64)
        means = np.stack([p.mean(axis=0) for p in parts])
        for k in range(1, g):
            n_k = sizes[:k].sum()
            pooled = (sizes[:k, None] * means[:k]).sum(axis=0) / n_k
            contrasts[k - 1] = np.sqrt(n_k * sizes[k] / (n_k + sizes[k])) * (pooled - means[k])
    return (np.concatenate([mean, contrasts.ravel()]) * factor).astype(np.float32)


def join_packed(rows: Sequence[np.ndarray], groups: int) -> np.ndarray:
    """Several models' packed rows of one track → one packed row of their joined features.

    Each model's mean is L2-normalised (so every model weighs the same, as in a plain
    concatenation) and its contrasts scaled alike; the joined row is every model's mean, then every
    model's first contrast, and so on: :func:`unpack` and the learnt space read it as the packed row
    of one model whose features are the models' side by side (one space learnt from all of them).

    Parameters
    ----------
    rows : one packed row per model [shape=(groups * d_m,)], in the models' order
    groups : the window groups every row was packed with

    Returns
    -------
    np.ndarray [shape=(groups * sum of d_m,)], float32
    """
    parts = [unpack(r, groups) for r in rows]
    means = np.concatenate([m[0] for m, _ in parts])
    contrasts = np.concatenate([c[0] for _, c in parts], axis=-1)  # [groups - 1, sum of d_m]
    return np.concatenate([means, contrasts.ravel()]).astype(np.float32)


def unpack(vectors: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Packed rows [n, G*d] → (means [n, d] L2-normalised, contrasts [n, G-1, d] on the same scale), float64.

    A stored row may have been L2-normalised as a whole; the mean's norm gives the scale back.
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if groups < 2 or x.shape[1] % groups:
        raise InputError(f"a library row of {x.shape[1]} values is not {groups} packed blocks — re-embed the library")
    d = x.shape[1] // groups
    means = x[:, :d]
    norms = np.linalg.norm(means, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return means / norms, x[:, d:].reshape(len(x), groups - 1, d) / norms[:, :, None]


class SpaceStats:
    """Streams packed rows into what :func:`fit_space` needs: two [d, d] sums and counts.

    Memory is O(d²) whatever the number of tracks (Chan's update for the means' covariance).
    """

    def __init__(self, groups: int, blocks: tuple[int, ...] = ()) -> None:
        self.groups, self.blocks = groups, tuple(blocks)  # blocks: joined models' feature sizes
        self.n = 0
        self.mean: np.ndarray | None = None
        self.between: np.ndarray | None = None  # sum of outer products of centred means
        self.within: np.ndarray | None = None  # sum of outer products of contrasts
        self.n_contrasts = 0

    def add(self, vectors: np.ndarray) -> SpaceStats:
        """A batch of packed rows [shape=(n, G*d)]."""
        x = np.asarray(vectors)
        bad = ~np.isfinite(x.reshape(-1, x.shape[-1])).all(axis=1)
        if bad.any():
            raise InputError(f"the library has {int(bad.sum())} vector(s) with NaN or infinite values — "
                             "re-embed those tracks or drop them")  # fmt: skip
        means, contrasts = unpack(x, self.groups)
        if not len(means):
            return self
        c = contrasts.reshape(-1, contrasts.shape[-1])
        c = c[np.abs(c).max(axis=1) > 1e-9]  # tracks with too few windows (or none varying) add no contrast
        mb = means.mean(axis=0)
        centred = means - mb
        bb = centred.T @ centred
        wb = c.T @ c
        if self.mean is None:
            self.n, self.mean, self.between, self.within = len(means), mb, bb, wb
        else:
            assert self.between is not None and self.within is not None
            total = self.n + len(means)
            delta = mb - self.mean
            self.between = self.between + bb + np.outer(delta, delta) * (self.n * len(means) / total)
            self.mean = self.mean + delta * (len(means) / total)
            self.within = self.within + wb
            self.n = total
        self.n_contrasts += len(c)
        return self


@dataclass
class Space:
    """How packed library rows become search vectors: ``(mean_feature - center) @ matrix``.

    ``adapted``: the learnt space (:func:`fit_space`); otherwise ``matrix`` is the diagonal of
    the column z-scores of the means (a library too small to learn from).
    """

    groups: int
    center: np.ndarray
    matrix: np.ndarray
    adapted: bool
    n_tracks: int

    @classmethod
    def plain(cls, groups: int, d: int, n_tracks: int) -> Space:
        """The track means as they are (``--no-standardize``, or a one-track library)."""
        return cls(groups, np.zeros(d), np.eye(d), False, n_tracks)

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Packed rows [shape=(n, G*d) or (G*d,)] → search vectors [shape=(n, k)], float32, not normalised."""
        means, _ = unpack(vectors, self.groups)
        return ((means - self.center) @ self.matrix).astype(np.float32)

    def key(self) -> str:
        """Which space this is (an index built in it is current while the library's fingerprint is)."""
        kind = "learnt" if self.adapted else ("zscored-means" if np.any(self.center) else "means")
        return f"adapt-v{VERSION}-{self.groups}-{kind}-{self.dim}-c{COMPONENTS}-r{REG}-m{MIN_TRACKS}"


def fit_space(stats: SpaceStats, *, components: int = COMPONENTS, reg: float = REG,
              min_tracks: int = MIN_TRACKS) -> Space:  # fmt: skip
    """The search space of a library (a filled :class:`SpaceStats`): learnt (module docstring) from
    at least ``min_tracks`` tracks, else z-scored means. Joined models (``stats.blocks``, each
    model's feature size): each model's space is learnt
    from its own block and scaled to unit total variance, and the spaces are concatenated.

    Raises
    ------
    InputError
        An empty library.
    """
    d = _require_tracks(stats)
    if stats.n < 2:  # one track: nothing to learn or z-score (it would be centred to zero)
        return Space.plain(stats.groups, d, stats.n)
    cov = stats.between / stats.n
    k = min(components, d, stats.n - 1)
    if stats.n >= min_tracks and stats.n_contrasts >= 2 and k >= 1:  # the ridge makes S_within invertible
        within = stats.within / stats.n_contrasts
        if len(stats.blocks) > 1 and sum(stats.blocks) == d:
            matrix = _per_block(cov, within, stats.blocks, k, reg)
        else:
            matrix = _discriminants(cov, within, k, reg)[0]
        return Space(stats.groups, stats.mean.copy(), matrix, True, stats.n)
    scale = np.sqrt(np.clip(np.diag(cov), 0, None))
    scale[~(scale > 1e-12)] = 1.0
    return Space(stats.groups, stats.mean.copy(), np.diag(1.0 / scale), False, stats.n)


def _discriminants(between: np.ndarray, within: np.ndarray, k: int, reg: float) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` leading directions [d, k] of between- to (ridged) within-track variance, and their ratios [k]."""
    from scipy.linalg import eigh

    d = len(between)
    ridge = reg * max(float(np.trace(within)) / d, 1e-12)
    values, vectors = eigh(between, within + ridge * np.eye(d))
    order = np.argsort(-values)[:k]
    return vectors[:, order], values[order]


def _per_block(between: np.ndarray, within: np.ndarray, blocks: tuple[int, ...], k: int, reg: float) -> np.ndarray:
    """Block-diagonal [sum of blocks, sum of k_b]: each block's own :func:`_discriminants`, its
    projections' total variance scaled to 1 so that every model weighs the same."""
    parts, start = [], 0
    for size in blocks:
        s = slice(start, start + size)
        v, values = _discriminants(between[s, s], within[s, s], min(k, size), reg)
        total = float(np.clip(values, 0, None).sum())  # the projected means' total variance (v' S_w+ridge v = I)
        parts.append((s, v / np.sqrt(total) if total > 0 else v))
        start += size
    out = np.zeros((start, sum(v.shape[1] for _, v in parts)))
    col = 0
    for s, v in parts:
        out[s, col : col + v.shape[1]] = v
        col += v.shape[1]
    return out


def note_fallback(space: Space, learn: bool, on_note: Callable[[str], None] | None) -> None:
    """Tell ``on_note`` when a library of packed rows could not learn its space (nothing when it did)."""
    if on_note is None or not learn or space.adapted:
        return
    if space.n_tracks < MIN_TRACKS:
        why = f"{space.n_tracks} tracks are too few to learn a similarity space from (it needs {MIN_TRACKS})"
    else:
        why = "its tracks hold too few windows to tell within-track from between-track variation"
    on_note(f"note: {why} — searching z-scored features instead")


def _require_tracks(stats: SpaceStats) -> int:
    """The feature dimension of a non-empty library's statistics."""
    if stats.mean is None or stats.n == 0:
        raise InputError("the library is empty — embed some tracks first (`specmusic embed DIR -o library.npz`)")
    return len(stats.mean)


def library_space(
    vectors: np.ndarray | SpaceStats, groups: int, *, blocks: tuple[int, ...] = (), learn: bool = True
) -> Space:
    """The search space of a library of packed rows (in memory, or streamed into ``SpaceStats``):
    :func:`fit_space`, or with ``learn=False`` (``recommend --no-standardize``) the plain
    L2-normalised track means."""
    stats = vectors if isinstance(vectors, SpaceStats) else SpaceStats(groups, blocks).add(vectors)
    if learn:
        return fit_space(stats)
    return Space.plain(groups, _require_tracks(stats), stats.n)
