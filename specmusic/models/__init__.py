"""Neural network architectures (torch) and their frozen ``*Config`` dataclasses.

Importing this package is light: each architecture lives in its own module (``specmusic.models.cnn``)
and imports torch itself, so nothing on the inference path pulls torch in by accident.
"""

from __future__ import annotations

__all__ = ["ARCHITECTURES"]

#: Architecture name (as written in checkpoints and ONNX metadata) → ``module:Class``.
ARCHITECTURES: dict[str, str] = {
    "cnn": "specmusic.models.cnn:SpecCNN",
}
