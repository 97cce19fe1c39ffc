"""A trained generator: loading a ``generate train`` folder and drawing spectrograms from it (torch, imported lazily)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from specmusic.errors import InputError, ModelError
from specmusic.fileio import display_path
from specmusic.generation.config import CHECKPOINT, CONFIG, FORMAT_VERSION, GenConfig

if TYPE_CHECKING:
    from specmusic.models.generative import UNet

__all__ = ["Generator", "load_generator", "make_unet", "sample_spectrograms", "set_torch_threads"]


def make_unet(config: GenConfig, n_classes: int) -> UNet:
    """A freshly initialised U-Net of ``config``'s shape (``n_classes`` 0: unconditional)."""
    from specmusic.models.generative import UNet, UNetConfig

    return UNet(UNetConfig(n_mels=config.n_mels, base=config.base, channel_mult=config.channel_mult,
                           emb_dim=config.emb_dim, n_classes=n_classes, patch=config.patch))


def set_torch_threads(threads: int | None = 0) -> None:
    """Torch intra-op threads: ``threads`` when > 0; 0: the idle cores by the 1-minute load average
    (oversubscribed OpenMP threads spin and stall); None: leave torch's setting alone."""
    if threads is None:
        return
    import torch

    if threads <= 0:
        from specmusic.workers import auto_threads

        threads = auto_threads()
    torch.set_num_threads(threads)


@dataclass
class Generator:
    """A trained generator: EMA network, its config and label names (empty: unconditional)."""

    path: str
    config: GenConfig
    labels: list[str]
    model: Any
    step: int

    def label_index(self, label: str | None) -> int | None:
        """Index of ``label`` (None → None); raises InputError naming the known labels."""
        if label is None:
            return None
        if not self.labels:
            raise InputError(f"{self.path}: the model is unconditional (trained without labels) — drop --label")
        if label not in self.labels:
            raise InputError(f"{self.path}: label {label!r} was never seen in training — use one of: {', '.join(self.labels)}")
        return self.labels.index(label)


def load_generator(path: str | os.PathLike[str], *, threads: int | None = 0) -> Generator:
    """Load a ``generate train`` folder (or its ``checkpoint.pt``) with ``torch.load(weights_only=True)``.

    Parameters
    ----------
    threads : torch threads (0: the idle cores; None: torch's current setting), see :func:`set_torch_threads`

    Raises
    ------
    ModelError
        Missing files, or a folder written by another format version.
    """
    p = Path(path)
    folder = p.parent if p.is_file() else p
    name = display_path(folder)
    cfg_path, ckpt_path = folder / CONFIG, folder / CHECKPOINT
    if not cfg_path.is_file() or not ckpt_path.is_file():
        raise ModelError(f"{name}: no {CONFIG} + {CHECKPOINT} — train one with `specmusic generate train DATA -o {name}`")
    try:
        meta = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{name}/{CONFIG}: unreadable ({exc}) — retrain the model") from None
    version = meta.get("format_version")
    if version != FORMAT_VERSION or meta.get("kind") != "specmusic-generator":
        raise ModelError(
            f"{name}: generator format {version!r} but this specmusic reads format {FORMAT_VERSION} — "
            f"retrain it with `specmusic generate train` of this version"
        )
    import torch

    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad model file
        raise ModelError(f"{name}/{CHECKPOINT}: cannot be loaded ({type(exc).__name__}) — retrain the model") from None
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{name}/{CHECKPOINT}: format {ckpt.get('format_version')!r} ≠ {FORMAT_VERSION} — retrain the model")
    config = GenConfig.from_dict(json.loads(ckpt["config"]))
    labels = [str(v) for v in ckpt["labels"]]
    set_torch_threads(threads)
    model = make_unet(config, len(labels))
    model.load_state_dict(ckpt["ema"])
    model.eval()
    return Generator(path=name, config=config, labels=labels, model=model, step=int(ckpt.get("step", 0)))


def sample_spectrograms(
    generator: Generator,
    *,
    n: int,
    label: str | None = None,
    seconds: float = 6.0,
    steps: int = 32,
    guidance: float = 2.0,
    seed: int = 0,
    batch_size: int = 8,
) -> np.ndarray:
    """Draw ``n`` normalised log-mel spectrograms (Euler integration of the learnt flow).

    Parameters
    ----------
    label : a label name of the model (conditional), or None (unconditional: the "no label" embedding)
    seconds : length; the model is fully convolutional, so any length works (quality is best
        near the training patch length and degrades gracefully beyond)
    guidance : classifier-free guidance scale (1: none)
    seed : same seed, same arrays

    Returns
    -------
    specs : np.ndarray [shape=(n, n_mels, n_frames)], float32 in [-1, 1]

    Raises
    ------
    InputError
        A label the model never saw, or a non-positive length.
    """
    import torch

    cfg = generator.config
    index = generator.label_index(label)
    if seconds <= 0 or n < 1 or steps < 1:
        raise InputError("--seconds, -n/--count and --steps must be positive — fix the options")
    frames = 1 + round(seconds * cfg.sample_rate) // cfg.hop_length
    width = -(-frames // cfg.multiple) * cfg.multiple
    noise = torch.randn(n, 1, cfg.n_mels, width, generator=torch.Generator().manual_seed(seed))
    n_classes = len(generator.labels)
    out = []
    with torch.no_grad():
        for b0 in range(0, n, batch_size):
            x = noise[b0 : b0 + batch_size].clone()
            m = x.shape[0]
            cond = None if index is None else torch.full((m,), index, dtype=torch.long)
            null = torch.full((m,), n_classes, dtype=torch.long) if n_classes else None
            for k in range(steps):
                t = torch.full((m,), k / steps)
                if cond is not None and guidance != 1.0:
                    v = generator.model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, null]))
                    vc, vu = v.chunk(2)
                    v = vu + guidance * (vc - vu)
                else:
                    v = generator.model(x, t, cond if cond is not None else null)
                x = x + v / steps
            out.append(x[:, 0, :, :frames].numpy())
    return np.clip(np.concatenate(out), -1.0, 1.0).astype(np.float32)
