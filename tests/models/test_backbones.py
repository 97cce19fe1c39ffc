"""ImageNet backbones with timm's names: shapes, checkpoint adaptation, ONNX parity, weights files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from specmusic.errors import ConfigError, ModelError
from specmusic.models.backbones import (
    BACKBONE_ARCHS,
    BackboneConfig,
    adapt_state_dict,
    build_backbone,
    convert_efficientnet_pytorch,
)
from specmusic.models.hub import (
    ensure_imagenet_weights,
    load_weights_file,
    read_safetensors,
    weights_url,
    write_safetensors,
)


@pytest.mark.parametrize(
    ("arch", "n_params"),
    # timm.create_model(arch) parameter counts (3 input channels, 1000 classes)
    [("resnet18", 11_689_512), ("efficientnet_lite0", 4_652_008), ("tf_efficientnet_lite0", 4_652_008),
     ("vit_tiny_patch16_224", 5_717_416)],
)
def test_imagenet_configs_have_timm_parameter_counts(arch: str, n_params: int) -> None:
    net = build_backbone(BackboneConfig(arch=arch, n_classes=1000, in_chans=3))
    assert sum(p.numel() for p in net.parameters()) == n_params


def test_timm_key_names() -> None:
    keys = set(build_backbone(BackboneConfig(arch="efficientnet_lite0")).state_dict())
    assert {"conv_stem.weight", "bn1.running_var", "blocks.0.0.conv_dw.weight", "blocks.0.0.conv_pw.weight",
            "blocks.6.0.conv_pwl.weight", "blocks.5.3.bn3.num_batches_tracked", "conv_head.weight",
            "classifier.bias"} <= keys
    keys = set(build_backbone(BackboneConfig(arch="resnet18")).state_dict())
    assert {"conv1.weight", "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_mean", "fc.weight"} <= keys
    keys = set(build_backbone(BackboneConfig(arch="vit_test")).state_dict())
    assert {"cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.1.attn.qkv.weight", "blocks.0.mlp.fc2.bias",
            "norm.weight", "head.weight"} <= keys


@pytest.mark.parametrize("arch", ["resnet18", "vit_test"])
def test_forward_shapes_any_input(arch: str) -> None:
    net = build_backbone(BackboneConfig(arch=arch, n_classes=5, img_size=(32, 32) if arch == "vit_test" else None))
    net.eval()
    logits, emb = net(torch.randn(2, 1, 40, 23))
    assert logits.shape == (2, 5) and emb.shape == (2, net.embedding_dim)


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown backbone"):
        BackboneConfig(arch="alexnet")
    with pytest.raises(ConfigError, match="multiple of"):
        BackboneConfig(arch="vit_test", img_size=(30, 32))
    assert BackboneConfig(arch="vit_tiny_patch16_224").img_size == (224, 224)
    cfg = BackboneConfig(arch="vit_test", img_size=(16, 48))
    assert BackboneConfig.from_dict(cfg.to_dict()) == cfg


def test_adapt_imagenet_state_dict_to_one_channel_and_new_head() -> None:
    src = build_backbone(BackboneConfig(arch="resnet18", n_classes=1000, in_chans=3)).state_dict()
    net = build_backbone(BackboneConfig(arch="resnet18", n_classes=7))
    state = adapt_state_dict(net, src)
    net.load_state_dict(state, strict=True)
    torch.testing.assert_close(state["conv1.weight"], src["conv1.weight"].sum(dim=1, keepdim=True))
    assert state["fc.weight"].shape == (7, 512)
    torch.testing.assert_close(state["layer3.1.conv2.weight"], src["layer3.1.conv2.weight"])
    with pytest.raises(ModelError, match="do not fit"):
        adapt_state_dict(build_backbone(BackboneConfig(arch="efficientnet_lite0")), src)


def test_vit_pos_embed_is_resampled_to_the_input_grid() -> None:
    src = build_backbone(BackboneConfig(arch="vit_test", in_chans=3, n_classes=1000)).state_dict()  # 4x4 grid
    net = build_backbone(BackboneConfig(arch="vit_test", img_size=(16, 48), n_classes=3))  # 2x6 grid
    state = adapt_state_dict(net, src)
    net.load_state_dict(state, strict=True)
    assert state["pos_embed"].shape == (1, 1 + 2 * 6, 32)
    torch.testing.assert_close(state["pos_embed"][:, 0], src["pos_embed"][:, 0])  # class token position kept


def _to_efficientnet_pytorch(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of convert_efficientnet_pytorch, written out independently from the layout's names."""
    repeats = [1, 2, 2, 3, 3, 4, 1]
    flat = {(s, j): i for i, (s, j) in enumerate((s, j) for s, r in enumerate(repeats) for j in range(r))}
    ds = {"conv_dw": "_depthwise_conv", "bn1": "_bn1", "conv_pw": "_project_conv", "bn2": "_bn2"}
    ir = {"conv_pw": "_expand_conv", "bn1": "_bn0", "conv_dw": "_depthwise_conv", "bn2": "_bn1", "conv_pwl": "_project_conv",
          "bn3": "_bn2"}
    top = {"conv_stem": "_conv_stem", "bn1": "_bn0", "conv_head": "_conv_head", "bn2": "_bn1", "classifier": "_fc"}
    out = {}
    for key, value in state.items():
        p = key.split(".")
        if p[0] == "blocks":
            s, j = int(p[1]), int(p[2])
            out[".".join(["_blocks", str(flat[s, j]), (ds if s == 0 else ir)[p[3]], *p[4:]])] = value
        else:
            out[".".join([top[p[0]], *p[1:]])] = value
    return out


def test_efficientnet_pytorch_layout_maps_onto_timm_names() -> None:
    ref = build_backbone(BackboneConfig(arch="efficientnet_lite0", n_classes=1000, in_chans=3)).state_dict()
    foreign = _to_efficientnet_pytorch(ref)
    assert "_blocks.15._project_conv.weight" in foreign and "_fc.weight" in foreign
    back = convert_efficientnet_pytorch(foreign)
    assert set(back) == set(ref)
    for k in ref:
        assert torch.equal(back[k], ref[k]), k
    net = build_backbone(BackboneConfig(arch="efficientnet_lite0", n_classes=4))
    net.load_state_dict(adapt_state_dict(net, foreign), strict=True)


@pytest.mark.parametrize(
    ("arch", "img_size"), [("resnet18", None), ("tf_efficientnet_lite0", None), ("vit_test", (32, 32))]
)
def test_onnx_export_matches_torch(arch: str, img_size, tmp_path: Path) -> None:
    import onnxruntime as ort

    from specmusic.export import export_onnx, model_metadata
    from specmusic.features import FeatureConfig

    torch.manual_seed(0)
    net = build_backbone(BackboneConfig(arch=arch, n_classes=3, img_size=img_size)).eval()
    meta = model_metadata(labels=["a", "b", "c"], feature_config=FeatureConfig(n_mels=24), chunk_frames=20,
                          chunk_hop_frames=10, input_norm=(0.0, 1.0), arch=arch)
    path = export_onnx(net, tmp_path / "m.onnx", n_rows=24, metadata=meta)
    x = np.random.default_rng(0).standard_normal((3, 1, 24, 20)).astype(np.float32)
    logits, emb = ort.InferenceSession(str(path)).run(None, {"spec": x})
    with torch.no_grad():
        ref_logits, ref_emb = net(torch.from_numpy(x))
    np.testing.assert_allclose(logits, ref_logits.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(emb, ref_emb.numpy(), atol=1e-4, rtol=1e-4)


# -- weights files and the download path ----------------------------------------------------
def test_safetensors_roundtrip(tmp_path: Path) -> None:
    tensors = {"a": torch.randn(3, 4), "b": torch.arange(5), "c": torch.randn(2).to(torch.bfloat16),
               "d": torch.tensor(7)}
    back = read_safetensors(write_safetensors(tensors, tmp_path / "x.safetensors"))
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v)
    (tmp_path / "bad.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{oops")
    with pytest.raises(ModelError, match="not a readable"):
        read_safetensors(tmp_path / "bad.safetensors")


def test_load_weights_file_unwraps_and_rejects(tmp_path: Path) -> None:
    state = {"w": torch.ones(2)}
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "ckpt.pth")
    assert torch.equal(load_weights_file(tmp_path / "ckpt.pth")["w"], state["w"])
    with pytest.raises(ModelError, match="does not exist"):
        load_weights_file(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a loadable"):
        load_weights_file(tmp_path / "junk.pth")


def test_download_from_the_hub_layout_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = tmp_path / "hub"
    remote = hub / "timm" / "vit_tiny_patch16_224.augreg_in21k_ft_in1k" / "resolve" / "main" / "model.safetensors"
    remote.parent.mkdir(parents=True)
    write_safetensors({"x": torch.ones(3)}, remote)
    monkeypatch.setenv("HF_ENDPOINT", hub.as_uri())
    monkeypatch.setenv("SPECMUSIC_CACHE", str(tmp_path / "cache"))
    assert weights_url("resnet18") == f"{hub.as_uri()}/timm/resnet18.a1_in1k/resolve/main/model.safetensors"
    path = ensure_imagenet_weights("vit_tiny_patch16_224", progress=False)
    assert path == tmp_path / "cache" / "timm" / "vit_tiny_patch16_224.augreg_in21k_ft_in1k.safetensors"
    assert torch.equal(read_safetensors(path)["x"], torch.ones(3))
    remote.unlink()
    assert ensure_imagenet_weights("vit_tiny_patch16_224", progress=False) == path  # cached: no download
    with pytest.raises(ModelError, match="--weights FILE"):
        ensure_imagenet_weights("resnet18", progress=False)  # "offline": nothing at the URL
    with pytest.raises(ConfigError, match="no ImageNet weights"):
        weights_url("vit_test")


def test_every_builtin_arch_is_listed() -> None:
    from specmusic.models.transfer import builtin_archs

    from specmusic.models import ARCHITECTURES

    assert set(BACKBONE_ARCHS) <= set(builtin_archs()) and {"cnn", "musicnn"} <= set(builtin_archs())
    assert set(builtin_archs()) == set(ARCHITECTURES)
