"""Generative model of log-mel spectrograms and their inversion to audio (``specmusic generate``).

The model is a small class-conditional U-Net (:mod:`specmusic.models.generative`) trained with
flow matching (rectified flow): ``x_t = (1 - t) noise + t data``, the network predicts the
velocity ``data - noise``; sampling integrates it with Euler steps from noise (t=0) to data (t=1),
with classifier-free guidance when the data has labels. Spectrograms are log-mel patches in dB
relative to each clip's maximum, scaled to [-1, 1].

Inversion: mel power → linear power by non-negative least squares (multiplicative updates on
the project's own mel filterbank), then fast Griffin-Lim (Perraudin et al. 2013, momentum 0.99);
the output is DC-free, loudness-normalised (-20 dBFS RMS, peaks ≤ -1 dBFS).

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
    steps         = 32      # Euler steps when sampling
    guidance      = 2.0     # classifier-free guidance scale (1 = plain conditional)
    gl_iter       = 64      # Griffin-Lim iterations
    gl_momentum   = 0.99
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from specmusic.audio import loudness_normalize
from specmusic.config import ConfigBase
from specmusic.errors import ConfigError, InputError, ModelError
from specmusic.features import FeatureConfig, mel_filterbank
from specmusic import stft as _stft
from specmusic.fileio import atomic_write, display_path, save_torch_atomic, write_json_atomic

__all__ = [
    "FORMAT_VERSION",
    "GenConfig",
    "Generator",
    "TrainResult",
    "load_training_data",
    "train_generator",
    "load_generator",
    "sample_spectrograms",
    "normalize_db",
    "denormalize_db",
    "stft",
    "istft",
    "griffin_lim",
    "mel_to_linear",
    "spectral_convergence_db",
    "mel_to_audio",
    "invert_array",
]

#: Bumped whenever the checkpoint or config layout changes; older/newer folders are refused.
FORMAT_VERSION = 1
CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
FEATURES_CACHE = "features.npz"


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
        return FeatureConfig(
            kind="mel", sample_rate=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length,
            n_mels=self.n_mels, top_db=None,
        )


# -- normalisation ---------------------------------------------------------------------------
def normalize_db(mel_db: np.ndarray, *, db_range: float = 80.0) -> np.ndarray:
    """dB relative to the array's maximum, floored at ``-db_range``, mapped to [-1, 1].

    Parameters
    ----------
    mel_db : np.ndarray [shape=(n_mels, n_frames)], dB
    """
    rel = np.maximum(mel_db - float(np.max(mel_db)), -db_range)
    return (rel / (db_range / 2) + 1.0).astype(np.float32)


def denormalize_db(x: np.ndarray, *, db_range: float = 80.0) -> np.ndarray:
    """Inverse of :func:`normalize_db` (values clipped to [-1, 1]): dB with maximum ≤ 0."""
    return ((np.clip(x, -1.0, 1.0) - 1.0) * (db_range / 2)).astype(np.float32)


# -- data ------------------------------------------------------------------------------------
def load_training_data(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    config: GenConfig,
    train_list: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[list[np.ndarray], list[int], list[str]]:
    """Normalised log-mel spectrograms of the training clips and their labels.

    ``inputs`` are audio files/folders (label = first sub-folder, as ``specmusic train``) or
    ``.npz`` arrays from ``specmusic spectro`` computed with the same mel settings. With
    ``train_list`` (one relative path a line, e.g. ``splits/train_filtered.txt``) only those clips
    are used. ``cache`` (a ``.npz``) stores the result and is reused when the settings match.

    Returns
    -------
    specs : list of np.ndarray [shape=(n_mels, n_frames_i)], float32 in [-1, 1]
    labels : list of int, index into ``names`` (all 0 and ``names == []`` when unlabelled)
    names : sorted label names

    Raises
    ------
    InputError
        No usable clip, a clip shorter than a patch, or an array with other settings.
    """
    from specmusic.data import discover_tracks, read_split_list, track_key

    fc = config.feature_config
    key = json.dumps({"features": fc.digest(), "db_range": config.db_range,
                      "inputs": [os.path.abspath(p) for p in inputs],
                      "train_list": os.path.abspath(train_list) if train_list else None}, sort_keys=True)
    if cache is not None and os.path.exists(cache):
        with np.load(cache, allow_pickle=False) as z:
            if str(z["key"]) == key and int(z["format_version"]) == FORMAT_VERSION:
                flat, offsets = z["specs"], z["offsets"]
                specs = [flat[:, offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
                return specs, [int(v) for v in z["labels"]], [str(v) for v in z["names"]]
    tracks, failures = discover_tracks([os.fspath(p) for p in inputs])
    if failures:
        raise InputError(failures[0].error)
    if train_list is not None:
        keep = read_split_list(train_list)
        tracks = [t for t in tracks if track_key(t.relpath) in keep]
    if not tracks:
        raise InputError(
            f"no audio or .npz clips found in {', '.join(display_path(p) for p in inputs)}"
            + (f" listed in {display_path(train_list)}" if train_list else "")
            + " — pass a folder of audio files (one sub-folder per label)"
        )
    from tqdm import tqdm

    from specmusic.features import compute_features_file

    specs: list[np.ndarray] = []
    raw_labels: list[str | None] = []
    for track in tqdm(tracks, desc="features", unit="clip", disable=None if progress is None else not progress, leave=False):
        if track.path.lower().endswith(".npz"):
            from specmusic.specfile import load_spectrogram

            spec, cfg = load_spectrogram(track.path)
            if cfg.kind != "mel" or (cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.n_mels) != (
                fc.sample_rate, fc.n_fft, fc.hop_length, fc.n_mels
            ):
                raise InputError(
                    f"{display_path(track.path)}: a {cfg.kind} array with sr {cfg.sample_rate}, n_fft {cfg.n_fft}, "
                    f"hop {cfg.hop_length}, {cfg.n_rows} rows — recompute it with `specmusic spectro --kind mel "
                    f"--n-mels {fc.n_mels}` or train from the audio files"
                )
        else:
            spec, _ = compute_features_file(track.path, fc)
        if spec.shape[1] < config.patch_frames:
            if log:
                log(f"skipping {display_path(track.path)}: {spec.shape[1]} frames < patch of {config.patch_frames}")
            continue
        specs.append(normalize_db(spec, db_range=config.db_range))
        raw_labels.append(track.label)
    if not specs:
        raise InputError(f"every clip is shorter than a patch of {config.patch_frames} frames — use longer clips or a smaller --patch-frames")
    names = sorted({lab for lab in raw_labels if lab is not None})
    if names and any(lab is None for lab in raw_labels):
        raise InputError("some clips have a label folder and some do not — put every clip in a label folder, or none")
    labels = [names.index(lab) if lab is not None else 0 for lab in raw_labels]
    if cache is not None:
        offsets = np.cumsum([0] + [s.shape[1] for s in specs])
        atomic_write(cache, lambda f: np.savez(
            f, specs=np.concatenate(specs, axis=1), offsets=offsets, labels=np.asarray(labels, dtype=np.int64),
            names=np.asarray(names, dtype=str), key=np.asarray(key), format_version=np.asarray(FORMAT_VERSION)))
    return specs, labels, names


# -- training --------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainResult:
    """Summary of a training run (also written into ``config.json``)."""

    steps: int
    epochs: float
    seconds: float
    final_loss: float | None  # None: no step taken (a finished run resumed)
    first_loss: float | None
    stopped_by: str
    n_clips: int
    labels: list[str]
    resumed_from: int = 0  # the checkpoint's step when this run continued an earlier one (0: a fresh run)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _make_unet(config: GenConfig, n_classes: int):
    from specmusic.models.generative import UNet, UNetConfig

    return UNet(UNetConfig(n_mels=config.n_mels, base=config.base, channel_mult=config.channel_mult,
                           emb_dim=config.emb_dim, n_classes=n_classes, patch=config.patch))


def _save_checkpoint(out_dir: Path, *, config: GenConfig, names: list[str], ema, model, optim, step: int,
                     summary: dict[str, Any] | None) -> None:

    payload = {
        "format_version": FORMAT_VERSION,
        "config": json.dumps(config.to_dict()),
        "labels": list(names),
        "ema": ema.state_dict(),
        "model": model.state_dict(),
        "optim": optim.state_dict(),
        "step": step,
    }
    save_torch_atomic(out_dir / CHECKPOINT, payload)
    meta = {"format_version": FORMAT_VERSION, "kind": "specmusic-generator", "labels": list(names),
            "config": config.to_dict(), "feature_config": config.feature_config.to_dict(), "step": step,
            "training": summary}
    write_json_atomic(out_dir / CONFIG, meta)


def train_generator(
    specs: Sequence[np.ndarray],
    labels: Sequence[int],
    names: Sequence[str],
    *,
    out_dir: str | os.PathLike[str],
    config: GenConfig | None = None,
    minutes: float | None = None,
    epochs: float | None = None,
    max_steps: int | None = None,
    seed: int = 0,
    threads: int | None = 1,
    checkpoint_minutes: float = 2.0,
    force: bool = False,
    progress: bool | None = None,
) -> TrainResult:
    """Train the flow-matching U-Net on random patches; write ``checkpoint.pt`` and ``config.json``.

    A folder that already holds a checkpoint of the same settings and labels is **resumed**: network,
    EMA and optimiser state and the step count come from it. ``epochs`` / ``max_steps`` then count from
    the start of the first run (a finished run is not trained further), ``minutes`` is this session's
    budget.

    Parameters
    ----------
    specs : list of np.ndarray [shape=(n_mels, n_frames_i)], normalised (:func:`normalize_db`)
    labels : class index per spec (ignored when ``names`` is empty: unconditional)
    minutes : wall-clock budget for the optimisation (checked every step)
    epochs : passes over the data, one pass = total frames / patch_frames patches
    max_steps : hard cap on optimiser steps
    threads : torch intra-op threads (None: torch's default)
    checkpoint_minutes : save this often (atomically), and at the end
    force : start from scratch even when ``out_dir`` holds a checkpoint

    Raises
    ------
    ConfigError
        Neither a budget nor a number of epochs/steps, specs with the wrong number of rows, or a
        checkpoint in ``out_dir`` of other settings, labels or format (without ``force``).
    """
    import torch
    from tqdm import tqdm

    config = config or GenConfig()
    if minutes is None and epochs is None and max_steps is None:
        raise ConfigError("no stopping rule — pass --minutes or --epochs")
    for s in specs:
        if s.ndim != 2 or s.shape[0] != config.n_mels or s.shape[1] < config.patch_frames:
            raise ConfigError(f"training spec of shape {s.shape} needs {config.n_mels} rows and ≥ {config.patch_frames} frames")
    if threads:
        torch.set_num_threads(threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_classes = len(names)
    model = _make_unet(config, n_classes)
    ema = _make_unet(config, n_classes)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    optim = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    step = 0
    if (out / CHECKPOINT).is_file() and not force:
        step = _resume(out, config, list(names), model=model, ema=ema, optim=optim)
        # fresh randomness for the steps still to come (a resumed run is not the uninterrupted one)
        torch.manual_seed(seed * 1_000_003 + step)
        rng = np.random.default_rng([seed, step])
    resumed_from = step

    lab = np.asarray(labels, dtype=np.int64)
    by_class = [np.flatnonzero(lab == c) for c in range(max(n_classes, 1))] if n_classes else [np.arange(len(specs))]
    by_class = [c for c in by_class if len(c)]
    total_frames = sum(s.shape[1] for s in specs)
    steps_per_epoch = max(1, math.ceil(total_frames / config.patch_frames / config.batch_size))
    limit = max_steps
    if epochs is not None:
        limit = min(limit or 10**12, max(1, round(epochs * steps_per_epoch)))
    budget = None if minutes is None else minutes * 60.0
    bar = tqdm(total=limit if limit is not None else None, initial=step, desc="generate train", unit="step",
               disable=None if progress is None else not progress, dynamic_ncols=True)
    start = time.perf_counter()
    last_ckpt = start
    stopped_by, first_loss, running = "steps", float("nan"), float("nan")
    P = config.patch_frames
    while True:
        elapsed = time.perf_counter() - start
        if limit is not None and step >= limit:
            stopped_by = "epochs" if epochs is not None else "steps"
            break
        if budget is not None and elapsed >= budget:
            stopped_by = "minutes"
            break
        # balanced batch: a class uniformly, then a clip of it, then a random window
        cls = rng.integers(len(by_class), size=config.batch_size)
        batch = np.empty((config.batch_size, 1, config.n_mels, P), dtype=np.float32)
        ys = np.empty(config.batch_size, dtype=np.int64)
        for b, c in enumerate(cls):
            i = int(rng.choice(by_class[c]))
            s = specs[i]
            t0 = int(rng.integers(0, s.shape[1] - P + 1))
            batch[b, 0] = s[:, t0 : t0 + P]
            ys[b] = lab[i] if n_classes else 0
        x1 = torch.from_numpy(batch)
        x0 = torch.randn_like(x1)
        t = torch.rand(config.batch_size)
        xt = (1 - t)[:, None, None, None] * x0 + t[:, None, None, None] * x1
        y = torch.from_numpy(ys)
        if n_classes:
            drop = torch.rand(config.batch_size) < config.label_dropout
            y = torch.where(drop, torch.full_like(y, n_classes), y)
        pred = model(xt, t, y if n_classes else None)
        loss = torch.mean((pred - (x1 - x0)) ** 2)
        for g in optim.param_groups:
            g["lr"] = config.lr * min(1.0, (step + 1) / max(1, config.warmup_steps))
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        decay = min(config.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - decay)
            for be, bm in zip(ema.buffers(), model.buffers()):
                be.copy_(bm)
        value = float(loss.detach())
        first_loss = value if step == resumed_from else first_loss
        running = value if step == resumed_from else 0.98 * running + 0.02 * value
        step += 1
        bar.update(1)
        elapsed = time.perf_counter() - start
        post = {"loss": f"{running:.4f}", "epoch": f"{step / steps_per_epoch:.1f}"}
        if budget is not None:
            post["left"] = f"{max(0.0, budget - elapsed) / 60:.1f}min"
        bar.set_postfix(post, refresh=False)
        if time.perf_counter() - last_ckpt >= checkpoint_minutes * 60:
            _save_checkpoint(out, config=config, names=list(names), ema=ema, model=model, optim=optim, step=step, summary=None)
            last_ckpt = time.perf_counter()
    bar.close()
    result = TrainResult(
        steps=step, epochs=round(step / steps_per_epoch, 3), seconds=round(time.perf_counter() - start, 2),
        final_loss=round(running, 6) if step > resumed_from else None,
        first_loss=round(first_loss, 6) if step > resumed_from else None, stopped_by=stopped_by,
        n_clips=len(specs), labels=list(names), resumed_from=resumed_from,
    )
    if step > resumed_from or not resumed_from:  # a finished run resumed took no step: keep its files as they are
        _save_checkpoint(out, config=config, names=list(names), ema=ema, model=model, optim=optim, step=step,
                         summary=result.to_dict())
    return result


def _resume(out: Path, config: GenConfig, names: list[str], *, model, ema, optim) -> int:
    """Load ``out/checkpoint.pt`` into the fresh modules (``weights_only``); its step."""
    import torch

    name = display_path(out)
    try:
        ckpt = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a torn or foreign file
        raise ConfigError(
            f"{name}/{CHECKPOINT}: unreadable checkpoint ({type(exc).__name__}) — pass --force to start over"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"{name} holds a generator of another format — use another -o, or --force to start over")
    if json.loads(ckpt["config"]) != json.loads(json.dumps(config.to_dict())) or list(ckpt["labels"]) != names:
        raise ConfigError(
            f"{name} holds a run with other settings or labels — use another -o, or --force to start over"
        )
    model.load_state_dict(ckpt["model"])
    ema.load_state_dict(ckpt["ema"])
    optim.load_state_dict(ckpt["optim"])
    return int(ckpt["step"])


# -- loading and sampling --------------------------------------------------------------------
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


def load_generator(path: str | os.PathLike[str], *, threads: int | None = 1) -> Generator:
    """Load a ``generate train`` folder (or its ``checkpoint.pt``) with ``torch.load(weights_only=True)``.

    Raises
    ------
    ModelError
        Missing files, or a folder written by another format version.
    """
    import torch

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
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad model file
        raise ModelError(f"{name}/{CHECKPOINT}: cannot be loaded ({type(exc).__name__}) — retrain the model") from None
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{name}/{CHECKPOINT}: format {ckpt.get('format_version')!r} ≠ {FORMAT_VERSION} — retrain the model")
    config = GenConfig.from_dict(json.loads(ckpt["config"]))
    labels = [str(v) for v in ckpt["labels"]]
    if threads:
        torch.set_num_threads(threads)
    model = _make_unet(config, len(labels))
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
        raise InputError("--seconds, -n and --steps must be positive — fix the options")
    frames = 1 + int(round(seconds * cfg.sample_rate)) // cfg.hop_length
    mult = cfg.multiple
    width = -(-frames // mult) * mult
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, 1, cfg.n_mels, width, generator=gen)
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


# -- STFT and Griffin-Lim --------------------------------------------------------------------
def stft(y: np.ndarray, *, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """Complex128 STFT (:func:`specmusic.stft.stft`)."""
    return _stft.stft(y, n_fft=n_fft, hop_length=hop_length)


def istft(X: np.ndarray, *, n_fft: int = 2048, hop_length: int = 512, length: int | None = None) -> np.ndarray:
    """Inverse of :func:`stft` (:func:`specmusic.stft.istft`); ``n_fft`` must match ``X``'s rows."""
    if X.shape[0] != n_fft // 2 + 1:
        raise InputError(f"STFT of shape {X.shape} needs {n_fft // 2 + 1} rows for n_fft={n_fft} — fix n_fft or the array")
    return _stft.istft(X, hop_length=hop_length, length=length)


def spectral_convergence_db(y: np.ndarray, magnitude: np.ndarray, *, n_fft: int = 2048, hop_length: int = 512) -> float:
    """``20 log10(‖|STFT(y)| − S‖_F / ‖S‖_F)`` in dB (lower is better; -inf for a perfect match)."""
    S = np.asarray(magnitude, dtype=np.float64)
    A = np.abs(stft(y, n_fft=n_fft, hop_length=hop_length))
    T = min(A.shape[1], S.shape[1])
    num = np.linalg.norm(A[:, :T] - S[:, :T])
    den = max(np.linalg.norm(S[:, :T]), 1e-12)
    return float(20 * np.log10(max(num / den, 1e-12)))


def griffin_lim(
    magnitude: np.ndarray,
    *,
    n_fft: int = 2048,
    hop_length: int = 512,
    n_iter: int = 64,
    momentum: float = 0.99,
    seed: int = 0,
) -> tuple[np.ndarray, float]:
    """Fast Griffin-Lim (Perraudin, Balazs & Søndergaard 2013): phase for a magnitude spectrogram.

    Parameters
    ----------
    magnitude : np.ndarray [shape=(1 + n_fft // 2, n_frames)], non-negative
    momentum : 0 gives plain Griffin-Lim; 0.99 the fast variant

    Returns
    -------
    y : np.ndarray [shape=(hop_length * (n_frames - 1),)], float32 (not normalised)
    sc_db : spectral convergence of ``y`` against ``magnitude`` (:func:`spectral_convergence_db`)
    """
    S = np.asarray(magnitude, dtype=np.float64)
    if S.ndim != 2 or S.shape[0] != n_fft // 2 + 1:
        raise InputError(f"magnitude of shape {S.shape} needs {n_fft // 2 + 1} rows for n_fft={n_fft} — fix n_fft or the array")
    rng = np.random.default_rng(seed)
    angles = np.exp(2j * np.pi * rng.random(S.shape))
    length = hop_length * (S.shape[1] - 1)
    rebuilt = np.zeros_like(angles)
    for _ in range(n_iter):
        previous = rebuilt
        inverse = istft(S * angles, n_fft=n_fft, hop_length=hop_length, length=length)
        rebuilt = stft(inverse, n_fft=n_fft, hop_length=hop_length)[:, : S.shape[1]]
        angles = rebuilt - (momentum / (1 + momentum)) * previous
        angles /= np.abs(angles) + 1e-16
    y = istft(S * angles, n_fft=n_fft, hop_length=hop_length, length=length)
    return y.astype(np.float32), spectral_convergence_db(y, S, n_fft=n_fft, hop_length=hop_length)


def mel_to_linear(mel_power: np.ndarray, *, config: FeatureConfig, n_iter: int = 100) -> np.ndarray:
    """Non-negative least-squares linear power spectrogram whose mel projection is ``mel_power``.

    Multiplicative updates (Lee & Seung, Euclidean) on the project's mel filterbank, started from
    the filterbank's transpose applied to the target.

    Parameters
    ----------
    mel_power : np.ndarray [shape=(n_mels, n_frames)], power (not dB)

    Returns
    -------
    power : np.ndarray [shape=(1 + n_fft // 2, n_frames)], float64, ≥ 0
    """
    fb = mel_filterbank(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels, fmin=config.fmin,
                        fmax=config.fmax, htk=config.mel_scale == "htk", norm=config.mel_norm).astype(np.float64)
    M = np.maximum(np.asarray(mel_power, dtype=np.float64), 0.0)
    if M.ndim != 2 or M.shape[0] != fb.shape[0]:
        raise InputError(f"mel array of shape {M.shape} needs {fb.shape[0]} rows — fix --n-mels or the array")
    numer = fb.T @ M
    col = fb.sum(axis=0)
    P = numer / np.where(col > 0, col**2, 1.0)[:, None] + 1e-12 * M.max()
    eps = 1e-20
    for _ in range(n_iter):
        P *= numer / (fb.T @ (fb @ P) + eps)
    return P


def mel_to_audio(
    mel_db: np.ndarray,
    *,
    config: FeatureConfig,
    n_iter: int = 64,
    momentum: float = 0.99,
    seed: int = 0,
    normalize: bool = True,
) -> tuple[np.ndarray, float]:
    """Log-mel (dB) → linear magnitude → fast Griffin-Lim → DC-free, loudness-normalised audio.

    Returns
    -------
    y : np.ndarray [shape=(hop_length * (n_frames - 1),)], float32, RMS -20 dBFS, peak ≤ -1 dBFS
    sc_db : spectral convergence (dB) of the audio against the linear magnitude it was made from
    """
    mel_power = 10.0 ** (np.asarray(mel_db, dtype=np.float64) / 10.0)
    magnitude = np.sqrt(mel_to_linear(mel_power, config=config))
    y, sc = griffin_lim(magnitude, n_fft=config.n_fft, hop_length=config.hop_length, n_iter=n_iter,
                        momentum=momentum, seed=seed)
    return (loudness_normalize(y) if normalize else y), sc


def invert_array(
    array: np.ndarray,
    *,
    config: FeatureConfig,
    scale: str = "db",
    n_iter: int = 64,
    momentum: float = 0.99,
    seed: int = 0,
    name: str = "array",
) -> tuple[np.ndarray, float]:
    """Any mel or STFT-magnitude array back to audio (see :func:`mel_to_audio`).

    Parameters
    ----------
    array : np.ndarray [shape=(n_mels, n_frames)] when ``config.kind == "mel"``,
        [shape=(1 + n_fft // 2, n_frames)] when ``"stft"``
    scale : ``"db"`` (power dB, as ``specmusic spectro``), ``"power"`` or ``"magnitude"``

    Raises
    ------
    InputError
        Wrong number of dimensions or rows, too few frames, non-finite values, unknown scale.
    """
    a = np.asarray(array)
    rows = config.n_rows
    if a.ndim != 2 or a.shape[0] != rows or a.shape[1] < 2:
        hint = f"--n-mels {a.shape[0]}" if config.kind == "mel" and a.ndim == 2 else "a (rows, frames) array"
        raise InputError(
            f"{name}: shape {a.shape} is not a {config.kind} spectrogram of {rows} rows × ≥2 frames — "
            f"pass {hint} or the matching --kind/--n-fft"
        )
    if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a) or not np.all(np.isfinite(a)):
        raise InputError(f"{name}: values must be real and finite — save the magnitude (np.abs) or dB array")
    a = a.astype(np.float64)
    if scale == "db":
        power = 10.0 ** ((a - a.max()) / 10.0)
    elif scale == "power":
        power = np.maximum(a, 0.0)
    elif scale == "magnitude":
        power = np.maximum(a, 0.0) ** 2
    else:
        raise InputError(f"scale {scale!r} — use db, power or magnitude")
    if config.kind == "mel":
        magnitude = np.sqrt(mel_to_linear(power, config=config))
    elif config.kind == "stft":
        magnitude = np.sqrt(power)
    else:
        raise InputError(f"{name}: {config.kind} arrays cannot be inverted — only mel and stft")
    y, sc = griffin_lim(magnitude, n_fft=config.n_fft, hop_length=config.hop_length, n_iter=n_iter,
                        momentum=momentum, seed=seed)
    return loudness_normalize(y), sc


def config_with(config: GenConfig, **changes: Any) -> GenConfig:
    """``dataclasses.replace`` ignoring ``None`` values (CLI options left unset)."""
    return replace(config, **{k: v for k, v in changes.items() if v is not None})
