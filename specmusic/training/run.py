"""``train(data, out)``: one training run, from data to ``model.onnx``, metrics and plots (torch).

The orchestration around the epoch loop (:func:`~specmusic.training.loop.train_epochs`): load and
split the data, choose chunking and input normalisation, build the network, resume a checkpoint,
then per epoch log, keep the best weights, stop early and write the checkpoint; finally export
the best epoch and score it per track. Writes into ``out``::

    model.onnx           the classifier, self-contained (see specmusic.inference)
    config.json          the resolved configuration
    checkpoint.pt        weights + optimizer + history, to resume an interrupted run or continue a finished one
    splits.json          which tracks went to train / valid / test
    metrics.json         test accuracy, macro-F1, per-class precision/recall, per-track predictions
    confusion.png        test confusion matrix
    training_curve.png   loss and accuracy per epoch
    features/            cached arrays (audio input only)
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from specmusic.errors import ConfigError
from specmusic.features import FeatureConfig
from specmusic.fileio import display_path, ensure_writable_dir, write_json_atomic
from specmusic.models.cnn import CNNConfig, SpecCNN
from specmusic.models.transfer import ModelSpec
from specmusic.training.checkpoint import RunState, load_checkpoint, run_settings, save_checkpoint
from specmusic.training.config import TrainConfig, model_features
from specmusic.training.data import TrackData, load_training_data, make_splits
from specmusic.training.device import resolve_device
from specmusic.workers import auto_threads
from specmusic.training.evaluate import Chunking, final_metrics
from specmusic.training.loop import EpochResult, TrainingChunks, train_epochs
from specmusic.training.outputs import CHECKPOINT, TrainResult, describe_splits, write_metrics, write_splits

__all__ = ["train"]

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


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
    out_dir : run folder; a run in it resumes from ``checkpoint.pt`` (continues, when finished, if
        ``config.epochs`` or another stopping rule was raised)
    config : training settings (default :class:`TrainConfig`)
    cnn : network shape (``n_classes`` is set from the data) of the default ``cnn`` arch
    model_spec : another architecture and its starting weights (:class:`~specmusic.models.transfer.ModelSpec`):
        a music tagger (features become the tagger's) or an ImageNet backbone
    feature_config : features for audio input (default :data:`DEFAULT_FEATURES`)
    manifest : path,label[,group] CSV/JSONL for audio input
    split_files : ``{"train"|"valid"|"test": GTZAN-style list}``
    cache_dir : feature cache for audio input (default ``out_dir/features``)
    jobs : processes for feature extraction
    force : start over even when ``out_dir`` holds a checkpoint
    progress : progress bars on stderr (None: only on a terminal)
    log : receives one-line progress messages

    Returns
    -------
    TrainResult

    Raises
    ------
    InputError, ConfigError
        Bad data, splits or options; a run folder holding another run (one-line messages).
    """
    t0 = time.perf_counter()
    config = config or TrainConfig()
    spec = model_spec or ModelSpec()
    if (config.freeze_epochs or config.freeze_front) and spec.family in ("cnn", "timm"):
        raise ConfigError(
            f"--freeze-epochs/--linear-probe/--freeze-front need a built-in pretrained --arch, not {spec.arch} — drop them "
            "or pick musicnn, resnet18, efficientnet_lite0…"
        )
    feature_config = model_features(spec, feature_config)
    out = ensure_writable_dir(out_dir, option="-o")
    torch.set_num_threads(config.threads or auto_threads())
    device = resolve_device(config.device)

    items, features, splits = _load_and_split(data, out, config, feature_config, manifest=manifest,
                                              split_files=split_files, cache_dir=cache_dir, jobs=jobs,
                                              progress=progress, log=log)
    labels = sorted({t.label for t in items})
    cnn = replace(cnn or CNNConfig(), n_classes=len(labels))
    chunking = _chunking(spec, config, features, items, splits["train"])

    torch.manual_seed(config.seed)
    model, model_info = _build_model(spec, cnn, len(labels), device, progress=progress, log=log)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    settings = run_settings(config, cnn, features, labels, splits, spec.to_dict() if spec.family != "cnn" else None)
    resolved = _resolved_config(data, config=config, cnn=cnn, spec=spec, model_info=model_info, features=features,
                                labels=labels, chunking=chunking, split_files=split_files)
    write_json_atomic(out / "config.json", resolved)

    ckpt = out / CHECKPOINT
    state = RunState()
    if ckpt.exists() and not force:
        state = load_checkpoint(ckpt, settings=settings, model=model, optimizer=optimizer, device=device)
        log(f"resuming from {display_path(ckpt)} after epoch {state.epoch}")
    data_chunks = TrainingChunks.build(splits["train"], labels, chunking, device)
    save = partial(save_checkpoint, ckpt, settings=settings, config=resolved, model=model, optimizer=optimizer, state=state)
    _fit(model, optimizer, data_chunks, splits["valid"], labels, state, config, save=save, progress=progress, log=log)

    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    model.eval()
    model_path = _export(model, out / "model.onnx", spec=spec, labels=labels, features=features, chunking=chunking,
                         cnn=cnn, model_info=model_info, best_epoch=state.best_epoch, device=device)
    metrics = final_metrics(model, splits, labels, chunking, config.track_pooling)
    metrics.update({"best_epoch": state.best_epoch, "epochs_run": len(state.history), "chunk_frames": chunking.chunk,
                    "train_seconds": round(time.perf_counter() - t0, 1), "device": str(device)})
    write_metrics(out, metrics, state.history, log=log)
    return TrainResult(out, model_path, metrics, state.history, time.perf_counter() - t0)


def _resolved_config(
    data: str | os.PathLike[str], *, config: TrainConfig, cnn: CNNConfig, spec: ModelSpec,
    model_info: dict[str, Any] | None, features: FeatureConfig, labels: list[str], chunking: Chunking,
    split_files: dict[str, str | os.PathLike[str] | None] | None,
) -> dict[str, Any]:
    """What ``config.json`` says of a run: every setting as resolved (data, splits, network, features, chunks)."""
    return {
        "data": os.path.abspath(data), "train": config.to_dict(), "cnn": cnn.to_dict(),
        "model": {**spec.to_dict(), **(model_info or {"family": "cnn"})}, "feature_config": features.to_dict(),
        "labels": labels, "chunk_frames": chunking.chunk, "chunk_hop_frames": chunking.hop,
        "input_norm": None if spec.family == "tagger" else {"mean": chunking.norm[0], "std": chunking.norm[1]},
        "split_files": {k: os.path.abspath(v) for k, v in (split_files or {}).items() if v},
    }


def _load_and_split(
    data: str | os.PathLike[str],
    out: Path,
    config: TrainConfig,
    feature_config: FeatureConfig | None,
    *,
    manifest: str | os.PathLike[str] | None,
    split_files: dict[str, str | os.PathLike[str] | None] | None,
    cache_dir: str | os.PathLike[str] | None,
    jobs: int,
    progress: bool | None,
    log: Log,
) -> tuple[list[TrackData], FeatureConfig, dict[str, list[TrackData]]]:
    """The tracks, their features and their splits (written to ``splits.json``)."""
    items, features = load_training_data(
        data, cache_dir=cache_dir or out / "features", feature_config=feature_config, manifest=manifest,
        jobs=jobs, progress=progress, log=log,
    )
    splits = make_splits(items, split_files=split_files, valid_fraction=config.valid_fraction,
                         test_fraction=config.test_fraction, seed=config.seed)
    log(f"{describe_splits(items, splits)}; features {features.kind} {features.n_rows} rows at {features.sample_rate} Hz")
    write_splits(out, splits)
    return items, features, splits


def _chunking(
    spec: ModelSpec, config: TrainConfig, features: FeatureConfig, items: list[TrackData], train_items: list[TrackData]
) -> Chunking:
    """Crop length, evaluation hop and input normalisation; tracks shorter than a crop are tiled to fill one."""
    if spec.family == "tagger":  # the length the tagger was trained on (MusiCNN 3 s; FCN/CRNN need their 29 s)
        from specmusic.models.taggers import TAGGER_ARCHS

        chunk = TAGGER_ARCHS[spec.arch].chunk_frames
    elif config.chunk_seconds > 0:
        chunk = max(8, int(round(config.chunk_seconds * features.sample_rate / features.hop_length)))
    else:
        chunk = max(t.spec.shape[1] for t in train_items)
    hop = chunk if spec.arch == "musicnn" else max(1, chunk // 2)  # MusiCNN's 3 s chunks tile the track, as its tagger
    for t in items:  # a track shorter than a chunk is repeated to fill it (as inference does)
        if t.spec.shape[1] < chunk:
            t.spec = np.tile(t.spec, (1, -(-chunk // t.spec.shape[1])))[:, :chunk]
    if spec.family == "tagger":
        return Chunking(chunk, hop, (0.0, 1.0))  # the checkpoint's spec_bn normalises the dB mel inside the network
    if spec.family == "efficientat":
        from specmusic.models.efficientat import INPUT_NORM

        return Chunking(chunk, hop, INPUT_NORM)  # the scaling the network was trained with, whatever the data
    total = sum(float(t.spec.astype(np.float64).sum()) for t in train_items)
    count = sum(t.spec.size for t in train_items)
    mean = total / count
    var = sum(float(((t.spec.astype(np.float64) - mean) ** 2).sum()) for t in train_items) / count
    return Chunking(chunk, hop, (round(mean, 6), round(max(math.sqrt(var), 1e-3), 6)))


def _build_model(
    spec: ModelSpec, cnn: CNNConfig, n_classes: int, device: torch.device, *, progress: bool | None, log: Log
) -> tuple[torch.nn.Module, dict[str, Any] | None]:
    """The network on ``device``, and where its weights came from (None for the scratch CNN)."""
    info: dict[str, Any] | None = None
    if spec.family == "cnn":
        model: torch.nn.Module = SpecCNN(cnn)
    else:
        from specmusic.models.transfer import build_model

        model, info = build_model(spec, n_classes=n_classes, progress=progress, log=log)
    model.to(device)
    if device.type != "cpu":
        log(f"training on {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    return model, info


def _fit(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    data: TrainingChunks,
    valid: list[TrackData],
    labels: list[str],
    state: RunState,
    config: TrainConfig,
    *,
    save: Callable[[], None],
    progress: bool | None,
    log: Log,
) -> None:
    """Run the epochs left: log each, keep the best, stop early, checkpoint after every epoch."""
    if state.finished(config) or state.stop(config):
        if state.stopped_by == "patience" and state.epoch < config.epochs:
            log(f"the run stopped early after epoch {state.epoch} (no better validation score for "
                f"{config.patience} epochs) — raise --patience to train it further")
        return
    index = {name: i for i, name in enumerate(labels)}
    y_valid = np.array([index[t.label] for t in valid], dtype=np.int64)
    epochs = train_epochs(model, optimizer, data, config=config, valid=valid, y_valid=y_valid,
                          start_epoch=state.epoch, active=state.active, on_batch=_EpochBar(config.epochs, progress))
    t_loop = time.perf_counter()
    _log_phase(state.epoch, config, log, first=True)
    for result in epochs:
        best = state.record(result, model, config)
        log(_epoch_line(result, config) + ("  *" if best else ""))
        if result.dropped:
            log(f"drop-hard: kept {int(result.active.sum())} of {len(result.active)} training chunks")
        reason = state.stop(config, time.perf_counter() - t_loop)
        if reason == "patience":
            log(f"early stop: no better validation score for {config.patience} epochs (best epoch {state.best_epoch})")
        elif reason == "time":
            log(f"time budget: stopping after epoch {state.epoch} ({time.perf_counter() - t_loop:.0f} s of training)")
        save()
        if reason:
            return
        _log_phase(state.epoch, config, log)


def _epoch_line(result: EpochResult, config: TrainConfig) -> str:
    row = result.row
    line = f"epoch {result.epoch}/{config.epochs}: loss {row['train_loss']:.3f} acc {row['train_acc']:.3f}"
    if "valid_acc" in row:
        line += f" | valid loss {row['valid_loss']:.3f} acc {row['valid_acc']:.3f}"
    return line


def _log_phase(done: int, config: TrainConfig, log: Log, *, first: bool = False) -> None:
    """Before epoch ``done + 1``: say when a frozen phase starts (or resumes) and when the finetune begins."""
    if first and done < config.freeze_epochs:
        log(f"epochs {done + 1}-{config.freeze_epochs}: backbone frozen, training the new head")
    elif config.freeze_epochs and done == config.freeze_epochs < config.epochs:
        log(f"epoch {done + 1}: finetuning the whole network (peak lr {config.finetune_lr or config.lr / 10:g})")


class _EpochBar:
    """A progress bar per epoch on stderr (the loop's ``on_batch`` hook)."""

    def __init__(self, epochs: int, progress: bool | None) -> None:
        self.epochs, self.disable, self.bar = epochs, None if progress is None else not progress, None

    def __call__(self, epoch: int, batch: int, n_batches: int, loss: float, accuracy: float) -> None:
        from tqdm import tqdm

        if batch == 0:
            self.bar = tqdm(total=n_batches, desc=f"epoch {epoch}/{self.epochs}", unit="batch", file=sys.stderr,
                            disable=self.disable, dynamic_ncols=True, leave=False)
        self.bar.set_postfix(loss=f"{loss:.3f}", acc=f"{accuracy:.3f}")
        self.bar.update(1)
        if batch + 1 == n_batches:
            self.bar.close()


def _export(
    model: torch.nn.Module,
    path: Path,
    *,
    spec: ModelSpec,
    labels: list[str],
    features: FeatureConfig,
    chunking: Chunking,
    cnn: CNNConfig,
    model_info: dict[str, Any] | None,
    best_epoch: int,
    device: torch.device,
) -> Path:
    """``model.onnx`` from a CPU copy of the network, with the metadata ``classify`` needs."""
    from specmusic.export import export_onnx, model_metadata

    extra: dict[str, Any] = {"cnn": cnn.to_dict()} if spec.family == "cnn" else {"backbone": model_info}
    meta = model_metadata(
        labels=labels, feature_config=features, chunk_frames=chunking.chunk, chunk_hop_frames=chunking.hop,
        input_norm=None if spec.family == "tagger" else chunking.norm, arch=spec.arch, best_epoch=best_epoch, **extra,
    )
    model_path = export_onnx(model.to("cpu"), path, n_rows=features.n_rows, metadata=meta)
    model.to(device)
    return model_path
