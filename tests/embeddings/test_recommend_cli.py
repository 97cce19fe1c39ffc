"""``specmusic recommend`` with CliRunner: libraries, pipes, tabular CSVs, exclusion, bad input.

The command's tests are here; the search behind it is in ``test_search.py`` (explanations, tabular
scaling), ``test_adapt.py`` (the learnt space) and ``test_shards.py`` (folder libraries); the fault
corpus runs it in ``tests/failures/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from specmusic.cli.app import app
from tests.conftest import tone, write
from tests.embeddings.test_embeddings import make_tiny_onnx
from tests.failures.test_failures import assert_clean_failure, run
from tests.inference.test_inference import export_tiny_classifier


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
    # MFCC libraries keep no tags: nothing shared is said in words, never as embedding dimensions
    assert all(line.endswith("close in sound only") and "dim" not in line for line in lines[1:])
    assert "keeps no tags" in r.stderr


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
    info = result["neighbors"][0]["explain"]
    assert "top_dimensions" not in info and info["shared"] == []  # the query has no label; its folder differs


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


def test_top_flag_names(library):
    outs = [
        _run("recommend", str(library), "-q", "low/low.00000.wav", flag, "2", "--json").stdout
        for flag in ("--top", "-k", "--top-k")
    ]
    assert len(json.loads(outs[0])["neighbors"]) == 2 and outs[0] == outs[1] == outs[2]


def test_explain_names_shared_tags_of_an_onnx_library(tmp_path, genre_tree):
    model = make_tiny_onnx(tmp_path / "model.onnx")  # labels "a" and "b": every track has both as tags
    lib = tmp_path / "lib.npz"
    assert _run("embed", str(genre_tree), "-m", str(model), "-o", str(lib)).exit_code == 0
    r = _run("recommend", str(lib), "-q", "low/low.00000.wav", "--top", "2", "--json", "--explain")
    assert r.exit_code == 0, r.stderr
    first = json.loads(r.stdout)["neighbors"][0]
    info = first["explain"]
    assert {t["tag"] for t in info["shared_tags"]} == {"a", "b"} and set(info["query_tags"]) == {"a", "b"}
    text = _run("recommend", str(lib), "-q", "low/low.00000.wav", "--top", "2", "--explain")
    assert text.exit_code == 0 and "keeps no tags" not in text.stderr
    line = text.stdout.splitlines()[1]
    assert "shared tags: " in line and ("same label: " in line) == (first["label"] == "low")


def test_group_key_dir_compares_parent_folder_names(library, tmp_path):
    """A query file outside the library, in a folder named like a library folder, leaves that folder out."""
    query = write(tmp_path / "elsewhere" / "low" / "new.wav", tone(115.0, 1.5, seed=7))
    base = _run("recommend", str(library), "-q", str(query), "--top", "3", "--json")
    assert all(n["label"] == "low" for n in json.loads(base.stdout)["neighbors"])  # a low tone: low neighbours
    r = _run("recommend", str(library), "-q", str(query), "--top", "3", "--json", "--group-key", "dir")
    assert r.exit_code == 0, r.stderr
    assert all(n["label"] != "low" for n in json.loads(r.stdout)["neighbors"])
    r = _run("recommend", str(library), "-q", "mid/mid.00001.wav", "--top", "11", "--json", "--group-key", "dir")
    assert [n["label"] for n in json.loads(r.stdout)["neighbors"]].count("mid") == 0


def test_csv_without_columns_skips_id_like_ones_and_explains_in_units(tmp_path):
    csv = tmp_path / "features.csv"
    rows = [
        "track_id,danceability,energy,tempo",
        "101,0.8,0.9,122", "102,0.2,0.1,70", "103,0.79,0.88,180", "104,0.3,0.2,126", "105,0.5,0.5,100",
    ]  # fmt: skip
    csv.write_text("\n".join(rows) + "\n")
    r = _run("recommend", str(csv), "--query", "0", "--top", "1", "--explain")
    assert r.exit_code == 0, r.stderr
    assert "id-like column(s) track_id" in r.stderr and "--id track_id" in r.stderr
    line = r.stdout.splitlines()[1]
    assert line.split("\t")[2] == "2"  # same danceability and energy, far tempo
    assert "close: " in line and "tempo" not in line.split("apart:")[0]  # 122 vs 180 is not "close"
    assert "apart: tempo 122 vs 180 (differ by 58" in line and "≈" not in line
    r = _run("recommend", str(csv), "--id", "track_id", "--query", "101", "--top", "1", "--json")
    assert r.exit_code == 0 and "id-like" not in r.stderr


def test_index_help_keeps_the_extra_in_brackets():
    r = _run("recommend", "--help")
    assert r.exit_code == 0 and "specmusic[ann]" in r.stdout


def test_explain_says_same_folder_when_folders_differ(tmp_path, genre_tree):
    lib = tmp_path / "lib.npz"
    assert _run("embed", str(genre_tree), "-m", "mfcc", "--no-labels", "-o", str(lib)).exit_code == 0
    r = _run("recommend", str(lib), "-q", "low/low.00000.wav", "--top", "1", "--explain")
    assert r.exit_code == 0 and r.stdout.splitlines()[1].endswith("same folder: low")


# -- recommend: one bad query does not sink the rest; malformed libraries are refused ---------
@pytest.fixture
def onnx_library(tmp_path: Path) -> Path:
    model = export_tiny_classifier(tmp_path / "model.onnx", ["low", "mid", "high"])  # the fault corpus's model
    tracks = tmp_path / "tracks"
    for i, f in enumerate((110.0, 220.0, 440.0, 880.0)):
        write(tracks / f"t{i}.wav", tone(f, 2.0, seed=i))
    lib = tmp_path / "lib.npz"
    assert run("embed", tracks, "-m", model, "-o", lib).exit_code == 0
    return lib


def test_recommend_answers_the_other_queries(onnx_library: Path) -> None:
    res = run("recommend", onnx_library, "-q", "t0.wav", "-q", "no-such-track", "-q", "t2.wav", "-k", "1", "--json")
    assert_clean_failure(res, "no-such-track")
    answered = [json.loads(line)["query"] for line in res.stdout.splitlines()]
    assert len(answered) == 2


@pytest.mark.parametrize("arrays", [
    {"vectors": np.ones((3, 4), np.float32), "ids": np.array(["a", "b"])},
    {"vectors": np.ones(4, np.float32), "ids": np.array(["a"])},
])
def test_recommend_refuses_malformed_npz(arrays: dict, tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    assert_clean_failure(run("recommend", path, "-q", "a"), "bad.npz")


def test_recommend_refuses_a_library_listing_a_track_twice(tmp_path: Path) -> None:
    path = tmp_path / "twice.npz"
    np.savez(path, vectors=np.eye(3, dtype=np.float32), ids=np.array(["a", "b", "a"]))
    assert_clean_failure(run("recommend", path, "-q", "b"), "twice.npz")


def test_recommend_refuses_a_library_of_python_objects_in_plain_words(tmp_path: Path) -> None:
    path = tmp_path / "objects.npz"
    np.savez(path, vectors=np.array([{"a": 1}], dtype=object), ids=np.array(["a"]))
    line = assert_clean_failure(run("recommend", path, "-q", "a"), "objects.npz")
    assert "allow_pickle" not in line and "Python objects" in line and "specmusic embed" in line


def test_recommend_reads_tsv_with_tabs(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("id\ta\tb\n1\t0.1\t0.2\n2\t0.3\t0.4\n3\t0.5\t0.1\n")
    res = run("recommend", path, "--id", "id", "-q", "2", "-k", "1", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["neighbors"][0]["id"] in {"1", "3"}


def test_recommend_refuses_duplicate_csv_ids(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,a,b\n1,0.1,0.2\n1,0.3,0.4\n2,0.5,0.1\n")
    assert_clean_failure(run("recommend", path, "--id", "id", "-q", "2"), "t.csv")


def test_recommend_says_which_csv_columns_it_drops(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,a,b,genre\n1,0.1,0.2,rock\n2,0.3,0.4,jazz\n3,0.5,0.1,pop\n")
    res = run("recommend", path, "--id", "id", "-q", "2", "-k", "1")
    assert res.exit_code == 0, res.stderr
    assert "genre" in res.stderr
