"""FCN / CRNN / MusiCNN: strict loading of the published checkpoints, front end parity, ONNX parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from specmusic.errors import ConfigError
from specmusic.features import compute_features, mel_filterbank
from specmusic.models.taggers import TAGGER_ARCHS, build_tagger, tagger_feature_config
from specmusic.models.zoo.convert import convert_tagger
from specmusic.models.zoo.registry import TAGGERS, PretrainedTagger
from tests.conftest import SHARED, chirp, needs_shared

WEIGHTS = SHARED / "weights" / "sota-music-tagging"


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True, map_location="cpu")


def _randomised(arch: str, seed: int = 0) -> torch.nn.Module:
    """A tagger with random weights and non-trivial BatchNorm statistics (eval mode)."""
    torch.manual_seed(seed)
    model = build_tagger(arch)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
        model.spec_bn.running_mean.fill_(-10.0)
        model.spec_bn.running_var.fill_(370.0)
    return model.eval()


def _db_input(arch: str, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """Random dB-mel-like input [batch, 1, 96, chunk_frames] (dB values around -10 ± 19)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1, 96, TAGGER_ARCHS[arch].chunk_frames, generator=g) * 19 - 10


def test_chunk_lengths_match_the_paper() -> None:
    for spec in TAGGER_ARCHS.values():
        assert spec.chunk_frames == 1 + spec.input_samples // 256
    assert TAGGER_ARCHS["fcn"].chunk_frames == TAGGER_ARCHS["crnn"].chunk_frames == 1813  # 29 s
    assert TAGGER_ARCHS["musicnn"].chunk_frames == 188  # 3 s


def test_unknown_arch_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="fcn, crnn, musicnn"):
        build_tagger("resnet")


@pytest.mark.parametrize("arch", sorted(TAGGER_ARCHS))
def test_onnx_export_matches_torch(arch: str, tmp_path: Path) -> None:
    import onnxruntime as ort

    model = _randomised(arch)
    ckpt = tmp_path / "best_model.pth"
    torch.save(model.state_dict(), ckpt)
    fake = PretrainedTagger("mtat", arch, sha256="0" * 64, size=0)
    onnx_path = convert_tagger(fake, ckpt, tmp_path / "m.onnx")
    x = _db_input(arch, batch=2, seed=1)  # exported with batch 1: the batch axis is dynamic
    with torch.no_grad():
        logits, embedding = model(x)
    assert logits.shape == (2, 50) and embedding.shape == (2, TAGGER_ARCHS[arch].embedding_dim)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got_logits, got_embedding = session.run(["logits", "embedding"], {"spec": x.numpy()})
    np.testing.assert_allclose(got_logits, logits.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(got_embedding, embedding.numpy(), atol=1e-4, rtol=1e-4)
    assert not list(tmp_path.glob(".convert-*"))  # the temp file was renamed, nothing left behind


@needs_shared
@pytest.mark.parametrize("name", sorted(TAGGERS))
def test_every_checkpoint_loads_strictly(name: str) -> None:
    tagger = TAGGERS[name]
    model = build_tagger(tagger.arch)
    result = model.load_state_dict(_state(WEIGHTS / tagger.relpath), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert model.spec_bn.running_var.item() > 1.0  # real statistics of dB input, not the init


@needs_shared
def test_stored_front_end_is_the_one_in_the_feature_config() -> None:
    state = _state(WEIGHTS / "mtat/fcn/best_model.pth")
    fc = tagger_feature_config()
    fb = mel_filterbank(sr=fc.sample_rate, n_fft=fc.n_fft, n_mels=fc.n_mels, fmax=fc.fmax, htk=True, norm="none")
    np.testing.assert_allclose(state["spec.mel_scale.fb"].numpy(), fb.T, atol=2e-5)
    periodic_hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)
    np.testing.assert_allclose(state["spec.spectrogram.window"].numpy(), periodic_hann, atol=1e-6)


@needs_shared
def test_numpy_features_match_the_checkpoint_front_end() -> None:
    """specmusic.features with tagger_feature_config == torch.stft + stored window + stored fb + 10 log10."""
    model = build_tagger("musicnn")
    model.load_state_dict(_state(WEIGHTS / "mtat/musicnn/best_model.pth"), strict=True)
    y = chirp(3.0, sr=16000, f0=60.0, f1=7000.0, seed=3)
    ours = compute_features(y, tagger_feature_config())
    with torch.no_grad():
        theirs = model.waveform_to_db(torch.from_numpy(y)[None]).numpy()[0, 0]
    assert ours.shape == theirs.shape == (96, 188)
    # float32 torch.stft vs float64 numpy rfft: a few thousandths of a dB in the faintest bins
    np.testing.assert_allclose(ours, theirs, atol=1e-2)
    assert float(np.abs(ours - theirs).mean()) < 1e-3
