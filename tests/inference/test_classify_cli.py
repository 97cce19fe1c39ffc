"""``specmusic classify`` through the CLI: table, JSON Lines, stdin paths, jobs, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import chirp, tone, write
from tests.inference.test_inference import export_tiny_classifier
from specmusic.cli.app import app

LABELS = ["bass", "mid", "treble", "noise"]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_classifier(tmp_path_factory.mktemp("model") / "model.onnx", LABELS)


@pytest.fixture
def music(tmp_path: Path) -> Path:
    root = tmp_path / "music"
    write(root / "a.wav", tone(110.0, 1.2))
    write(root / "sub" / "b.wav", chirp(1.5))
    write(root / "sub" / "c.flac", tone(880.0, 0.8, seed=3))
    return root


def test_table_for_people(model: Path, music: Path) -> None:
    result = CliRunner().invoke(app, ["classify", str(music / "a.wav"), "--model", str(model), "--top", "2"])
    assert result.exit_code == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split() == ["file", "top1", "top2"]
    cells = row.split()
    assert cells[0].endswith("a.wav") and cells[1] in LABELS and cells[3] in LABELS
    assert 1.0 >= float(cells[2]) >= float(cells[4]) >= 0.0


def test_json_lines_for_a_folder(model: Path, music: Path) -> None:
    result = CliRunner().invoke(app, ["classify", str(music), "--model", str(model), "--json"])
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["path"]).name for r in records] == ["a.wav", "b.wav", "c.flac"]
    for r in records:
        assert r["label"] == r["top"][0]["label"] and len(r["top"]) == 3
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
        assert r["duration"] > 0.5


def test_stdin_paths_and_jobs(model: Path, music: Path) -> None:
    paths = f"{music / 'a.wav'}\n# a comment\n{music / 'sub' / 'b.wav'}\n"
    one = CliRunner().invoke(app, ["classify", "-", "--model", str(model), "--json"], input=paths)
    two = CliRunner().invoke(app, ["classify", "-", "--model", str(model), "--json", "--jobs", "2"], input=paths)
    assert one.exit_code == two.exit_code == 0, one.stderr + two.stderr
    assert len(one.stdout.splitlines()) == 2
    a = [json.loads(line) for line in one.stdout.splitlines()]
    b = [json.loads(line) for line in two.stdout.splitlines()]
    assert [r["path"] for r in a] == [r["path"] for r in b]
    for ra, rb in zip(a, b):
        assert ra["probabilities"] == pytest.approx(rb["probabilities"], abs=1e-4)


def test_corrupt_file_in_a_batch(model: Path, music: Path, not_audio: Path, truncated_mp3: Path) -> None:
    args = ["classify", str(music / "a.wav"), str(not_audio), str(truncated_mp3), str(music / "sub" / "b.wav"),
            "--model", str(model), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert [Path(json.loads(line)["path"]).name for line in result.stdout.splitlines()] == ["a.wav", "b.wav"]
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 2 and "notes.wav" in errors[0] and "truncated.mp3" in errors[1]
    assert "2 classified, 2 failed" in result.stderr


def test_model_that_is_not_onnx(music: Path, tmp_path: Path) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"\x00\x01garbage")
    result = CliRunner().invoke(app, ["classify", str(music / "a.wav"), "--model", str(fake)])
    assert result.exit_code == 1
    assert "not a readable ONNX model" in result.stderr and len(result.stderr.splitlines()) == 1


def test_missing_input(model: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["classify", str(tmp_path / "nope.wav"), "--model", str(model)])
    assert result.exit_code == 1 and "no such file or folder" in result.stderr
    result = CliRunner().invoke(app, ["classify", "--model", str(model)])
    assert result.exit_code == 1 and "no input" in result.stderr


def test_long_labels_are_shown_whole(music: Path, tmp_path: Path) -> None:
    labels = ["supertux-data-music", "easylistening", "wesnoth-1.16-music", "x"]
    long_model = export_tiny_classifier(tmp_path / "long.onnx", labels)
    result = CliRunner().invoke(app, ["classify", str(music / "a.wav"), "-m", str(long_model), "-k", "4"])
    assert result.exit_code == 0, result.stderr
    row = result.stdout.splitlines()[1].split()
    assert sorted(row[1::2]) == sorted(labels)  # every name whole, none cut to 12 characters


def test_a_spectro_folder_made_like_the_model_is_classified(model: Path, music: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    specs = tmp_path / "specs"
    made = runner.invoke(app, ["spectro", str(music), "--like", str(model), "-o", str(specs)])
    assert made.exit_code == 0, made.stderr
    result = runner.invoke(app, ["classify", str(specs), "-m", str(model), "--json"])
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(Path(r["path"]).name for r in records) == ["a.npz", "b.npz", "c.npz"]
    assert all(r["label"] in LABELS for r in records)


def test_arrays_with_other_features_name_the_fix(model: Path, music: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    specs = tmp_path / "specs"
    assert runner.invoke(app, ["spectro", str(music / "a.wav"), "-o", str(specs)]).exit_code == 0
    result = runner.invoke(app, ["classify", str(specs), "-m", str(model)])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "a.npz" in errors[0] and "--like" in errors[0]


def test_like_refuses_explicit_feature_options(model: Path, music: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["spectro", str(music / "a.wav"), "--like", str(model), "--n-mels", "64", "-o", str(tmp_path / "s")]
    )
    assert result.exit_code == 1
    assert "--n-mels" in result.stderr and "Traceback" not in result.stderr


def test_windows_option(model: Path, music: Path) -> None:
    """--windows N|all reaches the analysis and the JSON; anything else is a usage error (exit 2)."""
    from specmusic.inference import DEFAULT_WINDOWS

    long = write(music / "long.wav", chirp(12.0))  # ~25 windows of the test model
    base = ["classify", str(long), "--model", str(model), "--json"]
    default, two, every = (CliRunner().invoke(app, base + extra) for extra in ([], ["--windows", "2"],
                                                                            ["--windows", "all"]))
    assert default.exit_code == two.exit_code == every.exit_code == 0, default.stderr + two.stderr + every.stderr
    windows = [json.loads(r.stdout)["windows"] for r in (default, two, every)]
    assert windows[0] == DEFAULT_WINDOWS and windows[1] == 2 and windows[2] > DEFAULT_WINDOWS
    for bad in ("0", "some"):
        res = CliRunner().invoke(app, base + ["--windows", bad])
        assert res.exit_code == 2 and "--windows" in res.stderr
    assert f"(default {DEFAULT_WINDOWS})" in " ".join(CliRunner().invoke(app, ["classify", "--help"]).stdout.split())


# -- the library under the command -------------------------------------------------------------------
def test_open_classifier_finds_tracks_and_prints_what_the_command_prints(model: Path, music: Path) -> None:
    """``open_classifier`` + ``Classifier.classify`` give the command's header, rows and JSON records."""
    from specmusic.inference import open_classifier

    run = open_classifier([str(music), str(music / "missing.wav")], model=model)
    assert [Path(p).name for p in run.paths] == ["a.wav", "b.wav", "c.flac"] and len(run.failures) == 1
    assert run.header(2).split() == ["file", "top1", "top2"]
    tracks = list(run.classify(top=2))
    assert all(t.ok for t in tracks) and [Path(t.record["path"]).name for t in tracks] == ["a.wav", "b.wav", "c.flac"]
    table = CliRunner().invoke(app, ["classify", str(music), "--model", str(model), "--top", "2"])
    assert table.stdout.splitlines() == [run.header(2), *(t.row for t in tracks)]
    lines = CliRunner().invoke(app, ["classify", str(music), "--model", str(model), "--top", "2", "--json"])
    assert [json.loads(line) for line in lines.stdout.splitlines()] == [t.record for t in tracks]


def test_open_classifier_without_tracks_says_so(model: Path, tmp_path: Path) -> None:
    from specmusic.errors import InputError
    from specmusic.inference import open_classifier

    (tmp_path / "notes.txt").write_text("no audio here\n")
    with pytest.raises(InputError, match="no audio files or .npz arrays found"):
        open_classifier([str(tmp_path)], model=model)
