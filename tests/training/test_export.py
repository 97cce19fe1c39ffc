"""torch → ONNX export: outputs match torch, metadata follows the contract, file is self-contained."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from specmusic.export import OPSET, export_onnx, model_metadata
from specmusic.features import FeatureConfig
from specmusic.inference import METADATA_KEY, load_model, run_chunks
from specmusic.models.cnn import CNNConfig, SpecCNN


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[SpecCNN, Path]:
    torch.manual_seed(0)
    net = SpecCNN(CNNConfig(n_classes=4, channels=(8, 16, 32)))
    # Non-trivial batch-norm statistics, so eval-mode export is really tested.
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(8, 1, 32, 40) * 3 + 1)
    net.eval()
    meta = model_metadata(
        labels=["a", "b", "c", "d"], feature_config=FeatureConfig(n_mels=32), chunk_frames=40,
        chunk_hop_frames=20, input_norm=(-30.0, 12.0), arch="cnn",
    )
    path = export_onnx(net, tmp_path_factory.mktemp("export") / "model.onnx", n_rows=32, metadata=meta)
    return net, path


@pytest.mark.parametrize("batch", [1, 5])
def test_onnx_matches_torch(exported: tuple[SpecCNN, Path], batch: int) -> None:
    net, path = exported
    model = load_model(path)
    model.input_norm = None  # compare the raw networks
    x = np.random.default_rng(batch).standard_normal((batch, 1, 32, 40)).astype(np.float32)
    with torch.no_grad():
        logits, emb = net(torch.from_numpy(x))
    np.testing.assert_allclose(run_chunks(model, x), logits.numpy(), atol=1e-4)
    np.testing.assert_allclose(run_chunks(model, x, embedding=True), emb.numpy(), atol=1e-4)


def test_export_is_self_contained_with_metadata(exported: tuple[SpecCNN, Path]) -> None:
    _, path = exported
    assert [p.name for p in path.parent.iterdir()] == ["model.onnx"]  # no .onnx.data, no temp files
    proto = onnx.load(str(path))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= OPSET
    meta = json.loads({p.key: p.value for p in proto.metadata_props}[METADATA_KEY])
    assert meta["format_version"] == 1 and meta["task"] == "multiclass"
    assert meta["labels"] == ["a", "b", "c", "d"] and meta["chunk_frames"] == 40
    assert FeatureConfig.from_dict(meta["feature_config"]) == FeatureConfig(n_mels=32)
    assert meta["input_norm"] == {"mean": -30.0, "std": 12.0}
    assert [i.name for i in proto.graph.input] == ["spec"]
    assert [o.name for o in proto.graph.output] == ["logits", "embedding"]


def test_export_leaves_training_mode_alone(tmp_path: Path) -> None:
    net = SpecCNN(CNNConfig(n_classes=2, channels=(4,)))
    net.train()
    meta = model_metadata(labels=["x", "y"], feature_config=FeatureConfig(n_mels=16), chunk_frames=16,
                          chunk_hop_frames=8, input_norm=None, arch="cnn")
    export_onnx(net, tmp_path / "m.onnx", n_rows=16, metadata=meta)
    assert net.training
    assert load_model(tmp_path / "m.onnx").input_norm is None


# -- the contract: written and read in one module --------------------------------------------------------
def test_the_contract_reads_what_it_writes() -> None:
    """A metadata dict written by ``model_metadata`` round-trips through JSON and ``parse_metadata``."""
    from specmusic.errors import ModelError
    from specmusic.inference.contract import MODEL_FORMAT_VERSION, parse_metadata
    from specmusic.inference.contract import model_metadata as write

    assert write is model_metadata  # export builds its metadata with the contract's writer
    fc = FeatureConfig(n_mels=24, sample_rate=16000)
    written = write(labels=["a", "b"], feature_config=fc, chunk_frames=30, chunk_hop_frames=15,
                    input_norm=(-40.0, 12.5), arch="cnn", task="multilabel", outputs="logits", extra={"k": [1, 2]})
    assert written["format_version"] == MODEL_FORMAT_VERSION and written["outputs"] == "logits"
    read = parse_metadata(json.dumps(written, sort_keys=True), name="m.onnx")
    assert read == {**written, "feature_config": fc}
    assert parse_metadata(json.dumps(written), name="m.onnx") == read  # field order does not matter
    for name in ("labels", "chunk_frames", "task"):
        with pytest.raises(ModelError, match=f"m.onnx: metadata lacks {name} — "):
            parse_metadata(json.dumps({k: v for k, v in written.items() if k != name}), name="m.onnx")
