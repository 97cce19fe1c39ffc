"""Pons' MusiCNN/VGG port: the TF checkpoint reader, the torch networks, ONNX export, logC mel features.

The checkpoint reader is tested on a tiny tensor bundle written here (SSTable index + data file).
Tests that need the ``musicnn`` wheel (``pip download --no-deps musicnn``) read it from
``$SPECMUSIC_MUSICNN_WHEEL`` (the ``.whl`` or its unzipped folder) and are skipped without it; the
TensorFlow reference values they compare with were computed once with tensorflow-cpu 2.21 running
the wheel's own ``musicnn/models.py`` on the same input (TF is never a dependency).
"""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from specmusic.errors import ModelError
from specmusic.features import FeatureConfig, compute_features, mel_filterbank
from specmusic.models import musicnn
from specmusic.models.zoo import convert, registry
from specmusic.models.tf_checkpoint import list_checkpoint, read_checkpoint
from tests.conftest import chirp

WHEEL = os.environ.get("SPECMUSIC_MUSICNN_WHEEL")
needs_wheel = pytest.mark.skipif(not WHEEL, reason="set SPECMUSIC_MUSICNN_WHEEL to the musicnn wheel to run this")


# -- a tiny tensor bundle, written the way TensorFlow writes one ---------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    return _varint(number << 3) + _varint(value)


def _block(entries: list[tuple[bytes, bytes]]) -> bytes:
    """An SSTable block: prefix-compressed entries, one restart point, no compression."""
    out, prev = bytearray(), b""
    for key, value in entries:
        shared = 0
        while shared < min(len(prev), len(key)) and prev[shared] == key[shared]:
            shared += 1
        out += _varint(shared) + _varint(len(key) - shared) + _varint(len(value)) + key[shared:] + value
        prev = key
    return bytes(out) + struct.pack("<II", 0, 1)


def write_bundle(prefix: Path, tensors: dict[str, np.ndarray], per_block: int = 2) -> None:
    """``prefix.index`` (header entry, one entry a tensor, split over several data blocks) and
    ``prefix.data-00000-of-00001``."""
    data, entries = bytearray(), [(b"", _field(1, 1))]  # BundleHeaderProto: num_shards 1
    dtypes = {np.dtype("float32"): 1, np.dtype("int32"): 3, np.dtype("float64"): 2}
    for name in sorted(tensors):
        arr = np.array(tensors[name], order="C")  # (ascontiguousarray would make a scalar 1-d)
        shape = b"".join(_field(2, _field(1, d)) for d in arr.shape)
        raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        proto = _field(1, dtypes[arr.dtype]) + _field(2, shape) + _field(4, len(data)) + _field(5, len(raw))
        entries.append((name.encode(), proto))
        data += raw
    index, handles = bytearray(), []
    for i in range(0, len(entries), per_block):
        chunk = entries[i : i + per_block]
        block = _block(chunk)
        handles.append((chunk[-1][0], _varint(len(index)) + _varint(len(block))))
        index += block + b"\x00\x00\x00\x00\x00"  # trailer: no compression, crc (not checked)
    index_block = _block(handles)
    footer = _varint(0) + _varint(0) + _varint(len(index)) + _varint(len(index_block))
    index += index_block + b"\x00" * 5
    footer = footer.ljust(40, b"\x00") + struct.pack("<Q", 0xDB4775248B80FB57)
    Path(f"{prefix}.index").write_bytes(bytes(index) + footer)
    Path(f"{prefix}.data-00000-of-00001").write_bytes(bytes(data))


def test_checkpoint_reader_reads_every_tensor_of_a_written_bundle(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tensors = {
        "conv2d/kernel": rng.standard_normal((7, 3, 1, 4)).astype(np.float32),
        "conv2d/bias": rng.standard_normal(4).astype(np.float32),  # shares the prefix "conv2d/"
        "dense/kernel": rng.standard_normal((5, 2)).astype(np.float32),
        "global_step": np.array(1234, dtype=np.int32),
        "beta1_power": np.array(0.9, dtype=np.float64),
    }
    write_bundle(tmp_path / "model", tensors)
    listed = list_checkpoint(tmp_path / "model")
    assert listed["conv2d/kernel"] == (np.dtype("<f4"), (7, 3, 1, 4)) and listed["global_step"][1] == ()
    got = read_checkpoint(tmp_path / "model.index")  # the .index file is accepted for the prefix
    assert sorted(got) == sorted(tensors)
    for name, value in tensors.items():
        np.testing.assert_array_equal(got[name], value)


def test_checkpoint_reader_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.index").write_bytes(b"not a table" * 10)
    with pytest.raises(ModelError, match="bad.index is not a TensorFlow checkpoint index"):
        read_checkpoint(tmp_path / "bad")
    write_bundle(tmp_path / "ok", {"w": np.zeros(3, np.float32)})
    (tmp_path / "ok.data-00000-of-00001").write_bytes(b"\x00")  # truncated data file
    with pytest.raises(ModelError, match="truncated or corrupt"):
        read_checkpoint(tmp_path / "ok")
    with pytest.raises(ModelError, match="cannot read"):
        read_checkpoint(tmp_path / "missing")


def test_wheel_without_the_model_is_one_clear_error(tmp_path: Path) -> None:
    whl = tmp_path / "musicnn.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("musicnn/__init__.py", "")
    with pytest.raises(ModelError, match="has no musicnn/MSD_musicnn/.index"):
        musicnn.load_pons_model("pons-msd-musicnn", whl)
    with pytest.raises(ModelError, match="holds no musicnn/MTT_vgg/.index"):
        musicnn.load_pons_model("pons-mtt-vgg", tmp_path)


# -- features -----------------------------------------------------------------------------------
def test_logc_mel_features_equal_musicnns_librosa_pipeline() -> None:
    librosa = pytest.importorskip("librosa")
    fc = musicnn.MUSICNN_FEATURES
    fb = mel_filterbank(sr=fc.sample_rate, n_fft=fc.n_fft, n_mels=fc.n_mels)
    np.testing.assert_allclose(fb, librosa.filters.mel(sr=16000, n_fft=512, n_mels=96), atol=1e-8)
    y = chirp(2.0, sr=16000)
    ref = np.log10(10000 * librosa.feature.melspectrogram(y=y, sr=16000, hop_length=256, n_fft=512, n_mels=96) + 1)
    ours = compute_features(y, fc)
    assert ours.shape == ref.shape == (96, 1 + len(y) // 256)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_log_scale_is_additive_to_the_feature_config() -> None:
    assert FeatureConfig().log_scale == "db" and "log_scale" not in FeatureConfig().to_dict()  # as before the field
    assert FeatureConfig.from_dict({**FeatureConfig().to_dict(), "log_scale": "db"}) == FeatureConfig()
    assert musicnn.MUSICNN_FEATURES.to_dict()["log_scale"] == "logc"
    assert FeatureConfig.from_dict(musicnn.MUSICNN_FEATURES.to_dict()) == musicnn.MUSICNN_FEATURES
    assert musicnn.MUSICNN_FEATURES.digest() != FeatureConfig(**{**musicnn.MUSICNN_FEATURES.to_dict(),
                                                                 "log_scale": "db"}).digest()  # fmt: skip
    from specmusic.errors import ConfigError

    with pytest.raises(ConfigError, match="top_db None"):
        FeatureConfig(log_scale="logc")  # a dB floor makes no sense on logC values


# -- torch port and ONNX export -------------------------------------------------------------------
@pytest.mark.parametrize("arch, dims", [("musicnn", (50, 200, 753, 753)), ("vgg", (50, 256))])
def test_port_shapes_and_onnx_matches_torch(tmp_path: Path, arch: str, dims: tuple[int, ...]) -> None:
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net = musicnn.build_pons_model(arch)
    with torch.no_grad():  # non-trivial batch-norm statistics, as a trained network has
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    x = torch.rand(3, 1, 96, musicnn.CHUNK_FRAMES) * 3
    with torch.no_grad():
        outs = net(x)
    assert tuple(o.shape for o in outs) == tuple((3, d) for d in dims)
    path = tmp_path / "net.onnx"
    names = ["logits", "embedding", "mean_pool", "max_pool"][: len(dims)]
    torch.onnx.export(net, (x[:1],), str(path), input_names=["spec"], output_names=names,
                      dynamic_axes={n: {0: "batch"} for n in ["spec", *names]}, opset_version=17,
                      dynamo=False)  # fmt: skip
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"spec": x.numpy()})
    for ours, ref in zip(got, outs):
        np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-4, atol=1e-4)


# TF 2.21 running the wheel's models.py on _reference_input(): the first six logits.
TF_LOGITS = {
    "pons-msd-musicnn": [-4.300677, -7.594233, -6.233397, -8.836841, -4.563442, -8.035342],
    "pons-mtt-vgg": [-2.845785, -2.037062, -1.868683, -1.064839, -2.627194, -3.125017],
}


def _reference_input() -> np.ndarray:
    f, t = np.arange(96)[:, None], np.arange(187)[None, :]
    return (1.5 + np.sin(0.37 * f + 0.11 * t) + 0.5 * np.cos(0.05 * f * t / 7.0)).astype(np.float32)[None, None]


@needs_wheel
@pytest.mark.parametrize("name", sorted(TF_LOGITS))
def test_converted_model_matches_tensorflow(tmp_path: Path, name: str) -> None:
    pytest.importorskip("torch")
    from specmusic import inference

    out = convert.convert_pons_model(name, WHEEL, tmp_path / f"{name}.onnx")
    model = inference.load_model(out)
    logits = inference.run_chunks(model, _reference_input())
    np.testing.assert_allclose(logits[0, :6], TF_LOGITS[name], atol=1e-4)
    assert model.labels == list(registry.PONS_MODELS[name].labels) and model.chunk_frames == 187


def test_bundled_pons_models_load_and_classify_a_clip(tmp_path: Path) -> None:
    from specmusic import inference
    from specmusic.models.zoo import ensure

    names = [n for n in registry.BUNDLED_PONS if n in registry.PONS_MODELS]
    if not names:
        pytest.skip("no Pons model is bundled")
    from tests.conftest import write

    clip = write(tmp_path / "chirp.wav", chirp(7.0))
    for name in names:
        model = inference.load_model(ensure.ensure_model(name))
        assert model.feature_config == musicnn.MUSICNN_FEATURES
        probs = inference.predict_track(model, clip)
        assert probs.shape == (50,) and np.all((probs >= 0) & (probs <= 1))
        emb = inference.embed_track(model, clip)
        assert emb.ndim == 1 and np.all(np.isfinite(emb))


@needs_wheel
def test_the_bundled_pons_model_is_rebuilt_byte_for_byte_from_the_wheel(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from specmusic.models.zoo import bundled, rebuild

    for name in registry.BUNDLED_PONS:
        out = rebuild.bundle_network(name, weights=WHEEL, folder=tmp_path)
        assert out.read_bytes() == (bundled.BUNDLE_DIR / f"{name}.onnx").read_bytes()


def test_unbundled_pons_model_without_the_wheel_is_one_clear_error(tmp_path: Path, monkeypatch) -> None:
    from specmusic.fileio import CACHE_ENV
    from specmusic.models.zoo import ensure

    name = next((n for n in registry.PONS_MODELS if n not in registry.BUNDLED_PONS), None)
    if name is None:
        pytest.skip("every Pons model is bundled")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(convert.MUSICNN_WHEEL_ENV, raising=False)
    with pytest.raises(ModelError, match="needs the musicnn wheel — pip download --no-deps musicnn"):
        ensure.ensure_model(name)


@needs_wheel
def test_ensure_model_converts_a_pons_model_once_into_the_cache(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("torch")
    from specmusic.fileio import CACHE_ENV
    from specmusic.models.zoo import ensure

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    first = ensure.ensure_model("pons-mtt-vgg", weights=WHEEL)
    assert first.is_file() and first.with_name(first.name + ".sha256").is_file()
    mtime = first.stat().st_mtime_ns
    assert ensure.ensure_model("pons-mtt-vgg") == first and first.stat().st_mtime_ns == mtime  # no wheel needed now
