"""The one feature implementation: librosa parity, streaming = one-shot, configs."""

from __future__ import annotations

import numpy as np
import pytest

from specmusic.errors import ConfigError
from specmusic.features import (
    FeatureConfig,
    compute_features,
    compute_features_stream,
    mel_filterbank,
    power_spectrogram,
)
from tests.conftest import chirp

librosa = pytest.importorskip("librosa")


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.fixture(scope="module")
def signal() -> np.ndarray:
    return chirp(3.7, sr=22050, seed=3)


def test_mel_filterbank_matches_librosa() -> None:
    ours = mel_filterbank(sr=22050, n_fft=2048, n_mels=128)
    ref = librosa.filters.mel(sr=22050, n_fft=2048, n_mels=128)
    assert ours.shape == ref.shape == (128, 1025)
    assert rel_err(ours, ref) < 1e-5
    htk = mel_filterbank(sr=16000, n_fft=512, n_mels=96, htk=True, norm="none")
    ref_htk = librosa.filters.mel(sr=16000, n_fft=512, n_mels=96, htk=True, norm=None)
    assert rel_err(htk, ref_htk) < 1e-5


def test_log_mel_matches_librosa_within_1e_4(signal: np.ndarray) -> None:
    ref_power = librosa.feature.melspectrogram(y=signal, sr=22050, n_fft=2048, hop_length=512, n_mels=128)
    ref = librosa.power_to_db(ref_power)
    ours = compute_features(signal)
    assert ours.shape == ref.shape
    assert ours.dtype == np.float32
    assert rel_err(ours, ref) <= 1e-4
    assert np.linalg.norm(ours - ref) / np.linalg.norm(ref) <= 1e-4


def test_power_stft_matches_librosa(signal: np.ndarray) -> None:
    ref = np.abs(librosa.stft(signal, n_fft=2048, hop_length=512)) ** 2
    assert rel_err(power_spectrogram(signal), ref) < 1e-4


def test_mfcc_and_chroma_match_librosa(signal: np.ndarray) -> None:
    ref = librosa.feature.mfcc(y=signal, sr=22050, n_mfcc=20)
    ours = compute_features(signal, FeatureConfig(kind="mfcc"))
    assert ours.shape == ref.shape
    assert rel_err(ours, ref) < 1e-4
    ref_c = librosa.feature.chroma_stft(y=signal, sr=22050, tuning=0.0)
    ours_c = compute_features(signal, FeatureConfig(kind="chroma"))
    assert np.max(np.abs(ours_c - ref_c)) < 1e-4


def test_cqt_shape_and_range(signal: np.ndarray) -> None:
    out = compute_features(signal, FeatureConfig(kind="cqt"))
    assert out.shape == (84, 1 + len(signal) // 512)
    assert out.max() - out.min() <= 80.0 + 1e-3


@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
@pytest.mark.parametrize("block", [700, 4096, 100_000])
def test_streaming_equals_one_shot(signal: np.ndarray, pad_mode: str, block: int) -> None:
    config = FeatureConfig(pad_mode=pad_mode)
    whole = compute_features(signal, config)
    blocks = [signal[i : i + block] for i in range(0, len(signal), block)]
    streamed, n = compute_features_stream(blocks, config)
    assert n == len(signal)
    np.testing.assert_allclose(streamed, whole, atol=1e-3)


def test_reflect_padding_matches_numpy_pad(signal: np.ndarray) -> None:
    ref_frames = np.pad(signal, 1024, mode="reflect")
    ref = np.abs(librosa.stft(ref_frames, n_fft=2048, hop_length=512, center=False)) ** 2
    ours = power_spectrogram(signal, pad_mode="reflect")
    assert ours.shape == ref.shape
    assert rel_err(ours, ref) < 1e-4


def test_frame_count_and_rows() -> None:
    for kind, rows in (("mel", 128), ("stft", 1025), ("mfcc", 20), ("chroma", 12)):
        cfg = FeatureConfig(kind=kind)
        out = compute_features(chirp(1.0), cfg)
        assert out.shape == (cfg.n_rows, cfg.n_frames(22050)) == (rows, 44)


def test_config_digest_is_stable_and_kind_specific() -> None:
    a = FeatureConfig()
    assert a.digest() == FeatureConfig().digest()
    assert a.digest() != FeatureConfig(n_mels=64).digest()
    assert a.digest() == FeatureConfig(n_mfcc=13).digest()  # irrelevant to mel
    assert FeatureConfig.from_dict(a.to_dict()) == a


@pytest.mark.parametrize(
    "kwargs",
    [{"kind": "wavelet"}, {"n_fft": 2047}, {"fmax": 20000.0}, {"hop_length": 0}, {"kind": "mfcc", "n_mfcc": 500}],
)
def test_bad_configs_raise_config_error(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        FeatureConfig(**kwargs)


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="newer specmusic"):
        FeatureConfig.from_dict({**FeatureConfig().to_dict(), "wavelets": 3})
