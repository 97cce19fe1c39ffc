"""`specmusic nmf` and `specmusic nmf mosaic` end to end through CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from specmusic.cli.app import app
from tests.conftest import tone, write
from tests.failures.test_failures import assert_clean_failure

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
    res = run("nmf", duet, "-c", "2", "--loss", "kl", "-o", out, "--iterations", "60")
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)  # stdout: one JSON line, nothing else
    assert row["k"] == 2 and row["loss_name"] == "kl" and row["iterations"] <= 60
    assert "nmf:" in res.stderr  # progress/log lines go to stderr
    names = {p.name for p in out.iterdir()}
    assert {"nmf.npz", "summary.json", "W.png", "H.png", "loss.png", "model.wav",
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
    res = run("nmf", duet, "-c", "2,3", "-c", "4", "--loss", "euclidean", "--report", "-o", tmp_path / "r",
              "--iterations", "40", "--no-audio", "--no-plots")
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert lines[0].split()[0] == "k" and [int(line.split()[0]) for line in lines[1:]] == [2, 3, 4]
    losses = [float(line.split()[1]) for line in lines[1:]]
    assert losses[0] >= losses[1] >= losses[2]  # more parts, smaller loss
    assert (tmp_path / "r" / "report.png").stat().st_size > 0
    assert {p.name for p in (tmp_path / "r").iterdir()} >= {"k2", "k3", "k4"}


def test_compare_sklearn_prints_both_side_by_side(duet: Path) -> None:
    res = run("nmf", duet, "-c", "3", "--loss", "kl", "--compare", "sklearn", "--iterations", "30")
    assert res.exit_code == 0, res.output
    ours = next(line for line in res.stdout.splitlines() if line.startswith("specmusic nmf"))
    theirs = next(line for line in res.stdout.splitlines() if line.startswith("sklearn NMF(mu)"))
    assert float(ours.split()[-1]) <= float(theirs.split()[-1]) * (1 + 1e-4)  # over-relaxed KL: as low or lower
    assert "speed-up" in res.stdout
    sooner = next(line for line in res.stdout.splitlines() if line.startswith(("specmusic reached", "specmusic did not")))
    if float(ours.split()[-1]) <= float(theirs.split()[-1]):  # its last loss is at or below: the curve got there
        assert 1 <= int(sooner.split("at iteration ")[1].split()[0]) <= 30 and "sooner" in sooner
    # textbook steps: the same arithmetic as scikit-learn, the same divergence
    res = run("nmf", duet, "-c", "3", "--loss", "kl", "--compare", "sklearn", "--iterations", "30", "--relax", "1")
    ours = next(line for line in res.stdout.splitlines() if line.startswith("specmusic nmf"))
    theirs = next(line for line in res.stdout.splitlines() if line.startswith("sklearn NMF(mu)"))
    assert float(ours.split()[-1]) == pytest.approx(float(theirs.split()[-1]), rel=1e-3)


def test_mosaic_resamples_and_writes_audio_and_pictures(tmp_path: Path) -> None:
    src = write(tmp_path / "bees.wav", tone(880.0, 1.0, sr=44100, seed=4), sr=44100)
    tgt = write(tmp_path / "song.wav", tone(220.0, 1.0, seed=5))
    out = tmp_path / "mosaic.wav"
    res = run("nmf", "mosaic", "-s", src, "-t", tgt, "-o", out, "--let-it-bee", "-i", "10")
    assert res.exit_code == 0, res.output
    assert "resampled to 22050 Hz" in res.stderr
    info = json.loads(res.stdout)
    assert info["mode"] == "frames" and info["repetition"] == 3 and info["polyphony"] == 10
    assert info["iterations"] == 10
    y, sr = sf.read(out)
    assert sr == 22050 and len(y) == 22050 and np.isfinite(y).all()
    # papercut: the mosaic draws its spectrogram and its loss curve beside the audio
    pictures = [tmp_path / "mosaic.png", tmp_path / "mosaic.loss.png"]
    assert [Path(p).name for p in info["plots"]] == ["mosaic.png", "mosaic.loss.png"]
    for png in pictures:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mosaic_pictures_are_optional_and_need_a_file(tmp_path: Path) -> None:
    src = write(tmp_path / "bees.wav", tone(880.0, 0.5, seed=4))
    tgt = write(tmp_path / "song.wav", tone(220.0, 0.5, seed=5))
    res = run("nmf", "mosaic", "-s", src, "-t", tgt, "-o", tmp_path / "m.wav", "-i", "3", "--no-plots")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bees.wav", "m.wav", "song.wav"]
    res = run("nmf", "mosaic", "-s", src, "-t", tgt, "-o", "-", "-i", "3")  # stdout: audio only, no pictures
    assert res.exit_code == 0 and res.stdout_bytes[:4] == b"RIFF"
    assert not list(Path.cwd().glob("-*.png"))
    res = run("nmf", "mosaic", "-s", src, "-t", tgt, "-o", "-", "-i", "3", "--plots")
    assert res.exit_code == 1 and "--plots needs an output file" in res.stderr


def test_summary_and_stderr_say_what_model_wav_is(duet: Path, tmp_path: Path) -> None:
    """Papercut: model.wav (was reconstruction.wav) differs from the parts' sum; now the run says why."""
    out = tmp_path / "parts"
    res = run("nmf", duet, "-c", "2", "-o", out, "-i", "30", "--no-plots")
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    mix, _ = sf.read(duet, dtype="float64")
    model, _ = sf.read(out / "model.wav", dtype="float64")
    rel = np.sqrt(np.mean((model - mix) ** 2) / np.mean(mix**2))
    assert summary["model_relative_error"] == pytest.approx(rel, abs=1e-5) and rel > 0.01
    assert json.loads(res.stdout)["model_relative_error"] == summary["model_relative_error"]
    assert f"{100 * rel:.1f} % RMS away from the mix" in res.stderr and "add up to the mix" in res.stderr
    assert set(summary["file_notes"]) >= {"model.wav", "component-NN.wav", "nmf.npz"}
    assert not (out / "reconstruction.wav").exists()


def test_components_take_commas_or_repeats_and_no_argv_rewriting(duet: Path, tmp_path: Path) -> None:
    res = run("nmf", duet, "-c", "3,2", "-c", "2", "-i", "5", "--no-audio", "--no-plots")
    assert res.exit_code == 0, res.output
    assert [json.loads(line)["k"] for line in res.stdout.splitlines()] == [2, 3]
    res = run("nmf", duet, "-c", "2", "3", "-i", "5")  # one value per flag: "3" is an extra argument
    assert res.exit_code == 2
    res = run("nmf", duet, "-k", "2")  # the old flag is gone
    assert res.exit_code == 2 and "No such option" in res.output


def test_help_explains_both_forms() -> None:
    res = run("nmf", "--help")
    assert res.exit_code == 0
    assert "mosaic" in res.stdout and "decompose" in res.stdout and "SONG" in res.stdout
    assert "--source" in run("nmf", "mosaic", "--help").stdout


@pytest.mark.parametrize(
    "args, words",
    [
        (["-c", "5000"], "more than the matrix allows"),
        (["-c", "zero"], "positive whole number"),
    ],
)
def test_bad_options_are_one_line_errors(duet: Path, args: list[str], words: str) -> None:
    res = run("nmf", duet, *args, "--iterations", "5")
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines()[-1].startswith("Error: ") and words in res.stderr
    assert res.stdout == ""


def test_silence_and_missing_file(silence: Path, tmp_path: Path) -> None:
    res = run("nmf", silence, "-c", "2")
    assert res.exit_code == 1 and "silent" in res.stderr and "Traceback" not in res.output
    res = run("nmf", tmp_path / "nope.wav", "-c", "2")
    assert res.exit_code == 1 and "no such file" in res.stderr


# -- memory: refused up front, with the size and how to cut it ---------------------------------
def test_nmf_refuses_a_run_above_max_memory_before_decoding(tmp_path: Path, work: list[str]) -> None:
    from specmusic.nmf.memory import nmf_memory

    song, out = write(tmp_path / "long.wav", tone(220.0, 20.0)), tmp_path / "parts"
    budget = 0.6 * nmf_memory(20 * 22050, sample_rate=22050).bytes / 1e9
    line = assert_clean_failure(run("nmf", song, "--max-memory", f"{budget:.4f}", "-o", out), "long.wav")
    assert work == []  # refused before a sample was decoded
    assert "MB of memory" in line and f"--max-memory {budget:.4f}" in line and "--sr" in line
    assert not out.exists() or not any(out.iterdir())
    fits = line.split("take at most ")[1].split(" s (--duration")[0]  # the length it says fits, does
    res = run("nmf", song, "-i", "2", "--max-memory", f"{budget:.4f}", "--duration", fits, "-o", out)
    assert res.exit_code == 0, res.stderr


def test_mosaic_refuses_a_run_above_max_memory(tmp_path: Path) -> None:
    from specmusic.nmf.memory import mosaic_memory

    good = write(tmp_path / "good.wav", tone(330.0, 2.0))  # the fault corpus's good file
    target, out = write(tmp_path / "target.wav", tone(220.0, 20.0)), tmp_path / "m.wav"
    budget = 0.6 * mosaic_memory(2 * 22050, 20 * 22050, sample_rate=22050, threads=1).bytes / 1e9
    res = run("nmf", "mosaic", "-s", good, "-t", target, "--threads", "1", "--max-memory", f"{budget:.4f}",
              "-o", out)
    line = assert_clean_failure(res, "target.wav")
    assert "MB of memory" in line and "--target-duration" in line and not out.exists()
