"""Training: loading and splitting, augmentation, metrics, reproducibility, resuming and continuing."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import tone, write
from specmusic.errors import ConfigError, InputError
from specmusic.features import FeatureConfig
from specmusic.models.cnn import CNNConfig
from specmusic.training import (
    TrackData,
    TrainConfig,
    classification_metrics,
    load_training_data,
    make_splits,
    resolve_device,
    train,
)
from specmusic.training.loop import augment_batch

FAST = TrainConfig(chunk_seconds=0.5, epochs=3, batch_size=8, patience=5, threads=1,
                   augment=("shift", "mask", "gain", "freqshift", "mixup"))
SMALL = CNNConfig(channels=(8, 16))
FC = FeatureConfig(n_mels=32)


def _items(spec: dict[str, int], groups_per_label: int | None = None) -> list[TrackData]:
    out = []
    for label, n in spec.items():
        for i in range(n):
            group = f"{label}/g{i % groups_per_label}" if groups_per_label else f"{label}/{i}"
            out.append(TrackData(f"{label}/{i}", label, group, f"/x/{label}/{i}.wav", np.zeros((4, 10), np.float16)))
    return out


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 labels x 5 tracks of 2 s, one pitch per label."""
    root = tmp_path_factory.mktemp("data") / "genres"
    for li, (label, f) in enumerate((("low", 110.0), ("mid", 440.0), ("high", 1760.0))):
        for i in range(5):
            write(root / label / f"{label}.{i:05d}.wav", tone(f * (1 + 0.03 * i), 2.0, seed=10 * li + i))
    return root


@pytest.fixture(scope="module")
def run_a(tree: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("run_a")
    return train(tree, out, config=FAST, cnn=SMALL, feature_config=FC, progress=False)


def test_splits_are_by_group_and_stratified() -> None:
    items = _items({"a": 10, "b": 10}, groups_per_label=5)
    splits = make_splits(items, valid_fraction=0.2, test_fraction=0.2, seed=0)
    groups = {name: {t.group for t in ts} for name, ts in splits.items()}
    assert not (groups["train"] & groups["test"]) and not (groups["train"] & groups["valid"])
    assert not (groups["valid"] & groups["test"])
    assert {t.label for t in splits["test"]} == {"a", "b"}
    assert sum(len(ts) for ts in splits.values()) == 20
    assert make_splits(items, seed=0) == make_splits(items, seed=0)


def test_split_lists(tmp_path: Path) -> None:
    items = _items({"a": 4, "b": 4})
    (tmp_path / "test.txt").write_text("a/0.wav\nb/0.wav\n")
    (tmp_path / "valid.txt").write_text("a/1.wav\nb/1.wav\n")
    splits = make_splits(items, split_files={"test": tmp_path / "test.txt", "valid": tmp_path / "valid.txt"})
    assert sorted(t.key for t in splits["test"]) == ["a/0", "b/0"]
    assert sorted(t.key for t in splits["valid"]) == ["a/1", "b/1"]
    assert len(splits["train"]) == 4


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([], "dataset is empty"),
        (_items({"a": 3}), "only one class"),
        (_items({"a": 3, "b": 1}), "class 'b' has only one track"),
        (_items({"a": 3, "b": 4}, groups_per_label=1), "only one group"),
    ],
)
def test_split_errors(items: list[TrackData], message: str) -> None:
    with pytest.raises(InputError, match=message):
        make_splits(items)


def test_train_config_rejects_bad_options() -> None:
    with pytest.raises(ConfigError, match="unknown augmentation"):
        TrainConfig(augment=("wobble",))
    with pytest.raises(ConfigError, match="drop-hard"):
        TrainConfig(drop_hard=1.5)
    assert TrainConfig(augment=("none",)).augment == ()


def test_augment_keeps_shape_and_is_seeded() -> None:
    x = torch.randn(4, 1, 16, 30)
    a = augment_batch(x, ("mask", "gain", "freqshift"), torch.Generator().manual_seed(0), 10.0)
    b = augment_batch(x, ("mask", "gain", "freqshift"), torch.Generator().manual_seed(0), 10.0)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
    assert torch.equal(augment_batch(x, (), torch.Generator(), 10.0), x)


def test_classification_metrics() -> None:
    m = classification_metrics(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), ["a", "b"])
    assert m["accuracy"] == 0.75 and m["confusion"] == [[1, 1], [0, 2]]
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": 0.6667, "support": 2}
    assert m["per_class"]["b"]["precision"] == pytest.approx(0.6667)
    assert m["macro_f1"] == pytest.approx((0.6667 + 0.8) / 2, abs=1e-3)


def test_spectro_arrays_with_mixed_configs_are_rejected(tmp_path: Path) -> None:
    from specmusic.data import discover_tracks
    from specmusic.spectro import run_spectro

    for label, n_mels in (("a", 32), ("b", 48)):
        write(tmp_path / "audio" / label / "x.wav", tone(220.0, 1.0))
        tracks, _ = discover_tracks([tmp_path / "audio"])
        run_spectro([t for t in tracks if t.label == label], tmp_path / "specs", config=FeatureConfig(n_mels=n_mels),
                    progress=False)
    with pytest.raises(ConfigError, match="different feature settings"):
        load_training_data(tmp_path / "specs", cache_dir=tmp_path / "cache")


def test_train_writes_run_folder(run_a) -> None:
    out = run_a.out_dir
    for name in ("model.onnx", "config.json", "metrics.json", "splits.json", "checkpoint.pt",
                 "confusion.png", "training_curve.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    test = metrics["test"]
    assert set(test) >= {"accuracy", "macro_f1", "per_class", "predictions", "confusion"}
    assert test["n_tracks"] == len(test["predictions"]) == 3  # one track per label held out
    assert {p["label"] for p in test["predictions"]} == {"low", "mid", "high"}
    assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-2 for p in test["predictions"])
    by_pooling = test["accuracy_by_pooling"]
    assert set(by_pooling) == {"mean", "vote", "center"}
    assert by_pooling[metrics["track_pooling"]] == pytest.approx(test["accuracy"], abs=1e-3)
    splits = json.loads((out / "splits.json").read_text())
    keys = [{r["key"] for r in splits[s]} for s in ("train", "valid", "test")]
    assert not (keys[0] & keys[2]) and len(keys[0] | keys[1] | keys[2]) == 15
    assert len(run_a.history) == 3 and all(np.isfinite(h["train_loss"]) for h in run_a.history)
    assert metrics["device"] == ("cuda" if torch.cuda.is_available() else "cpu")  # FAST leaves device on auto


def test_resolve_device(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="sees no CUDA GPU.*--device cpu"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("gpu0")
    with pytest.raises(ConfigError, match="not supported"):
        resolve_device("meta")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch here is a CPU build)")
def test_training_on_gpu(tree: Path, tmp_path: Path) -> None:
    """A GPU run: same data and seed as on the CPU, its model exported and scored on the CPU like any other."""
    from specmusic.inference import load_model, predict_track

    gpu = train(tree, tmp_path, config=replace(FAST, device="cuda"), cnn=SMALL, feature_config=FC, progress=False)
    cpu = train(tree, tmp_path / "cpu", config=replace(FAST, device="cpu"), cnn=SMALL, feature_config=FC, progress=False)
    assert gpu.metrics["device"].startswith("cuda") and cpu.metrics["device"] == "cpu"
    # same split and crops; dropout draws from the CUDA generator, so the losses differ run to run by design
    assert len(gpu.history) == len(cpu.history) and all(np.isfinite(h["train_loss"]) for h in gpu.history)
    assert gpu.metrics["test"]["n_tracks"] == cpu.metrics["test"]["n_tracks"]
    pred = gpu.metrics["test"]["predictions"][0]
    model = load_model(gpu.model_path)
    expected = np.array([pred["probabilities"][lab] for lab in model.labels])
    np.testing.assert_allclose(predict_track(model, pred["source"]), expected, atol=2e-3)


def test_onnx_from_training_matches_evaluation(run_a) -> None:
    from specmusic.inference import load_model, predict_track

    model = load_model(run_a.model_path)
    pred = run_a.metrics["test"]["predictions"][0]
    probs = predict_track(model, pred["source"])
    expected = np.array([pred["probabilities"][lab] for lab in model.labels])
    np.testing.assert_allclose(probs, expected, atol=2e-3)  # metrics are rounded to 4 places; fp16 cache


def test_training_is_reproducible_and_resumes(run_a, tree: Path, tmp_path: Path) -> None:
    seen = []

    def interrupt(line: str) -> None:
        seen.append(line)
        if line.startswith("epoch 2/"):
            raise KeyboardInterrupt  # after epoch 2's report, before its checkpoint: resume from epoch 1

    with pytest.raises(KeyboardInterrupt):
        train(tree, tmp_path, config=FAST, cnn=SMALL, feature_config=FC, progress=False, log=interrupt)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["epoch"] == 1
    lines: list[str] = []
    resumed = train(tree, tmp_path, config=FAST, cnn=SMALL, feature_config=FC, progress=False, log=lines.append)
    assert any("resuming" in line and "after epoch 1" in line for line in lines)
    assert [h["train_loss"] for h in resumed.history] == pytest.approx([h["train_loss"] for h in run_a.history], abs=1e-6)
    assert resumed.metrics["test"]["predictions"] == run_a.metrics["test"]["predictions"]
    with pytest.raises(ConfigError, match="another -o, or --force"):
        train(tree, tmp_path, config=TrainConfig(chunk_seconds=0.5, epochs=2, threads=1), cnn=SMALL, feature_config=FC,
              progress=False)


def test_drop_hard_and_whole_tracks(tree: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    cfg = TrainConfig(chunk_seconds=0, epochs=3, batch_size=4, drop_hard=0.25, drop_hard_after=1, threads=1,
                      track_pooling="vote", augment=())
    result = train(tree, tmp_path, config=cfg, cnn=SMALL, feature_config=FC, progress=False, log=lines.append)
    assert any(line.startswith("drop-hard: kept") for line in lines)
    assert result.history[-1]["examples"] < result.history[0]["examples"]
    assert result.metrics["chunk_frames"] == 87  # a whole 2 s track at hop 512


def test_load_training_data_skips_bad_files_and_reports_them(tree: Path, tmp_path: Path) -> None:
    """Several inputs, a corrupt array and an undecodable file: both left out (log line + errors.jsonl), the rest load."""
    from specmusic.data import discover_tracks
    from specmusic.spectro import run_spectro

    tracks, _ = discover_tracks([tree])
    run_spectro(tracks, tmp_path / "specs", config=FC, progress=False)
    (tmp_path / "specs" / "low" / "low.00000.npz").write_bytes(b"not an array")
    (tmp_path / "more" / "low").mkdir(parents=True)
    (tmp_path / "more" / "low" / "broken.wav").write_bytes(b"RIFF....WAVE")
    write(tmp_path / "more" / "unlabelled.wav", tone(300.0, 1.0))
    lines: list[str] = []
    items, config = load_training_data([tmp_path / "specs", tmp_path / "more"], cache_dir=tmp_path / "cache",
                                       feature_config=FC, log=lines.append)
    assert config == FC and len(items) == 14 and all(t.spec.dtype == np.float16 for t in items)
    assert {t.key.split("/")[0] for t in items} == {"specs"}  # several inputs: keys start with the input's name
    assert any("1 file(s) without a label" in line for line in lines)
    assert any("2 file(s) could not be read" in line for line in lines)
    errors = [json.loads(line) for line in (tmp_path / "cache" / "errors.jsonl").read_text().splitlines()]
    assert sorted(Path(e["source"]).name for e in errors) == ["broken.wav", "low.00000.npz"]
    clips, _ = load_training_data([tmp_path / "more"], cache_dir=tmp_path / "cache", feature_config=FC,
                                  unlabelled=True, dtype=np.float32)
    assert [(t.key, t.label, t.spec.dtype) for t in clips] == [("unlabelled", None, np.float32)]
    listed = tmp_path / "list.txt"
    listed.write_text("specs/mid/mid.00001.wav\n")
    only, _ = load_training_data([tmp_path / "specs", tmp_path / "more"], cache_dir=tmp_path / "cache",
                                 feature_config=FC, split_list=listed)
    assert [t.key for t in only] == ["specs/mid/mid.00001"]
    with pytest.raises(ConfigError, match=r"than the requested ones \(n_mels 32, not 48\)"):
        load_training_data(tmp_path / "specs", cache_dir=tmp_path / "cache", feature_config=FeatureConfig(n_mels=48))


def test_a_finished_run_continues_for_more_epochs(run_a, tree: Path, tmp_path: Path) -> None:
    """Papercut: a larger --epochs continues the finished run (epochs counted from its start); the same command
    again trains nothing; other settings are refused in one line; force starts over."""
    import shutil

    shutil.copytree(run_a.out_dir, tmp_path, dirs_exist_ok=True)
    lines: list[str] = []
    longer = train(tree, tmp_path, config=replace(FAST, epochs=5), cnn=SMALL, feature_config=FC, progress=False,
                   log=lines.append)
    assert any("after epoch 3" in line for line in lines) and any(line.startswith("epoch 4/5") for line in lines)
    assert not any(line.startswith(("epoch 1/", "epoch 3/")) for line in lines)
    assert [h["epoch"] for h in longer.history] == [1, 2, 3, 4, 5]
    assert longer.history[:3] == run_a.history
    lines.clear()
    again = train(tree, tmp_path, config=replace(FAST, epochs=5), cnn=SMALL, feature_config=FC, progress=False,
                  log=lines.append)
    assert again.history == longer.history and not any(line.startswith("epoch ") for line in lines)
    with pytest.raises(ConfigError, match=r"other data or settings \(train.lr 0.003, now 0.001\) — use another -o"):
        train(tree, tmp_path, config=replace(FAST, epochs=6, lr=1e-3), cnn=SMALL, feature_config=FC, progress=False)
    fresh = train(tree, tmp_path, config=replace(FAST, epochs=2, lr=1e-3), cnn=SMALL, feature_config=FC,
                  progress=False, force=True)
    assert [h["epoch"] for h in fresh.history] == [1, 2]


def test_training_curve_has_whole_epoch_ticks() -> None:
    """Papercut: no half epochs on the x axes of training_curve.png."""
    from specmusic.training.plots import training_curve_figure

    history = [{"epoch": e, "train_loss": 1.0 / e, "train_acc": 0.2 * e, "valid_loss": 1.1 / e, "valid_acc": 0.2 * e}
               for e in (1, 2, 3)]
    fig = training_curve_figure(history)
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_requested_features_are_the_defaults_changed_or_none() -> None:
    from dataclasses import replace

    from specmusic.training import DEFAULT_FEATURES, requested_features

    assert requested_features() is None  # the model (or the spectro folder) decides
    assert requested_features(n_mels=32) == replace(DEFAULT_FEATURES, n_mels=32)
    assert requested_features(sample_rate=16000) == replace(DEFAULT_FEATURES, sample_rate=16000)
