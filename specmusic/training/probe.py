"""``train DATA --head linear``: a linear head on a pretrained network's frozen features (no torch).

:func:`train_probe` lists the labelled tracks as ``train`` does, computes each track's per-window
``embedding`` through the backbone (:mod:`specmusic.training.backbone_features`: the windows, features
and network ``classify`` runs; cached), splits the tracks by group with the same rules and lists
(:func:`~specmusic.training.data.make_splits`), fits a standardised multinomial logistic regression on
the training windows (:func:`fit_linear_head`; its L2 strength chosen on the validation tracks), and
writes one ``model.onnx`` — the backbone's graph up to its ``embedding``, then the head
(:func:`specmusic.export.append_linear_head`) — with the same ``metrics.json``, ``confusion.png`` and
``splits.json`` as a network run.

**One definition of a track's prediction**: the head is applied to each window's embedding and the
window probabilities are averaged (``--track-pooling mean``). That is what ``classify`` computes with
the exported file (it runs the graph per window and averages the probabilities), so the head is
trained on window embeddings (each track's windows weighted to count as one track) and the metrics
score exactly what ``classify`` will say.

Defaults (one block)::

    backbone = "audioset-mn04"  # any network the zoo knows, or a specmusic .onnx with an `embedding` output
    head     = "linear"         # standardise → linear → logits (softmax in classify)
    c        = None             # inverse L2 strength; None: the best of C_GRID on the validation tracks
    windows  = 6                # windows per track at most: classify's default (DEFAULT_WINDOWS)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from specmusic.config import ConfigBase
from specmusic.errors import ConfigError, InputError
from specmusic.features import FeatureConfig
from specmusic.fileio import display_path, ensure_writable_dir, write_json_atomic
from specmusic.training.backbone_features import (
    Backbone,
    WindowFeatures,
    backbone_features,
    open_backbone,
)
from specmusic.training.config import TrainConfig
from specmusic.training.data import is_spectro_output, keep_labelled, list_training_inputs, make_splits
from specmusic.training.metrics import (
    accuracy_and_loss,
    pool_chunk_probabilities,
    split_metrics,
)
from specmusic.training.outputs import (
    CHECKPOINT,
    TrainResult,
    describe_splits,
    write_metrics,
    write_splits,
)
from specmusic.windowing import DEFAULT_WINDOWS

__all__ = ["C_GRID", "DEFAULT_BACKBONE", "HEADS", "LinearHead", "ProbeConfig", "choose_linear_head", "fit_linear_head",
           "probe_is_default",
           "train_probe"]

Log = Callable[[str], None]
DEFAULT_BACKBONE = "audioset-mn04"
HEADS = ("linear",)
#: Inverse L2 strengths tried on the validation tracks (per track: a track's windows weigh 1 together).
C_GRID = (0.01, 0.1, 1.0, 10.0)
#: Without validation tracks to choose on.
DEFAULT_C = 1.0


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class ProbeConfig(ConfigBase):
    """A head on frozen features; see the module docstring for the defaults."""

    what = "probe config"

    backbone: str = DEFAULT_BACKBONE
    head: str = "linear"
    c: float | None = None
    windows: int | None = DEFAULT_WINDOWS

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ConfigError(f"unknown --head {self.head!r} — use one of {', '.join(HEADS)}")
        if self.c is not None and not self.c > 0:
            raise ConfigError(f"C {self.c} must be > 0 — e.g. 1.0 (smaller: stronger regularisation)")
        if self.windows is not None and self.windows < 1:
            raise ConfigError(f"windows {self.windows} must be >= 1, or None for every chunk")


@dataclass(frozen=True)
class LinearHead:
    """``logits = ((x - mean) / scale) @ weight.T + bias`` on one window's embedding ``x``."""

    mean: np.ndarray  # [dim]
    scale: np.ndarray  # [dim]
    weight: np.ndarray  # [n_classes, dim]
    bias: np.ndarray  # [n_classes]
    c: float

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Window embeddings [shape=(n, dim)] → logits [shape=(n, n_classes)], float64."""
        return ((np.asarray(x, np.float64) - self.mean) / self.scale) @ self.weight.T + self.bias

    def track_probabilities(self, windows: Sequence[np.ndarray], pooling: str = "mean") -> tuple[np.ndarray, np.ndarray]:
        """Each track's probabilities from its windows' [shape=(n_windows, dim)] softmax, pooled as ``pooling``.

        Returns
        -------
        probs : np.ndarray [shape=(n_tracks, n_classes)]
        n_windows : np.ndarray [shape=(n_tracks,)]
        """
        owner = np.concatenate([np.full(len(w), i) for i, w in enumerate(windows)])
        z = self.logits(np.concatenate(windows))
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return pool_chunk_probabilities(e / e.sum(axis=1, keepdims=True), owner, len(windows), pooling)


def fit_linear_head(
    x: np.ndarray, y: np.ndarray, *, n_classes: int, c: float, sample_weight: np.ndarray | None = None
) -> LinearHead:
    """Standardise ``x`` and fit a multinomial logistic regression (scikit-learn, L-BFGS; deterministic).

    Parameters
    ----------
    x : np.ndarray [shape=(n, dim)], one row per window
    y : np.ndarray [shape=(n,)], class indices 0 … n_classes - 1 (each present)
    c : inverse L2 strength
    sample_weight : np.ndarray [shape=(n,)] (default 1 each)

    Returns
    -------
    LinearHead, softmax form for any number of classes (two classes: ± half the binary weights)
    """
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-8] = 1.0  # a constant feature: left as it is (as scikit-learn's StandardScaler)
    fit = LogisticRegression(C=c, max_iter=2000).fit((x - mean) / scale, y, sample_weight=sample_weight)
    weight, bias = fit.coef_.astype(np.float64), fit.intercept_.astype(np.float64)
    if n_classes == 2:  # binary: sigmoid(w·z + b) = softmax([-(w·z + b) / 2, (w·z + b) / 2])[1]
        weight, bias = np.concatenate([-weight / 2, weight / 2]), np.concatenate([-bias / 2, bias / 2])
    return LinearHead(mean, scale, weight, bias, float(c))


def _fit_tracks(tracks: Sequence[WindowFeatures], index: dict[str, int], c: float) -> LinearHead:
    """The head on every window of ``tracks``, each track's windows weighing 1 together."""
    x = np.concatenate([t.windows for t in tracks])
    y = np.concatenate([np.full(len(t.windows), index[t.label]) for t in tracks])
    w = np.concatenate([np.full(len(t.windows), 1.0 / len(t.windows)) for t in tracks])
    return fit_linear_head(x, y, n_classes=len(index), c=c, sample_weight=w)


def choose_linear_head(
    splits: dict[str, list[WindowFeatures]], labels: list[str], *, c: float | None, pooling: str, log: Log = _quiet
) -> tuple[LinearHead, dict[str, Any]]:
    """The head fitted on the training tracks with ``c``, or with the ``C_GRID`` value whose validation
    tracks score best (accuracy, then cross-entropy; the smaller C on a tie).

    Returns
    -------
    head : LinearHead
    report : ``{"kind", "C", "chosen_by", "valid_by_C"}`` for ``metrics.json``
    """
    index = {name: i for i, name in enumerate(labels)}
    valid = splits["valid"]
    if c is not None or not valid:
        chosen = DEFAULT_C if c is None else c
        return _fit_tracks(splits["train"], index, chosen), {
            "kind": "linear", "C": chosen, "chosen_by": "given" if c is not None else "default (no validation tracks)"}
    y_valid = np.array([index[t.label] for t in valid])
    scores: dict[float, tuple[float, float]] = {}
    heads: dict[float, LinearHead] = {}
    for value in C_GRID:
        heads[value] = _fit_tracks(splits["train"], index, value)
        scores[value] = accuracy_and_loss(heads[value].track_probabilities([t.windows for t in valid], pooling)[0], y_valid)
    best = max(C_GRID, key=lambda v: (scores[v][0], -scores[v][1], -v))
    log("head: validation accuracy by C " + ", ".join(f"{v:g} {scores[v][0]:.3f}" for v in C_GRID) + f"; C = {best:g}")
    return heads[best], {"kind": "linear", "C": best, "chosen_by": "validation accuracy, then loss",
                         "valid_by_C": {f"{v:g}": {"accuracy": round(a, 4), "loss": round(l, 4)}
                                        for v, (a, l) in scores.items()}}


def train_probe(
    data: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    probe: ProbeConfig | None = None,
    config: TrainConfig | None = None,
    manifest: str | os.PathLike[str] | None = None,
    split_files: dict[str, str | os.PathLike[str] | None] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    jobs: int = 1,
    force: bool = False,
    progress: bool | None = None,
    log: Log = _quiet,
) -> TrainResult:
    """Fit a head on ``probe.backbone``'s frozen features of ``data``; write ``model.onnx`` (backbone and
    head in one file), ``metrics.json``, ``confusion.png``, ``splits.json`` and ``config.json`` into ``out_dir``.

    Parameters
    ----------
    data : audio folder (labels from sub-folders or a manifest) or ``spectro`` folder computed with the
        backbone's features
    probe : backbone, head, C, windows (default :class:`ProbeConfig`)
    config : the split and scoring settings of :class:`TrainConfig` that apply (``seed``,
        ``valid_fraction``, ``test_fraction``, ``track_pooling``; ``threads`` for onnxruntime)
    manifest, split_files, jobs, progress, log : as :func:`specmusic.training.train`
    cache_dir : the feature cache (default ``out_dir/features``); a rerun reads the features back
    force : replace a network run (``checkpoint.pt``) in ``out_dir``

    Raises
    ------
    InputError, ConfigError, ModelError
        Bad data or splits, an unknown backbone, a run folder that holds a network run (one-line messages).
    """
    from specmusic.export import append_linear_head, model_metadata

    t0 = time.perf_counter()
    probe, config = probe or ProbeConfig(), config or TrainConfig()
    out = ensure_writable_dir(out_dir, option="-o")
    _claim_folder(out, force)
    backbone = open_backbone(probe.backbone, progress=progress)
    tracks = _load_tracks(data, out, backbone, probe, config, manifest=manifest, cache_dir=cache_dir, jobs=jobs,
                          progress=progress, log=log)
    splits = make_splits(tracks, split_files=split_files, valid_fraction=config.valid_fraction,
                         test_fraction=config.test_fraction, seed=config.seed)
    log(f"{describe_splits(tracks, splits)}; features {backbone.name} embedding ({backbone.dim})")
    write_splits(out, splits)
    labels = sorted({str(t.label) for t in tracks})
    head, report = choose_linear_head(splits, labels, c=probe.c, pooling=config.track_pooling, log=log)
    meta = model_metadata(
        labels=labels, feature_config=FeatureConfig.from_dict(dict(backbone.meta["feature_config"])),
        chunk_frames=backbone.meta["chunk_frames"], chunk_hop_frames=backbone.meta["chunk_hop_frames"],
        input_norm=_norm(backbone.meta.get("input_norm")), arch="linear-probe", task="multiclass",
        backbone=backbone.describe(), head={**report, "windows": probe.windows},
    )
    model_path = append_linear_head(backbone.path, out / "model.onnx", mean=head.mean, scale=head.scale,
                                    weight=head.weight, bias=head.bias, metadata=meta)
    metrics = split_metrics(splits, labels, config.track_pooling,
                            lambda ts, pooling: head.track_probabilities([t.windows for t in ts], pooling))
    metrics.update({"head": report, "backbone": backbone.describe(), "chunk_frames": meta["chunk_frames"],
                    "train_seconds": round(time.perf_counter() - t0, 1), "device": "cpu"})
    write_json_atomic(out / "config.json", {
        "data": os.path.abspath(data), "probe": probe.to_dict(),
        "train": {k: getattr(config, k) for k in ("seed", "valid_fraction", "test_fraction", "track_pooling")},
        "model": {"family": "probe", "backbone": backbone.describe(), "head": report},
        "feature_config": meta["feature_config"], "labels": labels, "chunk_frames": meta["chunk_frames"],
        "chunk_hop_frames": meta["chunk_hop_frames"], "input_norm": meta["input_norm"],
        "split_files": {k: os.path.abspath(v) for k, v in (split_files or {}).items() if v},
    })
    write_metrics(out, metrics, [], log=log)
    return TrainResult(out, model_path, metrics, [], time.perf_counter() - t0)


def probe_is_default(data: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> bool:
    """Whether ``train DATA -o RUN`` with no network option fits the default head (:class:`ProbeConfig`).

    It does for audio input: ``benchmarks/train_default.py``'s rule chose the linear head on
    ``DEFAULT_BACKBONE``'s features over the scratch CNN (docs/train.md). It does not for a ``spectro``
    output folder or ``.npz`` arrays (spectrograms, not audio: the backbone hears audio through its own front
    end), nor for a run folder that holds a network run (``train`` continues that run, as it always did).
    """
    data = Path(data)
    return not ((Path(out_dir) / CHECKPOINT).exists() or data.suffix.lower() == ".npz" or is_spectro_output(data))


def _norm(norm: dict[str, float] | None) -> tuple[float, float] | None:
    return None if norm is None else (float(norm["mean"]), float(norm["std"]))


def _claim_folder(out: Path, force: bool) -> None:
    """A folder holding a network run is refused (``force``: its checkpoint and curve are removed)."""
    if not (out / CHECKPOINT).exists():
        return
    if not force:
        raise ConfigError(f"{display_path(out)} holds a network training run ({CHECKPOINT}) — use another -o, "
                          "or --force to replace it with the head")
    for name in (CHECKPOINT, "training_curve.png"):
        (out / name).unlink(missing_ok=True)


def _load_tracks(
    data: str | os.PathLike[str], out: Path, backbone: Backbone, probe: ProbeConfig, config: TrainConfig, *,
    manifest: str | os.PathLike[str] | None, cache_dir: str | os.PathLike[str] | None, jobs: int,
    progress: bool | None, log: Log,
) -> list[WindowFeatures]:
    """The labelled tracks of ``data`` with their backbone features (files that fail are reported and left out)."""
    from specmusic.workers import auto_threads

    listed = list_training_inputs(data, manifest=manifest, log=log)
    failed = [{"source": f.path, "error": f.message} for f in listed.failed]
    for row in failed:
        log(f"skipped: {row['error']}")
    files = keep_labelled(listed.files(), log=log)
    tracks = backbone_features(files, backbone, cache_dir=cache_dir or out / "features", windows=probe.windows,
                               jobs=jobs, threads=config.threads or auto_threads(), failed=failed,
                               progress=progress, log=log)
    if not tracks:
        raise InputError(f"{display_path(data)}: no labelled track could be read — "
                         + ("see the errors above" if failed else "labels come from sub-folder names (rock/a.wav)"))
    return tracks
