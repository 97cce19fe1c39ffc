"""``specmusic spectro``: audio → spectrogram arrays (+ PNG pictures)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from specmusic.cli._options import CLUSTER, JOBS, PROGRESS, check_cluster, cli_errors, err, gather_tracks


class Kind(str, Enum):
    mel = "mel"
    stft = "stft"
    cqt = "cqt"
    chroma = "chroma"
    mfcc = "mfcc"


_FEATURE_OPTIONS = ("kind", "sample_rate", "n_fft", "hop_length", "n_mels", "fmin", "fmax", "top_db", "n_mfcc")


def spectro_cli(
    ctx: typer.Context,
    inputs: list[str] = typer.Argument(
        None, help="Audio files or folders (recursive); '-' reads paths from stdin, one a line."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder (mirrors the input tree)."),
    kind: Kind = typer.Option(Kind.mel, "--kind", help="Spectrogram kind."),
    like: Path = typer.Option(
        None, "--like", metavar="MODEL",
        help="Compute the features this model.onnx expects (from its metadata) instead of the feature options, "
        "so `classify --model MODEL` reads the arrays.",
    ),
    manifest: Path = typer.Option(
        None, "--manifest", help="CSV or JSONL with path,label[,group] columns (paths relative to it)."
    ),
    sample_rate: int = typer.Option(22050, "--sr", help="Sample rate to resample to (Hz)."),
    n_fft: int = typer.Option(2048, "--n-fft", help="FFT size (samples)."),
    hop_length: int = typer.Option(512, "--hop-length", help="Hop between frames (samples)."),
    n_mels: int = typer.Option(128, "--n-mels", help="Mel bands (mel, mfcc)."),
    fmin: float = typer.Option(0.0, "--fmin", help="Lowest mel band edge (Hz)."),
    fmax: float = typer.Option(None, "--fmax", help="Highest mel band edge (Hz; default sr/2)."),
    top_db: float = typer.Option(80.0, "--top-db", help="dB floor below the track maximum (negative: none)."),
    n_mfcc: int = typer.Option(20, "--n-mfcc", help="MFCC coefficients (mfcc)."),
    offset: float = typer.Option(0.0, "--offset", min=0.0, help="Start reading at this time (s)."),
    duration: float = typer.Option(None, "--duration", min=0.0, help="Read at most this many seconds."),
    min_duration: float = typer.Option(
        0.5, "--min-duration", min=0.0, help="Tracks shorter than this (s) are reported as failures."
    ),
    png: bool = typer.Option(False, "--png", help="Also save a PNG picture with time/frequency axes."),
    labels: bool = typer.Option(True, "--labels/--no-labels", help="Take labels from parent folder names."),
    force: bool = typer.Option(False, "--force", help="Recompute arrays that are already up to date."),
    jobs: int = JOBS,
    cluster: str = CLUSTER,
    progress: bool = PROGRESS,
) -> None:
    """Turn audio into spectrogram arrays (.npz) plus manifest.jsonl, and PNG pictures on request.

    Example: specmusic spectro ~/music --kind mel --jobs 2 -o specs/

    On a Dask cluster (workers write the arrays: OUT on a shared filesystem): --cluster tcp://HOST:8786

    Arrays a trained model can classify: specmusic spectro ~/music --like runs/cnn/model.onnx -o specs/
    """
    from specmusic.errors import ConfigError
    from specmusic.features import FeatureConfig
    from specmusic.spectro import run_spectro

    with cli_errors():
        cluster = check_cluster(cluster, jobs)
        tracks, failures = gather_tracks(inputs, manifest, labels=labels, require_audio=True)
        given = [n for n in _FEATURE_OPTIONS if getattr(ctx.get_parameter_source(n), "name", "") == "COMMANDLINE"]
        if like is not None and given:
            flags = ", ".join("--" + n.replace("_", "-").replace("sample-rate", "sr") for n in given)
            raise ConfigError(f"--like takes every feature setting from {like}; drop {flags}")
        config = _features_of_model(like) if like is not None else FeatureConfig(
            kind=kind.value,
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            n_mels=n_mels,
            fmin=fmin,
            fmax=fmax,
            top_db=None if top_db < 0 else top_db,
            n_mfcc=n_mfcc,
        )
        report = run_spectro(
            tracks,
            output,
            config=config,
            offset=offset,
            duration=duration,
            min_duration=min_duration,
            png=png,
            force=force,
            jobs=jobs,
            cluster=cluster,
            failures=failures,
            progress=progress,
            on_error=lambda line: err(line if line.startswith("warning:") else f"Error: {line}"),
        )
        summary = (
            f"spectro: {len(report.written)} written, {len(report.skipped)} up to date, "
            f"{len(report.failed)} failed → {report.manifest}"
        )
        if report.failed or report.warnings:
            summary += f" (see {output / 'errors.jsonl'})"
        err(summary)
        if not report.ok:
            raise typer.Exit(1)


def _features_of_model(path: Path):  # -> FeatureConfig
    """The feature config stored in a specmusic ``model.onnx`` (onnxruntime only)."""
    from specmusic.inference import load_model

    return load_model(path).feature_config
