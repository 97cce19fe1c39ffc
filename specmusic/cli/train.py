"""``specmusic train``: labelled audio or spectrograms → CNN → ``model.onnx`` + honest metrics."""

from __future__ import annotations

from pathlib import Path

import typer

from specmusic.cli._options import JOBS, PROGRESS, SEED, cli_errors, err


def train_cli(
    data: Path = typer.Argument(
        ..., help="Audio folder (one sub-folder per label) or a `specmusic spectro` output folder."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Run folder (model.onnx, metrics.json, plots, checkpoint)."),
    split_file: Path = typer.Option(None, "--split-file", help="GTZAN-style list of training tracks."),
    valid_file: Path = typer.Option(None, "--valid-file", help="List of validation tracks (default: carved by group)."),
    test_file: Path = typer.Option(None, "--test-file", help="List of test tracks (default: carved by group)."),
    manifest: Path = typer.Option(
        None, "--manifest", "-m", help="CSV/JSONL path,label[,group] for audio input (default: DATA/manifest.csv if any)."
    ),
    chunk_seconds: float = typer.Option(3.0, "--chunk-seconds", min=0.0, help="Crop length (s); 0 = whole tracks."),
    epochs: int = typer.Option(20, "--epochs", min=1, help="Epoch budget (early stopping may end sooner)."),
    patience: int = typer.Option(10, "--patience", min=1, help="Epochs without validation improvement before stopping."),
    batch_size: int = typer.Option(32, "--batch-size", min=2, help="Chunks per batch."),
    lr: float = typer.Option(3e-3, "--lr", min=0.0, help="Peak learning rate (AdamW, warm-up + cosine)."),
    augment: str = typer.Option(
        "none", "--augment", help="Comma list of shift,mask,gain,freqshift,mixup, or none."
    ),
    drop_hard: float = typer.Option(
        0.0, "--drop-hard", min=0.0, max=0.99, help="Drop this fraction of highest-loss training chunks after warm-up."
    ),
    drop_hard_after: int = typer.Option(3, "--drop-hard-after", min=1, help="Warm-up epochs before --drop-hard."),
    pooling: str = typer.Option(
        "mean", "--track-pooling", help="Evaluation per track: mean (chunk probabilities), vote, or center chunk."
    ),
    n_mels: int = typer.Option(64, "--n-mels", help="Mel bands computed from audio input."),
    sample_rate: int = typer.Option(22050, "--sr", help="Sample rate for audio input (Hz)."),
    cache_dir: Path = typer.Option(None, "--cache-dir", help="Feature cache for audio input (default RUN/features)."),
    threads: int = typer.Option(0, "--threads", min=0, help="Torch threads (0 = the idle cores, by load average)."),
    force: bool = typer.Option(False, "--force", help="Start over even if the run folder holds another run."),
    seed: int = SEED,
    jobs: int = JOBS,
    progress: bool = PROGRESS,
) -> None:
    """Train a spectrogram CNN classifier; writes model.onnx, metrics.json and plots to the run folder.

    Example: specmusic train ~/gtzan -o runs/cnn
    """
    with cli_errors():
        from specmusic.features import FeatureConfig
        from specmusic.training import DEFAULT_FEATURES, TrainConfig, train

        config = TrainConfig(
            chunk_seconds=chunk_seconds,
            epochs=epochs,
            patience=patience,
            batch_size=batch_size,
            lr=lr,
            augment=tuple(a.strip() for a in augment.split(",")),
            drop_hard=drop_hard,
            drop_hard_after=drop_hard_after,
            track_pooling=pooling,
            seed=seed,
            threads=threads,
        )
        wanted = None
        if n_mels != DEFAULT_FEATURES.n_mels or sample_rate != DEFAULT_FEATURES.sample_rate:
            wanted = FeatureConfig(kind="mel", n_mels=n_mels, sample_rate=sample_rate, hop_length=DEFAULT_FEATURES.hop_length)
        result = train(
            data,
            output,
            config=config,
            feature_config=wanted,
            manifest=manifest,
            split_files={"train": split_file, "valid": valid_file, "test": test_file},
            cache_dir=cache_dir,
            jobs=jobs,
            force=force,
            progress=progress,
            log=err,
        )
        err(f"train: wrote {result.model_path} and {output / 'metrics.json'} in {result.seconds:.0f} s")
