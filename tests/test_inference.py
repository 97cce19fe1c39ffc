"""onnxruntime inference: model loading and validation, chunking, track predictions, no torch/librosa."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.conftest import chirp, write
from specmusic.errors import AudioError, ConfigError, ModelError
from specmusic.features import FeatureConfig, chunk_features, chunk_starts, compute_features
from specmusic.inference import (
    embed_track,
    load_model,
    predict_files,
    predict_track,
    top_k,
)

FC = FeatureConfig(n_mels=32)


def _export(path: Path, labels: list[str], fc: FeatureConfig = FC, chunk: int = 40, norm=(-40.0, 15.0)) -> Path:
    import torch

    from specmusic.export import export_onnx, model_metadata
    from specmusic.models.cnn import CNNConfig, SpecCNN

    torch.manual_seed(1)
    net = SpecCNN(CNNConfig(n_classes=len(labels), channels=(8, 16)))
    meta = model_metadata(labels=labels, feature_config=fc, chunk_frames=chunk, chunk_hop_frames=chunk // 2,
                          input_norm=norm, arch="cnn")
    return export_onnx(net, path, n_rows=fc.n_rows, metadata=meta)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("model") / "model.onnx", ["low", "mid", "high"])


def _identity_onnx(path: Path, metadata: str | None) -> Path:
    x = helper.make_tensor_value_info("spec", TensorProto.FLOAT, ["b", 1, 32, 40])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", 1, 32, 40])
    graph = helper.make_graph([helper.make_node("Identity", ["spec"], ["logits"])], "g", [x], [y])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    if metadata is not None:
        helper.set_model_props(proto, {"specmusic": metadata})
    onnx.save(proto, str(path))
    return path


def test_load_model_reads_metadata(model_path: Path) -> None:
    model = load_model(model_path)
    assert model.labels == ["low", "mid", "high"] and model.task == "multiclass"
    assert model.feature_config == FC and model.chunk_frames == 40 and model.chunk_hop_frames == 20
    assert model.input_norm == (-40.0, 15.0) and model.meta["arch"] == "cnn"


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "nope.onnx")


def test_not_onnx(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_text("definitely not protobuf\n")
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        load_model(bad)


def test_onnx_without_metadata(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no 'specmusic' metadata"):
        load_model(_identity_onnx(tmp_path / "plain.onnx", None))


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"format_version": 1, "task": "multiclass"}), "lacks labels"),
        (json.dumps({"format_version": 99, "task": "multiclass", "labels": ["a"], "feature_config": {},
                     "chunk_frames": 4, "chunk_hop_frames": 2}), "newer"),
        (json.dumps({"format_version": 1, "task": "regression", "labels": ["a"], "feature_config": {},
                     "chunk_frames": 4, "chunk_hop_frames": 2}), "unknown task"),
        (json.dumps({"format_version": 1, "task": "multiclass", "labels": ["a"], "feature_config": {"kind": "wavelet"},
                     "chunk_frames": 4, "chunk_hop_frames": 2}), "bad feature_config"),
    ],
)
def test_malformed_metadata(tmp_path: Path, meta: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        load_model(_identity_onnx(tmp_path / "m.onnx", meta))


def test_chunk_starts_cover_the_track() -> None:
    assert chunk_starts(10, 40, 20).tolist() == [0]
    assert chunk_starts(100, 40, 20).tolist() == [0, 20, 40, 60]
    assert chunk_starts(105, 40, 20).tolist() == [0, 20, 40, 60, 65]  # last chunk ends at the end


def test_chunk_features_wraps_short_tracks() -> None:
    spec = np.arange(3 * 7, dtype=np.float32).reshape(3, 7)
    chunks = chunk_features(spec, 16, 8)
    assert chunks.shape == (1, 1, 3, 16)
    np.testing.assert_array_equal(chunks[0, 0, :, 7:14], spec)
    long = np.random.default_rng(0).standard_normal((3, 50)).astype(np.float32)
    chunks = chunk_features(long, 16, 8)
    np.testing.assert_array_equal(chunks[-1, 0], long[:, -16:])


def test_predict_track_from_audio_and_features(model_path: Path, chirp_mono: Path) -> None:
    model = load_model(model_path)
    probs = predict_track(model, chirp_mono)
    assert probs.shape == (3,) and probs.dtype == np.float32
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    spec = compute_features(chirp(2.0), FC)
    np.testing.assert_allclose(predict_track(model, spec), probs, atol=1e-6)
    assert [lab for lab, _ in top_k(model, probs, 2)] == [model.labels[i] for i in np.argsort(-probs)[:2]]


def test_embed_track_is_unit_norm(model_path: Path, chirp_mono: Path) -> None:
    emb = embed_track(load_model(model_path), chirp_mono)
    assert emb.shape == (32,)  # 2 * last channel count
    assert np.linalg.norm(emb) == pytest.approx(1.0, abs=1e-5)


def test_npz_with_other_features_is_rejected(model_path: Path, tmp_path: Path, chirp_mono: Path) -> None:
    from specmusic.data import discover_tracks
    from specmusic.spectro import run_spectro

    tracks, _ = discover_tracks([chirp_mono])
    run_spectro(tracks, tmp_path / "specs", config=FeatureConfig(n_mels=64), progress=False)
    with pytest.raises(ConfigError, match="other features"):
        predict_track(load_model(model_path), tmp_path / "specs" / "chirp_mono.npz")
    run_spectro(tracks, tmp_path / "same", config=FC, progress=False)
    np.testing.assert_allclose(
        predict_track(load_model(model_path), tmp_path / "same" / "chirp_mono.npz"),
        predict_track(load_model(model_path), chirp_mono), atol=1e-6,
    )


def test_predict_files_reports_bad_files_and_keeps_order(model_path: Path, tmp_path: Path, not_audio: Path) -> None:
    good = [write(tmp_path / f"g{i}.wav", chirp(1.0, seed=i)) for i in range(3)]
    paths = [str(good[0]), str(not_audio), str(good[1]), str(good[2])]
    for jobs in (1, 2):
        results = list(predict_files(load_model(model_path), paths, jobs=jobs, progress=False))
        assert [r.path for r in results] == paths
        assert [r.ok for r in results] == [True, False, True, True]
        assert "not a readable audio file" in results[1].error
        np.testing.assert_allclose(results[0].probabilities, predict_track(load_model(model_path), good[0]), atol=1e-6)


def test_inference_path_imports_no_torch_or_librosa(model_path: Path, chirp_mono: Path) -> None:
    code = (
        "import sys\n"
        "from specmusic.cli.app import app\n"
        "import specmusic.inference as inf\n"
        f"m = inf.load_model({str(model_path)!r})\n"
        f"inf.predict_track(m, {str(chirp_mono)!r})\n"
        f"app(['classify', {str(chirp_mono)!r}, '--model', {str(model_path)!r}], standalone_mode=False)\n"
        "heavy = [n for n in ('torch', 'librosa', 'sklearn', 'matplotlib') if n in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
    assert "chirp_mono.wav" in out.stdout


def test_corrupt_audio_raises_audio_error(model_path: Path, truncated_mp3: Path) -> None:
    with pytest.raises(AudioError):
        predict_track(load_model(model_path), truncated_mp3)
