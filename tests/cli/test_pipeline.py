"""The chained path: spectro → train (on the arrays) → classify (audio, with the exported model)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from specmusic.cli.app import app


def test_spectro_train_classify(genre_tree: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    specs, run = tmp_path / "specs", tmp_path / "run"
    result = runner.invoke(app, ["spectro", str(genre_tree), "-o", str(specs), "--n-mels", "32", "--no-progress"])
    assert result.exit_code == 0, result.stderr
    result = runner.invoke(app, ["train", str(specs), "-o", str(run), "--epochs", "3", "--chunk-seconds", "0.5",
                                 "--threads", "1", "--no-progress", "--seed", "1"])
    assert result.exit_code == 0, result.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["feature_config"]["n_mels"] == 32  # the arrays' settings travel into the model
    result = runner.invoke(app, ["classify", str(genre_tree), "--model", str(run / "model.onnx"), "--json"])
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 12 and {r["label"] for r in records} <= {"low", "mid", "high"}
    # classify (onnxruntime on audio) agrees with train's evaluation (torch on cached arrays)
    metrics = json.loads((run / "metrics.json").read_text())
    by_name = {Path(r["path"]).stem: r for r in records}
    for pred in metrics["test"]["predictions"]:
        got = by_name[Path(pred["track"]).name]
        assert got["label"] == pred["predicted"]
        for label, p in pred["probabilities"].items():
            assert abs(got["probabilities"][label] - p) < 2e-3
