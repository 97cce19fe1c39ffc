"""Settings of a generator run, the folder layout it writes, and the [-1, 1] scaling of log-mel patches.

Defaults (one block, nanoGPT-style)::

    sample_rate   = 22050   # Hz
    n_fft         = 2048    # STFT size of features and inversion
    hop_length    = 512     # ~23 ms per frame
    n_mels        = 64      # mel bands the model sees
    db_range      = 80.0    # dB below each clip's maximum mapped to -1 (the maximum is +1)
    patch_frames  = 128     # training patch width (~3 s)
    batch_size    = 16
    lr            = 1e-3    # AdamW, 200 warm-up steps, gradients clipped at 1
    ema_decay     = 0.999   # sampling uses the EMA weights
    label_dropout = 0.15    # labels replaced by "no label" (for classifier-free guidance)
    base, channel_mult = 32, (1, 2, 4)   # U-Net width
    patch         = 2       # 2x2 pixel-unshuffle before the U-Net (4x cheaper on a CPU)

Sampling (``steps`` 32, ``guidance`` 2.0) and inversion (``gl_iter`` 64, ``momentum`` 0.99) take their
settings as arguments, not from this config.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from specmusic.config import ConfigBase
from specmusic.errors import ConfigError

if TYPE_CHECKING:  # numpy and the features are imported on use: the CLI's help reads MAX_SAMPLE_SECONDS without them
    import numpy as np

    from specmusic.features import FeatureConfig

__all__ = [
    "CHECKPOINT",
    "CONFIG",
    "FEATURES_CACHE",
    "FORMAT_VERSION",
    "LOSS_PNG",
    "MAX_SAMPLE_SECONDS",
    "MODEL_ONNX",
    "ONNX_METADATA_KEY",
    "SAMPLES_PNG",
    "GenConfig",
    "check_sample_seconds",
    "config_with",
    "denormalize_db",
    "normalize_db",
    "onnx_metadata",
    "sample_stem",
]

#: Bumped whenever the checkpoint or config layout changes; older/newer folders are refused.
FORMAT_VERSION = 1
# the files of a `generate train` folder
CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
FEATURES_CACHE = "features.npz"
LOSS_PNG = "loss.png"
SAMPLES_PNG = "samples.png"
#: The EMA U-Net for onnxruntime: what ``generate sample`` runs (no torch). Inputs ``x`` [shape=(batch, 1,
#: n_mels, frames)] float32, ``t`` [shape=(batch,)] float32 and, when the model has labels, ``label``
#: [shape=(batch,)] int64 (``len(labels)`` = no label); output ``v`` shaped as ``x``. ``frames`` is any
#: multiple of :attr:`GenConfig.multiple`.
MODEL_ONNX = "model.onnx"
#: Key of the ONNX ``metadata_props`` entry holding :func:`onnx_metadata` (JSON).
ONNX_METADATA_KEY = "specmusic-generator"

#: The longest sample ``generate sample`` draws (s). The network learnt ~3 s patches: far longer samples
#: only repeat its texture, while inverting one holds ~100 bytes per time-frequency bin (≈ 5 MB a second
#: at the defaults): 2 minutes stay well under 1 GB.
MAX_SAMPLE_SECONDS = 120.0


@dataclass(frozen=True)
class GenConfig(ConfigBase):
    """Everything that determines a generator run; written as ``config.json`` beside the checkpoint."""

    what = "generator config"

    sample_rate: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 64
    db_range: float = 80.0
    patch_frames: int = 128
    batch_size: int = 16
    lr: float = 1e-3
    warmup_steps: int = 200
    ema_decay: float = 0.999
    label_dropout: float = 0.15
    base: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 4)
    emb_dim: int = 128
    patch: int = 2

    def __post_init__(self) -> None:
        mult = self.multiple
        if self.patch_frames % mult or self.n_mels % mult:
            raise ConfigError(
                f"patch_frames={self.patch_frames} and n_mels={self.n_mels} must be multiples of {mult} — fix them"
            )
        if self.batch_size < 1 or self.lr <= 0 or not 0 <= self.label_dropout < 1:
            raise ConfigError("batch_size ≥ 1, lr > 0 and 0 ≤ label_dropout < 1 — fix the options")

    @property
    def multiple(self) -> int:
        """Heights and widths the U-Net accepts are multiples of this."""
        return self.patch * 2 ** (len(self.channel_mult) - 1)

    @property
    def feature_config(self) -> FeatureConfig:
        """The project's mel features with these settings (dB, no floor: the floor is applied per clip)."""
        from specmusic.features import FeatureConfig

        return FeatureConfig(
            kind="mel", sample_rate=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length,
            n_mels=self.n_mels, top_db=None,
        )


def config_with(config: GenConfig, **changes: Any) -> GenConfig:
    """``dataclasses.replace`` ignoring ``None`` values (CLI options left unset)."""
    return replace(config, **{k: v for k, v in changes.items() if v is not None})


def normalize_db(mel_db: np.ndarray, *, db_range: float = 80.0) -> np.ndarray:
    """dB relative to the array's maximum, floored at ``-db_range``, mapped to [-1, 1].

    Parameters
    ----------
    mel_db : np.ndarray [shape=(n_mels, n_frames)], dB
    """
    import numpy as np

    rel = np.maximum(mel_db - float(np.max(mel_db)), -db_range)
    return (rel / (db_range / 2) + 1.0).astype(np.float32)


def denormalize_db(x: np.ndarray, *, db_range: float = 80.0) -> np.ndarray:
    """Inverse of :func:`normalize_db` (values clipped to [-1, 1]): dB with maximum ≤ 0."""
    import numpy as np

    return ((np.clip(x, -1.0, 1.0) - 1.0) * (db_range / 2)).astype(np.float32)


def onnx_metadata(*, config: GenConfig, labels: list[str], step: int) -> dict[str, Any]:
    """What ``model.onnx`` says of itself; it must equal that of ``config.json`` (else the file is stale).

    The step tells an export apart from the checkpoint of a run that went on (or was interrupted)
    after it; a fresh run (``--force``) removes the old ``model.onnx`` first.
    """
    return {"kind": "specmusic-generator", "format_version": FORMAT_VERSION, "config": config.to_dict(),
            "labels": list(labels), "step": int(step)}


def check_sample_seconds(seconds: float) -> None:
    """Refuse a sample length outside ``(0, MAX_SAMPLE_SECONDS]`` (before any model is loaded).

    Raises
    ------
    InputError
        Not a positive finite length, or longer than :data:`MAX_SAMPLE_SECONDS`.
    """
    from specmusic.errors import InputError

    if not (math.isfinite(seconds) and seconds > 0):
        raise InputError(f"--seconds {seconds:g} is not a positive length — e.g. --seconds 6")
    if seconds > MAX_SAMPLE_SECONDS:
        raise InputError(
            f"--seconds {seconds:g} is more than the {MAX_SAMPLE_SECONDS:g} s a sample may last (the model learnt "
            f"~3 s patches, and inverting a sample takes ~5 MB of memory per second) — use --seconds "
            f"{MAX_SAMPLE_SECONDS:g} or less, and draw several samples (-n) to join"
        )


def sample_stem(label: str | None) -> str:
    """The start of a sample's file names: the label (``sample`` without one), path separators replaced.

    Never treat it as a path with an extension: a label such as ``wesnoth-1.16-music`` has a dot, and
    ``Path.with_suffix`` would cut it there. Names are built as ``f"{stem}_{seed}_{index:03d}.wav"``.
    """
    stem = label or "sample"
    for sep in {"/", "\\", os.sep, os.altsep} - {None}:
        stem = stem.replace(sep, "_")
    return stem
