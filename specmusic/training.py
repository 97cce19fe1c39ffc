"""Train a spectrogram classifier (torch): chunks, augmentation, early stopping, per-track evaluation.

``train(data, out)`` takes an audio folder (labels from sub-folders, groups from a ``manifest.csv``
beside it when there is one) or a ``specmusic spectro`` output folder (labels and groups from its
``manifest.jsonl``), splits the tracks by group (or by GTZAN-style lists), trains a
:class:`~specmusic.models.cnn.SpecCNN` (or, with ``model_spec=ModelSpec(arch=…)``, a pretrained music
tagger or an ImageNet backbone with a new head: see :mod:`specmusic.models.transfer`) on random
crops, and writes into ``out``::

    model.onnx           the classifier, self-contained (see specmusic.inference)
    config.json          the resolved configuration
    checkpoint.pt        weights + optimizer + history, to resume an interrupted run
    splits.json          which tracks went to train / valid / test
    metrics.json         test accuracy, macro-F1, per-class precision/recall, per-track predictions
    confusion.png        test confusion matrix
    training_curve.png   loss and accuracy per epoch
    features/            cached arrays (audio input only)

Defaults (one block, nanoGPT-style)::

    chunk_seconds   = 3.0      # training crop / evaluation chunk length; 0 = whole tracks
    epochs          = 20       # epoch budget (one epoch = every non-overlapping chunk of every training track)
    batch_size      = 32
    lr              = 3e-3     # peak AdamW learning rate (1 epoch linear warm-up, then cosine to 0)
    weight_decay    = 1e-2
    patience        = 10       # stop after this many epochs without a better validation score; the
                               # best epoch (kept) is chosen from epoch epochs//3 on, never earlier
    augment         = ()       # none by default (measured best); of: shift mask gain freqshift mixup
    mixup_alpha     = 0.4
    drop_hard       = 0.0      # fraction of highest-loss training chunks dropped after the warm-up
    drop_hard_after = 3        # warm-up epochs before dropping
    track_pooling   = "mean"   # evaluation: mean of chunk probabilities | vote | center chunk only
    valid_fraction  = 0.1      # of all tracks, carved by group from training when no --valid-file
    test_fraction   = 0.2      # of all tracks, carved by group when no --test-file
    seed            = 0
    threads         = 0        # torch threads; 0 = auto: the cores not busy with other work (load average)
    device          = "auto"   # where the network trains: auto (a CUDA GPU when torch sees one, else cpu), cpu,
                               # cuda, cuda:N, mps; evaluation and the ONNX export are the same either way
    freeze_epochs   = 0        # transfer: epochs training only the new head (backbone frozen, batch-norm
                               # statistics kept); = epochs: a linear probe
    finetune_lr     = None     # transfer: peak lr of the full finetune after the frozen epochs (None: lr / 10);
                               # each phase has its own warm-up + cosine schedule
    freeze_front    = False    # transfer: keep the first layers (model.front_prefixes: a tagger's front end,
                               # a CNN's stem + first stage, a ViT's patch embedding) frozen in the finetune too
    max_seconds     = 0.0      # stop after the epoch that passes this training time (0 = no limit)
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from specmusic.fileio import display_path, save_torch_atomic, write_json_atomic
from specmusic.data import Track, apply_split_lists, discover_tracks, read_manifest, split_by_group, track_key
from specmusic.config import ConfigBase
from specmusic.errors import ConfigError, InputError
from specmusic.features import FeatureConfig, chunk_features, chunk_starts
from specmusic.models.cnn import CNNConfig, SpecCNN
from specmusic.models.transfer import ModelSpec
from specmusic.specfile import load_spectrogram, read_spectro_manifest
from specmusic.spectro import run_spectro

__all__ = [
    "AUGMENTS",
    "DEFAULT_FEATURES",
    "TrainConfig",
    "TrackData",
    "TrainResult",
    "load_training_data",
    "make_splits",
    "train",
    "evaluate_tracks",
    "classification_metrics",
]

AUGMENTS = ("shift", "mask", "gain", "freqshift", "mixup")
POOLINGS = ("mean", "vote", "center")
#: Features computed from audio input: 64-band log-mel at 22050 Hz, FFT 2048, hop 1024 (~46 ms):
#: a 3 s crop is 64 x 65, cheap enough to train on a 2-core CPU in minutes.
DEFAULT_FEATURES = FeatureConfig(kind="mel", n_mels=64, hop_length=1024)
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class TrainConfig(ConfigBase):
    """Training settings; see the module docstring for the defaults."""

    what = "training config"

    chunk_seconds: float = 3.0
    epochs: int = 20
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-2
    patience: int = 10
    augment: tuple[str, ...] = ()
    mixup_alpha: float = 0.4
    drop_hard: float = 0.0
    drop_hard_after: int = 3
    track_pooling: str = "mean"
    valid_fraction: float = 0.1
    test_fraction: float = 0.2
    seed: int = 0
    threads: int = 0
    device: str = "auto"
    freeze_epochs: int = 0
    finetune_lr: float | None = None
    freeze_front: bool = False
    max_seconds: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "augment", tuple(a for a in self.augment if a and a != "none"))
        unknown = [a for a in self.augment if a not in AUGMENTS]
        if unknown:
            raise ConfigError(f"unknown augmentation {unknown[0]!r} — use a comma list of {','.join(AUGMENTS)} or none")
        if self.track_pooling not in POOLINGS:
            raise ConfigError(f"unknown track pooling {self.track_pooling!r} — use one of {', '.join(POOLINGS)}")
        if self.chunk_seconds < 0 or self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError("chunk_seconds >= 0, epochs >= 1, batch_size >= 1 and lr > 0 are required — fix the options")
        if not 0.0 <= self.drop_hard < 1.0:
            raise ConfigError(f"--drop-hard {self.drop_hard} must be in [0, 1) — e.g. 0.1 drops a tenth")
        if self.freeze_epochs < 0 or self.freeze_epochs > self.epochs:
            raise ConfigError(
                f"--freeze-epochs {self.freeze_epochs} must be between 0 and --epochs {self.epochs} — "
                "use --linear-probe to train the head alone for every epoch"
            )
        if (self.finetune_lr is not None and self.finetune_lr <= 0) or self.max_seconds < 0:
            raise ConfigError("--finetune-lr must be > 0 and --time-budget >= 0 — fix the options")
        if not (0 <= self.valid_fraction < 1 and 0 <= self.test_fraction < 1 and self.valid_fraction + self.test_fraction < 1):
            raise ConfigError("valid and test fractions must be in [0, 1) and sum below 1 — fix the options")


@dataclass
class TrackData:
    """One labelled track held in memory."""

    key: str
    label: str
    group: str
    source: str
    spec: np.ndarray  # [n_rows, n_frames] float16


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    out_dir: Path
    model_path: Path
    metrics: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# -- data -----------------------------------------------------------------------------------
def _is_spectro_output(folder: Path) -> bool:
    manifest = folder / "manifest.jsonl"
    if not manifest.is_file():
        return False
    records = read_spectro_manifest(folder)
    return bool(records) and all("config_hash" in r for r in records)


def _find_manifest(folder: Path) -> Path | None:
    for name in ("manifest.csv", "manifest.jsonl"):
        if (folder / name).is_file():
            return folder / name
    return None


def load_training_data(
    data: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str],
    feature_config: FeatureConfig | None = None,
    manifest: str | os.PathLike[str] | None = None,
    jobs: int = 1,
    progress: bool | None = None,
    log: Log = _quiet,
) -> tuple[list[TrackData], FeatureConfig]:
    """Read labelled tracks into memory as float16 feature matrices.

    Parameters
    ----------
    data : an audio folder, or a ``spectro`` output folder (has ``manifest.jsonl``)
    cache_dir : where features of audio input are cached (reused by later runs)
    feature_config : features for audio input (default :data:`DEFAULT_FEATURES`); must be None or
        match the arrays for a spectro folder
    manifest : CSV/JSONL with path,label[,group] for audio input (default: ``DATA/manifest.csv``
        when present; otherwise labels from sub-folders, one group per file)
    jobs : processes for feature extraction

    Returns
    -------
    tracks, feature_config

    Raises
    ------
    InputError
        Missing folder, no labelled tracks.
    ConfigError
        Arrays computed with different feature settings.
    """
    folder = Path(data)
    if not folder.exists():
        raise InputError(f"{display_path(folder)}: no such folder — give an audio folder or a spectro output folder")
    if folder.is_dir() and _is_spectro_output(folder):
        return _load_spectro_folder(folder, feature_config, log)
    if not folder.is_dir():
        raise InputError(f"{display_path(folder)}: not a folder — give an audio folder (one sub-folder per label)")
    config = feature_config or DEFAULT_FEATURES
    manifest_path = Path(manifest) if manifest is not None else _find_manifest(folder)
    if manifest_path is not None:
        tracks = read_manifest(manifest_path)
        log(f"labels and groups from {display_path(manifest_path)}")
        failures: list = []
    else:
        tracks, failures = discover_tracks([folder])
    if not tracks:
        raise InputError(
            f"{display_path(folder)}: no audio files found — put audio in one sub-folder per label (rock/a.wav, jazz/b.wav)"
        )
    report = run_spectro(
        tracks, cache_dir, config=config, jobs=jobs, failures=failures, progress=progress,
        on_error=lambda line: log("skipped: " + line),
    )
    records = sorted(report.written + report.skipped, key=lambda r: r["path"])
    if report.failed:
        log(f"{len(report.failed)} file(s) could not be read and are left out (see {display_path(Path(cache_dir) / 'errors.jsonl')})")
    items = [_load_record(Path(cache_dir), r)[0] for r in records if r.get("label")]
    if not items:
        raise InputError(f"{display_path(folder)}: no labelled audio could be read — labels come from sub-folder names")
    return items, config


def _load_record(folder: Path, record: dict[str, Any]) -> tuple[TrackData, FeatureConfig]:
    spec, config = load_spectrogram(folder / record["path"])
    item = TrackData(
        key=track_key(record["path"]),
        label=str(record["label"]),
        group=str(record.get("group") or track_key(record["path"])),
        source=str(record.get("source") or folder / record["path"]),
        spec=spec.astype(np.float16),
    )
    return item, config


def _load_spectro_folder(folder: Path, wanted: FeatureConfig | None, log: Log) -> tuple[list[TrackData], FeatureConfig]:
    records = read_spectro_manifest(folder)
    labelled = [r for r in records if r.get("label")]
    if len(labelled) < len(records):
        log(f"{len(records) - len(labelled)} array(s) without a label are left out")
    if not labelled:
        raise InputError(
            f"{display_path(folder)}: no labelled arrays in manifest.jsonl — run spectro on a folder with one sub-folder per label"
        )
    hashes = Counter(r["config_hash"] for r in labelled)
    if len(hashes) > 1:
        (h1, _), (h2, _) = hashes.most_common(2)
        a = next(r["path"] for r in labelled if r["config_hash"] == h1)
        b = next(r["path"] for r in labelled if r["config_hash"] == h2)
        raise ConfigError(
            f"{display_path(folder)}: arrays were computed with different feature settings ({a} vs {b}) — "
            "recompute them all with one `specmusic spectro` command"
        )
    items, config = [], None
    for r in labelled:
        item, cfg = _load_record(folder, r)
        if config is None:
            config = cfg
        elif cfg.digest() != config.digest():
            raise ConfigError(
                f"{display_path(folder / r['path'])}: feature settings differ from the other arrays — "
                "recompute them all with one `specmusic spectro` command"
            )
        items.append(item)
    assert config is not None
    if wanted is not None and wanted.digest() != config.digest():
        raise ConfigError(
            f"{display_path(folder)}: arrays are {config.kind} with {config.n_rows} rows at {config.sample_rate} Hz, "
            "not the requested features — drop the feature options or recompute with spectro"
        )
    return items, config


def make_splits(
    items: Sequence[TrackData],
    *,
    split_files: dict[str, str | os.PathLike[str]] | None = None,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> dict[str, list[TrackData]]:
    """Train / valid / test by GTZAN-style lists, the rest carved by group (stratified by label).

    ``split_files`` may name ``train``, ``valid``, ``test``. Without a train list, training gets every
    track in no given list. A missing valid or test split is carved from the training tracks.

    Raises
    ------
    InputError
        An empty dataset, a class with a single track (or group), a class absent from training.
    """
    if not items:
        raise InputError("the dataset is empty — give a folder with labelled audio or spectro arrays")
    counts = Counter(t.label for t in items)
    groups: dict[str, set[str]] = {}
    for t in items:
        groups.setdefault(t.label, set()).add(t.group)
    if len(counts) < 2:
        raise InputError(f"only one class ({next(iter(counts))}) — a classifier needs at least two labels")
    for label in sorted(counts):
        if len(groups[label]) < 2:
            what = "track" if counts[label] == 1 else f"group ({counts[label]} clips of one source)"
            raise InputError(
                f"class '{label}' has only one {what} — add another track of it (one to train, one to test) or remove it"
            )
    tracks = [Track(t.source, t.key, t.label, t.group) for t in items]
    by_key = {t.key: t for t in items}
    lists = {k: v for k, v in (split_files or {}).items() if v is not None}
    if lists:
        assigned = apply_split_lists(tracks, lists)
        out = {name: [by_key[t.relpath] for t in ts] for name, ts in assigned.items()}
        if "train" not in out:
            used = {t.key for ts in out.values() for t in ts}
            out["train"] = [t for t in items if t.key not in used]
    else:
        out = {"train": list(items)}
    carved_test = 0.0
    for name, fraction in (("test", test_fraction), ("valid", valid_fraction)):
        if name in out or fraction <= 0:
            out.setdefault(name, [])
            continue
        share = min(0.9, fraction / (1.0 - carved_test))  # fractions are of all tracks in the pool
        carve = split_by_group(
            [Track(t.source, t.key, t.label, t.group) for t in out["train"]],
            fractions={"train": 1.0 - share, name: share},
            seed=seed,
        )
        out["train"] = [by_key[t.relpath] for t in carve["train"]]
        out[name] = [by_key[t.relpath] for t in carve[name]]
        carved_test = fraction if name == "test" else carved_test
    missing = sorted(set(counts) - {t.label for t in out["train"]})
    if missing:
        raise InputError(f"class '{missing[0]}' has no training track — add it to the train list or give more tracks")
    return {name: out[name] for name in ("train", "valid", "test")}


# -- batches and augmentation ---------------------------------------------------------------
def _crop_batch(
    items: Sequence[TrackData], which: np.ndarray, starts: np.ndarray, chunk: int
) -> np.ndarray:
    """Stack crops ``items[which[i]].spec[:, starts[i]:starts[i]+chunk]`` → [n, 1, rows, chunk] float32."""
    rows = items[0].spec.shape[0]
    out = np.empty((len(which), 1, rows, chunk), dtype=np.float32)
    for i, (w, s) in enumerate(zip(which, starts)):
        out[i, 0] = items[w].spec[:, s : s + chunk]
    return out


def _augment(x: torch.Tensor, augment: Sequence[str], gen: torch.Generator, std: float) -> torch.Tensor:
    """In-place-free augmentation of a normalised batch [n, 1, rows, frames]."""
    n, _, rows, frames = x.shape
    if "gain" in augment:  # ±6 dB, in normalised units
        x = x + (torch.rand(n, 1, 1, 1, generator=gen) * 12.0 - 6.0) / std
    if "freqshift" in augment:  # shift along the mel axis by up to ±2 bands, edges repeated
        shifts = torch.randint(-2, 3, (n,), generator=gen)
        idx = (torch.arange(rows)[None, :] - shifts[:, None]).clamp(0, rows - 1)
        x = torch.gather(x, 2, idx[:, None, :, None].expand(n, 1, rows, frames))
    if "mask" in augment:  # SpecAugment: 2 time masks (<= 10 %) and 2 frequency masks (<= 12 %)
        x = x.clone()
        t_idx = torch.arange(frames)
        f_idx = torch.arange(rows)
        for size, idx, axis_len, dim in ((max(1, frames // 10), t_idx, frames, 3), (max(1, rows // 8), f_idx, rows, 2)):
            for _ in range(2):
                width = torch.randint(0, size + 1, (n,), generator=gen)
                start = (torch.rand(n, generator=gen) * (axis_len - width + 1).float()).long()
                m = (idx[None, :] >= start[:, None]) & (idx[None, :] < (start + width)[:, None])  # [n, len]
                m = m[:, None, None, :] if dim == 3 else m[:, None, :, None]
                x = x.masked_fill(m, 0.0)
    return x


def _cosine(progress: float, epochs: float, peak: float) -> float:
    warm = min(1.0, epochs / 4)
    if progress < warm:
        return peak * (0.1 + 0.9 * progress / warm)
    t = (progress - warm) / max(1e-9, epochs - warm)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def _lr_at(progress: float, config: TrainConfig) -> float:
    """1 epoch linear warm-up, then cosine decay to 0 (``progress`` in epochs). With frozen epochs,
    the head-only phase and the full finetune (peak ``finetune_lr``, default lr/10) each get one."""
    f = config.freeze_epochs
    if f <= 0 or f >= config.epochs:
        return _cosine(progress, config.epochs, config.lr)
    if progress < f:
        return _cosine(progress, f, config.lr)
    return _cosine(progress - f, config.epochs - f, config.finetune_lr or config.lr / 10)


# -- evaluation -----------------------------------------------------------------------------
@torch.no_grad()
def evaluate_tracks(
    model: torch.nn.Module,
    items: Sequence[TrackData],
    *,
    chunk_frames: int,
    hop_frames: int,
    norm: tuple[float, float],
    pooling: str = "mean",
    batch_size: int = 128,
) -> tuple[np.ndarray, np.ndarray]:
    """Track-level probabilities by pooling chunk predictions.

    Returns
    -------
    probs : np.ndarray [shape=(n_tracks, n_classes)]
    n_chunks : np.ndarray [shape=(n_tracks,)], chunks scored per track
    """
    model.eval()
    chunks, owners = [], []
    for i, t in enumerate(items):
        c = chunk_features(t.spec.astype(np.float32), chunk_frames, hop_frames)
        if pooling == "center":
            c = c[len(c) // 2 : len(c) // 2 + 1]
        chunks.append(c)
        owners.append(np.full(len(c), i))
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.int64)
    x = np.concatenate(chunks)
    owner = np.concatenate(owners)
    mean, std = norm
    dev = _model_device(model)
    probs = []
    for s in range(0, len(x), batch_size):
        xb = ((torch.from_numpy(x[s : s + batch_size]) - mean) / std).to(dev)
        probs.append(torch.softmax(model(xb)[0], dim=1).float().cpu().numpy())
    p = np.concatenate(probs)
    n_classes = p.shape[1]
    out = np.zeros((len(items), n_classes), dtype=np.float64)
    if pooling == "vote":
        np.add.at(out, (owner, p.argmax(axis=1)), 1.0)
        out += 1e-3 * np.stack([p[owner == i].mean(axis=0) for i in range(len(items))])  # break ties
    else:
        np.add.at(out, owner, p)
    out /= out.sum(axis=1, keepdims=True)
    return out.astype(np.float32), np.bincount(owner, minlength=len(items))


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix (rows = truth)."""
    k = len(labels)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    per_class = {}
    f1s = []
    for i, name in enumerate(labels):
        tp = cm[i, i]
        prec = tp / cm[:, i].sum() if cm[:, i].sum() else 0.0
        rec = tp / cm[i].sum() if cm[i].sum() else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        if cm[i].sum():
            f1s.append(f1)
        per_class[name] = {
            "precision": round(float(prec), 4),
            "recall": round(float(rec), 4),
            "f1": round(float(f1), 4),
            "support": int(cm[i].sum()),
        }
    return {
        "accuracy": round(float(np.trace(cm) / max(1, cm.sum())), 4),
        "macro_f1": round(float(np.mean(f1s)) if f1s else 0.0, 4),
        "n_tracks": int(cm.sum()),
        "per_class": per_class,
        "confusion": cm.tolist(),
    }


# -- checkpoints ----------------------------------------------------------------------------
def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    save_torch_atomic(path, state)


_TRANSFER_DEFAULTS: dict[str, Any] = {"freeze_epochs": 0, "finetune_lr": None, "freeze_front": False}


def _fingerprint(
    config: TrainConfig,
    cnn: CNNConfig,
    features: FeatureConfig,
    labels: list[str],
    splits: dict[str, list[TrackData]],
    model: dict[str, Any] | None = None,
) -> str:
    import hashlib

    blob = json.dumps(
        {
            # threads and the time budget do not change what an epoch computes; transfer settings at their
            # defaults are left out so that runs from before they existed still resume
            "train": {k: v for k, v in config.to_dict().items() if k not in ("threads", "max_seconds", "device")
                      and not (k in _TRANSFER_DEFAULTS and v == _TRANSFER_DEFAULTS[k])},
            "cnn": cnn.to_dict(),
            **({"model": model} if model else {}),
            "features": features.to_dict(),
            "labels": labels,
            "splits": {k: sorted(t.key for t in v) for k, v in splits.items()},
        },
        sort_keys=True,
    ).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# -- training -------------------------------------------------------------------------------
def resolve_device(name: str = "auto") -> torch.device:
    """The torch device for ``name`` (``auto``: the first CUDA GPU when torch sees one, else the CPU).

    Raises
    ------
    ConfigError
        An unknown device name, or one this torch build cannot use.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {name!r}: unknown device — use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {name}: torch {torch.__version__} sees no CUDA GPU on this machine — use --device cpu "
                "(or install a CUDA build of torch)"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: only {torch.cuda.device_count()} CUDA GPU(s) here — use cuda:0…")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError(f"--device {name}: this torch build has no Apple MPS support here — use --device cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"--device {name!r}: not supported — use auto, cpu, cuda, cuda:N or mps")
    return dev


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(iter(model.parameters()), torch.empty(0)).device


def _auto_threads() -> int:
    """Idle cores by the 1-minute load average (at least 1): oversubscribed OpenMP threads spin and stall."""
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        return cores
    return max(1, min(cores, int(cores - load + 0.5)))


def train(
    data: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    config: TrainConfig | None = None,
    cnn: CNNConfig | None = None,
    model_spec: ModelSpec | None = None,
    feature_config: FeatureConfig | None = None,
    manifest: str | os.PathLike[str] | None = None,
    split_files: dict[str, str | os.PathLike[str] | None] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    jobs: int = 1,
    force: bool = False,
    progress: bool | None = None,
    log: Log = _quiet,
) -> TrainResult:
    """Train a classifier on ``data`` and write model, metrics and plots into ``out_dir``.

    Parameters
    ----------
    data : audio folder (labels from sub-folders) or ``spectro`` output folder
    out_dir : run folder; an interrupted run in it resumes from ``checkpoint.pt``
    config : training settings (default :class:`TrainConfig`)
    cnn : network shape (``n_classes`` is set from the data) of the default ``cnn`` arch
    model_spec : another architecture and its starting weights (:class:`~specmusic.models.transfer.ModelSpec`):
        a music tagger (features become the tagger's) or an ImageNet backbone
    feature_config : features for audio input (default :data:`DEFAULT_FEATURES`)
    manifest : path,label[,group] CSV/JSONL for audio input
    split_files : ``{"train"|"valid"|"test": GTZAN-style list}``
    cache_dir : feature cache for audio input (default ``out_dir/features``)
    jobs : processes for feature extraction
    force : start over even when ``out_dir`` holds a checkpoint of another run
    progress : progress bars on stderr (None: only on a terminal)
    log : receives one-line progress messages

    Returns
    -------
    TrainResult

    Raises
    ------
    InputError, ConfigError
        Bad data, splits or options (one-line messages).
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    config = config or TrainConfig()
    spec = model_spec or ModelSpec()
    family = spec.family
    if (config.freeze_epochs or config.freeze_front) and family in ("cnn", "timm"):
        raise ConfigError(
            f"--freeze-epochs/--linear-probe/--freeze-front need a built-in pretrained --arch, not {spec.arch} — drop them or pick "
            "musicnn, resnet18, efficientnet_lite0…"
        )
    tagger_chunk = 0
    if family == "tagger":
        from specmusic.models.taggers import TAGGER_ARCHS, tagger_feature_config

        tagger_features = tagger_feature_config()
        if feature_config is not None and feature_config.digest() != tagger_features.digest():
            raise ConfigError(
                f"--arch {spec.arch} takes the tagger's own features (16 kHz, 96 mel bands, hop 256) — "
                "drop --n-mels/--sr"
            )
        feature_config = tagger_features
        tagger_chunk = TAGGER_ARCHS[spec.arch].chunk_frames
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads or _auto_threads())
    device = resolve_device(config.device)

    items, features = load_training_data(
        data, cache_dir=cache_dir or out / "features", feature_config=feature_config, manifest=manifest,
        jobs=jobs, progress=progress, log=log,
    )
    splits = make_splits(
        items, split_files=split_files, valid_fraction=config.valid_fraction,
        test_fraction=config.test_fraction, seed=config.seed,
    )
    labels = sorted({t.label for t in items})
    label_index = {name: i for i, name in enumerate(labels)}
    cnn = replace(cnn or CNNConfig(), n_classes=len(labels))
    log(
        f"{len(items)} tracks, {len(labels)} classes; train {len(splits['train'])}, "
        f"valid {len(splits['valid'])}, test {len(splits['test'])}; features {features.kind} "
        f"{features.n_rows} rows at {features.sample_rate} Hz"
    )
    write_json_atomic(
        out / "splits.json",
        {name: [{"key": t.key, "label": t.label, "group": t.group, "source": t.source} for t in ts]
         for name, ts in splits.items()},
    )

    # Chunking: frames per crop, hop between evaluation chunks.
    train_items = splits["train"]
    if tagger_chunk:  # the length the tagger was trained on (MusiCNN 3 s; FCN/CRNN need their 29 s)
        chunk = tagger_chunk
    elif config.chunk_seconds > 0:
        chunk = max(8, int(round(config.chunk_seconds * features.sample_rate / features.hop_length)))
    else:
        chunk = max(t.spec.shape[1] for t in train_items)
    hop = max(1, chunk // 2)
    if spec.arch == "musicnn":
        hop = chunk  # MusiCNN's 3 s chunks tile the track, as in the pretrained tagger
    for t in items:  # a track shorter than a chunk is repeated to fill it (as inference does)
        if t.spec.shape[1] < chunk:
            reps = -(-chunk // t.spec.shape[1])
            t.spec = np.tile(t.spec, (1, reps))[:, :chunk]

    # Input normalisation from the training tracks.
    total = sum(float(t.spec.astype(np.float64).sum()) for t in train_items)
    count = sum(t.spec.size for t in train_items)
    mean = total / count
    var = sum(float(((t.spec.astype(np.float64) - mean) ** 2).sum()) for t in train_items) / count
    norm = (round(mean, 6), round(max(math.sqrt(var), 1e-3), 6))
    if family == "tagger":
        norm = (0.0, 1.0)  # the checkpoint's spec_bn normalises the dB mel input inside the network

    # Training examples: every non-overlapping chunk of every training track.
    ex_track, ex_start = [], []
    for i, t in enumerate(train_items):
        starts = chunk_starts(t.spec.shape[1], chunk, chunk)
        ex_track.extend([i] * len(starts))
        ex_start.extend(starts.tolist())
    ex_track_a = np.asarray(ex_track, dtype=np.int64)
    ex_start_a = np.asarray(ex_start, dtype=np.int64)
    y_train = torch.tensor([label_index[t.label] for t in train_items], device=device)
    active = np.ones(len(ex_track_a), dtype=bool)

    torch.manual_seed(config.seed)
    model_info: dict[str, Any] | None = None
    if family == "cnn":
        model = SpecCNN(cnn)
    else:
        from specmusic.models.transfer import build_model

        model, model_info = build_model(spec, n_classes=len(labels), progress=progress, log=log)
    model.to(device)
    if device.type != "cpu":
        log(f"training on {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    fingerprint = _fingerprint(config, cnn, features, labels, splits, spec.to_dict() if family != "cnn" else None)
    resolved = {
        "data": os.path.abspath(data),
        "train": config.to_dict(),
        "cnn": cnn.to_dict(),
        "model": {**spec.to_dict(), **(model_info or {"family": "cnn"})},
        "feature_config": features.to_dict(),
        "labels": labels,
        "chunk_frames": chunk,
        "chunk_hop_frames": hop,
        "input_norm": None if family == "tagger" else {"mean": norm[0], "std": norm[1]},
        "split_files": {k: os.path.abspath(v) for k, v in (split_files or {}).items() if v},
        "fingerprint": fingerprint,
    }
    write_json_atomic(out / "config.json", resolved)

    ckpt_path = out / "checkpoint.pt"
    history: list[dict[str, float]] = []
    start_epoch = 0
    best: dict[str, Any] = {"score": (-1.0, -math.inf), "epoch": -1, "state": None}
    stale = 0
    finished = False
    if ckpt_path.exists() and not force:
        try:
            ckpt = torch.load(ckpt_path, weights_only=True, map_location=device)
        except Exception as exc:  # a torn or foreign file
            raise ConfigError(
                f"{display_path(ckpt_path)}: unreadable checkpoint ({type(exc).__name__}) — pass --force to start over"
            ) from None
        if ckpt.get("fingerprint") != fingerprint:
            raise ConfigError(
                f"{display_path(out)} holds a run with other data or settings — use another -o, or --force to start over"
            )
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        history = list(ckpt["history"])
        start_epoch = int(ckpt["epoch"])
        best = {"score": tuple(ckpt["best_score"]), "epoch": int(ckpt["best_epoch"]), "state": ckpt["best_state"]}
        stale = int(ckpt["stale"])
        active = np.asarray(ckpt["active"], dtype=bool)
        finished = bool(ckpt["finished"])
        log(f"resuming from {display_path(ckpt_path)} after epoch {start_epoch}")

    valid_items = splits["valid"]
    y_valid = np.array([label_index[t.label] for t in valid_items], dtype=np.int64)
    std = norm[1]
    epoch = start_epoch
    emb_cache: dict[int, torch.Tensor] = {}  # frozen backbone, fixed crops: embeddings computed once
    t_loop = time.perf_counter()
    while not finished and epoch < config.epochs:
        frozen = epoch < config.freeze_epochs
        if frozen and epoch == start_epoch:
            log(f"epochs {epoch + 1}-{config.freeze_epochs}: backbone frozen, training the new head")
        elif config.freeze_epochs and epoch == config.freeze_epochs:
            log(f"epoch {epoch + 1}: finetuning the whole network (peak lr {config.finetune_lr or config.lr / 10:g})")
        use_cache = frozen and not config.augment
        rng = np.random.default_rng([config.seed, epoch])
        torch.manual_seed(config.seed * 1_000_003 + epoch)
        gen = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        idx = np.flatnonzero(active)
        idx = idx[rng.permutation(len(idx))]
        n_batches = max(1, len(idx) // config.batch_size)  # drop the last partial batch (batch norm)
        _set_trainable(model, frozen, config.freeze_front)
        run_loss = run_correct = run_n = 0.0
        bar = tqdm(total=n_batches, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", file=sys.stderr,
                   disable=None if progress is None else not progress, dynamic_ncols=True, leave=False)
        for b in range(n_batches):
            sel = idx[b * config.batch_size : (b + 1) * config.batch_size]
            which = ex_track_a[sel]
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(epoch + b / n_batches, config)
            if use_cache:
                yb = y_train[torch.from_numpy(which).to(device)]
                todo = [int(i) for i in sel if int(i) not in emb_cache]
                if todo:
                    t_idx = np.asarray(todo)
                    xt = ((torch.from_numpy(_crop_batch(train_items, ex_track_a[t_idx], ex_start_a[t_idx], chunk)) - norm[0]) / std).to(device)
                    with torch.no_grad():
                        emb_cache.update(zip(todo, model.embed(xt)))
                logits = model.classify(torch.stack([emb_cache[int(i)] for i in sel]))
                loss = F.cross_entropy(logits, yb)
            else:
                starts = ex_start_a[sel].copy()
                if "shift" in config.augment:
                    lens = np.array([train_items[w].spec.shape[1] for w in which])
                    starts = starts + rng.integers(-chunk // 2, chunk // 2 + 1, size=len(sel))
                    starts = np.clip(starts, 0, lens - chunk)
                xb = (torch.from_numpy(_crop_batch(train_items, which, starts, chunk)) - norm[0]) / std
                yb = y_train[torch.from_numpy(which).to(device)]
                xb = _augment(xb, config.augment, gen, std).to(device)  # masks drawn on the CPU: same on any device
                if "mixup" in config.augment:
                    lam = float(rng.beta(config.mixup_alpha, config.mixup_alpha))
                    perm = torch.from_numpy(rng.permutation(len(sel))).to(device)
                    logits, _ = model(lam * xb + (1 - lam) * xb[perm])
                    loss = lam * F.cross_entropy(logits, yb) + (1 - lam) * F.cross_entropy(logits, yb[perm])
                else:
                    logits, _ = model(xb)
                    loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            run_loss += loss.item() * len(sel)
            run_correct += float((logits.argmax(1) == yb).sum())
            run_n += len(sel)
            bar.set_postfix(loss=f"{run_loss / run_n:.3f}", acc=f"{run_correct / run_n:.3f}")
            bar.update(1)
        bar.close()
        epoch += 1
        row = {"epoch": epoch, "train_loss": run_loss / max(1, run_n), "train_acc": run_correct / max(1, run_n),
               "lr": _lr_at(epoch, config), "examples": int(active.sum())}
        if valid_items:
            probs, _ = evaluate_tracks(model, valid_items, chunk_frames=chunk, hop_frames=hop, norm=norm,
                                       pooling=config.track_pooling)
            row["valid_acc"] = float((probs.argmax(1) == y_valid).mean())
            row["valid_loss"] = float(-np.log(np.maximum(probs[np.arange(len(y_valid)), y_valid], 1e-7)).mean())
            score = (row["valid_acc"], -row["valid_loss"])
        else:
            score = (row["train_acc"], -row["train_loss"])
        history.append(row)
        if epoch < max(1, config.epochs // 3):
            pass  # too early to pick: small validation splits make early scores noise
        elif score > best["score"]:
            best = {"score": score, "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
            stale = 0
        else:
            stale += 1
        msg = f"epoch {epoch}/{config.epochs}: loss {row['train_loss']:.3f} acc {row['train_acc']:.3f}"
        if valid_items:
            msg += f" | valid loss {row['valid_loss']:.3f} acc {row['valid_acc']:.3f}"
        log(msg + ("  *" if best["epoch"] == epoch else ""))

        if config.drop_hard > 0 and epoch == config.drop_hard_after:
            active = _drop_hard(model, train_items, ex_track_a, ex_start_a, active, y_train, chunk, norm, config.drop_hard)
            log(f"drop-hard: kept {int(active.sum())} of {len(active)} training chunks")
        finished = stale >= config.patience or epoch >= config.epochs
        if finished and stale >= config.patience:
            log(f"early stop: no better validation score for {config.patience} epochs (best epoch {best['epoch']})")
        elif not finished and config.max_seconds and time.perf_counter() - t_loop >= config.max_seconds:
            finished = True
            log(f"time budget: stopping after epoch {epoch} ({time.perf_counter() - t_loop:.0f} s of training)")
        _save_checkpoint(ckpt_path, {
            "version": CHECKPOINT_VERSION, "fingerprint": fingerprint, "config": resolved,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
            "history": history, "best_score": list(best["score"]), "best_epoch": best["epoch"],
            "best_state": best["state"], "stale": stale, "active": active.tolist(), "finished": finished,
        })

    if best["state"] is not None:
        model.load_state_dict(best["state"])
    model.eval()

    from specmusic.export import export_onnx, model_metadata

    extra: dict[str, Any] = {"cnn": cnn.to_dict()} if family == "cnn" else {"backbone": model_info}
    meta = model_metadata(
        labels=labels, feature_config=features, chunk_frames=chunk, chunk_hop_frames=hop,
        input_norm=None if family == "tagger" else norm, arch=spec.arch, best_epoch=best["epoch"], **extra,
    )
    model_path = export_onnx(model.to("cpu"), out / "model.onnx", n_rows=features.n_rows, metadata=meta)
    model.to(device)

    metrics = _final_metrics(model, splits, labels, label_index, chunk, hop, norm, config)
    metrics.update({"best_epoch": best["epoch"], "epochs_run": len(history), "chunk_frames": chunk,
                    "train_seconds": round(time.perf_counter() - t0, 1), "device": str(device)})
    write_json_atomic(out / "metrics.json", metrics)
    _plots(out, history, metrics, labels)
    test = metrics.get("test") or {}
    if test:
        log(f"test: accuracy {test['accuracy']:.3f}, macro-F1 {test['macro_f1']:.3f} on {test['n_tracks']} tracks")
    return TrainResult(out, model_path, metrics, history, time.perf_counter() - t0)


def _set_trainable(model: torch.nn.Module, frozen: bool, freeze_front: bool = False) -> None:
    """Train mode; when ``frozen``, only the head (``model.head_name``) learns and the backbone stays in
    eval mode (batch-norm statistics of the pretrained network kept). ``freeze_front`` keeps the
    modules named by ``model.front_prefixes`` frozen (and in eval mode) in any case."""
    head = getattr(model, "head_name", None)
    front = tuple(getattr(model, "front_prefixes", ())) if freeze_front else ()
    model.train()
    for name, p in model.named_parameters():
        fixed = name.startswith(front) if front else False
        p.requires_grad_(not fixed and (not frozen or name.split(".")[0] == head))
    if frozen:
        for name, child in model.named_children():
            if name not in (head, "dropout"):
                child.eval()
    for name, module in model.named_modules():
        if front and name and name.startswith(front):
            module.eval()


def _drop_hard(
    model: torch.nn.Module,
    items: Sequence[TrackData],
    ex_track: np.ndarray,
    ex_start: np.ndarray,
    active: np.ndarray,
    y: torch.Tensor,
    chunk: int,
    norm: tuple[float, float],
    fraction: float,
) -> np.ndarray:
    """Deactivate the ``fraction`` of active training chunks with the highest loss."""
    model.eval()
    idx = np.flatnonzero(active)
    losses = np.empty(len(idx))
    dev = _model_device(model)
    with torch.no_grad():
        for s in range(0, len(idx), 128):
            sel = idx[s : s + 128]
            xb = ((torch.from_numpy(_crop_batch(items, ex_track[sel], ex_start[sel], chunk)) - norm[0]) / norm[1]).to(dev)
            losses[s : s + 128] = F.cross_entropy(
                model(xb)[0], y[ex_track[sel]].to(dev), reduction="none").cpu().numpy()
    n_drop = int(round(fraction * len(idx)))
    out = active.copy()
    if n_drop:
        out[idx[np.argsort(-losses, kind="stable")[:n_drop]]] = False
    return out


def _final_metrics(
    model: torch.nn.Module,
    splits: dict[str, list[TrackData]],
    labels: list[str],
    label_index: dict[str, int],
    chunk: int,
    hop: int,
    norm: tuple[float, float],
    config: TrainConfig,
) -> dict[str, Any]:
    metrics: dict[str, Any] = {"labels": labels, "track_pooling": config.track_pooling}
    for name in ("valid", "test"):
        ts = splits[name]
        if not ts:
            continue
        probs, n_chunks = evaluate_tracks(model, ts, chunk_frames=chunk, hop_frames=hop, norm=norm,
                                          pooling=config.track_pooling)
        y_true = np.array([label_index[t.label] for t in ts])
        y_pred = probs.argmax(axis=1)
        m = classification_metrics(y_true, y_pred, labels)
        m["predictions"] = [
            {"track": t.key, "source": t.source, "label": t.label, "predicted": labels[int(p)],
             "correct": bool(t.label == labels[int(p)]), "chunks": int(c),
             "probabilities": {lab: round(float(v), 4) for lab, v in zip(labels, pr)}}
            for t, p, pr, c in zip(ts, y_pred, probs, n_chunks)
        ]
        # The same trained network scored with every pooling: compares them without retraining.
        m["accuracy_by_pooling"] = {
            pooling: float(np.mean(evaluate_tracks(model, ts, chunk_frames=chunk, hop_frames=hop, norm=norm,
                                                   pooling=pooling)[0].argmax(axis=1) == y_true))
            for pooling in POOLINGS
        }
        metrics[name] = m
    return metrics


def _plots(out: Path, history: list[dict[str, float]], metrics: dict[str, Any], labels: list[str]) -> None:
    from specmusic.plotting import _pyplot, save_figure_atomic

    plt = _pyplot()
    if history:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
        ep = [h["epoch"] for h in history]
        ax1.plot(ep, [h["train_loss"] for h in history], label="train")
        if "valid_loss" in history[0]:
            ax1.plot(ep, [h["valid_loss"] for h in history], label="valid (per track)")
        ax1.set_xlabel("epoch")
        ax1.set_ylabel("cross-entropy")
        ax1.legend()
        ax2.plot(ep, [h["train_acc"] for h in history], label="train (chunks)")
        if "valid_acc" in history[0]:
            ax2.plot(ep, [h["valid_acc"] for h in history], label="valid (tracks)")
        ax2.set_xlabel("epoch")
        ax2.set_ylabel("accuracy")
        ax2.set_ylim(0, 1.02)
        ax2.legend()
        fig.suptitle("training curve")
        save_figure_atomic(fig, out / "training_curve.png")
    split = "test" if "test" in metrics else "valid" if "valid" in metrics else None
    if split:
        cm = np.asarray(metrics[split]["confusion"])
        size = max(4.0, 0.5 * len(labels) + 2)
        fig, ax = plt.subplots(figsize=(size, size))
        ax.imshow(cm, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{split}: accuracy {metrics[split]['accuracy']:.3f} on {metrics[split]['n_tracks']} tracks")
        save_figure_atomic(fig, out / "confusion.png")
