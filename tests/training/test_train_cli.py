"""``specmusic train`` through the CLI: outputs, exit codes, one-line errors on stderr."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tests.conftest import tone, write
from specmusic.cli.app import app

FAST = ["--epochs", "2", "--chunk-seconds", "0.5", "--threads", "1", "--no-progress"]


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, stderr
    assert " — " in lines[0]
    return lines[0]


def test_train_audio_folder(genre_tree: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(genre_tree), "-o", str(run), *FAST])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""  # stdout carries data only; train has none
    assert "epoch 2/2" in result.stderr and "test: accuracy" in result.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["labels"] == ["high", "low", "mid"] and 0.0 <= metrics["test"]["accuracy"] <= 1.0
    config = json.loads((run / "config.json").read_text())
    assert config["feature_config"]["n_mels"] == 64 and config["train"]["epochs"] == 2
    assert (run / "model.onnx").is_file() and (run / "features" / "manifest.jsonl").is_file()


def test_class_with_one_track(tmp_path: Path) -> None:
    for label, n in (("a", 3), ("b", 1)):
        for i in range(n):
            write(tmp_path / "data" / label / f"{i}.wav", tone(200.0 * (i + 1), 0.6, seed=i))
    result = CliRunner().invoke(app, ["train", str(tmp_path / "data"), "-o", str(tmp_path / "run"), *FAST])
    assert result.exit_code == 1
    assert "class 'b' has only one track" in _one_error_line(result.stderr)


def test_empty_dataset(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    result = CliRunner().invoke(app, ["train", str(tmp_path / "data"), "-o", str(tmp_path / "run"), *FAST])
    assert result.exit_code == 1
    assert "no audio files found" in _one_error_line(result.stderr)


def test_missing_folder_and_bad_options(tmp_path: Path, genre_tree: Path) -> None:
    result = CliRunner().invoke(app, ["train", str(tmp_path / "nope"), "-o", str(tmp_path / "run"), *FAST])
    assert result.exit_code == 1 and "no such file or folder" in _one_error_line(result.stderr)
    result = CliRunner().invoke(app, ["train", str(genre_tree), "-o", str(tmp_path / "run"), "--augment", "wobble"])
    assert result.exit_code == 1 and "unknown augmentation" in _one_error_line(result.stderr)
    result = CliRunner().invoke(app, ["train", str(genre_tree), "-o", str(tmp_path / "run"), "--test-file",
                                      str(tmp_path / "missing.txt")])
    assert result.exit_code == 1 and "split list not found" in _one_error_line(result.stderr)
    result = CliRunner().invoke(app, ["train", str(genre_tree), "-o", str(tmp_path / "run"), "--device", "gpu0"])
    assert result.exit_code == 1 and "--device 'gpu0': unknown device" in _one_error_line(result.stderr)


def test_spectro_folder_with_mixed_feature_configs(genre_tree: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    specs, other = tmp_path / "specs", tmp_path / "other"
    assert runner.invoke(app, ["spectro", str(genre_tree), "-o", str(specs), "--n-mels", "32"]).exit_code == 0
    one = genre_tree / "high" / "high.00000.wav"
    assert runner.invoke(app, ["spectro", str(one), "-o", str(other), "--n-mels", "48"]).exit_code == 0
    # One array recomputed with other settings behind the manifest's back.
    (other / "high.00000.npz").replace(specs / "high" / "high.00000.npz")
    result = runner.invoke(app, ["train", str(specs), "-o", str(tmp_path / "run"), *FAST])
    assert result.exit_code == 1
    line = _one_error_line(result.stderr)
    assert "high.00000.npz: computed with different feature settings" in line and "n_mels 48, not 32" in line
