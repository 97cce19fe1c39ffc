"""``specmusic generate``: training a tiny flow-matching U-Net, its pictures, seeded sampling, inversion, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from specmusic.cli.app import app
from specmusic.features import FeatureConfig, compute_features
from specmusic.generation import load_generator, sample_spectrograms
from specmusic.inversion import griffin_lim, mel_to_audio, spectral_convergence_db
from specmusic.stft import stft
from tests.conftest import chirp, tone, write
from tests.failures.test_failures import assert_clean_failure, run

TINY = ["--n-mels", "16", "--patch-frames", "16", "--base", "8", "--batch-size", "4", "--threads", "1",
        "--no-progress"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gen") / "genres"
    for li, (label, f) in enumerate((("low", 110.0), ("high", 1760.0))):
        for i in range(3):
            write(root / label / f"{label}.{i:05d}.wav", tone(f * (1 + 0.03 * i), 1.5, seed=10 * li + i))
    out = root.parent / "gen"
    result = CliRunner().invoke(app, ["generate", "train", str(root), "-o", str(out), "--epochs", "15", *TINY])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["steps"] > 0 and summary["stopped_by"] == "epochs"
    assert np.isfinite(summary["final_loss"]) and summary["final_loss"] < summary["first_loss"]
    return out


def test_train_writes_checkpoint_and_config(tiny_model: Path) -> None:
    meta = json.loads((tiny_model / "config.json").read_text())
    assert meta["labels"] == ["high", "low"] and meta["config"]["n_mels"] == 16
    assert (tiny_model / "checkpoint.pt").is_file()
    gen = load_generator(tiny_model)
    assert gen.labels == ["high", "low"] and gen.step > 0 and gen.backend == "onnx"


def test_train_writes_a_self_contained_onnx_of_the_ema_network(tiny_model: Path) -> None:
    import onnx
    import onnxruntime as ort

    proto = onnx.load(tiny_model / "model.onnx", load_external_data=False)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    assert not list(tiny_model.glob("*.data"))
    meta = json.loads({p.key: p.value for p in proto.metadata_props}["specmusic-generator"])
    config = json.loads((tiny_model / "config.json").read_text())
    assert {k: meta[k] for k in ("config", "labels", "step", "format_version")} == {
        k: config[k] for k in ("config", "labels", "step", "format_version")}
    session = ort.InferenceSession(str(tiny_model / "model.onnx"), providers=["CPUExecutionProvider"])
    inputs = {i.name: (i.shape, i.type) for i in session.get_inputs()}
    assert inputs == {"x": (["batch", 1, 16, "frames"], "tensor(float)"), "t": (["batch"], "tensor(float)"),
                      "label": (["batch"], "tensor(int64)")}
    for batch, frames in ((1, 8), (5, 48)):  # any batch, any multiple of GenConfig.multiple
        v = session.run(["v"], {"x": np.zeros((batch, 1, 16, frames), np.float32), "t": np.zeros(batch, np.float32),
                                "label": np.full(batch, 2)})[0]  # 2 = "no label"
        assert v.shape == (batch, 1, 16, frames) and np.isfinite(v).all()


@pytest.mark.parametrize(("label", "guidance"), [("low", 2.0), ("high", 1.0), (None, 2.0)])
def test_onnx_sampling_matches_torch_sampling(tiny_model: Path, label: str | None, guidance: float) -> None:
    """Same seeds, same samples: guided, unguided and "no label", through onnxruntime and through torch."""
    on_onnx, on_torch = load_generator(tiny_model, backend="onnx"), load_generator(tiny_model, backend="torch")
    assert (on_onnx.backend, on_torch.backend) == ("onnx", "torch")
    kwargs = {"n": 3, "label": label, "seconds": 1.0, "steps": 3, "guidance": guidance, "seed": 11, "batch_size": 2}
    a, b = sample_spectrograms(on_onnx, **kwargs), sample_spectrograms(on_torch, **kwargs)
    assert a.shape == b.shape == (3, 16, 44) and a.std() > 0.05  # not all clipped or flat
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)  # measured: ~3e-7


def test_unconditional_model_exports_without_a_label_input(tmp_path: Path) -> None:
    from specmusic.generation import GenConfig, export_generator
    from specmusic.generation.sample import (
        OnnxNetwork,
        TorchNetwork,
        _session,
        make_unet,
    )

    config = GenConfig(n_mels=16, patch_frames=16, base=8)
    unet = make_unet(config, 0)
    for p in unet.parameters():  # the output layer starts at zero: make the comparison mean something
        p.data.normal_(0.0, 0.1)
    export_generator(unet, tmp_path / "model.onnx", config=config, labels=[], step=0)
    session = _session(tmp_path / "model.onnx", threads=1)
    assert [i.name for i in session.get_inputs()] == ["x", "t"]
    x = np.random.default_rng(0).standard_normal((2, 1, 16, 24)).astype(np.float32)
    t = np.array([0.1, 0.7], np.float32)
    np.testing.assert_allclose(OnnxNetwork(session)(x, t, None), TorchNetwork(unet.eval())(x, t, None), atol=1e-4)


def test_a_folder_without_model_onnx_is_converted_once(tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    old = tmp_path / "old"
    shutil.copytree(tiny_model, old)
    (old / "model.onnx").unlink()  # as trained by a specmusic that wrote no model.onnx
    said: list[str] = []
    gen = load_generator(old, log=said.append)
    assert gen.backend == "onnx" and (old / "model.onnx").is_file()
    assert len(said) == 1 and "no model.onnx" in said[0] and "converted checkpoint.pt" in said[0]
    again: list[str] = []
    assert load_generator(old, log=again.append).backend == "onnx" and again == []
    np.testing.assert_array_equal(sample_spectrograms(gen, n=1, seconds=0.5, steps=2, seed=1),
                                  sample_spectrograms(load_generator(tiny_model), n=1, seconds=0.5, steps=2, seed=1))


def test_config_and_model_onnx_alone_are_a_model(tiny_model: Path, tmp_path: Path) -> None:
    """What a machine without torch needs of a folder: config.json and model.onnx (no checkpoint)."""
    import shutil

    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.onnx"):
        shutil.copy(tiny_model / name, bare / name)
    gen = load_generator(bare / "model.onnx")
    assert gen.backend == "onnx" and gen.labels == ["high", "low"]
    np.testing.assert_array_equal(sample_spectrograms(gen, n=1, label="low", seconds=0.5, steps=2, seed=2),
                                  sample_spectrograms(load_generator(tiny_model), n=1, label="low", seconds=0.5,
                                                      steps=2, seed=2))


def test_a_stale_model_onnx_is_not_sampled(tiny_model: Path, tmp_path: Path) -> None:
    """config.json of a later step than model.onnx (a run resumed since): never sample the old network."""
    import shutil

    from specmusic.errors import ModelError

    run = tmp_path / "run"
    shutil.copytree(tiny_model, run)
    meta = json.loads((run / "config.json").read_text())
    meta["step"] += 1
    (run / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="model.onnx is of step .* but config.json of step"):
        load_generator(run, backend="onnx")
    said: list[str] = []
    assert load_generator(run, log=said.append).backend == "onnx" and "converted" in said[0]  # with torch: re-exported
    (run / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="model.onnx is unreadable"):
        load_generator(run, backend="onnx")


def _assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_draws_loss_curve_and_samples(tiny_model: Path) -> None:
    import torch

    _assert_png(tiny_model / "loss.png")
    _assert_png(tiny_model / "samples.png")
    ckpt = torch.load(tiny_model / "checkpoint.pt", map_location="cpu", weights_only=True)
    history = ckpt["loss_history"]
    assert len(history) == ckpt["step"] and bool(torch.isfinite(history).all())
    assert not list(tiny_model.glob(".*tmp*"))  # atomic writes leave no temporary files


def test_minutes_budget_stops_training(tiny_model: Path, tmp_path: Path) -> None:
    data = tiny_model.parent / "genres"
    result = CliRunner().invoke(app, ["generate", "train", str(data), "-o", str(tmp_path / "g"), "--minutes", "0.002",
                                      *TINY, "--threads", "0"])  # the last --threads wins: 0 = the idle cores
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["stopped_by"] == "minutes" and summary["seconds"] < 5


def test_train_resumes_from_its_checkpoint(tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    data, run = tiny_model.parent / "genres", tmp_path / "g"
    shutil.copytree(tiny_model, run)
    first = json.loads((run / "config.json").read_text())["step"]
    result = CliRunner().invoke(app, ["generate", "train", str(data), "-o", str(run), "--epochs", "25", *TINY])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["resumed_from"] == first and summary["steps"] > first and "resumed" in result.stderr
    assert load_generator(run).step == summary["steps"]
    import torch

    def history(folder: Path) -> torch.Tensor:
        return torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True)["loss_history"]

    assert len(history(run)) == summary["steps"]  # the loss curve spans both sessions
    assert torch.equal(history(run)[:first], history(tiny_model))
    _assert_png(run / "loss.png")
    assert load_generator(run, backend="onnx").step == summary["steps"]  # model.onnx of the resumed run's end
    # already at its epochs: nothing to do, still a clean exit and valid JSON; a folder of an older
    # specmusic (no model.onnx) gets one
    (run / "model.onnx").unlink()
    again = CliRunner().invoke(app, ["generate", "train", str(data), "-o", str(run), "--epochs", "25", *TINY])
    assert again.exit_code == 0, again.stderr
    assert "wrote" in again.stderr and load_generator(run, backend="onnx").step == summary["steps"]
    assert json.loads(again.stdout)["steps"] == summary["steps"] and json.loads(again.stdout)["final_loss"] is None
    assert json.loads((run / "config.json").read_text())["training"]["final_loss"] == summary["final_loss"]  # kept
    # other settings in the same folder: one clear line; --force starts over
    other = CliRunner().invoke(app, ["generate", "train", str(data), "-o", str(run), "--epochs", "1",
                                     *TINY[:4], "--base", "12", *TINY[6:]])
    assert other.exit_code == 1 and "other settings or labels" in other.stderr and "--force" in other.stderr
    fresh = CliRunner().invoke(app, ["generate", "train", str(data), "-o", str(run), "--epochs", "1", "--force",
                                     *TINY[:4], "--base", "12", *TINY[6:]])
    assert fresh.exit_code == 0, fresh.stderr
    assert json.loads(fresh.stdout)["resumed_from"] == 0
    fresh_gen = load_generator(run, backend="onnx")  # the old run's model.onnx was replaced, not left behind
    assert fresh_gen.config.base == 12 and fresh_gen.step == json.loads(fresh.stdout)["steps"]


def test_sampling_is_seeded(tiny_model: Path) -> None:
    gen = load_generator(tiny_model)
    a = sample_spectrograms(gen, n=2, label="low", seconds=1.0, steps=4, seed=3)
    b = sample_spectrograms(gen, n=2, label="low", seconds=1.0, steps=4, seed=3)
    c = sample_spectrograms(gen, n=2, label="low", seconds=1.0, steps=4, seed=4)
    assert a.shape[:2] == (2, 16) and np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.min() >= -1.0 and a.max() <= 1.0


def test_a_sample_is_the_same_whatever_the_count_and_batches(tiny_model: Path) -> None:
    gen = load_generator(tiny_model)
    few = sample_spectrograms(gen, n=3, label="low", seconds=1.0, steps=2, seed=5, batch_size=1)
    many = sample_spectrograms(gen, n=5, label="low", seconds=1.0, steps=2, seed=5, batch_size=2)
    np.testing.assert_allclose(few, many[:3], atol=1e-5)


def test_samples_are_written_as_they_are_drawn(tiny_model: Path, tmp_path: Path) -> None:
    from specmusic.generation import write_samples

    gen = load_generator(tiny_model)
    records = write_samples(gen, tmp_path, n=100_000, label="high", seconds=0.5, steps=1, gl_iter=1, png=False)
    first = next(records)  # one batch drawn, its first sample written: nothing waits for the other 99 999
    assert Path(first["path"]).is_file() and first["index"] == 0
    assert len(list(tmp_path.glob("*.wav"))) == 1 and len(list(tmp_path.glob("*.npy"))) == 1
    records.close()


def test_sample_length_is_bounded_with_the_reason() -> None:
    from specmusic.errors import InputError
    from specmusic.generation.config import MAX_SAMPLE_SECONDS, check_sample_seconds

    help_text = CliRunner().invoke(app, ["generate", "sample", "--help"], terminal_width=200).stdout
    assert f"(at most {MAX_SAMPLE_SECONDS:g} s)" in " ".join(help_text.split())

    check_sample_seconds(MAX_SAMPLE_SECONDS)
    for bad in (MAX_SAMPLE_SECONDS * 1.01, 1e9, float("inf"), float("nan"), 0.0):
        with pytest.raises(InputError, match="--seconds"):
            check_sample_seconds(bad)


def test_sample_cli_writes_clean_audio(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["generate", "sample", str(tiny_model), "--count", "2", "-l", "high",
                                      "--seconds", "1", "--steps", "4", "--gl-iter", "8", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    wavs = sorted(out.glob("*.wav"))
    assert len(wavs) == 2 and len(list(out.glob("*.png"))) == 2
    y, sr = sf.read(wavs[0], dtype="float64")
    assert sr == 22050 and abs(len(y) / sr - 1.0) < 0.1
    assert np.max(np.abs(y)) <= 10 ** (-1 / 20) + 1e-3  # peaks ≤ -1 dBFS: no clipping
    assert abs(float(np.mean(y))) < 1e-3  # no DC
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["index"] for r in rows] == [0, 1] and all(r["label"] == "high" for r in rows)


def test_invert_and_the_package_import_no_torch(tmp_path: Path) -> None:
    y = chirp(1.0).astype(np.float32)
    np.save(tmp_path / "m.npy", compute_features(y, FeatureConfig(top_db=None)))
    code = (
        "import sys\n"
        "import specmusic.generation, specmusic.cli.generate\n"
        "from specmusic.cli.app import app\n"
        f"app(['generate', 'invert', {str(tmp_path / 'm.npy')!r}, '-o', {str(tmp_path / 'm.wav')!r},"
        " '--gl-iter', '2'], standalone_mode=False)\n"
        "print('TORCH', 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "TORCH False" in out.stdout and (tmp_path / "m.wav").is_file()


def test_package_exports_resolve() -> None:
    import specmusic.generation as generation

    assert set(generation.__all__) == set(generation._HOMES)
    for name in generation.__all__:
        assert getattr(generation, name) is not None
    with pytest.raises(AttributeError):
        generation.TrainResult


def test_unknown_label_is_one_clear_error(tiny_model: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["generate", "sample", str(tiny_model), "--label", "jazz", "-o", str(tmp_path / "o")])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "jazz" in lines[0] and "high, low" in lines[0]


def test_model_folder_from_another_version(tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    other = tmp_path / "old"
    shutil.copytree(tiny_model, other)
    meta = json.loads((other / "config.json").read_text())
    meta["format_version"] = 999
    (other / "config.json").write_text(json.dumps(meta))
    result = CliRunner().invoke(app, ["generate", "sample", str(other), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1 and "format" in result.stderr and "retrain" in result.stderr


def test_invert_wrong_shape_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 3, 4), dtype=np.float32))
    result = CliRunner().invoke(app, ["generate", "invert", str(bad), "-o", str(tmp_path / "x.wav")])
    assert result.exit_code == 1 and "bad.npy" in result.stderr
    assert not (tmp_path / "x.wav").exists()


def test_invert_a_real_mel_back_to_audio(tmp_path: Path) -> None:
    y = chirp(2.0).astype(np.float32)
    mel_db = compute_features(y, FeatureConfig(top_db=None))
    path = tmp_path / "chirp_mel.npy"
    np.save(path, mel_db)
    result = CliRunner().invoke(app, ["generate", "invert", str(path), "-o", str(tmp_path / "c.wav"), "--gl-iter", "32"])
    assert result.exit_code == 0, result.stderr
    z, sr = sf.read(tmp_path / "c.wav", dtype="float64")
    assert sr == 22050 and abs(len(z) - len(y)) <= 512
    # the inverted audio has (nearly) the mel spectrogram it was made from
    back = compute_features(z.astype(np.float32), FeatureConfig(top_db=None))
    n = min(back.shape[1], mel_db.shape[1])
    diff = (back[:, :n] - back[:, :n].max()) - (mel_db[:, :n] - mel_db[:, :n].max())
    loud = mel_db[:, :n] > mel_db[:, :n].max() - 40
    assert np.median(np.abs(diff[loud])) < 3.0


def test_fast_griffin_lim_converges_better_than_plain() -> None:
    y = chirp(1.0).astype(np.float64)
    mag = np.abs(stft(y))
    fast, sc_fast = griffin_lim(mag, n_iter=32, momentum=0.99)
    _, sc_plain = griffin_lim(mag, n_iter=32, momentum=0.0)
    assert sc_fast == pytest.approx(spectral_convergence_db(fast, mag), abs=0.01)
    assert sc_fast < sc_plain and sc_fast < -10


def test_mel_to_audio_is_loudness_normalised() -> None:
    y = 0.01 * chirp(1.0).astype(np.float32)
    mel_db = compute_features(y, FeatureConfig(top_db=None))
    audio, _ = mel_to_audio(mel_db, config=FeatureConfig(top_db=None), n_iter=8)
    rms_db = 20 * np.log10(np.sqrt(np.mean(audio**2)))
    assert np.max(np.abs(audio)) <= 10 ** (-1 / 20) + 1e-6 and rms_db > -30


# -- the commands' library functions, without Typer --------------------------------------------------------
def test_invert_file_writes_the_audio_and_says_how_close_it_is(tmp_path: Path) -> None:
    from specmusic.generation import invert_file

    path = tmp_path / "m.npy"
    np.save(path, compute_features(chirp(1.0).astype(np.float32), FeatureConfig(n_mels=32, top_db=None)))
    done = invert_file(path, tmp_path / "m.wav", n_mels=32, gl_iter=4)
    assert (tmp_path / "m.wav").is_file() and (done.kind, done.shape[0]) == ("mel", 32)
    assert done.to_dict() == {"input": str(path), "output": str(tmp_path / "m.wav"), "seconds": round(done.seconds, 3),
                              "spectral_convergence_db": round(done.spectral_convergence_db, 2)}
    from specmusic.errors import InputError

    with pytest.raises(InputError):  # an output no format can be written to: refused before any work
        invert_file(tmp_path / "missing.npy", tmp_path / "m.txt")


def test_sample_to_folder_checks_first_and_draws_as_consumed(tiny_model: Path, tmp_path: Path) -> None:
    from specmusic.errors import InputError
    from specmusic.generation import sample_to_folder

    with pytest.raises(InputError, match="jazz"):  # the label is checked before anything is drawn
        sample_to_folder(tiny_model, tmp_path / "no", n=1, label="jazz")
    lines: list[str] = []
    records = sample_to_folder(tiny_model, tmp_path / "out", n=2, label="low", seconds=0.5, steps=1, gl_iter=1,
                               png=False, progress=False, log=lines.append)
    assert lines[-1] == "2 × 0.5 s of 'low', 1 steps, seed 0" and not list((tmp_path / "out").iterdir())
    assert [r["index"] for r in records] == [0, 1] and len(list((tmp_path / "out").glob("*.wav"))) == 2


def test_train_generator_from_files_needs_a_stopping_rule_before_reading(tmp_path: Path) -> None:
    from specmusic.errors import ConfigError
    from specmusic.generation import train_generator_from_files

    with pytest.raises(ConfigError, match="no stopping rule"):
        train_generator_from_files([tmp_path / "nothing-here"], tmp_path / "gen")
    assert not (tmp_path / "gen").exists()


# -- refused up front, and names built from labels and stems (from the fault corpus's file) ------
def test_generate_sample_refuses_an_absurd_length_before_loading(tmp_path: Path) -> None:
    line = assert_clean_failure(run("generate", "sample", tmp_path / "no-model", "--seconds", "1e9", "-o", tmp_path / "o"))
    assert "--seconds" in line and "120" in line


def test_generate_train_on_a_missing_path(tmp_path: Path) -> None:
    assert_clean_failure(run("generate", "train", tmp_path / "nope", "--epochs", "1", "-o", tmp_path / "g"), "nope")


def test_samples_of_a_label_with_dots_get_a_file_each(dotted_tree: Path, tmp_path: Path) -> None:
    gen, out = tmp_path / "gen", tmp_path / "out"
    assert run("generate", "train", dotted_tree, "-o", gen, "--epochs", "1", *TINY).exit_code == 0
    res = run("generate", "sample", gen, "--label", "wesnoth-1.16-music", "-n", "4", "--seconds", "0.5",
              "--steps", "1", "--gl-iter", "1", "-o", out)
    assert res.exit_code == 0, res.stderr
    paths = [json.loads(line)["path"] for line in res.stdout.splitlines()]
    assert len(set(paths)) == 4 and all(Path(p).is_file() for p in paths)
    assert sorted(p.name for p in out.glob("*.wav")) == [f"wesnoth-1.16-music_0_{i:03d}.wav" for i in range(4)]
    assert len(list(out.glob("*.png"))) == len(list(out.glob("*.npy"))) == 4
