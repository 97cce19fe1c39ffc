"""A trained generator: loading a ``generate train`` folder and drawing spectrograms from it.

Sampling is numpy plus onnxruntime on the folder's ``model.onnx`` (no torch: ``pip install specmusic``
samples). A folder without a current ``model.onnx`` (trained by an older specmusic, or a run that has
not ended) is converted once from ``checkpoint.pt`` where PyTorch is installed; :class:`TorchNetwork`
runs the checkpoint itself (for training pictures, and to test the ONNX file against).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from specmusic.errors import InputError, ModelError
from specmusic.fileio import display_path, printable_path, printable_text
from specmusic.generation.config import (
    CHECKPOINT,
    CONFIG,
    FORMAT_VERSION,
    MODEL_ONNX,
    ONNX_METADATA_KEY,
    GenConfig,
    onnx_metadata,
)

if TYPE_CHECKING:
    from specmusic.models.generative import UNet

__all__ = [
    "BATCH_FRAMES",
    "Generator",
    "Network",
    "OnnxNetwork",
    "TorchNetwork",
    "iter_spectrograms",
    "load_generator",
    "make_unet",
    "sample_noise",
    "sample_spectrograms",
    "sample_to_folder",
    "set_torch_threads",
    "write_samples",
]

_TRAIN_EXTRA = "pip install 'specmusic[train]'"


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

    torch.set_num_threads(_resolve_threads(threads))


def _resolve_threads(threads: int) -> int:
    if threads <= 0:
        from specmusic.workers import auto_threads

        return auto_threads()
    return threads


class Network(Protocol):
    """The flow-matching velocity ``v(x, t, labels)`` on numpy arrays.

    ``x`` [shape=(batch, 1, n_mels, frames)] float32, ``t`` [shape=(batch,)] float32, ``labels``
    [shape=(batch,)] int64 (None for a model without labels); returns float32 shaped as ``x``.
    """

    backend: str

    def __call__(self, x: np.ndarray, t: np.ndarray, labels: np.ndarray | None) -> np.ndarray: ...


class OnnxNetwork:
    """``model.onnx`` on onnxruntime (see :data:`~specmusic.generation.config.MODEL_ONNX` for its inputs)."""

    backend = "onnx"

    def __init__(self, session: Any) -> None:
        self.session = session
        self.has_label = any(i.name == "label" for i in session.get_inputs())

    def __call__(self, x: np.ndarray, t: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        feed = {"x": x, "t": t}
        if self.has_label:
            feed["label"] = labels
        return self.session.run(["v"], feed)[0]


class TorchNetwork:
    """A U-Net module run by torch (no gradients)."""

    backend = "torch"

    def __init__(self, module: UNet) -> None:
        self.module = module

    def __call__(self, x: np.ndarray, t: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        import torch

        with torch.no_grad():
            v = self.module(torch.from_numpy(x), torch.from_numpy(t), None if labels is None else torch.from_numpy(labels))
        return v.numpy()


@dataclass
class Generator:
    """A trained generator: EMA network, its config and label names (empty: unconditional)."""

    path: str
    config: GenConfig
    labels: list[str]
    network: Network
    step: int

    @property
    def backend(self) -> str:
        """What runs the network: ``"onnx"`` (onnxruntime) or ``"torch"``."""
        return self.network.backend

    def label_index(self, label: str | None) -> int | None:
        """Index of ``label`` (None → None); raises InputError naming the known labels."""
        if label is None:
            return None
        if not self.labels:
            raise InputError(f"{self.path}: the model is unconditional (trained without labels) — drop --label")
        if label not in self.labels:
            raise InputError(f"{printable_path(self.path)}: label '{printable_text(label)}' was never seen in training — "
                             f"use one of: {printable_text(', '.join(self.labels))}")
        return self.labels.index(label)


def load_generator(
    path: str | os.PathLike[str],
    *,
    threads: int | None = 0,
    backend: Literal["auto", "onnx", "torch"] = "auto",
    log: Callable[[str], None] | None = None,
) -> Generator:
    """Load a ``generate train`` folder (or a file in it): its ``model.onnx``, run by onnxruntime.

    ``model.onnx`` is used when its metadata (config, labels, step) equals ``config.json``'s. Otherwise
    (no file: trained by an older specmusic, or a run that has not ended; or a run resumed since) the
    ``"auto"`` backend converts ``checkpoint.pt`` (``torch.load(weights_only=True)``) into ``model.onnx``
    once where PyTorch is installed, saying so to ``log``, and samples the checkpoint with torch where
    the folder cannot be written.

    Parameters
    ----------
    threads : threads of the network (0: the idle cores, by load average; None: the library's default)
    backend : ``"auto"`` (above), ``"onnx"`` (``model.onnx`` only, never torch) or ``"torch"`` (``checkpoint.pt``
        with torch, as before ``model.onnx`` existed)
    log : where to say that the checkpoint was converted (default: nowhere)

    Raises
    ------
    ModelError
        Missing files, a folder written by another format version, or no current ``model.onnx`` where
        it cannot be made (no PyTorch; ``backend="onnx"``).
    """
    p = Path(path)
    folder = p.parent if p.is_file() else p
    name = display_path(folder)
    meta = _read_config(folder, name)
    config = GenConfig.from_dict(meta["config"])
    labels = [str(v) for v in meta.get("labels", [])]
    step = int(meta.get("step", 0))
    if backend == "torch":
        return _load_torch(folder, name, threads=threads)
    onnx_path = folder / MODEL_ONNX
    expected = json.loads(json.dumps(onnx_metadata(config=config, labels=labels, step=step)))
    session, why = _open_onnx(onnx_path, expected, threads=threads)
    if session is not None:
        return Generator(path=name, config=config, labels=labels, network=OnnxNetwork(session), step=step)
    if backend == "onnx" or not (folder / CHECKPOINT).is_file() or not _importable("torch"):
        raise ModelError(
            f"{name}: {why} — rerun the `specmusic generate train … -o {name}` that trained it (it resumes, and "
            f"writes {MODEL_ONNX} at the end), or {_TRAIN_EXTRA} and sample again to convert {CHECKPOINT} once"
        )
    say = log or (lambda _line: None)
    gen = _load_torch(folder, name, threads=threads)
    if not _importable("onnx"):
        say(f"{name}: {why}; sampling {CHECKPOINT} with torch (with the onnx package it is converted once)")
        return gen
    from specmusic.generation.export import export_generator

    assert isinstance(gen.network, TorchNetwork)
    try:
        export_generator(gen.network.module, onnx_path, config=gen.config, labels=gen.labels, step=gen.step)
    except OSError as exc:
        say(f"{name}: {why}, and it cannot be written there ({(exc.strerror or str(exc)).lower()}); "
            f"sampling {CHECKPOINT} with torch")
        return gen
    say(f"{name}: {why} — converted {CHECKPOINT} to {name}/{MODEL_ONNX} (once)")
    session = _session(onnx_path, threads=threads)
    return Generator(path=name, config=gen.config, labels=gen.labels, network=OnnxNetwork(session), step=gen.step)


def _read_config(folder: Path, name: str) -> dict[str, Any]:
    """``config.json`` of a model folder, checked for kind and format (and a network file beside it)."""
    cfg_path = folder / CONFIG
    if not cfg_path.is_file() or not ((folder / MODEL_ONNX).is_file() or (folder / CHECKPOINT).is_file()):
        raise ModelError(f"{name}: no {CONFIG} + {MODEL_ONNX} (or {CHECKPOINT}) — train one with "
                         f"`specmusic generate train DATA -o {name}`")
    try:
        meta = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{name}/{CONFIG}: unreadable ({exc}) — retrain the model") from None
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if version != FORMAT_VERSION or meta.get("kind") != "specmusic-generator" or not isinstance(meta.get("config"), dict):
        raise ModelError(
            f"{name}: generator format {version!r} but this specmusic reads format {FORMAT_VERSION} — "
            f"retrain it with `specmusic generate train` of this version"
        )
    return meta


def _importable(module: str) -> bool:
    """Whether ``module`` is installed, without importing it."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _session(path: Path, *, threads: int | None) -> Any:
    """An onnxruntime CPU session of ``path`` (raises what onnxruntime raises)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-waiting on shared CPUs
    opts.inter_op_num_threads = 1
    if threads is not None:
        opts.intra_op_num_threads = _resolve_threads(threads)
    return ort.InferenceSession(os.fspath(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _open_onnx(path: Path, expected: dict[str, Any], *, threads: int | None) -> tuple[Any, str]:
    """``(session, "")`` when ``path`` is a ``model.onnx`` of the run ``expected`` describes, else ``(None, why not)``."""
    if not path.is_file():
        return None, f"no {MODEL_ONNX} (trained by an older specmusic, or a run that has not ended)"
    try:
        session = _session(path, threads=threads)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/… types
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        return None, f"{MODEL_ONNX} is unreadable ({reason})"
    try:
        meta = json.loads(session.get_modelmeta().custom_metadata_map.get(ONNX_METADATA_KEY, "null"))
    except ValueError:
        meta = None
    if meta == expected:
        return session, ""
    if isinstance(meta, dict) and {k: v for k, v in meta.items() if k != "step"} == {
            k: v for k, v in expected.items() if k != "step"}:
        return None, (f"{MODEL_ONNX} is of step {meta.get('step')} but {CONFIG} of step {expected['step']} "
                      "(a run resumed or interrupted since)")
    return None, f"{MODEL_ONNX} belongs to another run (other settings, labels or format)"


def _load_torch(folder: Path, name: str, *, threads: int | None) -> Generator:
    """The checkpoint's EMA U-Net, run by torch."""
    ckpt_path = folder / CHECKPOINT
    if not ckpt_path.is_file():
        raise ModelError(f"{name}: no {CHECKPOINT} — train one with `specmusic generate train DATA -o {name}`")
    import torch

    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{name}/{CHECKPOINT}: cannot be loaded ({type(exc).__name__}) — retrain the model") from None
    if not isinstance(ckpt, dict) or ckpt.get("format_version") != FORMAT_VERSION:
        version = ckpt.get("format_version") if isinstance(ckpt, dict) else None
        raise ModelError(f"{name}/{CHECKPOINT}: format {version!r} ≠ {FORMAT_VERSION} — retrain the model")
    config = GenConfig.from_dict(json.loads(ckpt["config"]))
    labels = [str(v) for v in ckpt["labels"]]
    set_torch_threads(threads)
    model = make_unet(config, len(labels))
    model.load_state_dict(ckpt["ema"])
    model.eval()
    return Generator(path=name, config=config, labels=labels, network=TorchNetwork(model), step=int(ckpt.get("step", 0)))


#: Frames (of all the samples in a batch together) drawn at once: 8 samples of 6 s; longer samples go fewer at a time.
BATCH_FRAMES = 2560


def sample_noise(seed: int, index: int, shape: tuple[int, ...]) -> np.ndarray:
    """The starting noise of sample ``index`` of ``seed``: the same whatever ``n``, the batches and the backend.

    Returns
    -------
    noise : np.ndarray [shape=shape], float32, standard normal (numpy's PCG64 seeded by ``(seed, index)``)
    """
    return np.random.default_rng([seed % 2**64, index]).standard_normal(shape, dtype=np.float32)


def iter_spectrograms(
    generator: Generator,
    *,
    n: int,
    label: str | None = None,
    seconds: float = 6.0,
    steps: int = 32,
    guidance: float = 2.0,
    seed: int = 0,
    batch_size: int = 0,
) -> Iterator[tuple[int, np.ndarray]]:
    """Draw ``n`` normalised log-mel spectrograms a batch at a time, yielding ``(index, spec)`` as each batch is done.

    Memory holds one batch, whatever ``n``. Sample ``index`` starts from its own seeded noise
    (:func:`sample_noise`), so it is the same array for any ``n`` and batch size — and, within float
    tolerance, for either backend: the Euler steps and the guidance are this module's numpy, only the
    network is onnxruntime's or torch's.

    Parameters
    ----------
    label : a label name of the model (conditional), or None (unconditional: the "no label" embedding)
    seconds : length, at most :data:`~specmusic.generation.config.MAX_SAMPLE_SECONDS`; the model is fully
        convolutional, so any length works (quality is best near the training patch length)
    guidance : classifier-free guidance scale (1: none)
    batch_size : samples drawn at once (0: as many as make :data:`BATCH_FRAMES` frames, at most 8)

    Yields
    ------
    index : 0 .. n - 1, in order
    spec : np.ndarray [shape=(n_mels, n_frames)], float32 in [-1, 1]

    Raises
    ------
    InputError
        A label the model never saw, a non-positive count or step count, or a length out of range.
    """
    from specmusic.generation.config import check_sample_seconds

    cfg = generator.config
    index = generator.label_index(label)
    check_sample_seconds(seconds)
    if n < 1 or steps < 1:
        raise InputError("-n/--count and --steps must be positive — fix the options")
    frames = 1 + round(seconds * cfg.sample_rate) // cfg.hop_length
    width = -(-frames // cfg.multiple) * cfg.multiple
    batch = batch_size or max(1, min(8, BATCH_FRAMES // width))
    n_classes = len(generator.labels)
    for b0 in range(0, n, batch):
        m = min(batch, n - b0)
        x = np.stack([sample_noise(seed, b0 + j, (1, cfg.n_mels, width)) for j in range(m)])
        out = _integrate(generator.network, x, steps=steps, guidance=guidance,
                         cond=None if index is None else np.full(m, index, dtype=np.int64),
                         null=np.full(m, n_classes, dtype=np.int64) if n_classes else None)
        out = np.clip(out[:, 0, :, :frames], -1.0, 1.0).astype(np.float32)
        for j in range(m):
            yield b0 + j, out[j]


def _integrate(network: Network, x: np.ndarray, *, steps: int, guidance: float, cond: np.ndarray | None,
               null: np.ndarray | None) -> np.ndarray:
    """Euler steps of the flow from ``x`` (noise, t=0) to t=1, float32 throughout.

    With a label (``cond``) and ``guidance`` ≠ 1, each step runs the network once on the batch twice over
    (conditional, then "no label" ``null``) and takes ``vu + guidance · (vc − vu)`` (classifier-free
    guidance); otherwise once, on ``cond`` or ``null`` (None: a model without labels).

    Parameters
    ----------
    x : np.ndarray [shape=(batch, 1, n_mels, width)], float32
    cond, null : np.ndarray [shape=(batch,)], int64, or None
    """
    m = x.shape[0]
    for k in range(steps):
        t = np.full(m, k / steps, dtype=np.float32)
        if cond is not None and null is not None and guidance != 1.0:
            v = network(np.concatenate([x, x]), np.concatenate([t, t]), np.concatenate([cond, null]))
            vc, vu = v[:m], v[m:]
            v = vu + np.float32(guidance) * (vc - vu)
        else:
            v = network(x, t, cond if cond is not None else null)
        x = x + v / np.float32(steps)
    return x


def sample_spectrograms(
    generator: Generator,
    *,
    n: int,
    label: str | None = None,
    seconds: float = 6.0,
    steps: int = 32,
    guidance: float = 2.0,
    seed: int = 0,
    batch_size: int = 0,
) -> np.ndarray:
    """Draw ``n`` normalised log-mel spectrograms (Euler integration of the learnt flow), all in one array.

    :func:`iter_spectrograms` collected; for many samples use it (or :func:`write_samples`) instead.

    Returns
    -------
    specs : np.ndarray [shape=(n, n_mels, n_frames)], float32 in [-1, 1]

    Raises
    ------
    InputError
        See :func:`iter_spectrograms`.
    """
    return np.stack([x for _, x in iter_spectrograms(generator, n=n, label=label, seconds=seconds, steps=steps,
                                                     guidance=guidance, seed=seed, batch_size=batch_size)])


def write_samples(
    generator: Generator,
    out_dir: str | os.PathLike[str],
    *,
    n: int,
    label: str | None = None,
    seconds: float = 6.0,
    steps: int = 32,
    guidance: float = 2.0,
    gl_iter: int = 64,
    seed: int = 0,
    png: bool = True,
) -> Iterator[dict[str, Any]]:
    """Draw ``n`` samples and write each as soon as its batch is drawn; yield one record per sample written.

    Sample ``i`` becomes ``STEM_SEED_III.wav`` (audio by :func:`specmusic.inversion.mel_to_audio`),
    ``.npy`` (its mel in dB) and ``.png`` (with ``png``), ``STEM`` from :func:`sample_stem` — built as
    strings, so a label with a dot names every sample apart. A sample's files are written whole or not at
    all (:func:`~specmusic.outputs.staged_files`, the WAV last: a full disk leaves no half sample, and
    the error names the file); memory holds one batch, whatever ``n``.

    Yields
    ------
    record : ``{"path", "label", "seed", "index", "seconds", "spectral_convergence_db"}``
    """
    from specmusic.audio import save_audio
    from specmusic.fileio import atomic_write
    from specmusic.generation.config import denormalize_db, sample_stem
    from specmusic.inversion import mel_to_audio
    from specmusic.outputs import staged_files

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fc = generator.config.feature_config
    stem = sample_stem(label)
    for i, x in iter_spectrograms(generator, n=n, label=label, seconds=seconds, steps=steps, guidance=guidance,
                                  seed=seed):
        mel_db = denormalize_db(x, db_range=generator.config.db_range)
        y, sc = mel_to_audio(mel_db, config=fc, n_iter=gl_iter, seed=seed + i)
        name = f"{stem}_{seed}_{i:03d}"
        with staged_files(out, last=f"{name}.wav") as stage:  # a sample's files whole or not at all, its WAV last
            atomic_write(stage / f"{name}.npy", lambda f, a=mel_db: np.save(f, a, allow_pickle=False))
            if png:
                from specmusic.plotting import save_spectrogram_png

                save_spectrogram_png(stage / f"{name}.png", mel_db, fc.with_kind("mel"),
                                     title=f"{stem} #{i} (seed {seed})")
            save_audio(stage / f"{name}.wav", y, fc.sample_rate)
        yield {"path": str(out / f"{name}.wav"), "label": label, "seed": seed, "index": i,
               "seconds": round(len(y) / fc.sample_rate, 3), "spectral_convergence_db": round(sc, 2)}


def sample_to_folder(
    model: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    n: int,
    label: str | None = None,
    seconds: float = 6.0,
    steps: int = 32,
    guidance: float = 2.0,
    gl_iter: int = 64,
    seed: int = 0,
    png: bool = True,
    threads: int | None = 0,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """``specmusic generate sample``: load the ``generate train`` folder ``model`` and :func:`write_samples`
    into ``out_dir``, with a progress bar on stderr.

    The length, the output folder, the model and the label are checked now, before anything is drawn;
    the samples are drawn as the returned iterator is consumed (memory holds one batch, whatever ``n``).

    Parameters
    ----------
    threads : threads of the network (:func:`load_generator`)
    progress : progress bar on stderr (None: only on a terminal)
    log : what loading the model did (:func:`load_generator`), then one line saying what will be drawn

    Returns
    -------
    The records of :func:`write_samples`, one per sample as it is written.

    Raises
    ------
    InputError
        A length outside ``(0, MAX_SAMPLE_SECONDS]``, an output folder that cannot be written, a label the
        model does not know.
    ModelError
        Not a usable ``generate train`` folder (:func:`load_generator`).
    """
    from specmusic.fileio import ensure_writable_dir
    from specmusic.generation.config import check_sample_seconds

    say = log or (lambda _line: None)
    check_sample_seconds(seconds)  # before any work: options, then the output folder, then the model
    ensure_writable_dir(out_dir, option="-o")
    gen = load_generator(model, threads=threads, log=say)
    gen.label_index(label)
    say(f"{n} × {seconds:g} s" + (f" of '{printable_text(label)}'" if label else "") + f", {steps} steps, seed {seed}")
    records = write_samples(gen, out_dir, n=n, label=label, seconds=seconds, steps=steps, guidance=guidance,
                            gl_iter=gl_iter, seed=seed, png=png)
    return _counted(records, total=n, progress=progress)


def _counted(records: Iterator[dict[str, Any]], *, total: int, progress: bool | None) -> Iterator[dict[str, Any]]:
    """``records``, a progress bar on stderr counting them."""
    from tqdm import tqdm

    with tqdm(total=total, desc="sample", unit="clip", disable=None if progress is None else not progress) as bar:
        for record in records:
            bar.update(1)
            yield record
