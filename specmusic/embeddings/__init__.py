"""Embedding libraries: one L2-normalised vector per track, and recommending from them.

Modules, from the bottom up (each imports only those above it in this list, and its own wing's):

* :mod:`~specmusic.embeddings.description`: :class:`ModelDescription`, what made a library's vectors
  (the ``model`` record every library keeps, read and written in one place)
* :mod:`~specmusic.embeddings.records`: a track's top tags (:data:`Tags`), a library row as results
  show it (:class:`TrackRow`), the group keys
* :mod:`~specmusic.embeddings.embedders`: audio file → vector (MFCC statistics, ONNX models, taggers,
  several models side by side; pooling over windows)
* :mod:`~specmusic.embeddings.store`: libraries on disk

  * :mod:`~specmusic.embeddings.store.library`: the format (``.npz`` / JSON Lines), read and write
  * :mod:`~specmusic.embeddings.store.shard_catalog`: a library that grows in shards (``library/`` of
    parts + index.json): its layout, catalog of live rows and readers;
    :mod:`~specmusic.embeddings.store.shard_writer` writes it, :mod:`~specmusic.embeddings.store.shard_stats`
    streams its column statistics and learnt space
  * :mod:`~specmusic.embeddings.store.shard_index`: a FAISS IVF / IVF-PQ index built from the shards
  * :mod:`~specmusic.embeddings.store.read`: any library by its path (a file, stdin, a folder)
  * :mod:`~specmusic.embeddings.store.journal`: an embed run's progress, kept as it goes
  * :mod:`~specmusic.embeddings.store.incremental`: embed a collection, re-embedding only what changed
  * :mod:`~specmusic.embeddings.store.embed`: one ``embed`` run into a file, stdout or a folder
    (:func:`embed_library`)
* :mod:`~specmusic.embeddings.search`: recommending

  * :mod:`~specmusic.embeddings.search.adapt`: a similarity space learnt from the library, without labels
  * :mod:`~specmusic.embeddings.search.space`: what vectors become before cosine (:func:`search_vectors`)
  * :mod:`~specmusic.embeddings.search.explain`: why a match was recommended, in words
  * :mod:`~specmusic.embeddings.search.filters`: ``--where`` conditions on the tracks' tags, and tags
    read on demand for libraries kept without them
  * :mod:`~specmusic.embeddings.search.tabular`: rows of a CSV of features as vectors
  * :mod:`~specmusic.embeddings.search.queries`: query resolution (ids, audio files, silence refused)
  * :mod:`~specmusic.embeddings.search.recommender`: the :class:`Recommender` protocol and the one
    builder of its answers (:func:`query_result`)
  * :mod:`~specmusic.embeddings.search.memory`: :class:`InMemoryRecommender` (a library or table in memory)
  * :mod:`~specmusic.embeddings.search.sharded`: :class:`ShardedRecommender` (a folder, part by part)
  * :mod:`~specmusic.embeddings.search.sources`: what ``recommend`` opens (:func:`open_recommender`)
* :mod:`~specmusic.embeddings.maps`: a library's cluster map (``embed --map``)

Everything public is importable from here (``from specmusic.embeddings import read_library``).
"""

from __future__ import annotations

from specmusic.embeddings.description import DEFAULT_POOLING, LAYERS, POOLINGS, Adaptation, ModelDescription
from specmusic.embeddings.embedders import (
    DEFAULT_EMBEDDING,
    DEFAULT_LAYER,
    ConcatEmbedder,
    Embedder,
    MfccEmbedder,
    OnnxEmbedder,
    concat_blocks,
    embedder_from_description,
    make_embedder,
    mfcc_statistics,
    pool_windows,
)
from specmusic.embeddings.maps import map_data_path, save_library_map
from specmusic.embeddings.records import GROUP_KEYS, TOP_TAGS, Tags, TrackRow, top_tags
from specmusic.embeddings.search.filters import FILTER_FIELDS, TrackFilter, parse_filter
from specmusic.embeddings.search.memory import InMemoryRecommender
from specmusic.embeddings.search.queries import Query
from specmusic.embeddings.search.recommender import Neighbour, Recommender, query_result, result_lines, result_notes
from specmusic.embeddings.search.sharded import ShardedRecommender
from specmusic.embeddings.search.sources import open_recommender, query_embedder, read_queries
from specmusic.embeddings.search.space import search_vectors
from specmusic.embeddings.search.tabular import TabularSource, read_tabular
from specmusic.embeddings.store.embed import EmbedOutcome, embed_library
from specmusic.embeddings.store.incremental import EmbedReport, embed_into_shards, embed_tracks
from specmusic.embeddings.store.library import (
    LIBRARY_FORMAT_VERSION,
    EmbeddingLibrary,
    concat_libraries,
    save_library,
    write_library_jsonl,
    write_library_jsonl_file,
)
from specmusic.embeddings.store.read import read_library
from specmusic.embeddings.store.shard_catalog import ShardCatalog, is_sharded, iter_shards, read_sharded
from specmusic.embeddings.store.shard_index import ANN_KINDS, build_shard_index
from specmusic.embeddings.store.shard_stats import shard_statistics
from specmusic.embeddings.store.shard_writer import ShardedLibraryWriter, compact

__all__ = [
    "ANN_KINDS",
    "FILTER_FIELDS",
    "LIBRARY_FORMAT_VERSION",
    "LAYERS",
    "DEFAULT_LAYER",
    "DEFAULT_EMBEDDING",
    "POOLINGS",
    "DEFAULT_POOLING",
    "TOP_TAGS",
    "GROUP_KEYS",
    "Adaptation",
    "EmbeddingLibrary",
    "EmbedOutcome",
    "EmbedReport",
    "ConcatEmbedder",
    "Embedder",
    "InMemoryRecommender",
    "MfccEmbedder",
    "ModelDescription",
    "Neighbour",
    "OnnxEmbedder",
    "Query",
    "Recommender",
    "ShardCatalog",
    "ShardedLibraryWriter",
    "ShardedRecommender",
    "TabularSource",
    "Tags",
    "TrackFilter",
    "TrackRow",
    "build_shard_index",
    "compact",
    "concat_blocks",
    "concat_libraries",
    "embed_into_shards",
    "embed_library",
    "embed_tracks",
    "embedder_from_description",
    "is_sharded",
    "iter_shards",
    "make_embedder",
    "map_data_path",
    "mfcc_statistics",
    "open_recommender",
    "parse_filter",
    "pool_windows",
    "query_embedder",
    "query_result",
    "read_library",
    "read_queries",
    "read_sharded",
    "read_tabular",
    "result_lines",
    "result_notes",
    "save_library",
    "save_library_map",
    "search_vectors",
    "shard_statistics",
    "top_tags",
    "write_library_jsonl",
    "write_library_jsonl_file",
]
