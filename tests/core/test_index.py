"""Exact and approximate cosine search (specmusic.index): exclusion, padding, bad input, ANN backends and caches.

The explanations and tabular scaling built on it are tested in ``tests/embeddings/test_search.py``.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from specmusic import index as index_mod
from specmusic.errors import ConfigError, InputError
from specmusic.index import IndexConfig, build_index, l2_normalize


def _unit(n: int, d: int, seed: int = 0) -> np.ndarray:
    return l2_normalize(np.random.default_rng(seed).standard_normal((n, d)))


def _brute(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :k]


def test_exact_search_matches_brute_force_across_chunks():
    x, q = _unit(5000, 32), _unit(7, 32, seed=1)
    idx = build_index(x, config=IndexConfig(backend="exact", chunk_rows=1000))
    got, scores = idx.search(q, 10)
    np.testing.assert_array_equal(got, _brute(x, q, 10))
    np.testing.assert_allclose(scores, np.take_along_axis(q @ x.T, got, axis=1), rtol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-7).all()  # best first


def test_exclusion_of_self_and_group():
    x = _unit(200, 8)
    groups = np.arange(200) // 10  # 20 groups of 10
    idx = build_index(x, config=IndexConfig(backend="exact"))
    got, _ = idx.search(x[[5, 50]], 15, exclude=[[5], [50]], groups=groups, query_groups=[0, 5])
    assert 5 not in got[0] and 50 not in got[1]
    assert not np.isin(got[0], np.arange(0, 10)).any()
    assert not np.isin(got[1], np.arange(50, 60)).any()
    assert (got >= 0).all()


def test_k_larger_than_library_pads_with_minus_one():
    x = _unit(4, 3)
    got, scores = build_index(x).search(x[:1], 6, exclude=[[0]])
    assert list(got[0, 3:]) == [-1, -1, -1]
    assert np.isneginf(scores[0, 3:]).all()
    assert set(got[0, :3]) == {1, 2, 3}


def test_bad_input_is_reported():
    x = _unit(10, 4)
    idx = build_index(x)
    with pytest.raises(InputError, match="dimensions"):
        idx.search(_unit(1, 5), 3)
    with pytest.raises(InputError, match="NaN"):
        idx.search(np.full((1, 4), np.nan, np.float32), 3)
    with pytest.raises(InputError, match="empty"):
        build_index(np.zeros((0, 4), np.float32))
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        build_index(bad, ids=[f"t{i}" for i in range(10)])
    with pytest.raises(ConfigError):
        IndexConfig(backend="annoy")


@pytest.mark.parametrize("backend", ["hnsw", "faiss"])
def test_ann_backend_recall_or_graceful_fallback(backend):
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((40, 24))
    blob = rng.integers(0, 40, 3000)
    x = l2_normalize(centres[blob] + 0.3 * rng.standard_normal((3000, 24)))
    q = x[:50]
    exact, _ = build_index(x, config=IndexConfig(backend="exact")).search(q, 10, exclude=[[i] for i in range(50)])
    notes: list[str] = []
    ann = build_index(x, config=IndexConfig(backend=backend, threads=1), on_note=notes.append)
    got, _ = ann.search(q, 10, exclude=[[i] for i in range(50)])
    assert all(i not in got[i] for i in range(50))
    if backend in index_mod.ann_backends():
        assert ann.backend == backend
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, exact)])
        assert recall >= 0.9
    else:
        assert ann.backend == "exact" and notes and "not installed" in notes[0]
        np.testing.assert_array_equal(got, exact)
    # group exclusion reaches past a whole neighbourhood (the query's blob) and still fills k
    got, _ = ann.search(q[:5], 10, exclude=[[i] for i in range(5)], groups=blob, query_groups=blob[:5])
    assert (got >= 0).all() and all((blob[got[i]] != blob[i]).all() for i in range(5))


def test_auto_backend_without_ann_libraries_stays_exact(monkeypatch):
    monkeypatch.setattr(index_mod, "ann_backends", lambda: [])
    notes: list[str] = []
    idx = build_index(_unit(50, 4), config=IndexConfig(ann_threshold=10), on_note=notes.append)
    assert idx.backend == "exact" and "pip install 'specmusic[ann]'" in notes[0]


@pytest.mark.parametrize("backend", ["hnsw", "faiss"])
def test_ann_index_is_saved_and_reused(tmp_path, backend):
    x = _unit(500, 8)
    notes: list[str] = []
    cache = tmp_path / "lib.npz"
    config = IndexConfig(backend=backend, threads=1)
    first = build_index(x, config=config, on_note=notes.append, cache=cache, cache_key="v1")
    second = build_index(x, config=config, on_note=notes.append, cache=cache, cache_key="v1")
    if backend not in index_mod.ann_backends():
        assert first.backend == "exact" and not (tmp_path / f"lib.npz.{backend}").exists()
        return
    assert "saved" in notes[0] and "loaded" in notes[1]
    np.testing.assert_array_equal(first.search(x[:3], 5)[0], second.search(x[:3], 5)[0])
    build_index(x, config=config, on_note=notes.append, cache=cache, cache_key="v2")  # library changed
    assert "saved" in notes[2]


@pytest.mark.parametrize("backend", ["hnsw", "faiss"])
def test_ann_index_is_written_through_atomic_path(tmp_path, backend, monkeypatch):
    """The saved index goes through fileio.atomic_path (a locked ``.NAME.XXXXXXXX.tmp``, swept when stale), not a pid name."""
    if backend not in index_mod.ann_backends():
        pytest.skip(f"{backend} is not installed")
    temps = []
    real = index_mod.atomic_path

    @contextlib.contextmanager
    def spying(target, **kwargs):
        with real(target, **kwargs) as tmp:
            temps.append(tmp.name)
            yield tmp

    monkeypatch.setattr(index_mod, "atomic_path", spying)
    build_index(_unit(500, 8), config=IndexConfig(backend=backend, threads=1), cache=tmp_path / "lib.npz", cache_key="v1")
    assert len(temps) == 1 and temps[0].startswith(f".lib.npz.{backend}.") and temps[0].endswith(".tmp")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"lib.npz.{backend}", f"lib.npz.{backend}.json"]
