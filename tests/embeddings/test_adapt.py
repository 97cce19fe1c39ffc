"""The space learnt from a library without labels (specmusic.embeddings.search.adapt): packing, the fit, search."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from specmusic.cli.app import app
from specmusic.embeddings import InMemoryRecommender, ModelDescription, read_library, save_library, search_vectors
from specmusic.embeddings.search.adapt import MIN_TRACKS, Space, SpaceStats, fit_space, library_space, pack_windows, unpack
from specmusic.embeddings.store.library import EmbeddingLibrary, track_record
from specmusic.embeddings.store.shard_catalog import read_sharded
from specmusic.embeddings.store.shard_stats import shard_space
from specmusic.embeddings.store.shard_writer import ShardedLibraryWriter
from specmusic.index import l2_normalize
from tests.embeddings.test_adapt_joined import default_networks  # noqa: F401 (a fixture)

GROUPS = 3
MODEL = {"kind": "onnx", "sha256": "ab" * 32, "layer": "embedding", "pooling": "mean", "windows": 6,
         "adapt": {"groups": GROUPS}, "standardize": True}  # fmt: skip


def _tracks(n: int, seed: int = 0, classes: int = 4, dim: int = 12, windows: int = 6):
    """Tracks whose class shows only along quiet directions (dims 0-1), while every window swings hard
    along loud ones (dims 2-5) that say nothing about the class: plain cosine on the means follows the
    loud directions, the learnt space the quiet ones."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((classes, dim))
    centres[:, :2] = np.c_[np.cos(np.arange(classes) * 2 * np.pi / classes), np.sin(np.arange(classes) * 2 * np.pi / classes)] * 0.6
    labels = rng.integers(0, classes, n)
    offset = np.zeros(dim)
    offset[-1] = 20.0  # a feature that is always on: the means' norms hardly vary
    rows, wins = [], []
    for c in labels:
        track = centres[c] + offset + 0.15 * rng.normal(size=dim)
        track[2:6] += rng.normal(size=4) * 2.0  # loud between-track differences unrelated to the class…
        w = track + rng.normal(size=(windows, dim)) * np.r_[0.1, 0.1, [3.0] * 4, [0.3] * (dim - 6)]  # …and within
        wins.append(w)
        rows.append(pack_windows(w, GROUPS))
    return np.stack(rows), labels, wins


def _p_at_1(x: np.ndarray, labels: np.ndarray) -> float:
    x = l2_normalize(x)
    s = x @ x.T
    np.fill_diagonal(s, -np.inf)
    return float((labels[s.argmax(axis=1)] == labels).mean())


def test_pack_and_unpack_keep_the_mean_and_scale_the_contrasts_alike() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(7, 5)) + 2.0
    row = pack_windows(w, GROUPS)
    assert row.shape == (GROUPS * 5,) and row.dtype == np.float32
    means, contrasts = unpack(row, GROUPS)
    mean = w.mean(0)
    np.testing.assert_allclose(means[0], mean / np.linalg.norm(mean), rtol=1e-5)
    parts = np.array_split(w, GROUPS)  # 3, 2, 2 windows: group 1 against group 2, weighted by their sizes
    expected = np.sqrt(3 * 2 / 5) * (parts[0].mean(0) - parts[1].mean(0)) / np.linalg.norm(mean)
    np.testing.assert_allclose(contrasts[0, 0], expected, rtol=1e-4)
    m2, c2 = unpack(l2_normalize(row[None, :])[0], GROUPS)  # the library L2-normalises whole rows: same result
    np.testing.assert_allclose(m2, means, rtol=1e-5)
    np.testing.assert_allclose(c2, contrasts, rtol=1e-4, atol=1e-7)
    for n in range(1, 11):  # identical windows: no within-track variation, whatever the group sizes
        assert np.abs(unpack(pack_windows(np.tile(mean, (n, 1)), GROUPS), GROUPS)[1]).max() < 1e-12
    one = pack_windows(w[:1], GROUPS)  # one window: no contrast, nothing learnt from it
    assert not np.any(unpack(one, GROUPS)[1])
    two = unpack(pack_windows(w[:2], GROUPS), GROUPS)[1]
    assert np.any(two[0, 0]) and not np.any(two[0, 1])  # two windows: one contrast, the other zero
    with pytest.raises(Exception, match="not 3 packed blocks"):
        unpack(np.zeros((2, 10)), GROUPS)


def test_contrasts_estimate_the_within_track_covariance() -> None:
    """Windows drawn independently around each track's mean: the contrasts' covariance is the windows'."""
    rng = np.random.default_rng(1)
    cov = np.diag([4.0, 1.0, 0.25])
    for n_windows in (4, 5, 6, 7):  # equal and unequal groups
        stats = SpaceStats(GROUPS)
        centre = np.array([30.0, 0.0, 0.0])  # rows are on the scale of the unit mean: a norm that hardly varies
        for _ in range(3000):
            stats.add(pack_windows(centre + rng.normal(size=(n_windows, 3)) @ np.sqrt(cov), GROUPS)[None, :])
        est = stats.within / stats.n_contrasts * 30.0**2
        np.testing.assert_allclose(est, cov, atol=0.25)
        assert abs(est[0, 1]) < 0.15, (n_windows, est)


def test_streamed_statistics_equal_the_whole_matrix() -> None:
    rows, _, _ = _tracks(300)
    whole = SpaceStats(GROUPS).add(rows)
    streamed = SpaceStats(GROUPS)
    for batch in np.array_split(rows, 7):
        streamed.add(batch)
    assert streamed.n == whole.n == 300 and streamed.n_contrasts == whole.n_contrasts
    np.testing.assert_allclose(streamed.mean, whole.mean, atol=1e-12)
    np.testing.assert_allclose(streamed.between, whole.between, atol=1e-9)
    np.testing.assert_allclose(streamed.within, whole.within, atol=1e-9)
    a, b = fit_space(streamed), fit_space(whole)
    assert a.adapted and b.adapted
    _same_space(a, b, rows)


def _same_space(a: Space, b: Space, rows: np.ndarray) -> None:
    """Two spaces give the same cosines (an eigenvector's sign is arbitrary; the cosines are not)."""
    xa, xb = l2_normalize(a.apply(rows)), l2_normalize(b.apply(rows))
    np.testing.assert_allclose(xa @ xa.T, xb @ xb.T, atol=1e-5)


def test_the_learnt_space_finds_what_plain_cosine_misses() -> None:
    rows, labels, _ = _tracks(400)
    means, _ = unpack(rows, GROUPS)
    space = fit_space(SpaceStats(GROUPS).add(rows))
    assert space.adapted and space.dim == min(16, 12)
    learnt, plain = _p_at_1(space.apply(rows), labels), _p_at_1(means, labels)
    zscored = _p_at_1((means - means.mean(0)) / means.std(0), labels)
    assert learnt > 0.85 and learnt > plain + 0.3 and learnt > zscored + 0.05, (learnt, plain, zscored)


def test_a_library_too_small_to_learn_from_is_searched_on_zscored_means() -> None:
    rows, _, _ = _tracks(MIN_TRACKS - 1)
    space = library_space(rows, GROUPS)
    means, _ = unpack(rows, GROUPS)
    assert not space.adapted and space.n_tracks == MIN_TRACKS - 1
    np.testing.assert_allclose(space.apply(rows), (means - means.mean(0)) / means.std(0), rtol=1e-4, atol=1e-5)
    plain = library_space(rows, GROUPS, learn=False)  # recommend --no-standardize: the means as they are
    np.testing.assert_allclose(plain.apply(rows), means, rtol=1e-5)
    with pytest.raises(Exception, match="library is empty"):
        fit_space(SpaceStats(GROUPS))


def _library(rows: np.ndarray, labels: np.ndarray) -> EmbeddingLibrary:
    n = len(rows)
    recs = [track_record(f"/music/c{c}/t{i:04d}.wav", f"c{c}", None, 1000 + i, 1.5e9 + i, None, []) for i, c in enumerate(labels)]
    return EmbeddingLibrary(
        l2_normalize(rows), [r["id"] for r in recs], [r["label"] for r in recs], [None] * n, ModelDescription.from_dict({**MODEL, "dim": rows.shape[1]}),
        np.array([r["source_size"] for r in recs]), np.array([r["source_mtime"] for r in recs]), [None] * n, [[]] * n,
    )  # fmt: skip


def test_recommend_searches_the_learnt_space_on_a_file_and_on_a_folder_alike(tmp_path: Path) -> None:
    rows, labels, _ = _tracks(300, seed=3)
    lib = _library(rows, labels)
    save_library(lib, tmp_path / "lib.npz")
    writer = ShardedLibraryWriter.open(tmp_path / "shards", lib.model, shard_size=64)
    for i in range(len(lib)):
        writer.add(lib.record(i), lib.vectors[i])
    writer.finish()
    assert np.array_equal(read_sharded(tmp_path / "shards").vectors, lib.vectors)
    space = library_space(lib.vectors, GROUPS)
    streamed = shard_space(tmp_path / "shards", GROUPS)
    assert space.adapted and streamed.adapted
    _same_space(space, streamed, lib.vectors)  # the same space, streamed part by part
    x = search_vectors(read_library(tmp_path / "lib.npz"))
    np.testing.assert_allclose(x, l2_normalize(space.apply(lib.vectors)), atol=1e-5)
    assert _p_at_1(x, labels) > 0.8
    rec = InMemoryRecommender.from_library(lib)
    assert rec.space is not None and rec.index.dim == space.dim
    args = ["-q", lib.ids[1], "-q", lib.ids[7], "-k", "5", "--json"]
    a = CliRunner().invoke(app, ["recommend", str(tmp_path / "lib.npz"), *args])
    b = CliRunner().invoke(app, ["recommend", f"{tmp_path / 'shards'}/", *args])
    assert a.exit_code == 0 and b.exit_code == 0, (a.stderr, b.stderr)
    ra, rb = [json.loads(x) for x in a.stdout.splitlines()], [json.loads(x) for x in b.stdout.splitlines()]
    for p, q in zip(ra, rb, strict=True):
        assert [n["id"] for n in p["neighbors"]] == [n["id"] for n in q["neighbors"]]
        np.testing.assert_allclose([n["score"] for n in p["neighbors"]], [n["score"] for n in q["neighbors"]], atol=2e-5)
    same = np.mean([n["label"] == lib.labels[lib.ids.index(r["query"])] for r in ra for n in r["neighbors"]])
    assert same >= 0.6, same


def test_a_query_vector_goes_through_the_same_space() -> None:
    from specmusic.embeddings.search.space import query_space

    rows, _, _ = _tracks(300, seed=4)
    space = library_space(l2_normalize(rows), GROUPS)
    q = query_space(rows[5] * 7.0, rows.shape[1], None, None, space)  # an unnormalised row: same point
    np.testing.assert_allclose(q, space.apply(l2_normalize(rows))[5], rtol=1e-4, atol=1e-5)
    with pytest.raises(Exception, match="gives 10-d vectors but the library holds"):
        query_space(np.ones(10), rows.shape[1], None, None, space)
    assert isinstance(space, Space)


def test_embed_one_network_packed_then_recommend_an_audio_query(tmp_path: Path, genre_tree: Path) -> None:
    """One bundled network packed (the default until benchmarks/similarity_generalise.py) end to end, offline:
    packed rows in the library, an audio query embedded the same way."""
    lib = tmp_path / "lib.npz"
    packed = ["-m", "pons-msd-musicnn", "--adapt"]
    r = CliRunner().invoke(app, ["embed", str(genre_tree), *packed, "-o", str(lib), "--no-progress"])
    assert r.exit_code == 0, r.stderr
    library = read_library(lib)
    assert library.model.to_dict()["adapt"] == {"groups": GROUPS} and library.vectors.shape[1] == GROUPS * 200
    import shutil

    source = next(p for p in sorted(genre_tree.rglob("*.wav")))
    query = tmp_path / "elsewhere" / source.name  # not in the library: embedded with the library's recipe
    query.parent.mkdir()
    shutil.copy(source, query)
    out = CliRunner().invoke(app, ["recommend", str(lib), "-q", str(query), "-k", "3", "--json"])
    assert out.exit_code == 0, out.stderr
    assert "note: 12 tracks are too few to learn a similarity space from (it needs 32)" in out.stderr
    found = json.loads(out.stdout.splitlines()[0])["neighbors"]
    assert len(found) == 3 and found[0]["id"] == str(source) and found[0]["score"] > 0.999  # the same audio
    again = CliRunner().invoke(app, ["embed", str(genre_tree), *packed, "-o", str(lib), "--no-progress"])
    assert again.exit_code == 0 and "0 embedded" in again.stderr, again.stderr  # incremental: same recipe
    plain_args = ["-m", "pons-msd-musicnn", "--no-adapt"]
    refused = CliRunner().invoke(app, ["embed", str(genre_tree / "low"), *plain_args, "-o", str(lib), "--no-progress"])
    assert refused.exit_code == 1 and "was made by another model (pons-msd-musicnn --adapt) — pass -m pons-msd-musicnn --adapt" in refused.stderr
    plain = CliRunner().invoke(app, ["embed", str(genre_tree), *plain_args, "-o", str(lib), "--no-progress"])
    assert plain.exit_code == 0 and "12 embedded" in plain.stderr, plain.stderr  # every track an input: all again
    assert "adapt" not in read_library(lib).model.to_dict() and read_library(lib).vectors.shape[1] == 200


def test_a_folder_caches_its_space_and_bad_rows_are_one_line(tmp_path: Path, monkeypatch) -> None:
    from specmusic.errors import InputError

    rows, labels, _ = _tracks(300, seed=5)
    lib = _library(rows, labels)
    writer = ShardedLibraryWriter.open(tmp_path / "shards", lib.model, shard_size=64)
    for i in range(len(lib)):
        writer.add(lib.record(i), lib.vectors[i])
    writer.finish()
    first = shard_space(tmp_path / "shards", GROUPS)
    assert (tmp_path / "shards" / "space.npz").is_file()
    from specmusic.embeddings.store import shard_stats

    def no_vectors(*args, **kwargs):
        raise AssertionError("read the parts' vectors")

    monkeypatch.setattr(shard_stats, "iter_live_parts", no_vectors)  # the cached space: no part's vectors are read
    again = shard_space(tmp_path / "shards", GROUPS)
    np.testing.assert_array_equal(first.matrix, again.matrix)
    assert not shard_space(tmp_path / "shards", GROUPS, learn=False).adapted  # --no-standardize: nothing to read
    monkeypatch.undo()
    bad = l2_normalize(rows).copy()
    bad[3, 5] = np.nan
    with pytest.raises(InputError, match="1 vector\\(s\\) with NaN"):
        library_space(bad, GROUPS)
    few = _library(rows[:40], labels[:40])
    few.vectors[2, 0] = np.nan
    with pytest.raises(InputError, match="NaN or infinite values \\(first: /music/"):
        search_vectors(few)


def test_recommend_with_the_model_named_packs_the_query_like_the_library(tmp_path: Path, genre_tree: Path) -> None:
    import shutil

    lib = tmp_path / "lib.npz"  # one network packed: a library of the default until similarity_generalise
    assert CliRunner().invoke(app, ["embed", str(genre_tree), "-m", "pons-msd-musicnn", "--adapt", "-o", str(lib),
                                    "--no-progress"]).exit_code == 0  # fmt: skip
    source = sorted(genre_tree.rglob("*.wav"))[0]
    query = tmp_path / "elsewhere" / source.name  # not in the library: embedded with --model
    query.parent.mkdir()
    shutil.copy(source, query)
    out = CliRunner().invoke(app, ["recommend", str(lib), "-q", str(query), "-m", "pons-msd-musicnn", "-k", "2", "--json"])
    assert out.exit_code == 0, out.stderr
    top = json.loads(out.stdout.splitlines()[0])["neighbors"][0]
    assert top["id"] == str(source) and top["score"] > 0.999
    for other in ("mtat-musicnn", "jamendo-fcn+mtat-musicnn", "mfcc"):  # another network: refused, one line
        bad = CliRunner().invoke(app, ["recommend", str(lib), "-q", str(query), "-m", other])
        assert bad.exit_code == 1 and "is not the model that made the library (pons-msd-musicnn" in bad.stderr, bad.stderr
        assert len([line for line in bad.stderr.splitlines() if line.startswith("Error:")]) == 1


def test_adding_tracks_with_another_model_is_refused_not_dropped(tmp_path: Path, genre_tree: Path, default_networks) -> None:
    """A library of the previous default, then `embed NEW -o LIB` with today's: its tracks must not vanish."""
    lib = tmp_path / "lib.npz"
    low = genre_tree / "low"
    assert CliRunner().invoke(app, ["embed", str(low), "-m", "mfcc", "-o", str(lib), "--no-progress"]).exit_code == 0
    res = CliRunner().invoke(app, ["embed", str(genre_tree / "mid"), "-o", str(lib), "--no-progress"])
    assert res.exit_code == 1 and "was made by another model (mfcc) — pass -m mfcc" in res.stderr, res.stderr
    assert len(read_library(lib)) == 4  # untouched
    ok = CliRunner().invoke(app, ["embed", str(genre_tree / "mid"), "-m", "mfcc", "-o", str(lib), "--no-progress"])
    assert ok.exit_code == 0 and len(read_library(lib)) == 8
    one = tmp_path / "one.npz"  # a library of one track: the identical audio scores 1, not 0
    assert CliRunner().invoke(app, ["embed", str(low / "low.00000.wav"), "-o", str(one), "--no-progress"]).exit_code == 0
    solo = library_space(read_library(one).vectors, GROUPS)
    assert not solo.adapted and np.allclose(solo.apply(read_library(one).vectors), unpack(read_library(one).vectors, GROUPS)[0])
