"""Sharded libraries (``library/`` of parts + index.json): writing, resuming, reading, recommending, FAISS."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from specmusic.cli.app import app
from specmusic.embeddings import ModelDescription, read_library, save_library
from specmusic.embeddings.store.library import EmbeddingLibrary, track_record
from specmusic.embeddings.store.shard_catalog import INDEX_NAME, is_sharded, iter_shards, read_sharded
from specmusic.embeddings.store.shard_stats import shard_statistics
from specmusic.embeddings.store.shard_writer import ShardedLibraryWriter, compact
from specmusic.errors import InputError
from specmusic.index import l2_normalize, standardize_columns

MODEL = ModelDescription.from_dict({"kind": "mfcc", "feature_config": {"n_mfcc": 20}, "duration": None, "standardize": True})
OTHER = ModelDescription.from_dict({"kind": "mfcc", "feature_config": {"n_mfcc": 13}, "duration": None, "standardize": True})


def _vectors(n: int, dim: int = 24, seed: int = 0, clusters: int = 20) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)) * 2
    x = centres[rng.integers(0, clusters, n)] + 0.5 * rng.normal(size=(n, dim)) + 1.0  # offset: z-scoring matters
    return l2_normalize(x)


def _record(i: int, *, label: str | None = None, size: int | None = None) -> dict:
    tags = {"rock": 0.5, "pop": 0.25} if i % 3 == 0 else None
    warnings = ["t.wav: mis-scaled — check"] if i % 11 == 0 else []
    return track_record(f"/music/g{i % 4}/t{i:04d}.wav", label or f"g{i % 4}", None, size if size is not None else 1000 + i,
                        1.5e9 + i, tags, warnings)  # fmt: skip


def _write(folder: Path, vectors: np.ndarray, *, shard_size: int = 16, finish: bool = True, **kw) -> ShardedLibraryWriter:
    w = ShardedLibraryWriter.open(folder, MODEL, shard_size=shard_size, **kw)
    for i, v in enumerate(vectors):
        w.add(_record(i), v)
    if finish:
        w.finish()
    return w


def test_interrupted_writer_keeps_finished_parts_and_catalog(tmp_path):
    lib = tmp_path / "library"
    x = _vectors(40)
    w = ShardedLibraryWriter.open(lib, MODEL, shard_size=16)
    for i in range(37):
        w.add(_record(i), x[i])
    assert sorted(p.name for p in lib.glob("part-*.npz")) == ["part-00000.npz", "part-00001.npz"]
    # killed here: the 5 buffered tracks are lost, the 32 in parts are kept (a clean close would keep all)
    w._buffer.clear()
    w.close()
    notes: list[str] = []
    w = ShardedLibraryWriter.open(lib, MODEL, shard_size=16, on_note=notes.append)
    assert w.catalog.ids == [_record(i)["id"] for i in range(32)] and w.kept == 32
    assert w.catalog.rows[_record(5)["id"]] == 5
    assert w.catalog.unchanged(_record(5)["id"], 1005, 1.5e9 + 5) and not w.catalog.unchanged(_record(5)["id"], 1, 1.5e9 + 5)
    assert not w.catalog.unchanged(_record(35)["id"], 1035, 1.5e9 + 35)  # was buffered when killed: embedded again
    assert list(w.catalog.source_size[:3]) == [1000, 1001, 1002] and w.catalog.source_mtime[2] == 1.5e9 + 2
    assert any("holds 32 track(s) in 2 part(s)" in n for n in notes)
    for i in range(32, 40):
        w.add(_record(i), x[i])
    w.close()  # Ctrl-C path: the buffer is written
    assert len(read_sharded(lib)) == 40 and [len(p) for p in iter_shards(lib)] == [16, 16, 8]


def test_part_written_without_its_index_entry_is_adopted(tmp_path):
    lib = tmp_path / "library"
    _write(lib, _vectors(32))
    index = json.loads((lib / INDEX_NAME).read_text())
    index["parts"] = index["parts"][:1]  # died between writing part 1 and the index
    (lib / INDEX_NAME).write_text(json.dumps(index))
    (lib / ".part-00002.npz.abc.tmp").write_bytes(b"half")  # and a torn temporary file
    notes: list[str] = []
    w = ShardedLibraryWriter.open(lib, MODEL, on_note=notes.append)
    w.close()
    assert len(read_sharded(lib)) == 32 and any("part-00001.npz (16 tracks)" in n for n in notes)
    assert not list(lib.glob(".part-*"))


def test_newest_row_wins_remove_and_reembed(tmp_path):
    lib = tmp_path / "library"
    x = _vectors(20)
    w = _write(lib, x[:16], finish=False)
    w.add(_record(3, label="changed", size=7), x[19])  # a changed file re-embedded
    w.remove([_record(4)["id"], _record(5)["id"]])  # --prune
    w.finish()
    whole = read_sharded(lib)
    assert len(whole) == 14 and _record(4)["id"] not in whole.ids
    j = whole.ids.index(_record(3)["id"])
    assert whole.labels[j] == "changed" and whole.source_size[j] == 7 and np.allclose(whole.vectors[j], x[19])
    w = ShardedLibraryWriter.open(lib, MODEL)
    assert w.kept == 14
    w.add(_record(4), x[4])  # removed, then embedded again: alive
    w.finish()
    again = read_sharded(lib)
    assert _record(4)["id"] in again.ids and len(again) == 15
    old_part = (lib / "part-00000.npz").read_bytes()
    assert compact(lib, shard_size=8) == 2 and read_sharded(lib).ids == again.ids
    (lib / "part-00000.npz").write_bytes(old_part)  # compaction interrupted before deleting the old parts
    ShardedLibraryWriter.open(lib, MODEL).close()
    assert read_sharded(lib).ids == again.ids and not (lib / "part-00000.npz").exists()


def test_one_writer_at_a_time_and_another_model_is_refused_unless_fresh(tmp_path):
    lib = tmp_path / "library"
    w = _write(lib, _vectors(8), finish=False)
    with pytest.raises(InputError, match="another `specmusic` process is writing .*library"):
        ShardedLibraryWriter.open(lib, MODEL)
    w.finish()
    parts = sorted(lib.glob("part-*"))
    with pytest.raises(InputError, match="made by another model .* give --force"):  # a typo must not wipe it
        ShardedLibraryWriter.open(lib, OTHER)
    assert sorted(lib.glob("part-*")) == parts and len(read_sharded(lib)) == 8
    w = ShardedLibraryWriter.open(lib, OTHER, fresh=True)
    assert w.kept == 0 and not list(lib.glob("part-*"))
    w.finish()
    assert read_sharded(lib).model.feature_config == {"n_mfcc": 13}


def test_read_library_on_a_folder_equals_the_single_file(tmp_path):
    x = _vectors(50)
    lib = tmp_path / "library"
    _write(lib, x)
    recs = [_record(i) for i in range(50)]
    single = EmbeddingLibrary(
        x, [r["id"] for r in recs], [r["label"] for r in recs], [None] * 50, MODEL.with_dim(24),
        np.array([r["source_size"] for r in recs]), np.array([r["source_mtime"] for r in recs]),
        [r.get("tags") for r in recs], [r["warnings"] for r in recs],
    )  # fmt: skip
    save_library(single, tmp_path / "lib.npz")
    a, b = read_library(tmp_path / "lib.npz"), read_library(f"{lib}/")
    assert is_sharded(lib) and is_sharded(f"{tmp_path}/new/") and not is_sharded(tmp_path / "lib.npz")
    assert a.ids == b.ids and a.labels == b.labels and a.tags == b.tags and a.warnings == b.warnings
    assert np.array_equal(a.vectors, b.vectors) and np.array_equal(a.source_mtime, b.source_mtime)
    assert a.model == b.model
    n, mean, scale = shard_statistics(lib)  # streamed over 4 parts = the whole matrix's
    _, mean1, scale1 = standardize_columns(x)
    assert n == 50 and np.allclose(mean, mean1, atol=1e-12) and np.allclose(scale, scale1, atol=1e-12)
    assert (lib / "stats.npz").is_file()


def _run(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def twin(tmp_path) -> tuple[Path, Path]:
    """The same 300-track library as one .npz and as a folder of 19 parts."""
    x = _vectors(300, seed=1)
    lib = tmp_path / "library"
    _write(lib, x)
    save_library(read_sharded(lib), tmp_path / "lib.npz")
    return tmp_path / "lib.npz", lib


def test_recommend_on_a_folder_equals_recommend_on_the_npz(twin, one_faiss_thread):
    npz, lib = twin
    args = ["-q", "g1/t0001.wav", "-q", "/music/g2/t0102.wav", "-k", "7", "--json", "--explain"]
    a = _run("recommend", str(npz), *args, "--group-key", "label")
    b = _run("recommend", f"{lib}/", *args, "--group-key", "label")
    assert a.exit_code == 0 and b.exit_code == 0, (a.stderr, b.stderr)
    ra, rb = [json.loads(line) for line in a.stdout.splitlines()], [json.loads(line) for line in b.stdout.splitlines()]
    for x, y in zip(ra, rb, strict=True):
        assert [n["id"] for n in x["neighbors"]] == [n["id"] for n in y["neighbors"]]
        assert np.allclose([n["score"] for n in x["neighbors"]], [n["score"] for n in y["neighbors"]], atol=2e-6)
        assert [n.get("explain") for n in x["neighbors"]] == [n.get("explain") for n in y["neighbors"]]
        assert all("/g1/" not in n["id"] for n in ra[0]["neighbors"])
    plain = _run("recommend", str(lib), "-q", "t0004.wav", "-k", "3")
    assert plain.exit_code == 0 and plain.stdout.startswith("# t0004.wav\n1\t"), plain.stderr
    if one_faiss_thread:  # 7 lists, all probed: the IVF index finds what exact search finds
        c = _run("recommend", str(lib), *args, "--group-key", "label", "--index", "ivf")
        assert c.exit_code == 0 and "built the ivf index of 300 tracks" in c.stderr, c.stderr
        rc = [json.loads(line) for line in c.stdout.splitlines()]
        assert [[n["id"] for n in x["neighbors"]] for x in rc] == [[n["id"] for n in x["neighbors"]] for x in rb]
        d = _run("recommend", str(lib), "-q", "t0004.wav", "-k", "5", "--index", "ivfpq")  # through the CLI
        assert d.exit_code == 0 and "built the ivfpq index of 300 tracks" in d.stderr, d.stderr
        assert d.stdout.startswith("# t0004.wav\n1\t")
    pq = _run("recommend", str(npz), "-q", "t0004.wav", "--index", "ivfpq")
    assert pq.exit_code == 1 and "--index ivfpq is for a sharded library" in pq.stderr


def _recall(found: list[dict], exact: list[dict]) -> float:
    return float(np.mean([len({n["id"] for n in f["neighbors"]} & {n["id"] for n in e["neighbors"]}) / len(e["neighbors"])
                          for f, e in zip(found, exact)]))  # fmt: skip


@pytest.fixture
def one_faiss_thread():
    """FAISS on one thread: on a busy 2-core machine its OpenMP threads spin (PQ training 8x slower)."""
    if importlib.util.find_spec("faiss") is None:
        yield False
        return
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield True
    faiss.omp_set_num_threads(before)


def test_faiss_ivf_and_ivfpq_from_shards_recall_and_staleness(tmp_path, one_faiss_thread):
    if not one_faiss_thread:
        pytest.skip("faiss-cpu is not installed (the optional [ann] extra)")
    from specmusic.embeddings.search.sharded import ShardedRecommender

    x = _vectors(3000, dim=32, seed=2, clusters=60)
    lib = tmp_path / "library"
    _write(lib, x, shard_size=256)
    queries = [_record(i)["id"] for i in range(0, 3000, 60)]
    exact = ShardedRecommender(lib, ann="exact").recommend(queries, k=10)
    notes: list[str] = []
    ivf = ShardedRecommender(lib, ann="ivf", on_note=notes.append)
    assert ivf.ann is not None and ivf.ann.kind == "ivf" and any("built the ivf index" in n for n in notes)
    assert _recall(ivf.recommend(queries, k=10), exact) >= 0.95  # measured 1.00
    pq = ShardedRecommender(lib, ann="ivfpq", on_note=notes.append)
    assert pq.ann is not None and pq.ann.record["pq_m"] == 4
    assert _recall(pq.recommend(queries, k=10), exact) >= 0.9  # measured 1.00 (4 bytes/vector, re-scored ×16; 0.28 raw)
    assert ShardedRecommender(lib).ann is not None  # auto: the current index
    w = ShardedLibraryWriter.open(lib, MODEL)
    w.add(_record(5000), x[0])
    w.finish()
    notes.clear()
    assert ShardedRecommender(lib, on_note=notes.append).ann is None  # stale: exact, with a note
    assert any("changed since it was built" in n for n in notes)


def test_damaged_part_is_named_in_one_line(twin):
    _, lib = twin
    part = lib / "part-00003.npz"
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    r = _run("recommend", str(lib), "-q", "t0001.wav")
    assert r.exit_code == 1 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "part-00003.npz: " in lines[0] and "damaged" in lines[0] and " — " in lines[0], r.stderr
    shutil.rmtree(lib)
    r = _run("recommend", f"{lib}/", "-q", "t0001.wav")
    assert r.exit_code == 1 and "no sharded library here" in r.stderr


def test_embed_into_a_folder_then_recommend_and_map_as_from_the_npz(tmp_path, genre_tree):
    npz, lib = tmp_path / "lib.npz", f"{tmp_path / 'lib'}/"
    assert _run("embed", str(genre_tree), "--model", "mfcc", "-o", str(npz)).exit_code == 0
    r = _run("embed", str(genre_tree), "--model", "mfcc", "-o", lib, "--map", str(tmp_path / "map.png"))
    assert r.exit_code == 0 and (tmp_path / "map.json").is_file(), r.stderr
    a = _run("recommend", str(npz), "-q", "mid/mid.00001.wav", "-k", "5", "--json")
    b = _run("recommend", lib, "-q", "mid/mid.00001.wav", "-k", "5", "--json")
    assert a.exit_code == 0 and b.exit_code == 0, b.stderr
    na, nb = json.loads(a.stdout)["neighbors"], json.loads(b.stdout)["neighbors"]
    assert [n["id"] for n in na] == [n["id"] for n in nb] and np.allclose([n["score"] for n in na], [n["score"] for n in nb], atol=2e-6)
    query = tmp_path / "elsewhere.wav"  # an audio query not in the library: embedded with the library's recipe
    shutil.copy(genre_tree / "mid" / "mid.00001.wav", query)
    a = _run("recommend", str(npz), "-q", str(query), "-k", "5", "--json")
    b = _run("recommend", lib, "-q", str(query), "-k", "5", "--json")
    assert a.exit_code == 0 and b.exit_code == 0, b.stderr
    na, nb = json.loads(a.stdout)["neighbors"], json.loads(b.stdout)["neighbors"]
    assert na[0]["id"].endswith("mid/mid.00001.wav") and na[0]["score"] > 0.999
    assert [n["id"] for n in na] == [n["id"] for n in nb] and np.allclose([n["score"] for n in na], [n["score"] for n in nb], atol=2e-6)


def test_an_unchanged_file_with_a_new_label_is_relabelled_not_reembedded(tmp_path, genre_tree):
    lib = f"{tmp_path / 'lib'}/"
    first = _run("embed", str(genre_tree), "--model", "mfcc", "-o", lib, "--no-labels")
    assert first.exit_code == 0, first.stderr
    before = read_sharded(tmp_path / "lib")
    assert set(before.labels) == {None}
    again = _run("embed", str(genre_tree), "--model", "mfcc", "-o", lib)  # labels from the folder names now
    assert again.exit_code == 0 and f"0 embedded, {len(before)} unchanged" in again.stderr, again.stderr
    after = read_sharded(tmp_path / "lib")
    assert sorted(after.ids) == sorted(before.ids) and None not in after.labels
    assert all(Path(i).parent.name == lab for i, lab in zip(after.ids, after.labels))
    old = {i: v for i, v in zip(before.ids, before.vectors)}
    assert all(np.array_equal(old[i], v) for i, v in zip(after.ids, after.vectors))  # the same vectors, moved


def test_an_index_build_while_embed_writes_the_folder_searches_exactly(twin, one_faiss_thread):
    _, lib = twin
    writer = ShardedLibraryWriter.open(lib, read_sharded(lib).model)  # an embed holding the folder
    try:
        r = _run("recommend", str(lib), "-q", "t0004.wav", "-k", "3", "--index", "ivf")
    finally:
        writer.close()
    assert r.exit_code == 0 and "is being written — searching exactly" in r.stderr, r.stderr
    assert r.stdout.startswith("# t0004.wav\n1\t") and not (lib / "index.faiss").exists()


def test_both_recommenders_are_one_protocol_and_give_the_same_records(twin):
    """The in-memory and the sharded recommender satisfy one Protocol and build their records alike."""
    from specmusic.embeddings import InMemoryRecommender, Recommender, ShardedRecommender

    npz, lib = twin
    memory, sharded = InMemoryRecommender.from_library(read_library(npz)), ShardedRecommender(lib, ann="exact")
    assert isinstance(memory, Recommender) and isinstance(sharded, Recommender)
    assert memory.model == sharded.model and memory.has_tags and sharded.has_tags
    queries = [_record(1)["id"], "g2/t0102.wav", "no/such/track.wav"]
    for options in ({}, {"group_key": "label", "explain": True}, {"group_key": "dir", "k": 4}):
        errors: tuple[list[str], list[str]] = ([], [])
        a = memory.recommend(queries, on_error=errors[0].append, **options)
        b = sharded.recommend(queries, on_error=errors[1].append, **options)
        assert errors[0] == errors[1] and len(errors[0]) == 1 and len(a) == 2
        for x, y in zip(a, b, strict=True):
            assert {**x, "neighbors": None} == {**y, "neighbors": None}
            assert [{**n, "score": None} for n in x["neighbors"]] == [{**n, "score": None} for n in y["neighbors"]]
            np.testing.assert_allclose([n["score"] for n in x["neighbors"]], [n["score"] for n in y["neighbors"]], atol=2e-6)
