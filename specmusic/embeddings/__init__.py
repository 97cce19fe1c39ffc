"""Embedding libraries: one L2-normalised vector per track, and recommending from them.

Modules, one concern each:

* :mod:`~specmusic.embeddings.library`: the library format (``.npz`` / JSON Lines), read and write
* :mod:`~specmusic.embeddings.shards`: a library that grows in shards (``library/`` of parts + index.json)
* :mod:`~specmusic.embeddings.shard_index`: a FAISS IVF / IVF-PQ index built from the shards
* :mod:`~specmusic.embeddings.sharded_recommend`: recommending from a sharded library, part by part
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
from specmusic.embeddings.incremental import EmbedReport, embed_into_shards, embed_tracks
from specmusic.embeddings.library import (
    LIBRARY_FORMAT_VERSION,
    EmbeddingLibrary,
    Tags,
    concat_libraries,
    read_library,
    save_library,
    write_library_jsonl,
    write_library_jsonl_file,
)
from specmusic.embeddings.recommend import GROUP_KEYS, Recommender, search_vectors
from specmusic.embeddings.shard_index import ANN_KINDS, build_shard_index
from specmusic.embeddings.sharded_recommend import ShardedRecommender
from specmusic.embeddings.shards import (
    ShardCatalog,
    ShardedLibraryWriter,
    compact,
    is_sharded,
    iter_shards,
    read_sharded,
    shard_statistics,
)
from specmusic.embeddings.tabular import TabularSource, read_tabular

__all__ = [
    "ANN_KINDS",
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
    "ShardCatalog",
    "ShardedLibraryWriter",
    "ShardedRecommender",
    "TabularSource",
    "Tags",
    "build_shard_index",
    "compact",
    "concat_blocks",
    "concat_libraries",
    "embed_into_shards",
    "embed_tracks",
    "embedder_from_description",
    "is_sharded",
    "iter_shards",
    "make_embedder",
    "mfcc_statistics",
    "pool_windows",
    "read_library",
    "read_sharded",
    "read_tabular",
    "same_model",
    "save_library",
    "search_vectors",
    "shard_statistics",
    "top_tags",
    "write_library_jsonl",
    "write_library_jsonl_file",
]
