"""Training the flow-matching U-Net: class-balanced patches, resumable checkpoints, a loss curve and sample pictures.

Flow matching (rectified flow): ``x_t = (1 - t) noise + t data``, the network predicts the velocity
``data - noise`` (mean squared error); labels are dropped into a "no label" class ``label_dropout`` of
the time, so one network serves conditional, unconditional and classifier-free-guided sampling. The
EMA of the weights is what sampling uses: exported at the end of a run (and on Ctrl-C) as ``model.onnx``
(:mod:`specmusic.generation.export`), which :func:`~specmusic.generation.sample.load_generator` runs
without torch.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from specmusic.errors import ConfigError
from specmusic.fileio import display_path, printable_text, save_torch_atomic, sweep_stale_temps, write_json_atomic
from specmusic.generation.config import (
    CHECKPOINT,
    CONFIG,
    FORMAT_VERSION,
    LOSS_PNG,
    MODEL_ONNX,
    ONNX_METADATA_KEY,
    SAMPLES_PNG,
    GenConfig,
    denormalize_db,
    onnx_metadata,
)
from specmusic.generation.export import export_generator
from specmusic.generation.sample import (
    Generator,
    TorchNetwork,
    make_unet,
    sample_spectrograms,
    set_torch_threads,
)
from specmusic.models.generative import UNet

__all__ = ["GeneratorTrainResult", "train_generator", "train_generator_from_files"]


@dataclass(frozen=True)
class GeneratorTrainResult:
    """Summary of a generator training run (also written into ``config.json``)."""

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


@dataclass
class _Run:
    """A run in progress: network, EMA copy, optimiser, step count and the loss of every step so far."""

    model: UNet
    ema: UNet
    optim: torch.optim.Optimizer
    step: int = 0
    resumed_from: int = 0
    losses: list[float] = field(default_factory=list)  # index = step; NaN for steps of a checkpoint without them


@dataclass(frozen=True)
class _Stop:
    """When a session ends: a step count from the first run's start, and/or a wall-clock budget."""

    limit: int | None
    limit_name: str  # "epochs" or "steps"
    budget_s: float | None

    def reason(self, step: int, elapsed: float) -> str | None:
        if self.limit is not None and step >= self.limit:
            return self.limit_name
        if self.budget_s is not None and elapsed >= self.budget_s:
            return "minutes"
        return None


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
    threads: int | None = 0,
    checkpoint_seconds: float = 30.0,
    force: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> GeneratorTrainResult:
    """Train the flow-matching U-Net on random patches; write ``checkpoint.pt``, ``config.json``,
    ``model.onnx`` (the EMA network, for sampling without torch), ``loss.png`` (loss per step against
    epochs) and ``samples.png`` (a few samples at the end).

    A folder that already holds a checkpoint of the same settings and labels is **resumed**: network,
    EMA and optimiser state, the step count and the loss history come from it. ``epochs`` /
    ``max_steps`` then count from the start of the first run (a finished run is not trained further,
    and its files are left as they are — but a missing or stale ``model.onnx``, from a folder trained by
    an older specmusic, is written), ``minutes`` is this session's budget. A fresh run (``force``, or no
    checkpoint) removes an old ``model.onnx`` first.

    Parameters
    ----------
    specs : list of np.ndarray [shape=(n_mels, n_frames_i)], normalised (:func:`normalize_db`)
    labels : class index per spec (ignored when ``names`` is empty: unconditional)
    minutes : wall-clock budget for the optimisation (checked every step)
    epochs : passes over the data, one pass = total frames / patch_frames patches
    max_steps : hard cap on optimiser steps
    threads : torch intra-op threads (0: the idle cores by load average; None: torch's current setting)
    checkpoint_seconds : save ``checkpoint.pt`` (atomically) at least this often; also at the end of every
        epoch (unless the last save took over 1/20 of the time since), on Ctrl-C and at the end. A
        checkpoint of the default U-Net is ~30 MB and takes ~0.1 s. ``model.onnx`` (~6 MB, ~0.3 s) is
        written on Ctrl-C and at the end only.
    force : start from scratch even when ``out_dir`` holds a checkpoint
    log : where to say that an interrupted run was saved (default: nowhere)

    Raises
    ------
    ConfigError
        Neither a budget nor a number of epochs/steps, specs with the wrong number of rows, or a
        checkpoint in ``out_dir`` of other settings, labels or format (without ``force``).
    KeyboardInterrupt
        Ctrl-C or SIGTERM (:class:`specmusic.workers.Terminated`): the step under way is finished and saved
        to ``checkpoint.pt`` (and ``model.onnx``) first, so the next run resumes from it.
    ModelError
        The ONNX export failed (the checkpoint is saved before it).
    """
    config = config or GenConfig()
    _check_inputs(specs, config, no_stop=minutes is None and epochs is None and max_steps is None)
    set_torch_threads(threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(out, before=time.time())  # a checkpoint or model.onnx a killed run was writing
    run, rng = _start_run(out, config, list(names), seed=seed, force=force)
    steps_per_epoch = max(1, math.ceil(sum(s.shape[1] for s in specs) / config.patch_frames / config.batch_size))
    limit = max_steps
    if epochs is not None:
        limit = min(limit or 10**12, max(1, round(epochs * steps_per_epoch)))
    stop = _Stop(limit, "epochs" if epochs is not None else "steps", None if minutes is None else minutes * 60.0)
    sampler = _PatchSampler(specs, labels, n_classes=len(names), config=config)
    start = time.perf_counter()
    stopped_by, first_loss, final_loss = _optimise(
        run, sampler, rng, out=out, config=config, names=list(names), stop=stop, steps_per_epoch=steps_per_epoch,
        checkpoint_seconds=checkpoint_seconds, progress=progress, log=log or (lambda _line: None),
    )
    took_steps = run.step > run.resumed_from
    result = GeneratorTrainResult(
        steps=run.step, epochs=round(run.step / steps_per_epoch, 3), seconds=round(time.perf_counter() - start, 2),
        final_loss=round(final_loss, 6) if took_steps else None,
        first_loss=round(first_loss, 6) if took_steps else None, stopped_by=stopped_by,
        n_clips=len(specs), labels=list(names), resumed_from=run.resumed_from,
    )
    if took_steps or not run.resumed_from:  # a finished run resumed took no step: keep its files as they are
        _save_checkpoint(out, run, config=config, names=list(names), summary=result.to_dict())
        _export(out, run, config=config, names=list(names))
        _plot_loss(out / LOSS_PNG, run.losses, steps_per_epoch=steps_per_epoch)
        _plot_samples(out / SAMPLES_PNG, Generator(path=display_path(out), config=config, labels=list(names),
                                                   network=TorchNetwork(run.ema), step=run.step), seed=seed)
    elif not _onnx_is_current(out, config=config, names=list(names), step=run.step):
        _export(out, run, config=config, names=list(names))  # a finished run of an older specmusic: add model.onnx
        (log or (lambda _line: None))(f"generate train: wrote {display_path(out)}/{MODEL_ONNX} for the finished run")
    return result


def train_generator_from_files(
    inputs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    config: GenConfig | None = None,
    minutes: float | None = None,
    epochs: float | None = None,
    train_list: str | os.PathLike[str] | None = None,
    unconditional: bool = False,
    seed: int = 0,
    threads: int | None = 0,
    force: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> GeneratorTrainResult:
    """``specmusic generate train``: read the clips of ``inputs`` (:func:`~specmusic.generation.data.load_training_data`,
    cached in ``out_dir/features.npz``) and :func:`train_generator` on them into ``out_dir``.

    Parameters
    ----------
    inputs : audio folders/files (label = first sub-folder) or ``spectro`` ``.npz`` arrays
    train_list : only the clips listed; default: ``DATA/splits/train_filtered.txt`` when one folder is given
        and holds it (``log`` says so)
    unconditional : ignore the labels
    log : one line per step: the clips read, the run resumed (and :func:`train_generator`'s lines)

    Raises
    ------
    ConfigError
        Neither ``minutes`` nor ``epochs`` (before anything is read), and as :func:`train_generator`.
    InputError
        An output folder that cannot be written, or no usable clip.
    """
    from specmusic.fileio import ensure_writable_dir
    from specmusic.generation.config import FEATURES_CACHE
    from specmusic.generation.data import load_training_data

    say = log or (lambda _line: None)
    if minutes is None and epochs is None:
        raise ConfigError("no stopping rule — pass --minutes N (a time budget) or --epochs N")
    config = config or GenConfig()
    default_list = Path(inputs[0]) / "splits" / "train_filtered.txt" if len(inputs) == 1 else None
    if train_list is None and default_list is not None and default_list.is_file():
        train_list = default_list
        say(f"generate train: training on the clips listed in {display_path(train_list)}")
    out = ensure_writable_dir(out_dir, option="-o")
    specs, labels, names = load_training_data(inputs, config=config, train_list=train_list,
                                              cache=out / FEATURES_CACHE, progress=progress, log=say)
    if unconditional:
        names, labels = [], [0] * len(specs)
    frames = sum(s.shape[1] for s in specs)
    say(f"generate train: {len(specs)} clips, {frames * config.hop_length / config.sample_rate / 60:.1f} min of "
        "audio, " + (f"{len(names)} labels ({printable_text(', '.join(names))})" if names else "unconditional"))
    result = train_generator(specs, labels, names, out_dir=out_dir, config=config, minutes=minutes, epochs=epochs,
                             seed=seed, threads=threads, force=force, progress=progress, log=say)
    if result.resumed_from:
        say(f"generate train: resumed {display_path(out_dir)}/{CHECKPOINT} at step {result.resumed_from}")
    return result


# -- the steps of a run ----------------------------------------------------------------------
def _check_inputs(specs: Sequence[np.ndarray], config: GenConfig, *, no_stop: bool) -> None:
    if no_stop:
        raise ConfigError("no stopping rule — pass --minutes or --epochs")
    for s in specs:
        if s.ndim != 2 or s.shape[0] != config.n_mels or s.shape[1] < config.patch_frames:
            raise ConfigError(f"training spec of shape {s.shape} needs {config.n_mels} rows and ≥ {config.patch_frames} frames")


def _start_run(out: Path, config: GenConfig, names: list[str], *, seed: int,
               force: bool) -> tuple[_Run, np.random.Generator]:
    """Fresh seeded modules, or those of ``out``'s checkpoint (reseeded: fresh batches for the steps to come)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = make_unet(config, len(names))
    ema = make_unet(config, len(names))
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    run = _Run(model=model, ema=ema, optim=torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0))
    if (out / CHECKPOINT).is_file() and not force:
        _resume(out, config, names, run)
        # fresh randomness for the steps still to come (a resumed run is not the uninterrupted one)
        torch.manual_seed(seed * 1_000_003 + run.step)
        rng = np.random.default_rng([seed, run.step])
    else:  # a fresh run: the network of the run it replaces must not be sampled as this one's
        (out / MODEL_ONNX).unlink(missing_ok=True)
    return run, rng


class _PatchSampler:
    """Class-balanced batches: a class uniformly, then a clip of it, then a random window of it."""

    def __init__(self, specs: Sequence[np.ndarray], labels: Sequence[int], *, n_classes: int, config: GenConfig) -> None:
        self.specs, self.n_classes, self.config = specs, n_classes, config
        self.labels = np.asarray(labels, dtype=np.int64)
        by_class = [np.flatnonzero(self.labels == c) for c in range(n_classes)] if n_classes else [np.arange(len(specs))]
        self.by_class = [c for c in by_class if len(c)]

    def draw(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Patches [shape=(batch_size, 1, n_mels, patch_frames)] and their labels [shape=(batch_size,)]."""
        cfg, P = self.config, self.config.patch_frames
        classes = rng.integers(len(self.by_class), size=cfg.batch_size)
        batch = np.empty((cfg.batch_size, 1, cfg.n_mels, P), dtype=np.float32)
        ys = np.empty(cfg.batch_size, dtype=np.int64)
        for b, c in enumerate(classes):
            i = int(rng.choice(self.by_class[c]))
            s = self.specs[i]
            t0 = int(rng.integers(0, s.shape[1] - P + 1))
            batch[b, 0] = s[:, t0 : t0 + P]
            ys[b] = self.labels[i] if self.n_classes else 0
        return torch.from_numpy(batch), torch.from_numpy(ys)


def _optimise(run: _Run, sampler: _PatchSampler, rng: np.random.Generator, *, out: Path, config: GenConfig,
              names: list[str], stop: _Stop, steps_per_epoch: int, checkpoint_seconds: float,
              progress: bool | None, log: Callable[[str], None]) -> tuple[str, float, float]:
    """Train until ``stop`` says so, checkpointing as :func:`train_generator` says; on Ctrl-C, save and re-raise.

    Returns the reason it stopped, the first loss of this session and the smoothed last loss (NaN
    when no step was taken).

    Raises
    ------
    KeyboardInterrupt
        After Ctrl-C (SIGINT) or SIGTERM (:class:`specmusic.workers.Terminated`), once the step under way is
        finished and ``checkpoint.pt`` (and ``model.onnx``) hold it.
    """
    from tqdm import tqdm

    bar = tqdm(total=stop.limit, initial=run.step, desc="generate train", unit="step",
               disable=None if progress is None else not progress, dynamic_ncols=True)
    start = last_ckpt = time.perf_counter()
    save_cost = 0.0  # seconds the last checkpoint took
    first_loss = running = float("nan")
    with bar, _signals_after_the_step() as pending:
        while (stopped_by := stop.reason(run.step, time.perf_counter() - start)) is None:
            x1, y = sampler.draw(rng)
            value = _train_step(run, x1, y, config=config, n_classes=len(names))
            first_loss = value if run.step == run.resumed_from else first_loss
            running = value if run.step == run.resumed_from else 0.98 * running + 0.02 * value
            run.losses.append(value)
            run.step += 1
            bar.update(1)
            post = {"loss": f"{running:.4f}", "epoch": f"{run.step / steps_per_epoch:.1f}"}
            if stop.budget_s is not None:
                post["left"] = f"{max(0.0, stop.budget_s - (time.perf_counter() - start)) / 60:.1f}min"
            bar.set_postfix(post, refresh=False)
            if (interruption := pending()) is not None:
                _save_checkpoint(out, run, config=config, names=names, summary=None)
                _export(out, run, config=config, names=names)
                log(f"generate train: interrupted at step {run.step} — saved {display_path(out)}/{CHECKPOINT} "
                    f"and {MODEL_ONNX}; rerun the same command to resume from it")
                raise interruption
            since = time.perf_counter() - last_ckpt
            # every checkpoint_seconds, and at the end of each epoch unless that costs over 5 % of the time
            if since >= checkpoint_seconds or (run.step % steps_per_epoch == 0 and since >= 20 * save_cost):
                t0 = time.perf_counter()
                _save_checkpoint(out, run, config=config, names=names, summary=None)
                last_ckpt = time.perf_counter()
                save_cost = last_ckpt - t0
    return stopped_by, first_loss, running


@contextlib.contextmanager
def _signals_after_the_step() -> Iterator[Callable[[], BaseException | None]]:
    """Defer Ctrl-C and SIGTERM to the end of the step under way: the handler only notes the signal, the
    loop asks ``pending()`` for the exception to raise once it has saved (KeyboardInterrupt, or
    :class:`specmusic.workers.Terminated` for SIGTERM).

    A second signal interrupts at once. Outside the main thread (where no handler can be set) nothing
    is deferred.
    """
    from specmusic.workers import Terminated

    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    seen: list[int] = []

    def interruption(signum: int) -> BaseException:
        return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    def note(signum: int, frame: Any) -> None:
        if seen:
            raise interruption(signum)
        seen.append(signum)

    previous = {signum: signal.signal(signum, note) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: interruption(seen[0]) if seen else None
    finally:
        for signum, handler in previous.items():
            default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
            signal.signal(signum, handler if handler is not None else default)


def _train_step(run: _Run, x1: torch.Tensor, y: torch.Tensor, *, config: GenConfig, n_classes: int) -> float:
    """One flow-matching step on the data patches ``x1``: AdamW with warm-up and clipping, then the EMA update."""
    x0 = torch.randn_like(x1)
    t = torch.rand(config.batch_size)
    xt = (1 - t)[:, None, None, None] * x0 + t[:, None, None, None] * x1
    if n_classes:
        drop = torch.rand(config.batch_size) < config.label_dropout
        y = torch.where(drop, torch.full_like(y, n_classes), y)
    pred = run.model(xt, t, y if n_classes else None)
    loss = torch.mean((pred - (x1 - x0)) ** 2)
    for g in run.optim.param_groups:
        g["lr"] = config.lr * min(1.0, (run.step + 1) / max(1, config.warmup_steps))
    run.optim.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
    run.optim.step()
    decay = min(config.ema_decay, (1 + run.step) / (10 + run.step))
    with torch.no_grad():
        for pe, pm in zip(run.ema.parameters(), run.model.parameters()):
            pe.lerp_(pm, 1 - decay)
        for be, bm in zip(run.ema.buffers(), run.model.buffers()):
            be.copy_(bm)
    return float(loss.detach())


# -- checkpoints -----------------------------------------------------------------------------
def _save_checkpoint(out: Path, run: _Run, *, config: GenConfig, names: list[str],
                     summary: dict[str, Any] | None) -> None:
    """``checkpoint.pt`` (with its config) and ``config.json``, each written atomically."""
    payload = {
        "format_version": FORMAT_VERSION,
        "config": json.dumps(config.to_dict()),
        "labels": list(names),
        "ema": run.ema.state_dict(),
        "model": run.model.state_dict(),
        "optim": run.optim.state_dict(),
        "step": run.step,
        "loss_history": torch.tensor(run.losses, dtype=torch.float32),
    }
    save_torch_atomic(out / CHECKPOINT, payload)
    meta = {"format_version": FORMAT_VERSION, "kind": "specmusic-generator", "labels": list(names),
            "config": config.to_dict(), "feature_config": config.feature_config.to_dict(), "step": run.step,
            "training": summary}
    write_json_atomic(out / CONFIG, meta)


def _export(out: Path, run: _Run, *, config: GenConfig, names: list[str]) -> None:
    """``model.onnx``: the EMA network of ``run`` at its step, for sampling without torch (atomically)."""
    export_generator(run.ema, out / MODEL_ONNX, config=config, labels=names, step=run.step)


def _onnx_is_current(out: Path, *, config: GenConfig, names: list[str], step: int) -> bool:
    """Whether ``out/model.onnx`` holds this run at ``step`` (its metadata, read with the onnx package)."""
    import onnx

    try:
        proto = onnx.load(out / MODEL_ONNX, load_external_data=False)
        raw = {p.key: p.value for p in proto.metadata_props}.get(ONNX_METADATA_KEY, "null")
        return json.loads(raw) == json.loads(json.dumps(onnx_metadata(config=config, labels=names, step=step)))
    except Exception:  # noqa: BLE001 — missing, truncated, not ONNX: not current
        return False


def _resume(out: Path, config: GenConfig, names: list[str], run: _Run) -> None:
    """Load ``out/checkpoint.pt`` (``weights_only``) into ``run``: modules, step and loss history."""
    name = display_path(out)
    try:
        ckpt = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(
            f"{name}/{CHECKPOINT}: unreadable checkpoint ({type(exc).__name__}) — pass --force to start over"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"{name} holds a generator of another format — use another -o, or --force to start over")
    if json.loads(ckpt["config"]) != json.loads(json.dumps(config.to_dict())) or list(ckpt["labels"]) != names:
        raise ConfigError(
            f"{name} holds a run with other settings or labels — use another -o, or --force to start over"
        )
    run.model.load_state_dict(ckpt["model"])
    run.ema.load_state_dict(ckpt["ema"])
    run.optim.load_state_dict(ckpt["optim"])
    run.step = run.resumed_from = int(ckpt["step"])
    history = ckpt.get("loss_history")
    losses = history.tolist()[: run.step] if history is not None else []
    run.losses = [float("nan")] * (run.step - len(losses)) + losses  # a checkpoint without history: gaps


# -- pictures --------------------------------------------------------------------------------
def _plot_loss(path: Path, losses: list[float], *, steps_per_epoch: int) -> None:
    """Loss of every step (faint) and its running mean against epochs (integer ticks), steps on top."""
    from matplotlib.ticker import MaxNLocator

    from specmusic.plotting import pyplot, save_figure_atomic

    values = np.asarray(losses, dtype=np.float64)
    epochs = np.arange(1, len(values) + 1) / steps_per_epoch
    smooth, running = np.full_like(values, np.nan), math.nan
    for i, v in enumerate(values):
        running = v if math.isnan(running) else (running if math.isnan(v) else 0.98 * running + 0.02 * v)
        smooth[i] = running
    fig, ax = pyplot().subplots(figsize=(7, 4))
    ax.plot(epochs, values, color="tab:blue", alpha=0.25, linewidth=0.8, label="per step")
    ax.plot(epochs, smooth, color="tab:blue", linewidth=1.8, label="running mean")
    if np.any(values > 0):
        ax.set_yscale("log")
    ax.set_xlim(0, max(float(epochs[-1]) if len(epochs) else 1.0, 1.0))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("flow-matching loss (MSE)")
    top = ax.secondary_xaxis("top", functions=(lambda e: e * steps_per_epoch, lambda s: s / steps_per_epoch))
    top.set_xlabel("step")
    ax.set_title(f"generate train: {len(values)} steps, {len(values) / steps_per_epoch:.1f} epochs")
    ax.legend(loc="upper right")
    save_figure_atomic(fig, path)


def _plot_samples(path: Path, generator: Generator, *, seed: int, per_picture: int = 8) -> None:
    """One training patch's width sampled per label (the first ``per_picture``; unconditional: 4), side by side."""
    from specmusic.plotting import save_spectrogram_png

    cfg = generator.config
    labels: list[str | None] = list(generator.labels[:per_picture]) if generator.labels else [None] * 4
    seconds = (cfg.patch_frames - 1) * cfg.hop_length / cfg.sample_rate  # exactly patch_frames frames
    gap = np.full((cfg.n_mels, max(1, cfg.patch_frames // 32)), np.nan, dtype=np.float32)
    parts: list[np.ndarray] = []
    for i, label in enumerate(labels):
        x = sample_spectrograms(generator, n=1, label=label, seconds=seconds, seed=seed + i)[0]
        parts += [gap] * bool(parts) + [denormalize_db(x, db_range=cfg.db_range)]
    names = " | ".join(label or "unconditional" for label in labels)
    save_spectrogram_png(path, np.concatenate(parts, axis=1), cfg.feature_config,
                         title=f"samples at step {generator.step} (seed {seed}): {names}")
