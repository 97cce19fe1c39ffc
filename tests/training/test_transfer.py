"""``specmusic train --arch …``: music-tagger and ImageNet backbones, frozen warm-up, export, classify."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from specmusic.cli.app import app

FAST = ["--epochs", "2", "--chunk-seconds", "0.5", "--threads", "1", "--no-progress"]


def _error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and " — " in lines[0], stderr
    return lines[0]


def _classify(model: Path, audio: Path) -> dict:
    result = CliRunner().invoke(app, ["classify", str(audio), "--model", str(model), "--json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout.splitlines()[0])


@pytest.mark.parametrize(
    ("args", "value"),
    [
        (["D", "--arch", "resnet18", "--pretrained", "-o", "r"], "default"),  # before another option
        (["D", "-o", "r", "--pretrained"], "default"),  # at the end
        (["D", "--pretrained", "mtat", "-o", "r"], "mtat"),
        (["D", "--pretrained=a1_in1k", "-o", "r"], "a1_in1k"),
        (["D", "-o", "r"], None),
    ],
)
def test_bare_pretrained_means_the_default_weights(args: list[str], value: str | None) -> None:
    import typer

    command = typer.main.get_command(app).commands["train"]
    ctx = command.make_context("train", list(args))
    assert ctx.params["pretrained"] == value
    assert str(ctx.params["data"]) == "D" and str(ctx.params["output"]) == "r"


@pytest.fixture
def musicnn_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A random MusiCNN checkpoint registered (sha256) as mtat-musicnn, so no download is tried."""
    from specmusic.models.taggers import build_tagger
    from specmusic.models.zoo import registry

    torch.manual_seed(0)
    path = tmp_path / "best_model.pth"
    torch.save(build_tagger("musicnn").state_dict(), path)
    entry = registry.PretrainedTagger("mtat", "musicnn", hashlib.sha256(path.read_bytes()).hexdigest(), 0)
    monkeypatch.setitem(registry.TAGGERS, "mtat-musicnn", entry)
    monkeypatch.delenv("SPECMUSIC_WEIGHTS", raising=False)
    return path


def test_musicnn_linear_probe_keeps_the_backbone_and_classifies(
    genre_tree: Path, tmp_path: Path, musicnn_weights: Path
) -> None:
    run = tmp_path / "tl"
    result = CliRunner().invoke(app, ["train", str(genre_tree), "--arch", "musicnn", "--pretrained", "mtat",
                                      "--weights", str(musicnn_weights), "--linear-probe", "-o", str(run), *FAST])
    assert result.exit_code == 0, result.stderr
    assert "backbone frozen" in result.stderr and "finetuning" not in result.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["feature_config"]["sample_rate"] == 16000 and config["feature_config"]["n_mels"] == 96
    assert config["input_norm"] is None and config["chunk_frames"] == 188
    assert config["model"]["init"] == "tagger:mtat-musicnn"
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    original = torch.load(musicnn_weights, weights_only=True)
    for key in ("layers.0.conv.weight", "layer3.conv.weight", "dense1.weight", "bn.running_mean", "spec_bn.running_var"):
        assert torch.equal(ckpt["model"]["tagger." + key], original[key]), key  # frozen: weights and BN stats
    row = _classify(run / "model.onnx", genre_tree / "low" / "low.00000.wav")
    assert set(row["probabilities"]) == {"high", "low", "mid"}


def test_imagenet_pretrained_download_warmup_then_finetune(
    genre_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from specmusic.models.backbones import BackboneConfig, build_backbone
    from specmusic.models.hub import write_safetensors

    hub = tmp_path / "hub"
    remote = hub / "timm" / "resnet18.a1_in1k" / "resolve" / "main" / "model.safetensors"
    remote.parent.mkdir(parents=True)
    torch.manual_seed(1)
    imagenet = build_backbone(BackboneConfig(arch="resnet18", n_classes=1000, in_chans=3)).state_dict()
    write_safetensors(imagenet, remote)
    monkeypatch.setenv("HF_ENDPOINT", hub.as_uri())
    monkeypatch.setenv("SPECMUSIC_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "rn"
    result = CliRunner().invoke(app, ["train", str(genre_tree), "--arch", "resnet18", "--pretrained", "-o", str(run),
                                      "--freeze-epochs", "1", *FAST])
    assert result.exit_code == 0, result.stderr
    assert "backbone frozen" in result.stderr and "epoch 2: finetuning the whole network" in result.stderr
    assert (tmp_path / "cache" / "timm" / "resnet18.a1_in1k.safetensors").is_file()
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["init"] == "imagenet:default" and config["model"]["config"]["arch"] == "resnet18"
    state = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    assert not torch.equal(state["layer1.0.conv1.weight"], imagenet["layer1.0.conv1.weight"])  # finetuned
    assert state["conv1.weight"].shape == (64, 1, 7, 7)
    row = _classify(run / "model.onnx", genre_tree / "mid" / "mid.00001.wav")
    assert abs(sum(row["probabilities"].values()) - 1.0) < 1e-3


def test_vit_random_init_with_resize(genre_tree: Path, tmp_path: Path) -> None:
    import onnx

    run = tmp_path / "vit"
    result = CliRunner().invoke(app, ["train", str(genre_tree), "--arch", "vit_test", "--img-size", "32x32",
                                      "-o", str(run), *FAST])
    assert result.exit_code == 0, result.stderr
    meta = json.loads(onnx.load(str(run / "model.onnx")).metadata_props[0].value)
    assert meta["arch"] == "vit_test" and meta["backbone"]["config"]["img_size"] == [32, 32]
    assert meta["input_norm"] is not None
    _classify(run / "model.onnx", genre_tree / "high" / "high.00002.wav")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arch", "alexnet"], "unknown --arch 'alexnet'"),
        (["--freeze-epochs", "1"], "need a built-in pretrained --arch"),
        (["--arch", "resnet18", "--pretrained", "mtat"], "music-tagger dataset"),
        (["--arch", "musicnn", "--n-mels", "32"], "tagger's own features"),
        (["--arch", "vit_test", "--img-size", "big"], "is not N or HxW"),
        (["--arch", "vit_test", "--img-size", "30"], "multiple of"),
        (["--arch", "resnet18", "--freeze-epochs", "5"], "must be between 0 and --epochs"),
        (["--arch", "resnet18", "--weights", "/nonexistent/w.pth"], "does not exist"),
    ],
)
def test_transfer_option_errors(genre_tree: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["train", str(genre_tree), "-o", str(tmp_path / "run"), *FAST, *args])
    assert result.exit_code == 1, result.stderr
    assert message in _error(result.stderr)


def test_offline_pretrained_says_to_pass_weights(genre_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", (tmp_path / "empty-hub").as_uri())
    monkeypatch.setenv("SPECMUSIC_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(app, ["train", str(genre_tree), "--arch", "efficientnet_lite0", "--pretrained",
                                      "-o", str(tmp_path / "run"), *FAST])
    assert result.exit_code == 1
    line = _error(result.stderr)
    assert "cannot download the efficientnet_lite0.ra_in1k weights" in line and "--weights FILE" in line


def test_two_phase_learning_rate_schedule() -> None:
    from specmusic.training import TrainConfig
    from specmusic.training.loop import lr_at

    cfg = TrainConfig(epochs=8, lr=1e-2, freeze_epochs=2, finetune_lr=1e-3)
    assert lr_at(0.0, cfg) == pytest.approx(1e-3)  # warm-up from lr / 10
    assert lr_at(0.5, cfg) == pytest.approx(1e-2)  # peak of the head-only phase
    assert lr_at(2.0, cfg) == pytest.approx(1e-4)  # the finetune restarts its warm-up at finetune_lr / 10
    assert lr_at(3.0, cfg) == pytest.approx(1e-3)
    assert lr_at(8.0, cfg) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(1.0, TrainConfig(epochs=8, lr=1e-2, freeze_epochs=8)) == lr_at(1.0, TrainConfig(epochs=8, lr=1e-2))


def test_frozen_warmup_run_resumes_to_the_same_result(genre_tree: Path, tmp_path: Path) -> None:
    from specmusic.models.transfer import ModelSpec
    from specmusic.training import TrainConfig, train

    config = TrainConfig(chunk_seconds=0.5, epochs=3, freeze_epochs=2, threads=1)
    spec = ModelSpec(arch="vit_test", img_size=(16, 16))
    whole = train(genre_tree, tmp_path / "a", config=config, model_spec=spec, progress=False)

    def interrupt(line: str) -> None:
        if line.startswith("epoch 2/"):
            raise KeyboardInterrupt  # before epoch 2's checkpoint: resume inside the frozen phase

    with pytest.raises(KeyboardInterrupt):
        train(genre_tree, tmp_path / "b", config=config, model_spec=spec, progress=False, log=interrupt)
    lines: list[str] = []
    resumed = train(genre_tree, tmp_path / "b", config=config, model_spec=spec, progress=False, log=lines.append)
    assert any("after epoch 1" in line for line in lines) and any("finetuning" in line for line in lines)
    assert [h["train_loss"] for h in resumed.history] == pytest.approx([h["train_loss"] for h in whole.history], abs=1e-6)
    assert resumed.metrics["test"]["predictions"] == whole.metrics["test"]["predictions"]
