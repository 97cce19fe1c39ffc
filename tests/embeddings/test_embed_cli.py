"""``specmusic embed`` end to end with CliRunner: libraries, pipes, incremental runs, maps, failures."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from specmusic.cli.app import app
from specmusic.embeddings import read_library
from tests.conftest import tone, write
from tests.embeddings.test_embeddings import make_tiny_onnx


def _run(*args: str, input: str | None = None):
    return CliRunner().invoke(app, list(args), input=input)


def test_embed_npz_then_incremental(tmp_path, genre_tree):
    out = tmp_path / "lib.npz"
    r = _run("embed", str(genre_tree), "--model", "mfcc", "-o", str(out))
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""  # data went to the file; the summary to stderr
    assert "12 embedded, 0 unchanged" in r.stderr
    lib = read_library(out)
    assert len(lib) == 12 and lib.dim == 40 and set(lib.labels) == {"low", "mid", "high"}
    write(genre_tree / "mid" / "new.wav", tone(470.0, 1.5, seed=99))
    r = _run("embed", str(genre_tree), "--model", "mfcc", "-o", str(out))
    assert r.exit_code == 0 and "1 embedded, 12 unchanged" in r.stderr
    assert len(read_library(out)) == 13
    r = _run("embed", str(genre_tree), "--model", "mfcc", "-o", str(out), "--force")
    assert "13 embedded, 0 unchanged" in r.stderr


def test_embed_jsonl_to_stdout(genre_tree):
    r = _run("embed", str(genre_tree / "low"), "--model", "mfcc")
    assert r.exit_code == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert lines[0]["model"]["kind"] == "mfcc"
    records = lines[1:]
    assert len(records) == 4 and all(len(rec["vector"]) == 40 for rec in records)
    assert abs(np.linalg.norm(records[0]["vector"]) - 1) < 1e-5


def test_embed_jsonl_file_is_incremental_too(tmp_path, genre_tree):
    out = tmp_path / "lib.jsonl"
    assert _run("embed", str(genre_tree / "low"), "--model", "mfcc", "-o", str(out)).exit_code == 0
    r = _run("embed", str(genre_tree / "low"), "--model", "mfcc", "-o", str(out))
    assert "0 embedded, 4 unchanged" in r.stderr


def test_embed_map_keeps_stdout_for_the_library(tmp_path, genre_tree):
    """The papercut: `embed DIR --map map.png` saved no vectors and put the cluster listing on stdout."""
    png = tmp_path / "map.png"
    r = _run("embed", str(genre_tree), "--model", "mfcc", "--map", str(png))
    assert r.exit_code == 0, r.stderr
    assert png.read_bytes()[:4] == b"\x89PNG"
    lines = [json.loads(line) for line in r.stdout.splitlines()]  # stdout: the library, nothing else
    assert lines[0]["model"]["kind"] == "mfcc" and len(lines) == 13
    err = r.stderr.splitlines()
    assert sum(line.startswith("cluster ") for line in err) == 3
    metrics = dict(kv.split("=") for kv in next(x for x in err if x.startswith("metrics: ")).removeprefix("metrics: ").split())
    assert set(metrics) == {"nmi", "ari", "silhouette"} and float(metrics["nmi"]) > 0.8
    data = json.loads((tmp_path / "map.json").read_text())  # the map's data beside the PNG
    assert data["k"] == 3 and len(data["points"]) == 12 and data["metrics"]["nmi"] > 0.8
    assert sum(c["size"] for c in data["clusters"]) == 12


def test_embed_jsonl_with_map_pipes_into_recommend(tmp_path, genre_tree):
    emb = _run("embed", str(genre_tree), "--model", "mfcc", "--format", "jsonl", "--map", str(tmp_path / "m.png"))
    assert emb.exit_code == 0, emb.stderr
    r = _run("recommend", "-", "-q", "low/low.00000.wav", "--top", "2", "--json", input=emb.stdout)
    assert r.exit_code == 0, r.stderr
    assert [n["label"] for n in json.loads(r.stdout)["neighbors"]] == ["low", "low"]
    out = tmp_path / "lib.npz"  # with -o, stdout stays empty
    r = _run("embed", str(genre_tree / "low"), "-m", "mfcc", "-o", str(out), "--map", str(tmp_path / "m2.png"))
    assert r.exit_code == 0 and r.stdout == "" and len(read_library(out)) == 4


def test_embed_with_an_onnx_model(tmp_path, genre_tree):
    model = make_tiny_onnx(tmp_path / "model.onnx")
    out = tmp_path / "lib.npz"
    r = _run("embed", str(genre_tree / "high"), "--model", str(model), "-o", str(out))
    assert r.exit_code == 0, r.stderr
    lib = read_library(out)
    assert lib.dim == 16 and lib.model.kind == "onnx" and len(lib) == 4


def test_embed_bad_inputs(tmp_path, not_audio, chirp_mono):
    r = _run("embed", str(tmp_path / "nothing-here"), "--model", "mfcc")
    assert r.exit_code == 1
    assert r.stdout == ""
    assert all(line.startswith("Error: ") for line in r.stderr.strip().splitlines())
    r = _run("embed", str(not_audio), str(chirp_mono), "--model", "mfcc", "-o", str(tmp_path / "l.npz"))
    assert r.exit_code == 1  # one track failed: reported, the other still embedded
    assert "1 embedded" in r.stderr and "notes.wav" in r.stderr
    assert len(read_library(tmp_path / "l.npz")) == 1
    r = _run("embed", str(chirp_mono), "--model", str(tmp_path / "missing.onnx"))
    assert r.exit_code == 1 and len(r.stderr.strip().splitlines()) == 1 and "Error:" in r.stderr
    r = _run("embed", str(chirp_mono), "--model", "mfcc", "--format", "npz")
    assert r.exit_code == 1 and "stdout" in r.stderr


def test_embed_keeps_no_journal_after_a_finished_run(tmp_path, genre_tree):
    out = tmp_path / "new" / "folder" / "lib.jsonl"  # created on the way
    r = _run("embed", str(genre_tree / "low"), "--model", "mfcc", "-o", str(out))
    assert r.exit_code == 0, r.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["lib.jsonl"]  # the journal is gone
    records = [json.loads(line) for line in out.read_text().splitlines()[1:]]
    assert len(records) == 4 and all(rec["warnings"] == [] for rec in records)


def test_embed_windows_reach_the_embedder_and_the_library(tmp_path, genre_tree):
    from specmusic.inference import DEFAULT_WINDOWS

    model = make_tiny_onnx(tmp_path / "model.onnx")
    for option, recorded in (([], DEFAULT_WINDOWS), (["--windows", "all"], "all"), (["--windows", "3"], 3)):
        out = tmp_path / f"lib{recorded}.npz"
        r = _run("embed", str(genre_tree / "high"), "--model", str(model), "-o", str(out), *option)
        assert r.exit_code == 0, r.stderr
        assert read_library(out).model.windows == recorded
    assert _run("embed", str(genre_tree), "--model", str(model), "--windows", "0").exit_code == 2


def test_embed_concatenation_and_pooling_options(tmp_path, genre_tree):
    m1 = make_tiny_onnx(tmp_path / "m1" / "model.onnx", seed=1)
    m2 = make_tiny_onnx(tmp_path / "m2" / "model.onnx", seed=2, dim=8)
    out = tmp_path / "lib.npz"
    r = _run("embed", str(genre_tree), "--model", f"{m1}+{m2}", "-o", str(out))
    assert r.exit_code == 0, r.stderr
    lib = read_library(out)
    assert lib.dim == 24 and lib.model.kind == "concat" and lib.model.standardize is True
    assert "12 embedded" in r.stderr and r.stdout == ""
    r = _run("embed", str(genre_tree), "--model", f"{m1}+{m2}", "-o", str(out))
    assert r.exit_code == 0 and "0 embedded, 12 unchanged" in r.stderr
    r = _run("embed", str(genre_tree), "--model", f"{m1}+{m2}", "--pooling", "meanstd", "-o", str(out))
    assert r.exit_code == 0 and "12 embedded, 0 unchanged" in r.stderr  # another recipe: embedded again
    lib = read_library(out)
    assert lib.dim == 48 and lib.model.pooling == "meanstd"
    rec = _run("recommend", str(out), "-q", "low/low.00000.wav", "--top", "3", "--json")
    assert rec.exit_code == 0, rec.stderr
    assert [n["label"] for n in json.loads(rec.stdout)["neighbors"]].count("low") >= 2
    r = _run("embed", str(genre_tree), "--model", "mfcc", "--pooling", "max")
    assert r.exit_code == 1 and r.stderr.startswith("Error:") and "--pooling" in r.stderr
    assert _run("embed", str(genre_tree), "--model", str(m1), "--pooling", "median").exit_code == 2
