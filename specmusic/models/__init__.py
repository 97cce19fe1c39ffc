"""Neural network architectures (torch) and their frozen ``*Config`` dataclasses.

Importing this package is light: each architecture lives in its own module (``specmusic.models.cnn``)
and imports torch itself, so nothing on the inference path pulls torch in by accident.
"""

from __future__ import annotations

__all__ = ["ARCHITECTURES"]

#: Architecture name (as written in checkpoints and ONNX metadata) → ``module:Class``.
ARCHITECTURES: dict[str, str] = {
    "cnn": "specmusic.models.cnn:SpecCNN",
    # pretrained music taggers with a new head (specmusic train --arch musicnn --pretrained mtat)
    **{name: "specmusic.models.transfer:TaggerClassifier" for name in ("musicnn", "fcn", "crnn")},
    # EfficientAT's AudioSet tagger with a new last layer (specmusic train --arch audioset-mn04 --pretrained)
    "audioset-mn04": "specmusic.models.transfer:AudioSetClassifier",
    # ImageNet backbones with timm's parameter names (specmusic train --arch resnet18 --pretrained)
    "resnet18": "specmusic.models.backbones:ResNet",
    "resnet34": "specmusic.models.backbones:ResNet",
    "efficientnet_lite0": "specmusic.models.backbones:EfficientNetLite",
    "tf_efficientnet_lite0": "specmusic.models.backbones:EfficientNetLite",
    "vit_tiny_patch16_224": "specmusic.models.backbones:VisionTransformer",
    "deit_tiny_patch16_224": "specmusic.models.backbones:VisionTransformer",
    "vit_small_patch16_224": "specmusic.models.backbones:VisionTransformer",
    "vit_test": "specmusic.models.backbones:VisionTransformer",
}
