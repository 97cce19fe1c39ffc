"""Window features cached per (network, clip), and embedders that read them (benchmarks/similarity_generalise.py).

The network pass is the slow part of every candidate; candidates that share a network (Pons'
MusiCNN plain, packed, or joined with another) share its pass. What is cached per clip is what
:func:`specmusic.inference.analyse_track` returns to :class:`~specmusic.embeddings.OnnxEmbedder`
(every window's ``logits`` and ``embedding``, the pooled probabilities and embedding), so each
candidate's row is made by the embedder's own code from exactly what a fresh pass gives
(:meth:`OnnxEmbedder.vector_from_analysis`, :meth:`ConcatEmbedder.join`); MFCC statistics are
cached as the vector itself. One ``.npz`` per (network, clip), keyed by the network's sha256, the
windows analysed and the clip's path, size and modification time; written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from specmusic.data import Track
from specmusic.embeddings import EmbeddingLibrary, Embedder, embed_tracks
from specmusic.embeddings.embedders import ConcatEmbedder, MfccEmbedder, OnnxEmbedder
from specmusic.embeddings.records import Tags
from specmusic.inference import analyse_track
from specmusic.inference.analysis import TrackAnalysis

__all__ = ["CachedEmbedder", "WindowCache", "cached_library", "seconds_per_track"]


class WindowCache:
    """Per-clip network outputs (or MFCC statistics) under ``root``, one folder per network recipe."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.computed = 0
        self.read = 0
        self.seconds = 0.0  # spent computing what was missing

    def _file(self, key: str, path: str) -> tuple[Path, np.ndarray]:
        st = os.stat(path)
        name = hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:20]
        return self.root / key / f"{name}.npz", np.array([st.st_size, st.st_mtime_ns], dtype=np.int64)

    def _load(self, file: Path, stamp: np.ndarray) -> dict[str, np.ndarray] | None:
        if not file.is_file():
            return None
        with np.load(file, allow_pickle=False) as z:
            if not np.array_equal(z["stamp"], stamp):
                return None
            self.read += 1
            return {k: z[k] for k in z.files}

    def _save(self, file: Path, arrays: dict[str, np.ndarray]) -> None:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f".{file.stem}.tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, file)
        self.computed += 1

    def analysis(self, embedder: OnnxEmbedder, path: str) -> TrackAnalysis:
        """What ``embedder``'s network gives for ``path`` (:func:`analyse_track` with its windows)."""
        windows = embedder.description.windows
        file, stamp = self._file(f"{embedder.description.sha256}-w{windows}", path)
        z = self._load(file, stamp)
        if z is None:
            t0 = time.perf_counter()
            r = analyse_track(embedder.model, path, windows=embedder.windows, outputs=("logits", "embedding"))
            self.seconds += time.perf_counter() - t0
            assert r.probabilities is not None and r.embedding is not None
            z = {"stamp": stamp, "probabilities": r.probabilities, "embedding": r.embedding,
                 "logits_w": r.per_window["logits"], "embedding_w": r.per_window["embedding"],
                 "counts": np.array([r.windows, r.total_windows]), "duration": np.array(np.nan if r.duration is None else r.duration)}  # fmt: skip
            self._save(file, z)
        duration = float(z["duration"])
        return TrackAnalysis(z["probabilities"], z["embedding"], None if np.isnan(duration) else duration,
                             int(z["counts"][0]), int(z["counts"][1]),
                             {"logits": z["logits_w"], "embedding": z["embedding_w"]})  # fmt: skip

    def mfcc(self, embedder: MfccEmbedder, path: str) -> np.ndarray:
        """``embedder``'s MFCC statistics of ``path``."""
        recipe = json.dumps([embedder.description.feature_config, embedder.description.duration], sort_keys=True)
        file, stamp = self._file("mfcc-" + hashlib.sha1(recipe.encode()).hexdigest()[:16], path)
        z = self._load(file, stamp)
        if z is None:
            t0 = time.perf_counter()
            z = {"stamp": stamp, "vector": embedder.embed_file(path)}
            self.seconds += time.perf_counter() - t0
            self._save(file, z)
        return z["vector"]


def cached_vector(embedder: Embedder, path: str, cache: WindowCache) -> tuple[np.ndarray, Tags | None]:
    """``embedder.embed_file_tagged(path)``, the network outputs read from ``cache``."""
    if isinstance(embedder, ConcatEmbedder):
        parts = [cached_vector(m, path, cache) for m in embedder.members]
        return embedder.join([v for v, _ in parts]), parts[0][1]
    if isinstance(embedder, OnnxEmbedder):
        return embedder.vector_from_analysis(cache.analysis(embedder, path))
    if isinstance(embedder, MfccEmbedder):
        return cache.mfcc(embedder, path), None
    raise TypeError(f"no cached path for {type(embedder).__name__}")


class CachedEmbedder(Embedder):
    """A real embedder whose network outputs come from a :class:`WindowCache` (same description, same rows)."""

    def __init__(self, embedder: Embedder, cache: WindowCache) -> None:
        self.inner, self.cache = embedder, cache
        self.description = embedder.description

    def embed_file(self, path: str) -> np.ndarray:
        return self.embed_file_tagged(path)[0]

    def embed_file_tagged(self, path: str, *, warnings: list[str] | None = None) -> tuple[np.ndarray, Tags | None]:
        return cached_vector(self.inner, path, self.cache)


def cached_library(embedder: Embedder, tracks: Sequence[Track], cache: WindowCache) -> EmbeddingLibrary:
    """One library of ``tracks`` (in order), made by ``embed_tracks`` as ``embed`` makes it.

    Raises
    ------
    RuntimeError
        A clip failed (the benchmark's collections are expected to be whole).
    """
    failed: list[str] = []
    lib, report = embed_tracks(list(tracks), CachedEmbedder(embedder, cache), progress=None, on_error=failed.append)
    if report.failed or lib.ids != [t.path for t in tracks]:
        raise RuntimeError(f"{len(report.failed)} clip(s) failed or the library lost its order: {failed[:3]}")
    return lib


def seconds_per_track(make: Callable[[], Embedder], paths: Sequence[str]) -> float:
    """Wall seconds per track of ``embed_file_tagged`` over ``paths[1:]`` with a fresh embedder (the
    first path warms it up: model load and first run are not counted)."""
    embedder = make()
    embedder.embed_file_tagged(paths[0])
    t0 = time.perf_counter()
    for p in paths[1:]:
        embedder.embed_file_tagged(p)
    return (time.perf_counter() - t0) / max(len(paths) - 1, 1)


def note(line: str) -> None:
    """A progress line on stderr."""
    print(line, file=sys.stderr, flush=True)
