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

Libraries of fewer than :data:`MIN_TRACKS` tracks are too small to learn the space from (measured on
the soundtrack benchmark, docs/similarity.md): their search space is the track means with columns
z-scored, and :attr:`Space.adapted` says which one was used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from specmusic.errors import ConfigError, InputError

__all__ = ["COMPONENTS", "GROUPS", "MIN_TRACKS", "REG", "Space", "SpaceStats", "library_space", "note_fallback", "fit_space",
           "pack_windows", "unpack"]  # fmt: skip

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

    def __init__(self, groups: int) -> None:
        self.groups = groups
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
    at least ``min_tracks`` tracks, else z-scored means.

    Raises
    ------
    InputError
        An empty library.
    """
    from scipy.linalg import eigh

    d = _require_tracks(stats)
    if stats.n < 2:  # one track: nothing to learn or z-score (it would be centred to zero)
        return Space.plain(stats.groups, d, stats.n)
    cov = stats.between / stats.n
    k = min(components, d, stats.n - 1)
    if stats.n >= min_tracks and stats.n_contrasts >= 2 and k >= 1:  # the ridge makes S_within invertible
        within = stats.within / stats.n_contrasts
        ridge = reg * max(float(np.trace(within)) / d, 1e-12)
        values, vectors = eigh(cov, within + ridge * np.eye(d))
        order = np.argsort(-values)[:k]
        return Space(stats.groups, stats.mean.copy(), vectors[:, order], True, stats.n)
    scale = np.sqrt(np.clip(np.diag(cov), 0, None))
    scale[~(scale > 1e-12)] = 1.0
    return Space(stats.groups, stats.mean.copy(), np.diag(1.0 / scale), False, stats.n)


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


def library_space(vectors: np.ndarray | SpaceStats, groups: int, *, learn: bool = True) -> Space:
    """The search space of a library of packed rows (in memory, or streamed into ``SpaceStats``):
    :func:`fit_space`, or with ``learn=False`` (``recommend --no-standardize``) the plain
    L2-normalised track means."""
    stats = vectors if isinstance(vectors, SpaceStats) else SpaceStats(groups).add(vectors)
    if learn:
        return fit_space(stats)
    return Space.plain(groups, _require_tracks(stats), stats.n)
