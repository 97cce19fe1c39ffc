"""Garbage in is flagged or refused, never answered with confidence; odd files are called what they are;
names never split a line; library chatter (numpy, scikit-learn) never reaches stderr."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import tone, write
from tests.failures.test_failures import _with_meta, assert_clean_failure, error_lines, run

SR = 22050


def warning_lines(result) -> list[str]:  # noqa: ANN001
    return [line for line in result.stderr.splitlines() if line.startswith("warning:")]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("garbage")
    t = np.arange(30 * SR) / SR
    files = {
        "good": write(root / "good.wav", tone(330.0, 2.0)),
        "dc": write(root / "dc.wav", np.full(30 * SR, 0.5, dtype=np.float32)),
        "five_hz": write(root / "five_hz.wav", (0.5 * np.sin(2 * np.pi * 5 * t)).astype(np.float32)),
        "dc_short": write(root / "dc_short.wav", np.full(3 * SR // 2, -0.25, dtype=np.float32)),
    }
    rng = np.random.default_rng(0)  # full-scale binary noise: legal 16-bit, ±1.8 once resampled to 22.05 kHz
    noise = np.sign(rng.standard_normal(3 * 44100)) * (32767 / 32768)
    sf.write(root / "full_scale_44k.wav", noise, 44100, subtype="PCM_16")
    files["full_scale_44k"] = root / "full_scale_44k.wav"
    return files


# -- no energy in the model's band -------------------------------------------------------------
@pytest.mark.parametrize("odd", ["dc", "five_hz", "dc_short"])
def test_classify_flags_audio_with_nothing_in_the_models_band(inputs: dict[str, Path], model: Path, odd: str) -> None:
    res = run("classify", inputs["good"], inputs[odd], "-m", model, "--json")
    assert res.exit_code == 0, res.stderr
    (line,) = warning_lines(res)
    assert inputs[odd].name in line and "no energy between 20 and 11025 Hz" in line
    records = {Path(r["path"]).name: r for r in map(json.loads, res.stdout.splitlines())}
    assert records[f"{odd}.wav"]["warnings"] and records["good.wav"]["warnings"] == []


def test_embed_flags_it_too(inputs: dict[str, Path], model: Path) -> None:
    res = run("embed", inputs["five_hz"], inputs["good"], "-m", model, "--format", "jsonl")
    assert res.exit_code == 0, res.stderr
    (line,) = warning_lines(res)
    assert "five_hz.wav" in line and "the band the model hears" in line


def test_a_legal_16_bit_file_is_not_called_mis_scaled(inputs: dict[str, Path], model: Path, tmp_path: Path) -> None:
    """The peak is measured on the decoded samples, before the resampler's ringing (±1.8 here)."""
    for res in (run("classify", inputs["full_scale_44k"], "-m", model),
                run("spectro", inputs["full_scale_44k"], "-o", tmp_path / "s", "--no-progress")):
        assert res.exit_code == 0, res.stderr
        assert "mis-scaled" not in res.stderr and not warning_lines(res)


def test_peak_meter_reads_the_peak_before_resampling(inputs: dict[str, Path]) -> None:
    from specmusic.audio import PeakMeter, stream_audio

    meter = PeakMeter(stream_audio(inputs["full_scale_44k"], sr=SR))
    resampled = max(float(np.abs(b).max()) for b in meter)
    assert resampled > 1.5 and meter.peak <= 1.0


# -- models whose metadata repeats a label -----------------------------------------------------
def test_a_model_naming_a_label_twice_is_refused(inputs: dict[str, Path], model: Path, tmp_path: Path) -> None:
    bad = _with_meta(model, tmp_path / "twice.onnx", labels=["rock", "jazz", "rock"])
    res = run("classify", inputs["good"], "-m", bad, "--json")
    line = assert_clean_failure(res, "twice.onnx")
    assert '"rock" twice' in line and res.stdout == ""


# -- generate invert: silence in, silence out; rows no feature config has ------------------------
@pytest.mark.parametrize("scale,value", [("db", -100.0), ("power", 0.0), ("magnitude", 0.0)])
def test_invert_of_digital_silence_is_silence(scale: str, value: float, tmp_path: Path) -> None:
    path = tmp_path / "silence.npy"
    np.save(path, np.full((128, 100), value, dtype=np.float32))
    res = run("generate", "invert", path, "-o", tmp_path / "out.wav", "--scale", scale)
    assert res.exit_code == 0, res.stderr
    (line,) = warning_lines(res)
    assert "silence.npy" in line and "digital silence" in line
    y, sr = sf.read(tmp_path / "out.wav")
    assert len(y) == 512 * 99 and not np.any(y)
    assert json.loads(res.stdout)["warnings"]


def test_invert_of_a_quiet_spectrogram_is_still_audio(tmp_path: Path) -> None:
    path = tmp_path / "quiet.npy"
    np.save(path, np.random.default_rng(0).normal(-90.0, 3.0, size=(64, 50)).astype(np.float32))
    res = run("generate", "invert", path, "-o", tmp_path / "out.wav")
    assert res.exit_code == 0 and not warning_lines(res), res.stderr
    assert np.abs(sf.read(tmp_path / "out.wav")[0]).max() > 0.01


@pytest.mark.parametrize("shape,args", [((100_000, 4), []), ((2000, 4), ["--n-fft", "2048"]),
                                        ((64, 8), ["--n-fft", "131072"])], ids=["100k_rows", "2000_rows", "fft"])
def test_invert_refuses_rows_no_feature_config_has(shape: tuple[int, int], args: list[str], tmp_path: Path) -> None:
    path = tmp_path / "rows.npy"
    np.save(path, np.zeros(shape, dtype=np.float32))
    res = run("generate", "invert", path, "-o", tmp_path / "out.wav", *args)
    line = assert_clean_failure(res, "rows.npy")
    assert "32769 rows" in line and not (tmp_path / "out.wav").exists()


# -- files that are not what their names say ----------------------------------------------------
@pytest.fixture
def odd_files(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "odd"
    root.mkdir()
    os.mkfifo(root / "fifo.wav")
    os.symlink("/dev/zero", root / "zero.wav")
    (root / "id3only.mp3").write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(10))
    return {"fifo": root / "fifo.wav", "zero": root / "zero.wav", "id3only": root / "id3only.mp3"}


@pytest.mark.parametrize("odd,says", [("fifo", "is a pipe (FIFO), not a regular file"),
                                      ("zero", "is a character device"),
                                      ("id3only", "holds only an ID3 tag (20 bytes) and no MPEG audio")])
def test_odd_files_are_called_what_they_are(odd_files: dict[str, Path], inputs: dict[str, Path], model: Path,
                                            odd: str, says: str, tmp_path: Path) -> None:
    for res in (run("classify", inputs["good"], odd_files[odd], "-m", model, "--json"),
                run("spectro", inputs["good"], odd_files[odd], "-o", tmp_path / "s", "--no-progress")):
        line = assert_clean_failure(res, odd_files[odd].name)
        assert says in line and "does not exist" not in line and "empty (0 bytes)" not in line
    assert [p.name for p in (tmp_path / "s").rglob("*.npz")] == ["good.npz"]


def test_a_folder_with_a_fifo_in_it_is_listed_without_hanging(odd_files: dict[str, Path], inputs: dict[str, Path],
                                                              tmp_path: Path) -> None:
    write(odd_files["fifo"].parent / "good.wav", tone(300.0, 1.0))
    res = run("describe", odd_files["fifo"].parent, "--json")
    assert res.exit_code == 1 and len(error_lines(res)) == 3
    assert json.loads(res.stdout)["clips"] == 1


# -- a newline in a file name never splits a line ------------------------------------------------
def test_a_newline_in_a_name_stays_on_its_line(model: Path, tmp_path: Path) -> None:
    silent = write(tmp_path / "sil\nent.wav", np.zeros(SR, dtype=np.float32))
    broken = tmp_path / "bro\nken.wav"
    broken.write_text("not audio")
    good = write(tmp_path / "good.wav", tone(330.0, 2.0))
    for res in (run("classify", silent, broken, good, "-m", model, "--json"),
                run("spectro", silent, broken, good, "-o", tmp_path / "s", "--no-progress")):
        line = assert_clean_failure(res, "bro\\nken.wav")
        (warning,) = warning_lines(res)
        assert "sil\\nent.wav: digital silence" in warning
        assert all(not text.startswith(("ent.wav", "ken.wav")) for text in res.stderr.splitlines()), line
    assert "good.npz" in [p.name for p in (tmp_path / "s").rglob("*.npz")]


# -- numpy and scikit-learn chatter ---------------------------------------------------------------
def test_report_raises_no_complex_or_convergence_warning(inputs: dict[str, Path], model: Path, tmp_path: Path) -> None:
    library = tmp_path / "lib.jsonl"
    tracks = [write(tmp_path / "t" / f"same{i}.wav", tone(330.0, 1.0)) for i in range(4)]  # 1 distinct point
    assert run("embed", *tracks, "-m", model, "-o", library).exit_code == 0
    samples = tmp_path / "samples"
    samples.mkdir()
    sf.write(samples / "x_0_000.wav", np.zeros(SR // 10, dtype=np.float32), SR)
    np.save(samples / "x_0_000.npy", np.ones((16, 20)) * (1 + 1j))  # an STFT saved complex
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for path in (library, samples):
            res = run("report", path, "-o", tmp_path / f"{path.name}.html")
            assert res.exit_code == 0, res.stderr
            assert "Warning" not in res.stderr
    noisy = [w for w in caught if w.category.__name__ in ("ComplexWarning", "ConvergenceWarning")]
    assert not noisy, [str(w.message) for w in noisy]
