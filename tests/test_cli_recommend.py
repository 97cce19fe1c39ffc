"""``specmusic recommend`` with CliRunner: libraries, pipes, tabular CSVs, exclusion, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from specmusic.cli.app import app
from tests.conftest import tone, write
from tests.test_embeddings import make_tiny_onnx


def _run(*args: str, input: str | None = None):
    return CliRunner().invoke(app, list(args), input=input)


@pytest.fixture
def library(tmp_path, genre_tree) -> Path:
    out = tmp_path / "lib.npz"
    r = _run("embed", str(genre_tree), "--model", "mfcc", "-o", str(out))
    assert r.exit_code == 0, r.stderr
    return out


def _one_line_error(r) -> str:
    assert r.exit_code == 1
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and " — " in lines[0], r.stderr
    return lines[0]


def test_recommend_by_id_json(library, genre_tree):
    r = _run("recommend", str(library), "--query", "mid/mid.00001.wav", "-k", "3", "--json")
    assert r.exit_code == 0, r.stderr
    result = json.loads(r.stdout)
    ids = [n["id"] for n in result["neighbors"]]
    assert len(ids) == 3 and not any(i.endswith("mid.00001.wav") for i in ids)
    scores = [n["score"] for n in result["neighbors"]]
    assert scores == sorted(scores, reverse=True)
    assert result["neighbors"][0]["label"] == "mid"


def test_recommend_text_output_and_group_key(library):
    r = _run("recommend", str(library), "-q", "low/low.00000.wav", "-k", "4", "--group-key", "label", "--explain")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "# low/low.00000.wav" and len(lines) == 5
    assert all("/low/" not in line for line in lines[1:])  # the whole label left out
    assert all("top dims:" in line for line in lines[1:])


def test_many_queries_from_stdin(library):
    r = _run("recommend", str(library), "--queries", "-", "-k", "2", "--json", input="low/low.00000.wav\nhigh/high.00002.wav\n")
    assert r.exit_code == 0, r.stderr
    results = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["query"] for x in results] == ["low/low.00000.wav", "high/high.00002.wav"]
    assert [x["neighbors"][0]["label"] for x in results] == ["low", "high"]


def test_pipe_jsonl_and_embed_a_new_audio_query(tmp_path, genre_tree):
    emb = _run("embed", str(genre_tree), "--model", "mfcc")
    assert emb.exit_code == 0
    query = write(tmp_path / "query.wav", tone(1800.0, 1.5, seed=5))
    r = _run("recommend", "-", "--query", str(query), "-k", "3", "--json", "--explain", input=emb.stdout)
    assert r.exit_code == 0, r.stderr
    result = json.loads(r.stdout)
    assert [n["label"] for n in result["neighbors"]] == ["high"] * 3
    assert "top_dimensions" in result["neighbors"][0]["explain"]


def test_tabular_csv_explain(tmp_path):
    csv = tmp_path / "features.csv"
    rows = ["track_id,danceability,energy,tempo", "1,0.8,0.9,128", "2,0.2,0.1,70", "3,0.79,0.88,95", "4,0.3,0.2,126"]
    csv.write_text("\n".join(rows) + "\n")
    r = _run("recommend", str(csv), "--id", "track_id", "--columns", "danceability,energy,tempo", "--query", "1", "-k", "3", "--json", "--explain")
    assert r.exit_code == 0, r.stderr
    nb = json.loads(r.stdout)["neighbors"]
    assert nb[0]["id"] == "3"  # close on danceability and energy, not the same-tempo track 4
    assert nb[-1]["score"] < 0 < nb[0]["score"] < 0.99
    cols = nb[0]["explain"]["closest_columns"]
    assert cols[0]["column"] in {"danceability", "energy"} and cols[0]["query"] in (0.8, 0.9)


def test_bad_input_unknown_query(library):
    assert "unknown query" in _one_line_error(_run("recommend", str(library), "-q", "no/such/track.wav"))


def test_bad_input_empty_index(tmp_path):
    empty = '{"format_version": 1, "model": {"kind": "mfcc"}}\n'
    assert "empty" in _one_line_error(_run("recommend", "-", "-q", "x", input=empty))


def test_bad_input_nan_vectors(tmp_path):
    text = '{"id": "a", "vector": [0.1, NaN]}\n{"id": "b", "vector": [0.5, 0.5]}\n'
    assert "NaN" in _one_line_error(_run("recommend", "-", "-q", "b", input=text))


def test_bad_input_mismatched_dimensions(tmp_path, library):
    model = make_tiny_onnx(tmp_path / "model.onnx")  # 16-d, the library is 40-d MFCC statistics
    query = write(tmp_path / "q.wav", tone(300.0, 1.0))
    msg = _one_line_error(_run("recommend", str(library), "-q", str(query), "--model", str(model)))
    assert "16-d" in msg and "40-d" in msg


def test_bad_input_no_query_and_headerless_audio_query(tmp_path, library):
    assert _run("recommend", str(library)).exit_code == 1
    query = write(tmp_path / "q.wav", tone(300.0, 1.0))
    text = '{"id": "a", "vector": [0.1, 0.2]}\n'
    assert "does not record" in _one_line_error(_run("recommend", "-", "-q", str(query), input=text))
