"""``specmusic embed`` end to end with CliRunner: libraries, pipes, incremental runs, maps, failures."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from specmusic.cli.app import app
from specmusic.embeddings import read_library
from tests.conftest import tone, write
from tests.test_embeddings import make_tiny_onnx


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


def test_embed_map_lists_clusters_and_metrics(tmp_path, genre_tree):
    png = tmp_path / "map.png"
    r = _run("embed", str(genre_tree), "--model", "mfcc", "--map", str(png))
    assert r.exit_code == 0, r.stderr
    assert png.read_bytes()[:4] == b"\x89PNG"
    lines = r.stdout.splitlines()
    assert sum(line.startswith("cluster ") for line in lines) == 3
    metrics = dict(kv.split("=") for kv in lines[-1].removeprefix("metrics: ").split())
    assert set(metrics) == {"nmi", "ari", "silhouette"} and float(metrics["nmi"]) > 0.8


def test_embed_with_an_onnx_model(tmp_path, genre_tree):
    model = make_tiny_onnx(tmp_path / "model.onnx")
    out = tmp_path / "lib.npz"
    r = _run("embed", str(genre_tree / "high"), "--model", str(model), "-o", str(out))
    assert r.exit_code == 0, r.stderr
    lib = read_library(out)
    assert lib.dim == 16 and lib.model["kind"] == "onnx" and len(lib) == 4


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
