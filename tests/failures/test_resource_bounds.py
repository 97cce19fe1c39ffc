"""Resources bounded by what a file really holds: headers and metadata that promise the impossible are
refused when opened, big work is estimated before it starts, ``describe`` streams a file of any length."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from specmusic.describe.analyze import analyse_file
from specmusic.errors import AudioError, ConfigError, InputError
from specmusic.features import FeatureConfig
from specmusic.inversion import invert_array, inversion_memory
from tests.conftest import melody, tone, write
from tests.failures.conftest import wav_claiming_rate
from tests.failures.test_failures import _with_meta, assert_clean_failure, no_partial_files, run


@pytest.fixture(params=[1, 999, 1_000_000], ids=["1Hz", "999Hz", "1MHz"])
def lying(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return wav_claiming_rate(tmp_path / "in" / f"rate_{request.param}.wav", request.param)


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return write(tmp_path / "in" / "good.wav", tone(330.0, 2.0))


def test_a_lying_header_is_refused_when_opened(lying: Path) -> None:
    from specmusic.audio import read_info, stream_audio

    for open_it in (read_info, lambda p: next(iter(stream_audio(p)))):
        with pytest.raises(AudioError, match=r"sample rate is .* outside the 1000–768000 Hz"):
            open_it(lying)


def test_spectro_refuses_it_and_does_the_good_file(lying: Path, good: Path, tmp_path: Path) -> None:
    out = tmp_path / "specs"
    started = time.monotonic()
    res = run("spectro", good, lying, "-o", out, "--no-progress")
    assert time.monotonic() - started < 30  # not 90 s of decoding an 18-hour "file"
    line = assert_clean_failure(res, lying.name)
    assert "sample rate" in line
    assert (out / "good.npz").is_file() and not (out / f"{lying.stem}.npz").exists() and no_partial_files(out)
    assert [json.loads(r)["source"].endswith("good.wav") for r in open(out / "manifest.jsonl")] == [True]


def test_describe_classify_embed_refuse_it(lying: Path, good: Path, model: Path, tmp_path: Path) -> None:
    res = run("describe", good, lying, "--json")
    assert_clean_failure(res, lying.name)
    assert json.loads(res.stdout)["clips"] == 1
    res = run("classify", good, lying, "-m", model, "--json")
    assert_clean_failure(res, lying.name)
    assert [Path(json.loads(r)["path"]).name for r in res.stdout.splitlines()] == ["good.wav"]
    res = run("embed", good, lying, "-m", model, "-o", tmp_path / "lib.jsonl")
    assert_clean_failure(res, lying.name)


@pytest.mark.parametrize("rate", [10 ** 9, 500])
def test_a_model_whose_features_have_no_real_rate_is_refused(rate: int, model: Path, good: Path,
                                                             tmp_path: Path) -> None:
    bad = _with_meta(model, tmp_path / "liar.onnx", **{"feature_config.sample_rate": rate})
    started = time.monotonic()
    res = run("classify", good, "-m", bad)
    assert time.monotonic() - started < 10  # not 13 GB and 50 s deaf to Ctrl-C
    line = assert_clean_failure(res, "liar.onnx")
    assert "sample_rate" in line and "768000" in line and res.stdout == ""


def test_feature_configs_have_real_rates() -> None:
    with pytest.raises(ConfigError, match="outside the 1000–768000 Hz"):
        FeatureConfig(sample_rate=10 ** 9)
    FeatureConfig(sample_rate=8000)
    FeatureConfig(sample_rate=192000)


# -- generate invert: the memory is estimated from the shape, before any work ------------------
def test_invert_refuses_a_huge_array_before_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "long.npy"
    np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(128, 2_000_000)).flush()  # sparse
    started = time.monotonic()
    res = run("generate", "invert", path, "-o", tmp_path / "out.wav")
    assert time.monotonic() - started < 10
    line = assert_clean_failure(res, "long.npy")
    assert "GB of memory" in line and "at most" in line and not (tmp_path / "out.wav").exists()


def test_invert_array_estimate_is_the_measured_peak() -> None:
    config = FeatureConfig(kind="mel", n_mels=64, n_fft=1024, hop_length=256)
    mel = np.random.default_rng(0).normal(-40.0, 10.0, size=(64, 400)).astype(np.float32)
    tracemalloc.start()
    invert_array(mel, config=config, n_iter=2)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert 0.8 * peak < inversion_memory(64, 400, config) < 1.6 * peak
    with pytest.raises(InputError, match=r"at most \d+ frames"):
        invert_array(np.broadcast_to(np.float32(-40.0), (64, 10 ** 7)), config=config)  # no memory taken


# -- describe: memory bounded whatever the file's length ---------------------------------------
def test_describe_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    def peak_of(seconds: float) -> int:
        path = tmp_path / f"m{seconds:g}.wav"
        y = np.tile(melody(20.0), int(seconds // 20))
        sf.write(path, np.stack([y, 0.5 * y], axis=1), 22050, subtype="PCM_16")
        tracemalloc.start()
        analysis = analyse_file(str(path))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert analysis.duration == pytest.approx(len(y) / 22050)
        return peak

    short, long = peak_of(60.0), peak_of(300.0)
    assert long < 1.3 * short, (short, long)  # 5x the audio, about the same memory (a 20 s block)
