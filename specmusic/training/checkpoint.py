"""A run's progress (torch): best epoch, early stopping, and ``checkpoint.pt`` to resume or continue it.

A checkpoint stores, besides weights and optimiser, the run's *settings*: everything that changes
what an epoch computes (training settings less the stopping rules, network, features, labels,
splits). A rerun into the same folder resumes when they match; the stopping rules (``epochs``,
``patience``, ``max_seconds``) may change, so a finished run trained further is the same command
with a larger ``--epochs`` (counted from the run's first start). Anything else is refused.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from specmusic.errors import ConfigError
from specmusic.features import FeatureConfig
from specmusic.fileio import display_path, save_torch_atomic
from specmusic.models.cnn import CNNConfig
from specmusic.training.config import STOPPING_RULES, TrainConfig
from specmusic.training.data import TrackData
from specmusic.training.loop import EpochResult

__all__ = ["CHECKPOINT_VERSION", "RunState", "load_checkpoint", "run_settings", "save_checkpoint"]

CHECKPOINT_VERSION = 2  # 1: a hash of the settings, stopping rules included (such runs are refused)


def run_settings(
    config: TrainConfig,
    cnn: CNNConfig,
    features: FeatureConfig,
    labels: list[str],
    splits: dict[str, list[TrackData]],
    model: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a checkpoint must agree with to be resumed (threads, device and stopping rules aside)."""
    train = {k: v for k, v in config.to_dict().items() if k not in ("threads", "device", *STOPPING_RULES)}
    if config.freeze_epochs and config.freeze_epochs == config.epochs:
        train["freeze_epochs"] = "all"  # a linear probe stays one when continued for more epochs
    keys = json.dumps({k: sorted(t.key for t in v) for k, v in splits.items()}, sort_keys=True).encode()
    return {"train": train, "cnn": cnn.to_dict(), "model": model, "features": features.to_dict(),
            "labels": labels, "splits": hashlib.sha256(keys).hexdigest()[:16]}


def _rules(config: TrainConfig) -> dict[str, Any]:
    return {k: getattr(config, k) for k in STOPPING_RULES}


@dataclass
class RunState:
    """Epochs done, their history, the best epoch so far and why the run stopped (if it did)."""

    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    active: np.ndarray | None = None  # training chunks still in use (drop-hard); None: all
    best_score: tuple[float, float] = (-1.0, -math.inf)
    best_epoch: int = -1
    best_state: dict[str, torch.Tensor] | None = None
    stale: int = 0  # epochs since the best one
    stopped_by: str | None = None  # "epochs", "patience" or "time" once finished
    stop_rules: dict[str, Any] = field(default_factory=dict)  # the stopping rules it finished under

    def record(self, result: EpochResult, model: torch.nn.Module, config: TrainConfig) -> bool:
        """Add an epoch; True when it is the best so far (its weights are kept)."""
        row = result.row
        self.epoch, self.active = result.epoch, result.active
        self.history.append(row)
        if result.epoch < max(1, config.epochs // 3):
            return False  # too early to pick: small validation splits make early scores noise
        score = (row["valid_acc"], -row["valid_loss"]) if "valid_acc" in row else (row["train_acc"], -row["train_loss"])
        if score > self.best_score:
            self.best_score, self.best_epoch, self.stale = score, result.epoch, 0
            self.best_state = copy.deepcopy(model.state_dict())
            return True
        self.stale += 1
        return False

    def stop(self, config: TrainConfig, seconds: float = 0.0) -> str | None:
        """Why training ends now (``patience``, ``epochs``, ``time``), else None; remembered when it does."""
        if self.stale >= config.patience:
            reason = "patience"
        elif self.epoch >= config.epochs:
            reason = "epochs"
        elif config.max_seconds and seconds >= config.max_seconds:
            reason = "time"
        else:
            return None
        self.stopped_by, self.stop_rules = reason, _rules(config)
        return reason

    def finished(self, config: TrainConfig) -> bool:
        """Stopped under these stopping rules (rerunning the same command trains no further)."""
        return self.stopped_by is not None and self.stop_rules == _rules(config)


def save_checkpoint(
    path: Path,
    *,
    settings: dict[str, Any],
    config: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: RunState,
) -> None:
    """Write ``checkpoint.pt`` atomically (``config``: the resolved ``config.json``, for the record)."""
    save_torch_atomic(path, {
        "version": CHECKPOINT_VERSION, "settings": settings, "config": config,
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": state.epoch,
        "history": state.history, "active": None if state.active is None else state.active.tolist(),
        "best_score": list(state.best_score), "best_epoch": state.best_epoch, "best_state": state.best_state,
        "stale": state.stale, "stopped_by": state.stopped_by, "stop_rules": state.stop_rules,
    })


def load_checkpoint(
    path: Path,
    *,
    settings: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
) -> RunState:
    """Load weights and optimiser into ``model`` and ``optimizer``; the run's state.

    Raises
    ------
    ConfigError
        An unreadable checkpoint, one of an older specmusic, or one of a run with other settings.
    """
    out = display_path(path.parent)
    try:
        ckpt = torch.load(path, weights_only=True, map_location=device)
    except Exception as exc:  # a torn or foreign file
        raise ConfigError(
            f"{display_path(path)}: unreadable checkpoint ({type(exc).__name__}) — pass --force to start over"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("version") != CHECKPOINT_VERSION:
        raise ConfigError(f"{out} holds a run of another specmusic version — use another -o, or --force to start over")
    if ckpt["settings"] != settings:
        raise ConfigError(
            f"{out} holds a run with other data or settings ({_difference(ckpt['settings'], settings)}) — "
            "use another -o, or --force to start over"
        )
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    return RunState(
        epoch=int(ckpt["epoch"]), history=list(ckpt["history"]),
        active=None if ckpt["active"] is None else np.asarray(ckpt["active"], dtype=bool),
        best_score=tuple(ckpt["best_score"]), best_epoch=int(ckpt["best_epoch"]), best_state=ckpt["best_state"],
        stale=int(ckpt["stale"]), stopped_by=ckpt["stopped_by"], stop_rules=dict(ckpt["stop_rules"]),
    )


def _difference(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> str:
    """The first setting that differs, as ``train.lr 0.003, now 0.001``."""
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = _difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key} differ" if key in ("labels", "splits") else f"{prefix}{key} {a!r}, now {b!r}"
    return ""
