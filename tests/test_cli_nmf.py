"""`specmusic nmf` and `specmusic nmf mosaic` end to end through CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from specmusic.cli.app import app
from specmusic.cli.nmf import _expand_k
from tests.conftest import tone, write

runner = CliRunner()


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def duet(tmp_path: Path) -> Path:
    """1.5 s: a low tone, then a high one, then both (22.05 kHz mono)."""
    sr = 22050
    low, high = tone(196.0, 1.5, seed=1), tone(1318.0, 1.5, seed=2)
    t = np.arange(len(low)) / sr
    y = low * (t < 1.0) + high * (t > 0.5)
    return write(tmp_path / "duet.wav", y.astype(np.float32), sr)


def test_split_writes_arrays_plots_parts_and_summary(duet: Path, tmp_path: Path) -> None:
    out = tmp_path / "parts"
    res = run("nmf", duet, "-k", "2", "--loss", "kl", "-o", out, "--iterations", "60")
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)  # stdout: one JSON line, nothing else
    assert row["k"] == 2 and row["loss_name"] == "kl" and row["iterations"] <= 60
    assert "nmf:" in res.stderr  # progress/log lines go to stderr
    names = {p.name for p in out.iterdir()}
    assert {"nmf.npz", "summary.json", "W.png", "H.png", "loss.png", "reconstruction.wav",
            "component-01.wav", "component-02.wav"} <= names
    with np.load(out / "nmf.npz", allow_pickle=False) as z:
        assert int(z["format_version"]) == 1 and z["W"].shape == (1025, 2)
        assert z["H"].shape == (2, len(z["times_s"])) and z["frequencies_hz"][-1] == 11025.0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["loss"] == pytest.approx(row["loss"]) and len(summary["loss_curve"]) == summary["iterations"] + 1
    assert summary["loss_curve"][-1] <= summary["loss_curve"][0]
    # the part WAVs add back up to the mix
    mix, sr = sf.read(duet, dtype="float32")
    parts = [sf.read(out / f"component-0{c}.wav", dtype="float32")[0] for c in (1, 2)]
    assert sr == 22050 and all(len(p) == len(mix) for p in parts)
    np.testing.assert_allclose(parts[0] + parts[1], mix, atol=1e-4)


def test_several_k_report_table_and_png(duet: Path, tmp_path: Path) -> None:
    res = run("nmf", duet, "-k", "2", "3", "4", "--loss", "euclidean", "--report", "-o", tmp_path / "r",
              "--iterations", "40", "--no-audio", "--no-plots")
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert lines[0].split()[0] == "k" and [int(line.split()[0]) for line in lines[1:]] == [2, 3, 4]
    losses = [float(line.split()[1]) for line in lines[1:]]
    assert losses[0] >= losses[1] >= losses[2]  # more parts, smaller loss
    assert (tmp_path / "r" / "report.png").stat().st_size > 0
    assert {p.name for p in (tmp_path / "r").iterdir()} >= {"k2", "k3", "k4"}


def test_compare_sklearn_prints_both_side_by_side(duet: Path) -> None:
    res = run("nmf", duet, "-k", "3", "--loss", "kl", "--compare", "sklearn", "--iterations", "30")
    assert res.exit_code == 0, res.output
    ours = next(line for line in res.stdout.splitlines() if line.startswith("specmusic nmf"))
    theirs = next(line for line in res.stdout.splitlines() if line.startswith("sklearn NMF(mu)"))
    assert float(ours.split()[-1]) <= float(theirs.split()[-1]) * (1 + 1e-4)  # over-relaxed KL: as low or lower
    assert "speed-up" in res.stdout
    # textbook steps: the same arithmetic as scikit-learn, the same divergence
    res = run("nmf", duet, "-k", "3", "--loss", "kl", "--compare", "sklearn", "--iterations", "30", "--relax", "1")
    ours = next(line for line in res.stdout.splitlines() if line.startswith("specmusic nmf"))
    theirs = next(line for line in res.stdout.splitlines() if line.startswith("sklearn NMF(mu)"))
    assert float(ours.split()[-1]) == pytest.approx(float(theirs.split()[-1]), rel=1e-3)


def test_mosaic_resamples_and_writes_audio(tmp_path: Path) -> None:
    src = write(tmp_path / "bees.wav", tone(880.0, 1.0, sr=44100, seed=4), sr=44100)
    tgt = write(tmp_path / "song.wav", tone(220.0, 1.0, seed=5))
    out = tmp_path / "mosaic.wav"
    res = run("nmf", "mosaic", "--source", src, "--target", tgt, "-o", out, "--let-it-bee", "--iterations", "10")
    assert res.exit_code == 0, res.output
    assert "resampled to 22050 Hz" in res.stderr
    info = json.loads(res.stdout)
    assert info["mode"] == "frames" and info["repetition"] == 3 and info["polyphony"] == 10
    y, sr = sf.read(out)
    assert sr == 22050 and len(y) == 22050 and np.isfinite(y).all()


def test_help_explains_both_forms() -> None:
    res = run("nmf", "--help")
    assert res.exit_code == 0
    assert "mosaic" in res.stdout and "decompose" in res.stdout and "SONG" in res.stdout
    assert "--source" in run("nmf", "mosaic", "--help").stdout


def test_k_values_after_one_flag() -> None:
    assert _expand_k(["decompose", "a.wav", "-k", "4", "6", "8", "--report"]) == [
        "decompose", "a.wav", "-k", "4", "-k", "6", "-k", "8", "--report"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["-k", "5000"], "more than the matrix allows"),
        (["-k", "zero"], "positive whole number"),
    ],
)
def test_bad_options_are_one_line_errors(duet: Path, args: list[str], words: str) -> None:
    res = run("nmf", duet, *args, "--iterations", "5")
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines()[-1].startswith("Error: ") and words in res.stderr
    assert res.stdout == ""


def test_silence_and_missing_file(silence: Path, tmp_path: Path) -> None:
    res = run("nmf", silence, "-k", "2")
    assert res.exit_code == 1 and "silent" in res.stderr and "Traceback" not in res.output
    res = run("nmf", tmp_path / "nope.wav", "-k", "2")
    assert res.exit_code == 1 and "no such file" in res.stderr
