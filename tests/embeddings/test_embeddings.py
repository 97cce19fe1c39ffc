"""Embedding libraries: formats, MFCC statistics, ONNX embeddings, incremental embedding, clusters."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from specmusic.cluster import cluster_embeddings, cluster_map_figure, cluster_record, format_clusters, save_cluster_map
from specmusic.data import Track, discover_tracks
from specmusic.embeddings import (
    EmbeddingLibrary,
    MfccEmbedder,
    ModelDescription,
    OnnxEmbedder,
    embed_tracks,
    embedder_from_description,
    make_embedder,
    mfcc_statistics,
    read_library,
    read_tabular,
    top_tags,
    save_library,
    search_vectors,
    write_library_jsonl,
)
from specmusic.errors import InputError, ModelError
from specmusic.features import FeatureConfig
from tests.conftest import tone, write

TINY_CONFIG = FeatureConfig(kind="mel", n_mels=16, n_fft=512, hop_length=256)


def make_tiny_onnx(path: Path, *, n_mels: int = 16, dim: int | None = None, seed: int = 0) -> Path:
    """A contract-following ONNX model (no torch): embedding = W · (mean over time of the mel rows)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    dim = dim or n_mels
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n_mels, dim)).astype(np.float32) if dim != n_mels else np.eye(n_mels, dtype=np.float32)
    head = rng.standard_normal((dim, 2)).astype(np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["spec"], ["pooled"], axes=[1, 3], keepdims=0),
        helper.make_node("MatMul", ["pooled", "W"], ["embedding"]),
        helper.make_node("MatMul", ["embedding", "H"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("spec", TensorProto.FLOAT, ["batch", 1, n_mels, 16])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2]),
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", dim]),
        ],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(head, "H")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    meta = {
        "format_version": 1,
        "task": "multiclass",
        "labels": ["a", "b"],
        "feature_config": FeatureConfig(kind="mel", n_mels=n_mels, n_fft=512, hop_length=256).to_dict(),
        "chunk_frames": 16,
        "chunk_hop_frames": 16,
        "input_norm": {"mean": -40.0, "std": 20.0},
        "arch": "tiny",
        "specmusic_version": "test",
    }
    helper.set_model_props(model, {"specmusic": json.dumps(meta)})
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _lib(n: int = 4, d: int = 3, seed: int = 0) -> EmbeddingLibrary:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, d)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return EmbeddingLibrary(
        v,
        [f"/music/{i}.wav" for i in range(n)],
        ["rock" if i % 2 else None for i in range(n)],
        [None, "album", "album", None][:n] + [None] * max(0, n - 4),
        ModelDescription.from_dict({"kind": "mfcc", "dim": d}),
    )


def test_npz_round_trip_without_pickle(tmp_path):
    lib = _lib()
    save_library(lib, tmp_path / "lib.npz")
    with np.load(tmp_path / "lib.npz", allow_pickle=False) as z:  # every array loads without pickle
        assert z["vectors"].dtype == np.float32 and z["ids"].dtype.kind == "U"
        assert int(z["format_version"]) == 1
        assert json.loads(str(z["model"]))["kind"] == "mfcc"
    back = read_library(tmp_path / "lib.npz")
    np.testing.assert_array_equal(back.vectors, lib.vectors)
    assert back.ids == lib.ids and back.labels == lib.labels and back.groups == lib.groups
    assert back.model == lib.model


def test_jsonl_round_trip_and_header():
    lib = _lib()
    buf = io.StringIO()
    write_library_jsonl(lib, buf)
    lines = buf.getvalue().splitlines()
    assert json.loads(lines[0])["model"]["kind"] == "mfcc"
    first = json.loads(lines[1])
    assert set(first) >= {"id", "vector", "label", "group"} and len(first["vector"]) == 3
    back = read_library("-", stdin=io.StringIO(buf.getvalue()))
    np.testing.assert_allclose(back.vectors, lib.vectors, atol=1e-6)
    assert back.ids == lib.ids and back.labels == lib.labels and back.model == lib.model
    headerless = read_library("-", stdin=io.StringIO("\n".join(lines[1:])))
    assert headerless.model.to_dict() == {} and len(headerless) == 4


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("not json\n", "not JSON"),
        ('{"id": "a"}\n', "no \"vector\""),
        ('{"id": "a", "vector": [1, 2]}\n{"id": "b", "vector": [1, 2, 3]}\n', "3 dimensions"),
        ('{"id": "a", "vector": ["x"]}\n', "not a number"),
    ],
)
def test_bad_jsonl_is_one_clear_error(text, match):
    with pytest.raises(InputError, match=match):
        read_library("-", stdin=io.StringIO(text))


def test_missing_and_unknown_library_files(tmp_path):
    with pytest.raises(InputError, match="no such library"):
        read_library(tmp_path / "nope.npz")
    (tmp_path / "x.npz").write_bytes(b"garbage")
    with pytest.raises(InputError, match="cannot read"):
        read_library(tmp_path / "x.npz")


def test_mfcc_statistics_separate_pitches(genre_tree):
    tracks, _ = discover_tracks([genre_tree])
    lib, report = embed_tracks(tracks, MfccEmbedder())
    assert len(report.embedded) == 12 and lib.dim == 40
    np.testing.assert_allclose(np.linalg.norm(lib.vectors, axis=1), 1, rtol=1e-5)
    assert mfcc_statistics(np.ones((20, 5))).shape == (40,)
    x = search_vectors(lib)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    nearest = sims.argmax(axis=1)
    agree = np.mean([lib.labels[i] == lib.labels[j] for i, j in enumerate(nearest)])
    assert agree >= 0.9


def test_incremental_embedding_only_embeds_new_and_changed(tmp_path, genre_tree):
    class Counting(MfccEmbedder):
        calls = 0

        def embed_file_tagged(self, path, *, warnings=None):
            Counting.calls += 1
            return super().embed_file_tagged(path, warnings=warnings)

    tracks, _ = discover_tracks([genre_tree])
    lib, _ = embed_tracks(tracks[:5], Counting())
    assert Counting.calls == 5
    Counting.calls = 0
    lib2, report = embed_tracks(tracks[:6], Counting(), existing=lib)
    assert Counting.calls == 1 and len(report.reused) == 5 and len(lib2) == 6
    st = os.stat(tracks[0].path)
    os.utime(tracks[0].path, (st.st_atime, st.st_mtime + 10))
    Counting.calls = 0
    lib3, report = embed_tracks(tracks[:6], Counting(), existing=lib2)
    assert Counting.calls == 1 and report.embedded == [tracks[0].path]
    # entries not among the inputs are kept unless pruned
    lib4, _ = embed_tracks(tracks[:2], Counting(), existing=lib3)
    assert len(lib4) == 6
    lib5, _ = embed_tracks(tracks[:2], Counting(), existing=lib3, keep_others=False)
    assert len(lib5) == 2


def test_failures_are_reported_and_the_rest_embedded(tmp_path, not_audio, chirp_mono):
    notes: list[str] = []
    lib, report = embed_tracks(
        [Track(str(not_audio), "notes.wav"), Track(str(chirp_mono), "chirp_mono.wav")], MfccEmbedder(), on_error=notes.append
    )
    assert len(lib) == 1 and len(report.failed) == 1 and not report.ok
    assert notes and "\n" not in notes[0]


def test_onnx_embedder_and_query_reconstruction(tmp_path):
    model = make_tiny_onnx(tmp_path / "m" / "model.onnx")
    a = write(tmp_path / "a.wav", tone(220.0, 1.0))
    emb = make_embedder(str(model))
    assert isinstance(emb, OnnxEmbedder)
    lib, _ = embed_tracks([Track(str(a), "a.wav")], emb)
    assert lib.dim == 16 and lib.model.sha256 and lib.model.kind == "onnx"
    again = embedder_from_description(lib.model)
    np.testing.assert_allclose(
        again.embed_file(str(a)) / np.linalg.norm(again.embed_file(str(a))), lib.vectors[0], rtol=1e-5
    )
    probs, _ = embed_tracks([Track(str(a), "a.wav")], make_embedder(str(model), layer="probabilities"))
    assert probs.dim == 2 and probs.model.layer == "probabilities"
    assert not probs.model.same_as(lib.model)  # another layer of the same file: embedded again
    make_tiny_onnx(model, seed=3, dim=8)  # the model file changes
    with pytest.raises(ModelError, match="changed"):
        embedder_from_description(lib.model)
    with pytest.raises(ModelError, match="does not record"):
        embedder_from_description(ModelDescription())
    with pytest.raises(ModelError):
        make_embedder(str(tmp_path / "missing.onnx"))


def test_read_tabular_errors(tmp_path):
    p = tmp_path / "f.csv"
    p.write_text("id,energy,tempo,name\n1,0.5,120,a\n2,,90,b\n")
    with pytest.raises(InputError, match="row 3 column 'energy'"):
        read_tabular(p, id_column="id", columns=["energy", "tempo"])
    with pytest.raises(InputError, match="no column"):
        read_tabular(p, id_column="id", columns=["loudness"])
    p.write_text("id,energy,tempo\n1,0.5,nan\n")
    with pytest.raises(InputError, match="NaN"):
        read_tabular(p, id_column="id", columns=["energy", "tempo"])
    p.write_text("id,energy,tempo,name\n1,0.5,120,a\n2,0.4,90,b\n")
    table = read_tabular(p, id_column="id")
    assert table.columns == ["energy", "tempo"] and table.ids == ["1", "2"] and table.non_numeric == ["name"]


def test_cluster_map_metrics_and_png(tmp_path, genre_tree):
    tracks, _ = discover_tracks([genre_tree])
    lib, _ = embed_tracks(tracks, MfccEmbedder())
    result = cluster_embeddings(search_vectors(lib), labels=lib.labels, ids=lib.ids, seed=0)
    assert result.k == 3 and result.coords.shape == (12, 2)
    assert set(result.metrics) == {"nmi", "ari", "silhouette"}
    assert result.metrics["nmi"] > 0.8
    lines = format_clusters(result)
    assert len(lines) == 4 and lines[-1].startswith("metrics: ")
    save_cluster_map(result, tmp_path / "map.png", labels=lib.labels)
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    unlabelled = cluster_embeddings(search_vectors(lib), k=2)
    assert "nmi" not in unlabelled.metrics and unlabelled.k == 2
    with pytest.raises(InputError):
        cluster_embeddings(lib.vectors[:1])


def test_tags_round_trip_in_both_formats(tmp_path):
    lib = _lib()
    lib.tags = [{"rock": 0.8, "guitar": 0.5}, None, {"jazz": 0.9}, {"piano": 0.7, "jazz": 0.6, "slow": 0.2}]
    save_library(lib, tmp_path / "lib.npz")
    with np.load(tmp_path / "lib.npz", allow_pickle=False) as z:
        assert z["tags"].shape == (4, 3) and z["tag_scores"].dtype == np.float32
    assert read_library(tmp_path / "lib.npz").tags == lib.tags
    buf = io.StringIO()
    write_library_jsonl(lib, buf)
    assert json.loads(buf.getvalue().splitlines()[1])["tags"] == {"rock": 0.8, "guitar": 0.5}
    assert read_library("-", stdin=io.StringIO(buf.getvalue())).tags == lib.tags
    assert lib.subset([2, 0]).tags == [{"jazz": 0.9}, {"rock": 0.8, "guitar": 0.5}]
    untagged = _lib()  # MFCC libraries and those written before tags were kept: no arrays, no field
    save_library(untagged, tmp_path / "plain.npz")
    with np.load(tmp_path / "plain.npz", allow_pickle=False) as z:
        assert "tags" not in z.files
    assert read_library(tmp_path / "plain.npz").tags == [None] * 4
    with pytest.raises(InputError, match="tags"):
        read_library("-", stdin=io.StringIO('{"id": "a", "vector": [1, 2], "tags": ["rock"]}\n'))


def test_onnx_embedder_keeps_top_tags_from_one_pass(tmp_path):
    from specmusic import inference

    model = make_tiny_onnx(tmp_path / "model.onnx")
    a = write(tmp_path / "a.wav", tone(220.0, 1.0))
    emb = make_embedder(str(model))
    vec, tags = emb.embed_file_tagged(str(a))
    loaded = inference.load_model(model)
    np.testing.assert_allclose(vec, inference.embed_track(loaded, a), rtol=1e-5, atol=1e-6)
    probs = inference.predict_track(loaded, a)
    assert tags == top_tags(probs, loaded.labels) and list(tags) == sorted(tags, key=lambda t: -tags[t])
    lib, _ = embed_tracks([Track(str(a), "a.wav")], emb)
    assert lib.tags == [tags]
    assert MfccEmbedder().embed_file_tagged(str(a))[1] is None


def test_read_tabular_skips_id_like_columns(tmp_path):
    p = tmp_path / "f.csv"
    p.write_text(
        "row,track_id,trackId,energy,tempo,year\n"
        "1,907,55,0.5,120,1999\n2,13,12,0.4,90,1999\n3,450,3,0.9,128,2004\n4,21,80,0.2,70,2001\n"
    )
    table = read_tabular(p)
    assert table.columns == ["energy", "tempo", "year"]
    assert table.skipped == ["row", "track_id", "trackId"] and table.non_numeric == []
    assert read_tabular(p, columns=["row", "energy"]).columns == ["row", "energy"]  # named: used
    p.write_text("n,tempo\n1,90\n2,120\n3,128\n")  # counting up by one: row numbers; sorted tempos are not
    assert read_tabular(p).skipped == ["n"] and read_tabular(p).columns == ["tempo"]
    p.write_text("id,index\n1,0\n2,1\n")
    with pytest.raises(InputError, match="id-like: id, index"):
        read_tabular(p)


def test_cluster_map_legends_sit_outside_and_explain_the_shapes(genre_tree):
    tracks, _ = discover_tracks([genre_tree])
    lib, _ = embed_tracks(tracks, MfccEmbedder())
    result = cluster_embeddings(search_vectors(lib), labels=lib.labels, ids=lib.ids, k=4, seed=0)
    fig = cluster_map_figure(result, labels=lib.labels)
    fig.canvas.draw()
    ax = fig.axes[0]
    legends = [a for a in ax.get_children() if type(a).__name__ == "Legend"]
    assert len(legends) == 2
    box = ax.get_window_extent()
    for legend in legends:
        assert legend.get_window_extent().x0 >= box.x1  # right of the points, never over them
    colours, shapes = sorted(legends, key=lambda lg: -lg.get_window_extent().y1)
    assert "colour" in colours.get_title().get_text() and {t.get_text() for t in colours.get_texts()} == {"low", "mid", "high"}
    assert "shape" in shapes.get_title().get_text()
    assert [t.get_text() for t in shapes.get_texts()] == [f"cluster {c}" for c in range(4)]
    assert [h.get_marker() for h in shapes.legend_handles] == list("os^D")
    assert shapes.get_window_extent().y1 <= colours.get_window_extent().y0  # stacked, not overlapping
    unlabelled = cluster_map_figure(cluster_embeddings(search_vectors(lib), k=2, seed=0))
    (only,) = [a for a in unlabelled.axes[0].get_children() if type(a).__name__ == "Legend"]
    assert "cluster" in only.get_title().get_text()
    record = cluster_record(result, ids=lib.ids, labels=lib.labels)
    assert record["k"] == 4 and len(record["points"]) == 12 and set(record["points"][0]) == {"id", "label", "cluster", "x", "y"}
    json.dumps(record)  # plain JSON


def test_warnings_round_trip_in_both_formats_and_stay_optional(tmp_path):
    lib = _lib()
    lib.warnings = [[], ["/music/1.wav: digital silence"], [], ["/music/3.wav: a", "/music/3.wav: b"]]
    save_library(lib, tmp_path / "lib.npz")
    with np.load(tmp_path / "lib.npz", allow_pickle=False) as z:
        assert z["warning_rows"].tolist() == [1, 3] and int(z["format_version"]) == 1  # only flagged rows stored
    assert read_library(tmp_path / "lib.npz").warnings == lib.warnings
    buf = io.StringIO()
    write_library_jsonl(lib, buf)
    assert [json.loads(line)["warnings"] for line in buf.getvalue().splitlines()[1:]] == lib.warnings
    assert read_library("-", stdin=io.StringIO(buf.getvalue())).warnings == lib.warnings
    assert lib.subset([3, 0]).warnings == [lib.warnings[3], []]
    save_library(_lib(), tmp_path / "plain.npz")  # nothing flagged (and libraries written before): no arrays
    with np.load(tmp_path / "plain.npz", allow_pickle=False) as z:
        assert "warnings" not in z.files
    assert read_library(tmp_path / "plain.npz").warnings == [[]] * 4
    with pytest.raises(InputError, match="warnings"):
        read_library("-", stdin=io.StringIO('{"id": "a", "vector": [1, 2], "warnings": "silent"}\n'))


@pytest.mark.parametrize(("vectors", "ids"), [
    (np.ones((3, 4), np.float32), ["a", "b"]),  # more vectors than ids
    (np.ones(4, np.float32), ["a"]),  # 1-D
    (np.ones((2, 2, 2), np.float32), ["a", "b"]),
])
def test_a_library_is_one_row_per_id(tmp_path, vectors, ids):
    with pytest.raises(InputError, match="one row"):
        EmbeddingLibrary(vectors, ids, [None] * len(ids), [None] * len(ids), ModelDescription())
    np.savez(tmp_path / "bad.npz", vectors=vectors, ids=np.array(ids))
    with pytest.raises(InputError, match="bad.npz"):
        read_library(tmp_path / "bad.npz")


def test_a_library_lists_each_track_once(tmp_path):
    text = '{"id": "a", "vector": [1, 0]}\n{"id": "b", "vector": [0, 1]}\n{"id": "a", "vector": [1, 1]}\n'
    with pytest.raises(InputError, match="twice"):
        read_library("-", stdin=io.StringIO(text))


def test_embedders_flag_silent_and_short_audio(tmp_path, silence, short, chirp_mono):
    model = make_tiny_onnx(tmp_path / "model.onnx")
    for embedder in (MfccEmbedder(), make_embedder(str(model))):
        for path, flagged in ((silence, "digital silence"), (chirp_mono, None)):
            notes: list[str] = []
            embedder.embed_file_tagged(str(path), warnings=notes)
            assert [flagged in line for line in notes] == ([True] if flagged else [])
    notes = []
    make_embedder(str(model)).embed_file_tagged(str(short), warnings=notes)  # 0.1 s; the tiny model reads 0.19 s
    assert notes and "shorter than the model's" in notes[0]
    lines: list[str] = []
    lib, report = embed_tracks([Track(str(silence), "s"), Track(str(chirp_mono), "c")], MfccEmbedder(), on_error=lines.append)
    assert report.flagged == [str(silence)] and lib.warnings[0] and lib.warnings[1] == []
    assert [line.startswith("warning: ") and "silence.wav" in line for line in lines] == [True]


def test_journal_keeps_progress_and_resumes(tmp_path, genre_tree):
    from specmusic.embeddings.store.journal import EmbedJournal, journal_path

    tracks, _ = discover_tracks([genre_tree])
    embedder = MfccEmbedder()
    out = tmp_path / "lib.npz"
    journal = EmbedJournal.open(out, embedder.description)
    with pytest.raises(InputError, match="another `specmusic embed` is writing"):
        EmbedJournal.open(out, embedder.description)  # locked while a run uses it
    full, _ = embed_tracks(tracks[:3], embedder, on_embedded=journal.add)
    journal.close()  # interrupted: the journal stays
    assert journal_path(out).is_file() and journal.kept == 3
    notes: list[str] = []
    again = EmbedJournal.open(out, embedder.description, on_note=notes.append)
    assert again.resumed is not None and again.resumed.ids == full.ids and "resuming" in notes[0]
    np.testing.assert_allclose(again.resumed.vectors, full.vectors, rtol=0, atol=2e-7)
    lib, report = embed_tracks(tracks[:5], embedder, resumed=again.resumed, on_embedded=again.add)
    assert len(report.resumed) == 3 and len(report.embedded) == 2 and len(lib) == 5
    again.finish()
    assert not journal_path(out).exists()
    other = EmbedJournal.open(out, MfccEmbedder(duration=1.0).description)  # another model: starts empty
    assert other.resumed is None
    other.close()


# -- pooling over windows and concatenated models ------------------------------------------------
def test_pool_windows_mean_meanstd_max():
    from specmusic.embeddings import POOLINGS, pool_windows
    from specmusic.errors import ConfigError

    w = np.array([[1.0, -2.0, 0.0], [3.0, 2.0, 0.0]])
    np.testing.assert_allclose(pool_windows(w, "mean"), [2.0, 0.0, 0.0])
    np.testing.assert_allclose(pool_windows(w, "meanstd"), [2.0, 0.0, 0.0, 1.0, 2.0, 0.0])
    np.testing.assert_allclose(pool_windows(w, "max"), [3.0, 2.0, 0.0])
    one = pool_windows(w[:1], "meanstd")  # one window: no spread
    np.testing.assert_allclose(one, [1.0, -2.0, 0.0, 0.0, 0.0, 0.0])
    assert all(pool_windows(w, p).dtype == np.float32 for p in POOLINGS)
    with pytest.raises(ConfigError, match="unknown pooling"):
        pool_windows(w, "median")
    with pytest.raises(ConfigError, match="n_windows>0"):
        pool_windows(np.zeros((0, 3)), "mean")


def test_concat_blocks_weighs_each_block_the_same():
    from specmusic.embeddings import concat_blocks

    big, small, empty = np.array([300.0, 400.0]), np.array([0.0, 0.0, 0.1]), np.zeros(2)
    out = concat_blocks([big, small, empty])
    np.testing.assert_allclose(out, [0.6, 0.8, 0.0, 0.0, 1.0, 0.0, 0.0], atol=1e-7)
    assert out.dtype == np.float32


def _two_tiny_models(tmp_path):
    return make_tiny_onnx(tmp_path / "m1" / "model.onnx", seed=1), make_tiny_onnx(tmp_path / "m2" / "model.onnx", seed=2, dim=8)


def test_onnx_pooling_uses_the_windows_the_network_saw(tmp_path):
    from specmusic.inference import analyse_track

    model, _ = _two_tiny_models(tmp_path)
    a = write(tmp_path / "a.wav", np.concatenate([tone(220.0, 0.6), tone(880.0, 0.6, seed=1)]))
    per_window = analyse_track(OnnxEmbedder(model).model, str(a), outputs=("embedding",)).per_window["embedding"]
    assert per_window.shape[0] > 2  # several windows, which differ (two tones)
    mean = make_embedder(str(model)).embed_file(str(a))
    np.testing.assert_allclose(mean, per_window.mean(0) / np.linalg.norm(per_window.mean(0)), rtol=1e-5)
    np.testing.assert_allclose(make_embedder(str(model), pooling="max").embed_file(str(a)), per_window.max(0), rtol=1e-5)
    meanstd = make_embedder(str(model), pooling="meanstd")
    vec = meanstd.embed_file(str(a))
    assert vec.shape == (32,) and meanstd.description.pooling == "meanstd" and meanstd.description.dim == 32
    np.testing.assert_allclose(vec[16:], per_window.std(0), rtol=1e-4, atol=1e-6)
    with pytest.raises(Exception, match="--pooling applies to ONNX models"):
        make_embedder("mfcc", pooling="max")


def test_concatenated_models_blocks_description_and_queries(tmp_path):
    from specmusic.embeddings import ConcatEmbedder

    m1, m2 = _two_tiny_models(tmp_path)
    a = write(tmp_path / "a.wav", tone(220.0, 1.0))
    emb = make_embedder(f"{m1}+{m2}")
    assert isinstance(emb, ConcatEmbedder)
    vec, tags = emb.embed_file_tagged(str(a))
    assert vec.shape == (24,) and set(tags) == {"a", "b"}  # the first model's labels
    np.testing.assert_allclose(vec[:16], make_embedder(str(m1)).embed_file(str(a)), rtol=1e-5)
    b2 = make_embedder(str(m2)).embed_file(str(a))
    np.testing.assert_allclose(vec[16:], b2 / np.linalg.norm(b2), rtol=1e-5)
    d = emb.description
    assert d.kind == "concat" and d.standardize is True and d.dim == 24
    assert [m.dim for m in d.members] == [16, 8] and d.pooling == "mean"
    lib, _ = embed_tracks([Track(str(a), "a.wav")], emb)
    stored = ModelDescription.from_dict(json.loads(json.dumps(lib.model.to_dict())))  # as read back from a library file
    again = embedder_from_description(stored)
    assert isinstance(again, ConcatEmbedder) and again.description.same_as(lib.model)
    np.testing.assert_allclose(again.embed_file(str(a)), vec, rtol=1e-5)
    with pytest.raises(ModelError, match="empty part"):
        make_embedder(f"{m1}+")


def test_same_model_tells_recipes_apart(tmp_path):
    m1, m2 = _two_tiny_models(tmp_path)
    a = write(tmp_path / "a.wav", tone(220.0, 1.0))
    d = {}
    for key, model, pooling in (("1", str(m1), None), ("1max", str(m1), "max"), ("12", f"{m1}+{m2}", None),
                                ("12max", f"{m1}+{m2}", "max"), ("21", f"{m2}+{m1}", None)):  # fmt: skip
        emb = make_embedder(model, pooling=pooling)
        emb.embed_file(str(a))
        d[key] = _stored(emb.description.to_dict())
    assert d["12"].same_as(_stored(make_embedder(f"{m1}+{m2}").description.to_dict()))
    for x, y in (("1", "1max"), ("1", "12"), ("12", "12max"), ("12", "21")):
        assert not d[x].same_as(d[y]), (x, y)
    legacy = _stored({k: v for k, v in d["1"].to_dict().items() if k != "pooling"})  # a library from before --pooling: mean
    assert legacy.same_as(d["1"]) and not legacy.same_as(d["1max"])


def _stored(model: dict) -> ModelDescription:
    """A library's model as a file gives it back (through JSON)."""
    return ModelDescription.from_dict(json.loads(json.dumps(model)))


def test_concatenated_library_is_searched_z_scored_and_incremental(tmp_path, genre_tree):
    m1, m2 = _two_tiny_models(tmp_path)
    tracks, _ = discover_tracks([genre_tree])
    emb = make_embedder(f"{m1}+{m2}")
    lib, report = embed_tracks(tracks, emb)
    assert len(report.embedded) == 12 and lib.dim == 24
    x = search_vectors(lib)
    assert np.abs(x - lib.vectors).max() > 1e-3  # the library's columns were z-scored first
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    _, again = embed_tracks(tracks, make_embedder(f"{m1}+{m2}"), existing=lib)
    assert len(again.reused) == 12 and not again.embedded
    _, other = embed_tracks(tracks, make_embedder(f"{m1}+{m2}", pooling="max"), existing=lib)
    assert len(other.embedded) == 12  # another recipe: nothing reused


def test_a_one_network_default_is_packed_for_the_learnt_space(tmp_path, monkeypatch):
    """Without --model, a default of one network (pons-msd-musicnn until benchmarks/similarity_generalise.py;
    today's joined default: tests/test_adapt_joined.py): rows packed for adapt (mean + within-track contrasts)."""
    from specmusic.embeddings import embedders
    from specmusic.embeddings.search.adapt import GROUPS, unpack
    from specmusic.errors import ConfigError
    from specmusic.inference import analyse_track
    from specmusic.models.zoo import ensure, registry

    m1, m2 = _two_tiny_models(tmp_path)
    monkeypatch.setattr(embedders, "DEFAULT_EMBEDDING", ("pons-msd-musicnn",))
    DEFAULT_EMBEDDING = embedders.DEFAULT_EMBEDDING
    assert DEFAULT_EMBEDDING[0] in registry.PONS_MODELS
    monkeypatch.setattr(ensure, "ensure_model", lambda name, **kw: m1)
    emb = make_embedder(None)
    assert isinstance(emb, OnnxEmbedder) and emb.description.name == DEFAULT_EMBEDDING[0]
    assert emb.description.to_dict()["adapt"] == {"groups": GROUPS} and emb.description.standardize is True
    a = write(tmp_path / "a.wav", np.concatenate([tone(220.0, 0.6), tone(880.0, 0.6, seed=1)]))
    vec = emb.embed_file(str(a))
    per_window = analyse_track(emb.model, str(a), outputs=("embedding",), windows=emb.windows).per_window["embedding"]
    assert vec.shape == (GROUPS * 16,) and emb.description.dim == GROUPS * 16
    means, contrasts = unpack(vec, GROUPS)
    np.testing.assert_allclose(means[0], per_window.mean(0) / np.linalg.norm(per_window.mean(0)), rtol=1e-5)
    assert np.abs(contrasts).max() > 1e-4  # two tones: the windows differ within the track
    named = make_embedder(DEFAULT_EMBEDDING[0])  # the default model named: the same recipe
    assert named.description.to_dict()["adapt"] == {"groups": GROUPS}
    plain = make_embedder(DEFAULT_EMBEDDING[0], adapt=False)  # --no-adapt: its plain mean, no packing
    assert "adapt" not in plain.description.to_dict() and plain.embed_file(str(a)).shape == (16,)
    assert "adapt" not in make_embedder(None, pooling="max").description.to_dict()  # another pooling: not packed
    assert make_embedder(str(m2), adapt=True).description.to_dict()["adapt"] == {"groups": GROUPS}
    assert make_embedder(f"{m1}+{m2}", adapt=True).description.adapt_groups == GROUPS  # joined: tests/test_adapt_joined.py
    with pytest.raises(ConfigError, match="MFCC statistics have no windows"):
        make_embedder("mfcc", adapt=True)
    with pytest.raises(ConfigError, match="--no-adapt"):
        make_embedder(str(m1), adapt=True, pooling="max")


def test_same_model_tells_window_settings_apart() -> None:
    """Vectors from 6 windows a track are not reused for a run asking for every window (and back)."""
    def same_model(a: dict, b: dict) -> bool:
        return _stored(a).same_as(_stored(b))

    base = {"kind": "onnx", "sha256": "ab" * 32, "layer": "embedding", "pooling": "mean"}
    assert same_model({**base, "windows": 6}, {**base, "windows": 6})
    assert not same_model({**base, "windows": 6}, {**base, "windows": "all"})
    assert same_model(base, {**base, "windows": "all"})  # an older library analysed every window


# -- the model description, and the library functions the commands call ------------------------
OLD_ONNX = {  # an onnx library from before --windows/--pooling, with a key this version does not know
    "kind": "onnx", "path": "/models/old.onnx", "sha256": "cd" * 32, "arch": None, "feature_config": {"n_mels": 16},
    "chunk_frames": 16, "layer": "embedding", "dim": 16, "from_the_future": {"x": [1, 2]},
}  # fmt: skip


def test_model_description_round_trips_an_old_library_with_unknown_keys(tmp_path):
    model = ModelDescription.from_dict(OLD_ONNX)
    assert model.to_dict() == OLD_ONNX  # no key added ("windows", "pooling"), none lost, nulls kept
    assert model.extra == {"from_the_future": {"x": [1, 2]}} and model.windows is None and model.arch is None
    assert model.same_as(ModelDescription.from_dict({**OLD_ONNX, "windows": "all", "pooling": "mean"}))
    assert not model.same_as(ModelDescription.from_dict({**OLD_ONNX, "windows": 6}))
    assert model.label == "/models/old.onnx" and model.adapt_groups == 0 and model.recorded
    np.savez(tmp_path / "old.npz", vectors=np.eye(2, 16, dtype=np.float32), ids=np.array(["a", "b"]),
             model=np.array(json.dumps(OLD_ONNX)))  # fmt: skip
    lib = read_library(tmp_path / "old.npz")
    save_library(lib, tmp_path / "again.npz")
    with np.load(tmp_path / "again.npz", allow_pickle=False) as z:
        assert json.loads(str(z["model"])) == OLD_ONNX  # written back as it was read
    packed = ModelDescription.from_dict({"kind": "concat", "members": [OLD_ONNX, OLD_ONNX], "adapt": {"groups": 3}})
    assert packed.adapt_groups == 3 and packed.members[1].extra == model.extra  # a join may carry adapt too
    assert packed.to_dict()["members"] == [OLD_ONNX, OLD_ONNX]
    odd = {"kind": "onnx", "adapt": "yes", "members": 3}  # shapes this version does not read: kept as they are
    assert ModelDescription.from_dict(odd).to_dict() == odd and ModelDescription.from_dict(odd).adapt_groups == 0
    assert ModelDescription.from_dict(None).to_dict() == {} and not ModelDescription().recorded
    with pytest.raises(InputError, match="not a JSON object"):
        ModelDescription.from_dict([1, 2])  # type: ignore[arg-type]


def test_a_new_description_writes_the_dict_of_today(tmp_path):
    mfcc = MfccEmbedder(duration=None).description.to_dict()
    assert mfcc == {"kind": "mfcc", "name": "mfcc-stats-20", "feature_config": FeatureConfig(kind="mfcc", n_mfcc=20).to_dict(),
                    "duration": None, "dim": 40, "standardize": True}  # fmt: skip
    onnx = OnnxEmbedder(make_tiny_onnx(tmp_path / "m.onnx")).description.to_dict()
    assert set(onnx) == {"kind", "path", "sha256", "arch", "feature_config", "chunk_frames", "layer", "pooling",
                         "windows", "dim"} and onnx["dim"] is None and onnx["windows"] == 6  # fmt: skip
    assert ModelDescription.from_dict(onnx).to_dict() == onnx


def test_embed_library_and_open_recommender_without_the_command(tmp_path, genre_tree):
    """The library functions `embed` and `recommend` call, called directly (no Typer, no CliRunner)."""
    from specmusic.embeddings import Recommender, embed_library, open_recommender, read_queries, save_library_map

    tracks, _ = discover_tracks([genre_tree])
    notes: list[str] = []
    made: list[str] = []

    def embedder():
        made.append("mfcc")
        return make_embedder("mfcc")

    with pytest.raises(InputError, match="no audio files"):
        embed_library([], embedder=embedder, output=str(tmp_path / "lib.npz"))
    with pytest.raises(InputError, match="cannot go to stdout"):
        embed_library(tracks, embedder=embedder, output_format="npz")
    assert not made  # nothing loaded for a run that cannot start
    out = embed_library(tracks, embedder=embedder, output=str(tmp_path / "lib.npz"), on_note=notes.append)
    assert out.ok and len(out.report.embedded) == 12 and out.tracks == 12 and out.dim == 40
    assert out.summary() == f"embed: 12 embedded, 0 unchanged, 0 failed → 12 tracks × 40 dims in {tmp_path / 'lib.npz'}"
    stdout = io.StringIO()
    piped = embed_library(tracks[:3], embedder=make_embedder("mfcc"), stdout=stdout)
    assert piped.output is None and len(stdout.getvalue().splitlines()) == 4 and piped.summary().endswith("in stdout")
    folder = embed_library(tracks, embedder=make_embedder("mfcc"), output=f"{tmp_path / 'lib'}/", listing_failures=1)
    assert not folder.ok and folder.library is None and folder.dim is None and len(folder.load_library()) == 12
    assert "1 failed → 12 tracks in" in folder.summary()
    lines = save_library_map(out.load_library(), tmp_path / "map.png", seed=0)
    assert lines[-1].startswith("map: ") and (tmp_path / "map.json").is_file()
    with pytest.raises(InputError, match="made by another model"):
        embed_library(tracks[:2], embedder=make_embedder("mfcc", duration=1.0), output=str(tmp_path / "lib.npz"))
    queries = read_queries(["low/low.00001.wav"], None, source=str(tmp_path / "lib.npz"))
    for source in (str(tmp_path / "lib.npz"), f"{tmp_path / 'lib'}/"):
        rec = open_recommender(source, explain=True, on_note=notes.append)
        assert isinstance(rec, Recommender) and rec.model.kind == "mfcc"
        [result] = rec.recommend(queries, k=3)
        assert result["query"] == queries[0] and len(result["neighbors"]) == 3
    assert any("keeps no tags" in n for n in notes)
    with pytest.raises(InputError, match="no query"):
        read_queries([], None, source="-")


def test_the_embeddings_wing_imports_no_typer():
    import subprocess
    import sys

    code = "import sys, specmusic.embeddings\nassert 'typer' not in sys.modules, 'typer'\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
