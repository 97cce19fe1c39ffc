"""What the bundled networks know, in ``train``: a head on a backbone's frozen features (``--head linear``),
and EfficientAT's mn04_as finetuned (``--arch audioset-mn04 --pretrained``).

The probe tests run on the bundled ``pons-msd-musicnn`` (3 s windows; an ONNX graph with more outputs
than the contract's, which the export must leave out) and on tiny seeded tones; tests of the real
mn04_as checkpoint need ``../shared`` (skipped without it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from specmusic.cli.app import app
from tests.conftest import SHARED, needs_shared, tone, write
from tests.cli.test_runtime import NO_TORCH

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = SHARED / "weights" / "efficientat" / "mn04_as_mAP_432.pt"
BACKBONE = "pons-msd-musicnn"
LABELS = (("low", 130.0), ("mid", 520.0), ("high", 2080.0))


@pytest.fixture
def grouped_tree(tmp_path: Path) -> Path:
    """3 labels x 4 groups (source tracks) x 2 clips of 2 s; groups in ``manifest.csv``."""
    root = tmp_path / "clips"
    rows = ["path,label,group"]
    for li, (label, f) in enumerate(LABELS):
        for g in range(4):
            for c in range(2):
                rel = f"{label}/{label}.g{g}.c{c}.wav"
                write(root / rel, tone(f * (1 + 0.05 * g + 0.01 * c), 2.0, seed=100 * li + 10 * g + c))
                rows.append(f"{rel},{label},{label}-source{g}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def _train(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["train", *args])
    return result.exit_code, result.stderr


def _no_torch_classify(tmp_path: Path, model: Path, files: list[str]) -> dict[str, dict[str, float]]:
    """``classify --json`` in a fresh process where torch and onnx cannot be imported."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(NO_TORCH)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    done = subprocess.run([sys.executable, "-m", "specmusic", "classify", *files, "--model", str(model), "--json"], check=False,
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    check = subprocess.run([sys.executable, "-c", "import torch"], check=False, env=env, capture_output=True, timeout=60)
    assert check.returncode != 0  # the sandbox really has no torch
    return {row["path"]: row["probabilities"] for row in map(json.loads, done.stdout.splitlines())}


# -- a head on frozen features ----------------------------------------------------------------
def test_linear_head_exports_one_file_that_classify_agrees_with_without_torch(grouped_tree: Path, tmp_path: Path) -> None:
    run = tmp_path / "probe"
    code, stderr = _train(str(grouped_tree), "--head", "linear", "--backbone", BACKBONE, "-o", str(run),
                          "--threads", "1", "--no-progress")
    assert code == 0, stderr
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "confusion.png", "features", "metrics.json",
                                                     "model.onnx", "splits.json"]  # one ONNX file, no .onnx.data
    splits = json.loads((run / "splits.json").read_text())
    groups = {name: {t["group"] for t in tracks} for name, tracks in splits.items()}
    assert not groups["train"] & groups["test"] and not groups["train"] & groups["valid"]  # by group
    assert not groups["valid"] & groups["test"] and splits["test"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["head"]["kind"] == "linear" and metrics["backbone"]["name"] == BACKBONE
    assert metrics["test"]["accuracy"] >= 0.5  # three pitches an MSD tagger tells apart
    predictions = {p["source"]: p["probabilities"] for p in metrics["test"]["predictions"]}
    seen = _no_torch_classify(tmp_path, run / "model.onnx", sorted(predictions))
    for path, probs in predictions.items():  # classify = the head on each window, probabilities averaged
        assert seen[path].keys() == probs.keys()
        np.testing.assert_allclose([seen[path][k] for k in probs], list(probs.values()), atol=2e-4)
    meta = json.loads(_metadata(run / "model.onnx"))
    assert meta["task"] == "multiclass" and meta["labels"] == ["high", "low", "mid"]
    assert meta["input_norm"] is None and meta["arch"] == "linear-probe" and meta["backbone"]["name"] == BACKBONE


def _metadata(path: Path) -> str:
    import onnx

    return next(p.value for p in onnx.load(str(path)).metadata_props if p.key == "specmusic")


def test_train_head_imports_no_torch(grouped_tree: Path, tmp_path: Path) -> None:
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['specmusic', 'train', {str(grouped_tree)!r}, '--backbone', {BACKBONE!r}, '-o', "
        f"{str(tmp_path / 'run')!r}, '--no-progress']\n"
        "try:\n    runpy.run_module('specmusic', run_name='__main__')\nexcept SystemExit as exc:\n    assert not exc.code\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run" / "model.onnx").is_file()


def test_a_rerun_with_another_seed_reads_the_features_back(grouped_tree: Path, tmp_path: Path) -> None:
    from specmusic.training import ProbeConfig, TrainConfig, train_probe

    lines: list[str] = []
    cache = tmp_path / "cache"
    first = train_probe(grouped_tree, tmp_path / "a", probe=ProbeConfig(backbone=BACKBONE), cache_dir=cache,
                        config=TrainConfig(seed=0, threads=1), log=lines.append)
    assert any(line.startswith("features: 24 file(s) through") for line in lines)
    lines.clear()
    again = train_probe(grouped_tree, tmp_path / "b", probe=ProbeConfig(backbone=BACKBONE, c=0.1), cache_dir=cache,
                        config=TrainConfig(seed=1, threads=1), log=lines.append)
    assert not any(line.startswith("features:") for line in lines)  # nothing through the network again
    assert again.metrics["head"] == {"kind": "linear", "C": 0.1, "chosen_by": "given"}
    assert first.model_path.read_bytes() != again.model_path.read_bytes()
    same = train_probe(grouped_tree, tmp_path / "c", probe=ProbeConfig(backbone=BACKBONE), cache_dir=cache,
                       config=TrainConfig(seed=0, threads=1))
    assert same.model_path.read_bytes() == first.model_path.read_bytes()  # reproducible, byte for byte


def test_append_linear_head_computes_the_head_on_the_backbones_embedding(tmp_path: Path) -> None:
    import onnxruntime as ort

    from specmusic.export import append_linear_head
    from specmusic.inference import load_model
    from specmusic.models.zoo import ensure_model

    backbone = load_model(ensure_model(BACKBONE))
    rng = np.random.default_rng(0)
    dim = 200
    head = {"mean": rng.normal(size=dim), "scale": rng.uniform(0.5, 2, dim), "weight": rng.normal(size=(4, dim)),
            "bias": rng.normal(size=4)}
    meta = {**backbone.meta, "labels": list("abcd"), "task": "multiclass"}
    out = append_linear_head(backbone.path, tmp_path / "m.onnx", metadata=meta, **head)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits", "embedding"]
    x = rng.normal(size=(3, 1, 96, backbone.chunk_frames)).astype(np.float32)
    logits, emb = session.run(None, {"spec": x})
    (expected_emb,) = backbone.session.run(["embedding"], {"spec": x})
    np.testing.assert_allclose(emb, expected_emb, rtol=1e-5, atol=1e-5)
    expected = ((expected_emb - head["mean"]) / head["scale"]) @ head["weight"].T + head["bias"]
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    assert load_model(out).labels == list("abcd")
    again = append_linear_head(backbone.path, tmp_path / "again.onnx", metadata=meta, **head)
    assert again.read_bytes() == out.read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--head", "linear", "--epochs", "3"], "--epochs trains a network"),
        (["--backbone", BACKBONE, "--arch", "musicnn"], "--arch trains a network"),
        (["--head", "mlp"], "unknown --head 'mlp'"),
        (["--head", "linear", "--backbone", "no-such-net"], "neither a model file nor a pretrained network"),
    ],
)
def test_head_option_errors(grouped_tree: Path, tmp_path: Path, args: list[str], message: str) -> None:
    code, stderr = _train(str(grouped_tree), "-o", str(tmp_path / "r"), *args)
    assert code == 1 and message in stderr, stderr


def test_a_head_does_not_overwrite_a_network_run(grouped_tree: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"x")
    code, stderr = _train(str(grouped_tree), "--backbone", BACKBONE, "-o", str(run), "--no-progress")
    assert code == 1 and "holds a network training run" in stderr
    code, stderr = _train(str(grouped_tree), "--backbone", BACKBONE, "-o", str(run), "--no-progress", "--force")
    assert code == 0 and not (run / "checkpoint.pt").exists(), stderr


def test_split_lists_and_bad_files_apply_to_the_head(grouped_tree: Path, tmp_path: Path) -> None:
    (grouped_tree / "low" / "broken.wav").write_bytes(b"not audio")
    lines = (grouped_tree / "manifest.csv").read_text().splitlines()
    (grouped_tree / "manifest.csv").write_text("\n".join([*lines, "low/broken.wav,low,low-broken"]) + "\n")
    test = tmp_path / "test.txt"
    test.write_text("".join(f"{label}/{label}.g0.c{c}.wav\n" for label, _ in LABELS for c in range(2)))
    run = tmp_path / "run"
    code, stderr = _train(str(grouped_tree), "--backbone", BACKBONE, "--test-file", str(test), "-o", str(run),
                          "--no-progress")
    assert code == 0, stderr
    assert "broken.wav" in stderr and (run / "features" / "errors.jsonl").is_file()
    splits = json.loads((run / "splits.json").read_text())
    assert sorted(t["key"] for t in splits["test"]) == sorted(
        f"{label}/{label}.g0.c{c}" for label, _ in LABELS for c in range(2))


# -- EfficientAT's mn04_as, finetuned ----------------------------------------------------------
def test_audioset_arch_options_are_checked() -> None:
    from specmusic.errors import ConfigError
    from specmusic.models.transfer import ModelSpec, builtin_archs
    from specmusic.training.config import model_features, requested_features

    assert "audioset-mn04" in builtin_archs()
    with pytest.raises(ConfigError, match="does not apply"):
        ModelSpec(arch="audioset-mn04", pretrained="mtat")
    with pytest.raises(ConfigError, match="--img-size does not apply"):
        ModelSpec(arch="audioset-mn04", img_size=(128, 128))
    with pytest.raises(ConfigError, match="EfficientAT's own features"):
        model_features(ModelSpec(arch="audioset-mn04"), requested_features(n_mels=64))


@needs_shared
def test_audioset_mn04_loads_strictly_finetunes_and_exports(genre_tree: Path, tmp_path: Path) -> None:
    import onnxruntime as ort
    import torch

    from specmusic.models.efficientat import EFFICIENTAT_FEATURES
    from specmusic.models.transfer import ModelSpec, build_model

    model, info = build_model(ModelSpec(arch="audioset-mn04", pretrained="default", weights=str(CHECKPOINT)),
                              n_classes=3)
    state = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)
    mine = model.state_dict()
    for key, value in state.items():  # every released weight in place; only the 527-class layer is new
        if not key.startswith("classifier.5."):
            name = key.replace("classifier.2.", "head.0.")
            assert torch.equal(mine[name], value), key
    assert mine["head.3.weight"].shape == (3, 512) and info["weights"]["sha256"].startswith("899a8c62")

    run = tmp_path / "ft"
    code, stderr = _train(str(genre_tree), "--arch", "audioset-mn04", "--pretrained", "--weights", str(CHECKPOINT),
                          "--epochs", "2", "--freeze-epochs", "1", "--augment", "mask,mixup", "--chunk-seconds", "1",
                          "--batch-size", "4", "--threads", "1", "--no-progress", "-o", str(run))
    assert code == 0, stderr
    assert "backbone frozen" in stderr and "finetuning the whole network" in stderr
    meta = json.loads(_metadata(run / "model.onnx"))
    assert meta["feature_config"] == EFFICIENTAT_FEATURES.to_dict() and meta["input_norm"] == {"mean": -4.5, "std": 5.0}
    assert meta["arch"] == "audioset-mn04" and meta["chunk_frames"] == 100
    assert not list(run.glob("*.onnx.data"))
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    built, _ = build_model(ModelSpec(arch="audioset-mn04"), n_classes=3)
    built.load_state_dict(ckpt["best_state"] or ckpt["model"])
    built.eval()
    x = torch.randn(2, 1, 128, 100)
    with torch.no_grad():
        logits, emb = built(x)
    session = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_logits, onnx_emb = session.run(None, {"spec": x.numpy()})
    np.testing.assert_allclose(onnx_emb, emb.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(onnx_logits, logits.numpy(), rtol=1e-4, atol=1e-4)
    clip = str(genre_tree / "low" / "low.00000.wav")
    probs = _no_torch_classify(tmp_path, run / "model.onnx", [clip])[clip]
    assert set(probs) == {"high", "low", "mid"} and abs(sum(probs.values()) - 1) < 1e-3


@needs_shared
def test_linear_head_on_mn04_features(genre_tree: Path, tmp_path: Path) -> None:
    from specmusic.models.efficientat import convert_efficientat
    from specmusic.training import ProbeConfig, TrainConfig, train_probe

    backbone = convert_efficientat(CHECKPOINT, tmp_path / "mn04.onnx")
    result = train_probe(genre_tree, tmp_path / "run", probe=ProbeConfig(backbone=str(backbone)),
                         config=TrainConfig(threads=1))
    meta = json.loads(_metadata(result.model_path))
    assert meta["backbone"]["embedding_dim"] == 384 and meta["input_norm"] == {"mean": -4.5, "std": 5.0}
    assert result.model_path.stat().st_size < backbone.stat().st_size  # the 527-class MLP is left out
    assert result.metrics["test"]["n_tracks"] >= 3


# -- the default: a head on audioset-mn04 for audio (benchmarks/train_default.py's rule) --------
def test_train_without_network_options_fits_the_default_head(grouped_tree: Path, tmp_path: Path) -> None:
    run = tmp_path / "default"
    code, stderr = _train(str(grouped_tree), "-o", str(run), "--threads", "1", "--no-progress")
    assert code == 0, stderr
    assert "a linear head on audioset-mn04's features (the default" in stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["head"]["kind"] == "linear" and metrics["backbone"]["name"] == "audioset-mn04"
    assert not (run / "checkpoint.pt").exists()


def test_a_network_option_or_spectrograms_train_a_network(grouped_tree: Path, tmp_path: Path) -> None:
    """``--arch cnn`` (or any network option) trains the CNN; a run folder holding a network run is continued
    as before; spectrogram input (a ``spectro`` folder, ``.npz``) has no audio for the backbone to hear."""
    from specmusic.training import probe_is_default

    run = tmp_path / "cnn"
    code, stderr = _train(str(grouped_tree), "--arch", "cnn", "--epochs", "1", "-o", str(run), "--threads", "1",
                          "--no-progress")
    assert code == 0, stderr
    assert (run / "checkpoint.pt").exists() and "the default" not in stderr
    assert not probe_is_default(grouped_tree, run)  # a network run: `train DATA -o RUN` continues it
    assert probe_is_default(grouped_tree, tmp_path / "new")
    specs = tmp_path / "specs"
    assert CliRunner().invoke(app, ["spectro", str(grouped_tree / "low"), "-o", str(specs)]).exit_code == 0
    assert not probe_is_default(specs, tmp_path / "new") and not probe_is_default(tmp_path / "x.npz", tmp_path / "new")
