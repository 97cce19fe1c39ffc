"""Cluster maps: KMeans over embeddings, a 2-D projection coloured by label, agreement metrics.

scikit-learn and matplotlib are imported inside the functions (never on the inference path).

Defaults (one block)::

    k           = None     # clusters; None: the number of distinct labels (8 when unlabelled)
    projection  = "pca"    # pca | tsne (sklearn) | umap (when umap-learn is installed)
    n_init      = 10       # KMeans restarts
    seed        = 0
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from specmusic.errors import ConfigError, InputError

__all__ = [
    "ClusterResult",
    "PROJECTIONS",
    "cluster_embeddings",
    "cluster_map_figure",
    "cluster_record",
    "format_clusters",
    "save_cluster_map",
]

PROJECTIONS = ("pca", "tsne", "umap")


@dataclass
class ClusterResult:
    """KMeans assignments, 2-D coordinates and (with labels) agreement metrics."""

    assignments: np.ndarray  # int [n]
    coords: np.ndarray  # float32 [n, 2]
    k: int
    projection: str
    metrics: dict[str, float] = field(default_factory=dict)
    clusters: list[dict[str, Any]] = field(default_factory=list)


def cluster_embeddings(
    vectors: np.ndarray,
    *,
    labels: Sequence[str | None] | None = None,
    ids: Sequence[str] | None = None,
    k: int | None = None,
    projection: str = "pca",
    seed: int = 0,
) -> ClusterResult:
    """KMeans clusters and a 2-D projection of L2-normalised vectors.

    Parameters
    ----------
    vectors : np.ndarray [shape=(n, d)], L2-normalised (Euclidean KMeans then tracks cosine)
    labels : [shape=(n,)], known labels (None where unknown); give NMI/ARI and the default ``k``
    ids : [shape=(n,)], names listed as cluster examples
    k : clusters (default: number of distinct labels, else 8), capped at ``n``
    projection : ``pca`` | ``tsne`` | ``umap``
    seed : random seed for KMeans and the projection

    Returns
    -------
    ClusterResult
        ``metrics`` holds ``silhouette`` (cosine, on the vectors) when 2 <= k < n, and ``nmi``/``ari``
        against the labelled tracks when at least two labels are known.

    Raises
    ------
    InputError
        Fewer than 2 vectors, or NaN values.
    ConfigError
        Unknown projection, or t-SNE/UMAP not installed.
    """
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score

    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2 or len(x) < 2:
        raise InputError("a cluster map needs at least 2 embedded tracks — embed more tracks")
    if not np.isfinite(x).all():
        raise InputError("embeddings hold NaN values — re-embed the tracks that failed")
    if projection not in PROJECTIONS:
        raise ConfigError(f"unknown projection {projection!r} — use one of {', '.join(PROJECTIONS)}")
    labs = list(labels) if labels is not None else [None] * len(x)
    known = sorted({lab for lab in labs if lab is not None})
    if k is None:
        k = len(known) if len(known) >= 2 else 8
    k = max(1, min(int(k), len(x)))
    with warnings.catch_warnings():  # duplicate vectors leave fewer distinct points than k: not the user's concern
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x)
    assign = km.labels_.astype(np.int64)
    metrics: dict[str, float] = {}
    if 2 <= k < len(x) and len(set(assign.tolist())) >= 2:
        metrics["silhouette"] = float(silhouette_score(x, assign, metric="cosine", random_state=seed))
    mask = np.array([lab is not None for lab in labs])
    if len(known) >= 2:
        y = [labs[i] for i in np.flatnonzero(mask)]
        metrics["nmi"] = float(normalized_mutual_info_score(y, assign[mask]))
        metrics["ari"] = float(adjusted_rand_score(y, assign[mask]))
    coords = project_2d(x, method=projection, seed=seed)
    clusters = []
    for c in range(k):
        rows = np.flatnonzero(assign == c)
        counts = Counter(labs[i] for i in rows if labs[i] is not None)
        # examples: the members closest to the centre
        d = np.linalg.norm(x[rows] - km.cluster_centers_[c], axis=1)
        examples = [ids[i] for i in rows[np.argsort(d)][:3]] if ids is not None else []
        clusters.append(
            {"cluster": c, "size": int(len(rows)), "labels": dict(counts.most_common(3)), "examples": examples}
        )
    return ClusterResult(assign, coords, k, projection, metrics, clusters)


def project_2d(x: np.ndarray, *, method: str = "pca", seed: int = 0) -> np.ndarray:
    """2-D coordinates of ``x`` [shape=(n, d)] → [shape=(n, 2)], float32."""
    n, d = x.shape
    if method == "pca" or n < 5:
        from sklearn.decomposition import PCA

        comps = min(2, n, d)
        out = PCA(n_components=comps, random_state=seed).fit_transform(x)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        with np.errstate(divide="ignore", invalid="ignore"):  # identical points: t-SNE's affinities divide by zero
            out = TSNE(n_components=2, perplexity=min(30.0, (n - 1) / 3), random_state=seed, init="pca").fit_transform(x)
    else:
        try:
            import umap  # type: ignore[import-not-found]
        except ImportError:
            raise ConfigError("UMAP is not installed — pip install umap-learn, or use --projection pca|tsne") from None
        out = umap.UMAP(n_components=2, random_state=seed).fit_transform(x)
    if out.shape[1] < 2:
        out = np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    return np.asarray(out, dtype=np.float32)


def format_clusters(result: ClusterResult) -> list[str]:
    """Human-readable lines: one per cluster, then the metrics."""
    lines = []
    for c in result.clusters:
        labs = ", ".join(f"{k} {v}" for k, v in c["labels"].items()) or "unlabelled"
        ex = "; ".join(os.path.basename(e) for e in c["examples"])
        lines.append(f"cluster {c['cluster']}: {c['size']} tracks ({labs}) e.g. {ex}")
    if result.metrics:
        lines.append("metrics: " + " ".join(f"{k}={v:.3f}" for k, v in sorted(result.metrics.items())))
    return lines


def cluster_record(
    result: ClusterResult, *, ids: Sequence[str], labels: Sequence[str | None] | None = None
) -> dict[str, Any]:
    """The map as data (``embed --map`` writes it beside the PNG as JSON): clusters, metrics, points.

    Returns
    -------
    dict
        ``k``, ``projection``, ``metrics``, ``clusters`` (as in :class:`ClusterResult`) and
        ``points``: ``[{"id", "label", "cluster", "x", "y"}]`` one per track.
    """
    labs = list(labels) if labels is not None else [None] * len(ids)
    points = [
        {"id": id_, "label": labs[i], "cluster": int(result.assignments[i]),
         "x": round(float(result.coords[i, 0]), 6), "y": round(float(result.coords[i, 1]), 6)}
        for i, id_ in enumerate(ids)
    ]  # fmt: skip
    return {
        "k": result.k,
        "projection": result.projection,
        "metrics": result.metrics,
        "clusters": result.clusters,
        "points": points,
    }


_MARKERS = "os^Dv<>pPX"


def cluster_map_figure(
    result: ClusterResult, *, labels: Sequence[str | None] | None = None, title: str | None = None
) -> Any:
    """The matplotlib figure of a cluster map (see :func:`save_cluster_map`).

    Colour is the label (the cluster when unlabelled); with labels, marker shape is the KMeans
    cluster (shapes repeat after 10). Legends sit right of the axes, never over the points: one
    for colours, and with labels one for the shapes below it.
    """
    from matplotlib.lines import Line2D

    from specmusic.plotting import drawable_text, pyplot

    plt = pyplot()
    xy = result.coords
    labs = list(labels) if labels is not None and any(lab is not None for lab in labels) else None
    colour_by = [drawable_text(lab) if lab is not None else "(unlabelled)" for lab in labs] if labs else [f"cluster {a}" for a in result.assignments]
    names = sorted(set(colour_by))
    cmap = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
    fig, ax = plt.subplots(figsize=(9.5, 6.5))
    for ci, name in enumerate(names):
        rows = np.array([c == name for c in colour_by])
        shapes = sorted(set(result.assignments[rows].tolist())) if labs else [None]
        for m in shapes:
            sel = rows & (result.assignments == m) if m is not None else rows
            marker = _MARKERS[m % len(_MARKERS)] if m is not None else "o"
            ax.scatter(xy[sel, 0], xy[sel, 1], s=22, color=cmap(ci % cmap.N), marker=marker, alpha=0.8, edgecolors="none")
    colours = [Line2D([], [], marker="o", linestyle="", color=cmap(ci % cmap.N), label=name) for ci, name in enumerate(names)]
    first = ax.legend(
        handles=colours, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8,
        title="label (colour)" if labs else "KMeans cluster (colour)", ncol=2 if len(names) > 12 else 1,
    )  # fmt: skip
    if labs:
        fig.canvas.draw()  # where the colour legend ends, to put the shape legend below it
        bottom = first.get_window_extent().transformed(ax.transAxes.inverted()).y0
        ax.add_artist(first)
        shapes = [
            Line2D([], [], marker=_MARKERS[c % len(_MARKERS)], linestyle="", color="0.35", label=f"cluster {c}")
            for c in range(result.k)
        ]
        more = " — shapes repeat after 10" if result.k > len(_MARKERS) else ""
        ax.legend(
            handles=shapes, loc="upper left", bbox_to_anchor=(1.02, bottom - 0.03), borderaxespad=0.0, fontsize=8,
            title=f"KMeans cluster (shape){more}", ncol=2 if result.k > 12 else 1,
        )  # fmt: skip
    axis = {"pca": "PC", "tsne": "t-SNE ", "umap": "UMAP "}[result.projection]
    ax.set_xlabel(f"{axis}1")
    ax.set_ylabel(f"{axis}2")
    m = result.metrics
    sub = "  ".join(f"{key.upper()}={m[key]:.2f}" for key in ("nmi", "ari", "silhouette") if key in m)
    ax.set_title(drawable_text(title or f"{len(xy)} tracks, k={result.k} KMeans clusters") + (f"\n{sub}" if sub else ""))
    return fig


def save_cluster_map(
    result: ClusterResult,
    path: str | os.PathLike[str],
    *,
    labels: Sequence[str | None] | None = None,
    title: str | None = None,
) -> None:
    """A PNG scatter of the 2-D projection (:func:`cluster_map_figure`), written atomically."""
    from specmusic.plotting import save_figure_atomic

    save_figure_atomic(cluster_map_figure(result, labels=labels, title=title), path, dpi=110)
