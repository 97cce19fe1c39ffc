"""A library's cluster map (``embed --map``): KMeans clusters and a 2-D projection of its search space
(:func:`specmusic.cluster.cluster_embeddings`), saved as a PNG with its data beside it as JSON."""

from __future__ import annotations

import os
from pathlib import Path

from specmusic.cluster import cluster_embeddings, cluster_record, format_clusters, save_cluster_map
from specmusic.embeddings.search.space import search_vectors
from specmusic.embeddings.store.library import EmbeddingLibrary
from specmusic.fileio import write_json_atomic

__all__ = ["map_data_path", "save_library_map"]


def map_data_path(map_png: str | os.PathLike[str]) -> Path:
    """Where ``embed --map`` writes the map's data: ``map.png`` → ``map.json``."""
    png = Path(map_png)
    return png.with_suffix(".json") if png.suffix.lower() != ".json" else png.with_name(png.name + ".json")


def save_library_map(
    library: EmbeddingLibrary,
    map_png: str | os.PathLike[str],
    *,
    k: int | None = None,
    projection: str = "pca",
    seed: int = 0,
) -> list[str]:
    """Cluster ``library`` in its search space, save the PNG and its JSON data (:func:`map_data_path`).

    Parameters
    ----------
    library : the library (its labels colour the map)
    map_png : where the PNG goes
    k : KMeans clusters (default: the number of labels)
    projection : ``pca`` | ``tsne`` | ``umap``
    seed : KMeans' and the projection's seed

    Returns
    -------
    list[str]
        The listing for stderr: one line per cluster, the metrics, and where the map and its data went.

    Raises
    ------
    InputError
        Fewer than 2 tracks, or vectors holding NaN.
    ConfigError
        An unknown projection, or t-SNE/UMAP not installed.
    """
    result = cluster_embeddings(
        search_vectors(library), labels=library.labels, ids=library.ids, k=k, projection=projection, seed=seed
    )
    save_cluster_map(result, map_png, labels=library.labels)
    data = map_data_path(map_png)
    write_json_atomic(data, cluster_record(result, ids=library.ids, labels=library.labels))
    return [*format_clusters(result), f"map: {map_png} (data: {data})"]
