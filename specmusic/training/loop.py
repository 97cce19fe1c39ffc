"""The epoch loop (torch): crops, augmentation, learning-rate schedule, frozen phases, hard-example dropping.

:func:`train_epochs` is a generator: it trains one epoch, scores the validation tracks and yields an
:class:`EpochResult`, as spaCy's ``train_while_improving`` does. What to do with it (log it, keep the
best weights, stop early, write a checkpoint, plot) is the caller's business
(:func:`specmusic.training.train`); the loop holds the numerics only, and is seeded per epoch so that a
run resumed after epoch *k* repeats exactly what an uninterrupted one computes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from specmusic.features import chunk_starts
from specmusic.training.config import TrainConfig
from specmusic.training.data import TrackData
from specmusic.training.evaluate import Chunking, model_device, validation_scores

__all__ = ["EpochResult", "TrainingChunks", "augment_batch", "drop_hard", "lr_at", "set_trainable", "train_epochs"]

#: ``on_batch(epoch, batch, n_batches, running_loss, running_accuracy)``: a progress bar's hook.
BatchHook = Callable[[int, int, int, float, float], None]


@dataclass
class TrainingChunks:
    """The training set as examples: every non-overlapping chunk of every training track."""

    items: Sequence[TrackData]
    y: torch.Tensor  # [n_tracks] class index of each track, on the training device
    track: np.ndarray  # [n_examples] which track
    start: np.ndarray  # [n_examples] its first frame
    chunking: Chunking

    @classmethod
    def build(cls, items: Sequence[TrackData], labels: list[str], chunking: Chunking, device: torch.device) -> TrainingChunks:
        """Examples of ``items`` (each at least ``chunking.chunk`` frames long)."""
        index = {name: i for i, name in enumerate(labels)}
        track, start = [], []
        for i, t in enumerate(items):
            starts = chunk_starts(t.spec.shape[1], chunking.chunk, chunking.chunk)
            track.extend([i] * len(starts))
            start.extend(starts.tolist())
        y = torch.tensor([index[t.label] for t in items], device=device)
        return cls(items, y, np.asarray(track, dtype=np.int64), np.asarray(start, dtype=np.int64), chunking)

    def crops(self, which: np.ndarray, starts: np.ndarray) -> torch.Tensor:
        """Normalised crops ``items[which[i]].spec[:, starts[i]:starts[i]+chunk]`` → [n, 1, rows, chunk] float32 (CPU)."""
        chunk, (mean, std) = self.chunking.chunk, self.chunking.norm
        out = np.empty((len(which), 1, self.items[0].spec.shape[0], chunk), dtype=np.float32)
        for i, (w, s) in enumerate(zip(which, starts)):
            out[i, 0] = self.items[w].spec[:, s : s + chunk]
        return (torch.from_numpy(out) - mean) / std


@dataclass
class EpochResult:
    """One finished epoch."""

    epoch: int  # epochs finished so far (1-based)
    row: dict[str, float]  # train_loss, train_acc, lr, examples, and valid_acc, valid_loss with valid tracks
    active: np.ndarray  # [n_examples] bool: training chunks in use from the next epoch on
    dropped: bool = False  # drop-hard removed chunks after this epoch


# -- schedule and augmentation ----------------------------------------------------------------
def _cosine(progress: float, epochs: float, peak: float) -> float:
    warm = min(1.0, epochs / 4)
    if progress < warm:
        return peak * (0.1 + 0.9 * progress / warm)
    t = (progress - warm) / max(1e-9, epochs - warm)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def lr_at(progress: float, config: TrainConfig) -> float:
    """1 epoch linear warm-up, then cosine decay to 0 (``progress`` in epochs). With frozen epochs,
    the head-only phase and the full finetune (peak ``finetune_lr``, default lr/10) each get one."""
    f = config.freeze_epochs
    if f <= 0 or f >= config.epochs:
        return _cosine(progress, config.epochs, config.lr)
    if progress < f:
        return _cosine(progress, f, config.lr)
    return _cosine(progress - f, config.epochs - f, config.finetune_lr or config.lr / 10)


def augment_batch(x: torch.Tensor, augment: Sequence[str], gen: torch.Generator, std: float) -> torch.Tensor:
    """In-place-free augmentation of a normalised batch [n, 1, rows, frames] (mixup aside: see the loop)."""
    n, _, rows, frames = x.shape
    if "gain" in augment:  # ±6 dB, in normalised units
        x = x + (torch.rand(n, 1, 1, 1, generator=gen) * 12.0 - 6.0) / std
    if "freqshift" in augment:  # shift along the mel axis by up to ±2 bands, edges repeated
        shifts = torch.randint(-2, 3, (n,), generator=gen)
        idx = (torch.arange(rows)[None, :] - shifts[:, None]).clamp(0, rows - 1)
        x = torch.gather(x, 2, idx[:, None, :, None].expand(n, 1, rows, frames))
    if "mask" in augment:  # SpecAugment: 2 time masks (<= 10 %) and 2 frequency masks (<= 12 %)
        x = x.clone()
        for size, axis_len, dim in ((max(1, frames // 10), frames, 3), (max(1, rows // 8), rows, 2)):
            idx = torch.arange(axis_len)
            for _ in range(2):
                width = torch.randint(0, size + 1, (n,), generator=gen)
                start = (torch.rand(n, generator=gen) * (axis_len - width + 1).float()).long()
                m = (idx[None, :] >= start[:, None]) & (idx[None, :] < (start + width)[:, None])  # [n, len]
                m = m[:, None, None, :] if dim == 3 else m[:, None, :, None]
                x = x.masked_fill(m, 0.0)
    return x


# -- frozen phases and hard examples ----------------------------------------------------------
def set_trainable(model: torch.nn.Module, frozen: bool, freeze_front: bool = False) -> None:
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


def drop_hard(model: torch.nn.Module, data: TrainingChunks, active: np.ndarray, fraction: float) -> np.ndarray:
    """``active`` less the ``fraction`` of its training chunks with the highest loss."""
    model.eval()
    idx = np.flatnonzero(active)
    losses = np.empty(len(idx))
    dev = model_device(model)
    with torch.no_grad():
        for s in range(0, len(idx), 128):
            sel = idx[s : s + 128]
            xb = data.crops(data.track[sel], data.start[sel]).to(dev)
            losses[s : s + 128] = F.cross_entropy(model(xb)[0], data.y[data.track[sel]].to(dev),
                                                  reduction="none").cpu().numpy()
    n_drop = int(round(fraction * len(idx)))
    out = active.copy()
    if n_drop:
        out[idx[np.argsort(-losses, kind="stable")[:n_drop]]] = False
    return out


# -- the loop ---------------------------------------------------------------------------------
def train_epochs(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    data: TrainingChunks,
    *,
    config: TrainConfig,
    valid: Sequence[TrackData] = (),
    y_valid: np.ndarray | None = None,
    start_epoch: int = 0,
    active: np.ndarray | None = None,
    on_batch: BatchHook | None = None,
) -> Iterator[EpochResult]:
    """Train epochs ``start_epoch + 1 … config.epochs``, yielding each as it ends.

    Parameters
    ----------
    model, optimizer : on the training device; resumed state already loaded
    data : the training chunks
    config : the schedule, batch size, augmentation, frozen phases, drop-hard
    valid, y_valid : tracks scored after every epoch (per track, ``config.track_pooling``) and their class indices
    active : [shape=(n_examples,)] chunks still in use (drop-hard), default all
    on_batch : called after every batch (progress bars)
    """
    active = np.ones(len(data.track), dtype=bool) if active is None else active
    emb_cache: dict[int, torch.Tensor] = {}  # frozen backbone, fixed crops: embeddings computed once
    for epoch in range(start_epoch, config.epochs):
        rng = np.random.default_rng([config.seed, epoch])
        torch.manual_seed(config.seed * 1_000_003 + epoch)
        gen = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        idx = np.flatnonzero(active)
        idx = idx[rng.permutation(len(idx))]
        n_batches = max(1, len(idx) // config.batch_size)  # drop the last partial batch (batch norm)
        frozen = epoch < config.freeze_epochs
        set_trainable(model, frozen, config.freeze_front)
        loss_sum = correct = seen = 0.0
        for b in range(n_batches):
            sel = idx[b * config.batch_size : (b + 1) * config.batch_size]
            for group in optimizer.param_groups:
                group["lr"] = lr_at(epoch + b / n_batches, config)
            if frozen and not config.augment:
                logits, yb, loss = _head_step(model, data, sel, emb_cache)
            else:
                logits, yb, loss = _step(model, data, sel, config, rng, gen)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(sel)
            correct += float((logits.argmax(1) == yb).sum())
            seen += len(sel)
            if on_batch is not None:
                on_batch(epoch + 1, b, n_batches, loss_sum / seen, correct / seen)
        row = {"epoch": epoch + 1, "train_loss": loss_sum / max(1, seen), "train_acc": correct / max(1, seen),
               "lr": lr_at(epoch + 1, config), "examples": int(active.sum())}
        if len(valid):
            row["valid_acc"], row["valid_loss"] = validation_scores(model, valid, y_valid, data.chunking,
                                                                    config.track_pooling)
        dropped = config.drop_hard > 0 and epoch + 1 == config.drop_hard_after
        if dropped:
            active = drop_hard(model, data, active, config.drop_hard)
        yield EpochResult(epoch + 1, row, active, dropped)


def _head_step(
    model: torch.nn.Module, data: TrainingChunks, sel: np.ndarray, cache: dict[int, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A frozen-backbone step without augmentation: each chunk's embedding is computed once, then reused."""
    dev = model_device(model)
    todo = [int(i) for i in sel if int(i) not in cache]
    if todo:
        t_idx = np.asarray(todo)
        with torch.no_grad():
            cache.update(zip(todo, model.embed(data.crops(data.track[t_idx], data.start[t_idx]).to(dev))))
    yb = data.y[torch.from_numpy(data.track[sel]).to(dev)]
    logits = model.classify(torch.stack([cache[int(i)] for i in sel]))
    return logits, yb, F.cross_entropy(logits, yb)


def _step(
    model: torch.nn.Module,
    data: TrainingChunks,
    sel: np.ndarray,
    config: TrainConfig,
    rng: np.random.Generator,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward pass of one batch of crops with the configured augmentation (and mixup)."""
    dev = model_device(model)
    chunk = data.chunking.chunk
    which = data.track[sel]
    starts = data.start[sel].copy()
    if "shift" in config.augment:
        lens = np.array([data.items[w].spec.shape[1] for w in which])
        starts = np.clip(starts + rng.integers(-chunk // 2, chunk // 2 + 1, size=len(sel)), 0, lens - chunk)
    yb = data.y[torch.from_numpy(which).to(dev)]
    # masks drawn on the CPU: the same on any device
    xb = augment_batch(data.crops(which, starts), config.augment, gen, data.chunking.norm[1]).to(dev)
    if "mixup" not in config.augment:
        logits, _ = model(xb)
        return logits, yb, F.cross_entropy(logits, yb)
    lam = float(rng.beta(config.mixup_alpha, config.mixup_alpha))
    perm = torch.from_numpy(rng.permutation(len(sel))).to(dev)
    logits, _ = model(lam * xb + (1 - lam) * xb[perm])
    return logits, yb, lam * F.cross_entropy(logits, yb) + (1 - lam) * F.cross_entropy(logits, yb[perm])
