"""Embedding libraries: one L2-normalised vector per track, and recommending from them.

Modules, one concern each:

* :mod:`~specmusic.embeddings.library`: the library format (``.npz`` / JSON Lines), read and write
* :mod:`~specmusic.embeddings.embedders`: audio file → vector (MFCC statistics, ONNX models, taggers,
  several taggers side by side; pooling over windows)
* :mod:`~specmusic.embeddings.incremental`: embed a collection, re-embedding only what changed
* :mod:`~specmusic.embeddings.tabular`: rows of a CSV of features as vectors
* :mod:`~specmusic.embeddings.recommend`: cosine top-k with exclusion (:class:`Recommender`)
* :mod:`~specmusic.embeddings.explain`: why a match was recommended, in words

Everything public is importable from here (``from specmusic.embeddings import read_library``).
"""

from __future__ import annotations

from specmusic.embeddings.embedders import (
    DEFAULT_EMBEDDING,
    DEFAULT_LAYER,
    DEFAULT_POOLING,
    LAYERS,
    POOLINGS,
    TOP_TAGS,
    ConcatEmbedder,
    Embedder,
    MfccEmbedder,
    OnnxEmbedder,
    concat_blocks,
    embedder_from_description,
    make_embedder,
    mfcc_statistics,
    pool_windows,
    same_model,
    top_tags,
)
from specmusic.embeddings.incremental import EmbedReport, embed_tracks
from specmusic.embeddings.library import (
    LIBRARY_FORMAT_VERSION,
    EmbeddingLibrary,
    Tags,
    read_library,
    save_library,
    write_library_jsonl,
    write_library_jsonl_file,
)
from specmusic.embeddings.recommend import GROUP_KEYS, Recommender, search_vectors
from specmusic.embeddings.tabular import TabularSource, read_tabular

__all__ = [
    "LIBRARY_FORMAT_VERSION",
    "LAYERS",
    "DEFAULT_LAYER",
    "DEFAULT_EMBEDDING",
    "POOLINGS",
    "DEFAULT_POOLING",
    "TOP_TAGS",
    "GROUP_KEYS",
    "EmbeddingLibrary",
    "EmbedReport",
    "ConcatEmbedder",
    "Embedder",
    "MfccEmbedder",
    "OnnxEmbedder",
    "Recommender",
    "TabularSource",
    "Tags",
    "concat_blocks",
    "embed_tracks",
    "embedder_from_description",
    "make_embedder",
    "mfcc_statistics",
    "pool_windows",
    "read_library",
    "read_tabular",
    "same_model",
    "save_library",
    "search_vectors",
    "top_tags",
    "write_library_jsonl",
    "write_library_jsonl_file",
]
