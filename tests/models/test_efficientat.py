"""EfficientAT mn04_as port: front end, network, ONNX conversion, and what it hears in real music.

The torch reference of the front end below is EfficientAT's ``AugmentMelSTFT.forward`` in eval mode
(``models/preprocess.py``) written again without torchaudio: ``conv1d`` pre-emphasis, ``torch.stft``,
and the Kaldi mel matrix as ``torchaudio.compliance.kaldi.get_mel_banks`` computes it (float32
torch arithmetic). Tests of the real checkpoint and music need ``../shared`` (skipped without it);
torch and onnx tests are skipped where those are not installed.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from specmusic.errors import ConfigError, ModelError
from specmusic.features import (
    FeatureConfig,
    chunk_starts,
    compute_features,
    compute_features_stream,
)
from specmusic.kaldi import kaldi_mel_filterbank
from specmusic.models.audioset import read_audioset_labels
from specmusic.models.efficientat import (
    EFFICIENTAT_FEATURES,
    INPUT_NORM,
    make_divisible,
)
from specmusic.stft import hann, hann_window
from tests.conftest import SHARED, chirp, needs_shared

WEIGHTS = SHARED / "weights" / "efficientat"
CHECKPOINT = WEIGHTS / "mn04_as_mAP_432.pt"
CC = SHARED / "data" / "cc-music"
GTZAN = SHARED / "data" / "gtzan-sample"
#: numpy front end vs the torch reference, natural-log mel units (the network sees them divided by 5):
#: the worst band of a frame, and the mean over all. The rest is torch's float32 log in the filterbank
#: (one unit in the last place at some bins) and float32 FFTs.
FRONTEND_MAX, FRONTEND_MEAN = 5e-4, 1e-5


# -- the torch reference of EfficientAT's front end --------------------------------------------
def reference_mel_banks(torch: Any, n_mels: int, n_fft: int, sr: float, fmin: float, fmax: float) -> Any:
    """``get_mel_banks(n_mels, n_fft, sr, fmin, fmax, vtln_low=100, vtln_high=-500, vtln_warp_factor=1)``."""
    mel_lo, mel_hi = 1127.0 * math.log(1.0 + fmin / 700.0), 1127.0 * math.log(1.0 + fmax / 700.0)
    delta = (mel_hi - mel_lo) / (n_mels + 1)
    band = torch.arange(n_mels).unsqueeze(1)
    left, centre, right = mel_lo + band * delta, mel_lo + (band + 1.0) * delta, mel_lo + (band + 2.0) * delta
    mel = (1127.0 * (1.0 + (sr / n_fft) * torch.arange(n_fft / 2) / 700.0).log()).unsqueeze(0)
    up, down = (mel - left) / (centre - left), (right - mel) / (right - centre)
    return torch.max(torch.zeros(1), torch.min(up, down))


def reference_log_mel(torch: Any, wave: Any) -> Any:
    """EfficientAT's log mel of ``wave`` [batch, n] at 32 kHz, before ``(x + 4.5) / 5``: [batch, 128, frames]."""
    F = torch.nn.functional
    x = F.conv1d(wave.unsqueeze(1), torch.as_tensor([[[-0.97, 1.0]]])).squeeze(1)
    x = torch.stft(x, 1024, hop_length=320, win_length=800, center=True, normalized=False,
                   window=torch.hann_window(800, periodic=False), return_complex=True)  # fmt: skip
    power = torch.view_as_real(x).pow(2).sum(-1)
    banks = F.pad(reference_mel_banks(torch, 128, 1024, 32000, 0.0, 15000.0), (0, 1), mode="constant", value=0)
    return (torch.matmul(banks, power) + 0.00001).log()


def load32k(path: Path, seconds: float, offset: float = 0.0) -> np.ndarray:
    from specmusic.audio import load_audio

    y, _ = load_audio(path, sr=32000, offset=offset, duration=seconds)
    return y


# -- features: the new fields leave every existing config alone --------------------------------
def test_existing_configs_keep_their_dicts_and_digests() -> None:
    from specmusic.models.musicnn import MUSICNN_FEATURES

    old_keys = ["kind", "sample_rate", "n_fft", "hop_length", "n_mels", "fmin", "fmax", "top_db", "n_mfcc",
                "n_chroma", "n_bins", "mel_scale", "mel_norm", "pad_mode"]  # fmt: skip
    assert list(FeatureConfig().to_dict()) == old_keys
    digests = {"mel": "28cbbc9b399b", "stft": "52941bccc41c", "mfcc": "950b178ca5ba", "chroma": "e9617ebd2746",
               "cqt": "9d692ae7a529"}  # fmt: skip  (the digests before the fields existed)
    assert {k: FeatureConfig(kind=k).digest() for k in digests} == digests
    assert MUSICNN_FEATURES.digest() == "b31f31a35283"
    d = EFFICIENTAT_FEATURES.to_dict()
    assert {d[k] for k in ("preemphasis", "win_length", "window", "log_scale")} == {0.97, 800, "hann_symmetric", "ln"}
    assert FeatureConfig.from_dict(json.loads(json.dumps(d))) == EFFICIENTAT_FEATURES
    assert EFFICIENTAT_FEATURES.digest() != dataclasses.replace(EFFICIENTAT_FEATURES, preemphasis=0.0).digest()


@pytest.mark.parametrize("change", [{"win_length": 2048}, {"window": "hamming"}, {"preemphasis": 1.0},
                                    {"mel_norm": "slaney"}, {"top_db": 80.0}, {"kind": "mfcc"}])  # fmt: skip
def test_bad_front_end_fields_are_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        dataclasses.replace(EFFICIENTAT_FEATURES, **change)


def test_preemphasis_streams_and_counts_frames() -> None:
    """Blocks of any size give the one-shot features; frames follow the one-sample-shorter signal."""
    y = chirp(1.3, sr=32000)
    whole = compute_features(y, EFFICIENTAT_FEATURES)
    cuts = [0, 1, 1, 700, 5000, 5001, 20000, len(y)]
    blocks = [y[a:b] for a, b in itertools.pairwise(cuts)]
    streamed, n = compute_features_stream(iter(blocks), EFFICIENTAT_FEATURES)
    assert n == len(y)
    np.testing.assert_allclose(streamed, whole, rtol=0, atol=1e-5)
    for n_samples in (1, 319, 320, 321, 640, 641, 32000):
        frames = compute_features(y[:n_samples], EFFICIENTAT_FEATURES).shape[1]
        assert frames == EFFICIENTAT_FEATURES.n_frames(n_samples) == 1 + (n_samples - 1) // 320


def test_windows() -> None:
    w = hann_window(1024, win_length=800, symmetric=True)
    assert w.shape == (1024,) and not w.flags.writeable and w[:112].max() == 0 == w[912:].max()
    np.testing.assert_allclose(w[112:912], np.hanning(800), atol=1e-7)  # numpy's hanning is symmetric
    np.testing.assert_array_equal(hann_window(512), hann(512).astype(np.float32))
    assert make_divisible(16 * 0.4) == 8 and make_divisible(1280 * 0.4) == 512 and make_divisible(960 * 0.4) == 384


def test_kaldi_filterbank_is_torchaudios() -> None:
    torch = pytest.importorskip("torch")
    fb = kaldi_mel_filterbank(sr=32000, n_fft=1024, n_mels=128, fmin=0.0, fmax=15000.0)
    ref = reference_mel_banks(torch, 128, 1024, 32000, 0.0, 15000.0).numpy()
    assert fb.shape == (128, 513) and fb.dtype == np.float32 and not fb[:, 481:].any()  # 15 kHz: bin 480
    np.testing.assert_allclose(fb[:, :512], ref, rtol=0, atol=5e-5)
    with pytest.raises(ConfigError):
        kaldi_mel_filterbank(sr=32000, n_fft=1024, n_mels=128, fmax=17000.0)


# -- the real checkpoint ------------------------------------------------------------------------
@needs_shared
def test_state_dict_loads_strictly(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from specmusic.models.efficientat import load_efficientat

    net = load_efficientat(CHECKPOINT)
    assert sum(p.numel() for p in net.parameters()) == 983_599  # EfficientAT's README: 0.983 M
    logits, emb = net(torch.zeros(2, 1, 128, 100))
    assert logits.shape == (2, 527) and emb.shape == (2, 384)
    state = torch.load(CHECKPOINT, weights_only=True)
    del state["features.4.block.2.conc_se_layers.0.fc1.bias"]
    torch.save(state, tmp_path / "cut.pt")
    with pytest.raises(ModelError, match="not the mn04_as state dict"):
        load_efficientat(tmp_path / "cut.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(ModelError, match="not a readable torch state dict"):
        load_efficientat(tmp_path / "text.pt")


@needs_shared
def test_numpy_front_end_matches_the_torch_reference() -> None:
    torch = pytest.importorskip("torch")
    for name, offset in (("Kevin_MacLeod_-_Vibe_Ace.ogg", 20.0), ("sorohanro_-_solo-trumpet-06.ogg", 0.0)):
        y = load32k(CC / name, 4.0, offset)
        ours = compute_features(y, EFFICIENTAT_FEATURES)
        ref = reference_log_mel(torch, torch.from_numpy(y)[None])[0].numpy()
        assert ours.shape == ref.shape == (128, 400)
        diff = np.abs(ours - ref)
        assert diff.max() < FRONTEND_MAX and diff.mean() < FRONTEND_MEAN, (name, diff.max(), diff.mean())


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    if not CHECKPOINT.is_file():
        pytest.skip("../shared (real music and weights) is not beside the project")
    from specmusic.models.efficientat import convert_efficientat

    return convert_efficientat(CHECKPOINT, tmp_path_factory.mktemp("eat") / "audioset-mn04.onnx")


@needs_shared
def test_conversion_is_reproducible_and_described(converted: Path, tmp_path: Path) -> None:
    from specmusic.inference import load_model
    from specmusic.models.efficientat import MN04, convert_efficientat
    from specmusic.models.zoo.registry import EFFICIENTAT_CREDIT as CREDIT

    again = convert_efficientat(CHECKPOINT, tmp_path / "again.onnx")
    assert again.read_bytes() == converted.read_bytes()
    model = load_model(converted, threads=1)
    assert model.feature_config == EFFICIENTAT_FEATURES and model.input_norm == INPUT_NORM
    assert model.task == "multilabel" and (model.chunk_frames, model.chunk_hop_frames) == (1000, 1000)
    assert model.labels == read_audioset_labels(WEIGHTS / "audioset_class_labels_indices.csv")
    assert model.labels[0] == "Speech" and model.labels[137] == "Music" and len(model.labels) == 527
    credit = model.meta["pretrained"]
    assert credit["credit"] == CREDIT and credit["license"] == "MIT" and credit["name"] == "audioset-mn04"
    assert credit["checkpoint_sha256"] == MN04.sha256


@needs_shared
def test_onnx_through_analyse_track_matches_torch(converted: Path, tmp_path: Path) -> None:
    """12 s of real music at 32 kHz: two 10 s windows (one ends at the track's end), decoded in pieces."""
    torch = pytest.importorskip("torch")
    from specmusic.inference import analyse_track, load_model
    from specmusic.models.efficientat import load_efficientat

    y = load32k(CC / "Karissa_Hobbs_-_Lets_Go_Fishin.ogg", 12.0, 30.0)
    sf.write(tmp_path / "clip.wav", y, 32000, subtype="FLOAT")
    result = analyse_track(load_model(converted, threads=1), tmp_path / "clip.wav", windows=None,
                           outputs=("logits", "embedding"))  # fmt: skip
    ref = (reference_log_mel(torch, torch.from_numpy(y)[None])[0] - INPUT_NORM[0]) / INPUT_NORM[1]
    starts = chunk_starts(ref.shape[1], 1000, 1000)
    assert starts.tolist() == [0, 200] and result.windows == 2
    with torch.no_grad():
        logits, emb = load_efficientat(CHECKPOINT)(torch.stack([ref[None, :, s : s + 1000] for s in starts]))
    np.testing.assert_allclose(result.per_window["logits"], logits.numpy(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(result.per_window["embedding"], emb.numpy(), rtol=0, atol=1e-4)
    probs = torch.sigmoid(logits).mean(0).numpy()
    np.testing.assert_allclose(result.probabilities, probs, rtol=0, atol=1e-5)


#: A class each clip should hear among its 10 best (besides "Music", which must be among the 3 best).
EXPECTED = {
    "sorohanro_-_solo-trumpet-06": {"Trumpet"},
    "442789__lena-orsa__happy-music-pistachio-ice-cream-ragtime": {"Piano"},
    "Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra)": {"Violin, fiddle", "Orchestra"},
    "Kevin_MacLeod_-_Vibe_Ace": {"Vibraphone"},
    "admiralbob77_-_Choice_-_Drum-bass": {"Bass guitar", "Drum and bass"},
    "classical.00000": {"Classical music", "Orchestra"},
    "metal.00000": {"Heavy metal"},
    "reggae.00000": {"Reggae"},
    "blues.00000": {"Blues"},
    "hiphop.00000": {"Hip hop music"},
    "pop.00000": {"Pop music"},
    "disco.00000": {"Disco", "Funk"},
}


@needs_shared
def test_it_hears_music(converted: Path) -> None:
    from specmusic.inference import analyse_track, load_model

    model = load_model(converted, threads=1)
    paths = sorted(CC.glob("*.ogg")) + sorted(GTZAN.glob("*/*.au"))
    assert len(paths) == 18
    for path in paths:
        probs = analyse_track(model, path).probabilities
        top = [model.labels[i] for i in np.argsort(-probs)[:10]]
        print(f"{path.stem[:40]:<40} " + "; ".join(f"{label} {probs[model.labels.index(label)]:.2f}" for label in top[:5]))
        assert "Music" in top[:3], (path.name, top)
        assert path.stem not in EXPECTED or EXPECTED[path.stem] & set(top), (path.name, top)
