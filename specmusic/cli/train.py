"""``specmusic train``: labelled audio or spectrograms → CNN → ``model.onnx`` + honest metrics."""

from __future__ import annotations

import re
from pathlib import Path

import typer
from typer.core import TyperCommand

from specmusic.cli._options import JOBS, PROGRESS, SEED, cli_errors, err

#: ``--pretrained`` values that are read as its value; anything else after a bare ``--pretrained``
#: (an option, DATA, nothing) means "the architecture's default weights".
_PRETRAINED_WORDS = ("mtat", "msd", "jamendo", "imagenet", "default")
_TIMM_TAG = re.compile(r"^[a-z0-9_]*in(1|12|21|22)k[a-z0-9_]*$")


def expand_bare_pretrained(args: list[str]) -> list[str]:
    """``--pretrained`` without a value (``train DATA --arch resnet18 --pretrained -o RUN``) → ``--pretrained default``."""
    out: list[str] = []
    for i, arg in enumerate(args):
        out.append(arg)
        if arg == "--pretrained":
            nxt = args[i + 1] if i + 1 < len(args) else None
            if nxt is None or not (nxt in _PRETRAINED_WORDS or _TIMM_TAG.match(nxt)):
                out.append("default")
    return out


class TrainCommand(TyperCommand):
    """The train command, letting ``--pretrained`` stand alone (Typer options cannot have optional values)."""

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        return super().parse_args(ctx, expand_bare_pretrained(list(args)))


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*(?:[x,]\s*(\d+)\s*)?", text)
    if not m:
        from specmusic.errors import ConfigError

        raise ConfigError(f"--img-size {text!r} is not N or HxW — e.g. --img-size 224 or --img-size 96x224")
    h = int(m.group(1))
    return h, int(m.group(2) or h)


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
    device: str = typer.Option(
        "auto", "--device",
        help="Train on: auto (a CUDA GPU when torch sees one, else cpu), cpu, cuda, cuda:N or mps. "
        "The model.onnx and classify are the same either way.",
    ),
    arch: str = typer.Option(
        "cnn", "--arch",
        help="Network: cnn (small, from scratch); musicnn, fcn, crnn (music taggers); resnet18, resnet34, "
        "efficientnet_lite0, tf_efficientnet_lite0, vit_tiny_patch16_224, deit_tiny_patch16_224, "
        "vit_small_patch16_224 (ImageNet CNNs/ViTs, timm layout); any timm model if timm is installed.",
    ),
    pretrained: str = typer.Option(
        None, "--pretrained",
        help="Start from pretrained weights: a tagger dataset (mtat, msd, jamendo) for taggers; alone (or "
        "'imagenet', or a timm tag like a1_in1k) for ImageNet archs: downloaded as timm does, then cached.",
    ),
    weights: Path = typer.Option(
        None, "--weights", help="Local weights file instead of a download (.safetensors, or a torch .pth state dict)."
    ),
    freeze_epochs: int = typer.Option(
        0, "--freeze-epochs", min=0, help="Warm-up epochs training only the new head (backbone frozen)."
    ),
    finetune_lr: float = typer.Option(
        None, "--finetune-lr", min=0.0, help="Peak lr of the full finetune after the frozen epochs (default --lr / 10)."
    ),
    linear_probe: bool = typer.Option(
        False, "--linear-probe", help="Keep the backbone frozen for every epoch (train the new head only)."
    ),
    freeze_front: bool = typer.Option(
        False, "--freeze-front", help="Keep the first layers (tagger front end, CNN stem) frozen while finetuning."
    ),
    img_size: str = typer.Option(
        None, "--img-size", help="Resize the input to N or HxW inside the model (ViT default: its native 224)."
    ),
    time_budget: float = typer.Option(
        0.0, "--time-budget", min=0.0, help="Stop after the epoch that passes this many seconds of training (0 = none)."
    ),
    force: bool = typer.Option(False, "--force", help="Start over even if the run folder holds another run."),
    seed: int = SEED,
    jobs: int = JOBS,
    progress: bool = PROGRESS,
) -> None:
    """Train a spectrogram classifier (CNN, or a pretrained backbone); writes model.onnx, metrics.json and plots.

    Example: specmusic train ~/gtzan -o runs/cnn

    Transfer: specmusic train ~/gtzan --arch musicnn --pretrained mtat --freeze-epochs 3 -o runs/tl
    """
    with cli_errors():
        from specmusic.errors import ConfigError
        from specmusic.features import FeatureConfig
        from specmusic.models.transfer import ModelSpec
        from specmusic.training import DEFAULT_FEATURES, TrainConfig, train

        spec = ModelSpec(arch=arch, pretrained=pretrained, weights=None if weights is None else str(weights),
                         img_size=_parse_size(img_size))

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
            device=device,
            freeze_epochs=epochs if linear_probe else freeze_epochs,
            finetune_lr=finetune_lr,
            freeze_front=freeze_front,
            max_seconds=time_budget,
        )
        wanted = None
        if spec.family == "tagger":
            if n_mels != DEFAULT_FEATURES.n_mels or sample_rate != DEFAULT_FEATURES.sample_rate:
                raise ConfigError(
                    f"--arch {arch} takes the tagger's own features (16 kHz, 96 mel bands) — drop --n-mels/--sr"
                )
        elif n_mels != DEFAULT_FEATURES.n_mels or sample_rate != DEFAULT_FEATURES.sample_rate:
            wanted = FeatureConfig(kind="mel", n_mels=n_mels, sample_rate=sample_rate, hop_length=DEFAULT_FEATURES.hop_length)
        result = train(
            data,
            output,
            config=config,
            model_spec=spec,
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
