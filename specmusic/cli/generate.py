"""``specmusic generate``: train a generative model of spectrograms, sample it, invert arrays to audio."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from specmusic.cli._options import (
    PROGRESS,
    SEED,
    TORCH_THREADS,
    cli_errors,
    err,
    require_torch,
)
from specmusic.generation.config import MAX_SAMPLE_SECONDS

generate_app = typer.Typer(
    name="generate",
    no_args_is_help=True,
    help=(
        "Learn a generative model of log-mel spectrograms and turn its samples into audio.\n\n"
        "specmusic generate train DATA/ -o gen/ --minutes 20  — flow-matching U-Net, class-conditional "
        "when DATA has one sub-folder per label; draws loss.png and samples.png.\n\n"
        "specmusic generate sample gen/ -n 8 -l jazz --seconds 6 -o out/  — WAV + PNG per sample (no torch needed).\n\n"
        "specmusic generate invert some_mel.npy -o some.wav  — any mel/STFT array back to audio (fast Griffin-Lim)."
    ),
    context_settings={"help_option_names": ["-h", "--help"]},
)



@generate_app.command("train")
def train_cli(
    inputs: list[Path] = typer.Argument(..., help="Audio folders/files (label = first sub-folder) or spectro .npz arrays."),
    output: Path = typer.Option(
        ..., "--output", "-o",
        help="Model folder: checkpoint.pt, config.json, model.onnx, features.npz, loss.png, samples.png.",
    ),
    minutes: float = typer.Option(None, "--minutes", min=0.0, help="Wall-clock training budget (minutes)."),
    epochs: float = typer.Option(None, "--epochs", min=0.0, help="Passes over the data (one = total frames / patch)."),
    train_list: Path = typer.Option(
        None, "--train-list", help="Only the clips listed (relative paths, one a line). Default: DATA/splits/train_filtered.txt when present."
    ),
    n_mels: int = typer.Option(None, "--n-mels", help="Mel bands (default 64)."),
    patch_frames: int = typer.Option(None, "--patch-frames", help="Training patch width in frames (default 128, ~3 s)."),
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="Patches per step (default 16)."),
    lr: float = typer.Option(None, "--lr", help="Peak learning rate (default 1e-3)."),
    base: int = typer.Option(None, "--base", min=4, help="U-Net channels at the top level (default 32)."),
    unconditional: bool = typer.Option(False, "--unconditional", help="Ignore the labels."),
    force: bool = typer.Option(
        False, "--force", help="Start over even when -o holds a checkpoint (default: resume it; --epochs count from its start)."
    ),
    seed: int = SEED,
    threads: int = TORCH_THREADS,
    progress: bool = PROGRESS,
) -> None:
    """Train a flow-matching U-Net on log-mel patches (class-conditional when the data has labels).

    Writes checkpoint.pt and config.json (resumed by the next run into the same -o) every 30 s, at the end of
    each epoch and on Ctrl-C; model.onnx (what `generate sample` runs, without torch) on Ctrl-C and at the end;
    loss.png and samples.png at the end.

    Example: specmusic generate train clips/ -o gen/ --minutes 20
    """
    require_torch("specmusic generate train", onnx=True)  # the end of a run writes model.onnx
    from specmusic.generation import GenConfig, config_with, train_generator_from_files

    with cli_errors():
        config = config_with(GenConfig(), n_mels=n_mels, patch_frames=patch_frames, batch_size=batch_size, lr=lr, base=base)
        result = train_generator_from_files(
            inputs, output, config=config, minutes=minutes, epochs=epochs, train_list=train_list,
            unconditional=unconditional, seed=seed, threads=threads, force=force, progress=progress, log=err,
        )
        losses = (f"loss {result.first_loss:.3f} → {result.final_loss:.3f}" if result.final_loss is not None
                  else "no step left to take")
        err(f"generate train: {result.steps} steps ({result.epochs:g} epochs) in {result.seconds / 60:.1f} min, "
            f"{losses}; stopped by {result.stopped_by} → {output}")
        print(json.dumps({"output": str(output), **result.to_dict()}), flush=True)


@generate_app.command("sample")
def sample_cli(
    model: Path = typer.Argument(..., help="A folder written by `specmusic generate train`."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the WAV + PNG (+ .npy mel) per sample."),
    count: int = typer.Option(8, "--count", "-n", min=1, help="Number of samples."),
    label: str = typer.Option(None, "--label", "-l", help="Label to condition on (default: unconditional)."),
    seconds: float = typer.Option(
        6.0, "--seconds", min=0.1, help=f"Length of each sample (at most {MAX_SAMPLE_SECONDS:g} s)."
    ),
    steps: int = typer.Option(32, "--steps", min=1, help="Euler steps."),
    guidance: float = typer.Option(2.0, "--guidance", min=0.0, help="Classifier-free guidance scale (1: none)."),
    gl_iter: int = typer.Option(64, "--gl-iter", min=1, help="Griffin-Lim iterations."),
    png: bool = typer.Option(True, "--png/--no-png", help="Write a PNG of each spectrogram."),
    seed: int = SEED,
    threads: int = typer.Option(0, "--threads", min=0, help="Threads of the network (0 = the idle cores, by load average)."),
    progress: bool = PROGRESS,
) -> None:
    """Draw spectrograms from a trained generator and write them as WAV + PNG (one JSON line each on stdout).

    Runs the folder's model.onnx with onnxruntime (no torch). Each sample is written as soon as its batch is
    drawn; memory holds one batch, whatever -n.

    Example: specmusic generate sample gen/ -n 8 -l hedgewars --seconds 6 -o out/
    """
    from specmusic.generation import sample_to_folder

    with cli_errors():
        records = sample_to_folder(model, output, n=count, label=label, seconds=seconds, steps=steps, guidance=guidance,
                                   gl_iter=gl_iter, seed=seed, png=png, threads=threads, progress=progress,
                                   log=lambda line: err(f"generate sample: {line}"))
        for record in records:
            print(json.dumps(record), flush=True)


@generate_app.command("invert")
def invert_cli(
    array: Path = typer.Argument(..., help="A .npy (rows × frames) or a `specmusic spectro` .npz (mel or stft)."),
    output: Path = typer.Option(..., "--output", "-o", help="Audio file to write (.wav/.flac/.ogg; - for WAV on stdout)."),
    kind: str = typer.Option("mel", "--kind", help=".npy only: mel or stft."),
    scale: str = typer.Option("db", "--scale", help=".npy only: db (power dB), power or magnitude."),
    sample_rate: int = typer.Option(22050, "--sr", help=".npy only: sample rate (Hz)."),
    n_fft: int = typer.Option(2048, "--n-fft", help=".npy only: FFT size."),
    hop_length: int = typer.Option(512, "--hop-length", help=".npy only: hop (samples)."),
    n_mels: int = typer.Option(None, "--n-mels", help=".npy only: mel bands (default: the array's rows)."),
    gl_iter: int = typer.Option(64, "--gl-iter", min=1, help="Griffin-Lim iterations."),
    momentum: float = typer.Option(0.99, "--momentum", min=0.0, help="Fast Griffin-Lim momentum (0: plain)."),
    seed: int = SEED,
) -> None:
    """Turn a mel or STFT array back into audio (mel→linear NNLS, fast Griffin-Lim); prints the spectral convergence.

    Example: specmusic generate invert some_mel.npy -o some.wav
    """
    from specmusic.fileio import display_path
    from specmusic.generation import invert_file

    with cli_errors():
        done = invert_file(array, output, kind=kind, scale=scale, sample_rate=sample_rate, n_fft=n_fft,
                           hop_length=hop_length, n_mels=n_mels, gl_iter=gl_iter, momentum=momentum, seed=seed)
        err(f"generate invert: {display_path(array)} ({done.kind} {done.shape[0]}×{done.shape[1]}) → "
            f"{display_path(output)}, spectral convergence {done.spectral_convergence_db:.1f} dB")
        if os.fspath(output) != "-":
            print(json.dumps(done.to_dict()), flush=True)
