"""``specmusic train``: labelled audio → a head on a pretrained network's features (the default), or audio or
spectrograms → a network (``--arch``: the scratch CNN, taggers, ImageNet backbones) → ``model.onnx`` + honest
metrics."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperCommand

from specmusic.cli._options import JOBS, PROGRESS, SEED, TORCH_THREADS, cli_errors, err, require_torch

try:  # the parser class is not public API: if a future Typer moves it, a bare --pretrained needs a value
    from typer._click.parser import _OptionParser
except ImportError:  # typer < 0.26 parses with Click itself
    try:
        from click import parser as _click_parser

        _OptionParser = getattr(_click_parser, "_OptionParser", None) or _click_parser.OptionParser
    except ImportError:
        _OptionParser = None


class _FlagValueParser(_OptionParser or object):  # type: ignore[misc, valid-type]
    """Click's rule for an option whose value may be left out: at the end of the line, or before another
    option, it takes its flag value."""

    def __init__(self, ctx: Any, flag_values: dict[str, str]) -> None:
        super().__init__(ctx)
        self.flag_values = flag_values

    def _get_value_from_state(self, option_name: str, option: Any, state: Any) -> Any:
        flag = self.flag_values.get(option.dest)
        if flag is not None and (not state.rargs or (state.rargs[0].startswith("-") and len(state.rargs[0]) > 1)):
            return flag
        return super()._get_value_from_state(option_name, option, state)


class OptionalValueCommand(TyperCommand):
    """A command whose options named in ``flag_values`` may stand alone: ``--pretrained`` = ``--pretrained default``.

    Click does this with ``Option(is_flag=False, flag_value=…)``; Typer ignores ``flag_value``, so the
    parser is given the rule instead (argv is left as typed).
    """

    flag_values = {"pretrained": "default"}

    def make_parser(self, ctx: Any) -> Any:
        if _OptionParser is None:
            return super().make_parser(ctx)
        parser = _FlagValueParser(ctx, self.flag_values)
        for param in self.get_params(ctx):
            param.add_to_parser(parser, ctx)
        return parser


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*(?:[x,]\s*(\d+)\s*)?", text)
    if not m:
        from specmusic.errors import ConfigError

        raise ConfigError(f"--img-size {text!r} is not N or HxW — e.g. --img-size 224 or --img-size 96x224")
    h = int(m.group(1))
    return h, int(m.group(2) or h)


# Where and what to train: the transfer-learning options (see docs/train.md).
DEVICE = typer.Option(
    "auto", "--device",
    help="Train on: auto (a CUDA GPU when torch sees one, else cpu), cpu, cuda, cuda:N or mps. "
    "The model.onnx and classify are the same either way.",
)
ARCH = typer.Option(
    "cnn", "--arch",
    help="Network: cnn (small, from scratch); musicnn, fcn, crnn (music taggers); resnet18, resnet34, "
    "efficientnet_lite0, tf_efficientnet_lite0, vit_tiny_patch16_224, deit_tiny_patch16_224, "
    "vit_small_patch16_224 (ImageNet CNNs/ViTs, timm layout); any timm model if timm is installed.",
)
PRETRAINED = typer.Option(
    None, "--pretrained", metavar="[NAME]",
    help="Start from pretrained weights: a tagger dataset (mtat, msd, jamendo) for taggers; alone (at the end "
    "or before another option), 'imagenet' or a timm tag like a1_in1k for ImageNet archs: downloaded as timm "
    "does, then cached.",
)
WEIGHTS = typer.Option(
    None, "--weights", help="Local weights file instead of a download (.safetensors, or a torch .pth state dict)."
)
FREEZE_EPOCHS = typer.Option(0, "--freeze-epochs", min=0, help="Warm-up epochs training only the new head (backbone frozen).")
FINETUNE_LR = typer.Option(
    None, "--finetune-lr", min=0.0, help="Peak lr of the full finetune after the frozen epochs (default --lr / 10)."
)
LINEAR_PROBE = typer.Option(
    False, "--linear-probe", help="Keep the backbone frozen for every epoch (train the new head only)."
)
FREEZE_FRONT = typer.Option(
    False, "--freeze-front", help="Keep the first layers (tagger front end, CNN stem) frozen while finetuning."
)
IMG_SIZE = typer.Option(
    None, "--img-size", help="Resize the input to N or HxW inside the model (ViT default: its native 224)."
)
HEAD = typer.Option(
    None, "--head", metavar="linear",
    help="Fit only a head on a pretrained network's frozen features instead of training a network: linear "
    "(standardised logistic regression on the --backbone's embedding of each window). The default for audio "
    "input when no network option (--arch, --epochs, --lr…) is given; those do not apply to it.",
)
BACKBONE = typer.Option(
    None, "--backbone", metavar="NAME|MODEL.onnx",
    help="The network whose embedding --head reads (alone: --head linear): a name the zoo knows "
    "(audioset-mn04, pons-msd-musicnn, jamendo-fcn…) or a specmusic .onnx with an embedding output. "
    "Default: audioset-mn04.",
)
#: What only network training takes: given with --head/--backbone, each is refused in one line.
_NETWORK_OPTIONS = (
    "chunk_seconds", "epochs", "patience", "batch_size", "lr", "augment", "drop_hard", "drop_hard_after", "n_mels",
    "sample_rate", "device", "arch", "pretrained", "weights", "freeze_epochs", "finetune_lr", "linear_probe",
    "freeze_front", "img_size", "time_budget",
)


def _network_options(ctx: typer.Context) -> list[str]:
    """The network-only options given on the command line."""
    return [n for n in _NETWORK_OPTIONS if getattr(ctx.get_parameter_source(n), "name", "") == "COMMANDLINE"]


def _head_or_default(ctx: typer.Context, head: str | None, backbone: str | None, data: Path, output: Path) -> str | None:
    """``--head`` as given, or the default head for audio when no network option is (docs/train.md: chosen by
    ``benchmarks/train_default.py``'s rule)."""
    from specmusic.training import ProbeConfig, probe_is_default

    if head is None and backbone is None and not _network_options(ctx) and probe_is_default(data, output):
        err(f"train: a linear head on {ProbeConfig().backbone}'s features (the default; --arch cnn: the small CNN)")
        return "linear"
    return head


def _refuse_network_options(ctx: typer.Context) -> None:
    given = _network_options(ctx)
    if given:
        from specmusic.errors import ConfigError

        flag = next(o for o in ctx.command.params if o.name == given[0]).opts[0]
        raise ConfigError(f"{flag} trains a network; --head fits a head on a backbone's frozen features — drop {flag} "
                          "or --head/--backbone")


def train_cli(
    ctx: typer.Context,
    data: Path = typer.Argument(
        ..., help="Audio folder (one sub-folder per label) or a `specmusic spectro` output folder."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Run folder (model.onnx, metrics.json, plots, checkpoint)."),
    split_file: Path = typer.Option(None, "--split-file", help="GTZAN-style list of training tracks."),
    valid_file: Path = typer.Option(None, "--valid-file", help="List of validation tracks (default: carved by group)."),
    test_file: Path = typer.Option(None, "--test-file", help="List of test tracks (default: carved by group)."),
    manifest: Path = typer.Option(
        None, "--manifest", help="CSV/JSONL path,label[,group] for audio input (default: DATA/manifest.csv if any)."
    ),
    chunk_seconds: float = typer.Option(3.0, "--chunk-seconds", min=0.0, help="Crop length (s); 0 = whole tracks."),
    epochs: int = typer.Option(
        20, "--epochs", min=1,
        help="Epoch budget, counted from the run's first start (early stopping may end sooner); raise it to train "
        "a finished run further.",
    ),
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
    n_mels: int = typer.Option(None, "--n-mels", min=1, help="Mel bands computed from audio input (default 64)."),
    sample_rate: int = typer.Option(None, "--sr", min=1, help="Sample rate for audio input (Hz, default 22050)."),
    cache_dir: Path = typer.Option(None, "--cache-dir", help="Feature cache for audio input (default RUN/features)."),
    threads: int = TORCH_THREADS,
    device: str = DEVICE,
    arch: str = ARCH,
    pretrained: str = PRETRAINED,
    weights: Path = WEIGHTS,
    freeze_epochs: int = FREEZE_EPOCHS,
    finetune_lr: float = FINETUNE_LR,
    linear_probe: bool = LINEAR_PROBE,
    freeze_front: bool = FREEZE_FRONT,
    img_size: str = IMG_SIZE,
    head: str = HEAD,
    backbone: str = BACKBONE,
    time_budget: float = typer.Option(
        0.0, "--time-budget", min=0.0, help="Stop after the epoch that passes this many seconds of training (0 = none)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Start over even when the run folder holds a run (default: resume or continue it)."
    ),
    seed: int = SEED,
    jobs: int = JOBS,
    progress: bool = PROGRESS,
) -> None:
    """Train a classifier (CNN, pretrained backbone, or a head on its features); writes model.onnx, metrics, plots.

    Example: specmusic train ~/gtzan -o runs/genre   (a linear head on audioset-mn04; --arch cnn: a small CNN)

    Transfer: specmusic train ~/gtzan --arch musicnn --pretrained mtat --freeze-epochs 3 -o runs/tl

    Head on another network's features: specmusic train ~/gtzan --backbone pons-msd-musicnn -o runs/probe
    """
    require_torch("specmusic train", onnx=True)
    with cli_errors():
        from specmusic.training import ProbeConfig, TrainConfig, train_probe  # numpy, onnx, scikit-learn

        split_files = {"train": split_file, "valid": valid_file, "test": test_file}
        head = _head_or_default(ctx, head, backbone, data, output)
        if head is not None or backbone is not None:
            _refuse_network_options(ctx)
            probe = ProbeConfig(head=head or "linear", **({"backbone": backbone} if backbone else {}))
            result = train_probe(
                data, output, probe=probe, config=TrainConfig(track_pooling=pooling, seed=seed, threads=threads),
                manifest=manifest, split_files=split_files, cache_dir=cache_dir, jobs=jobs, force=force,
                progress=progress, log=err,
            )
            err(f"train: wrote {result.model_path} and {output / 'metrics.json'} in {result.seconds:.0f} s")
            return
        from specmusic.models.transfer import ModelSpec  # torch: only to train a network
        from specmusic.training import requested_features, train

        spec = ModelSpec(arch=arch, pretrained=pretrained, weights=None if weights is None else str(weights),
                         img_size=_parse_size(img_size))
        config = TrainConfig(
            chunk_seconds=chunk_seconds, epochs=epochs, patience=patience, batch_size=batch_size, lr=lr,
            augment=tuple(a.strip() for a in augment.split(",")), drop_hard=drop_hard, drop_hard_after=drop_hard_after,
            track_pooling=pooling, seed=seed, threads=threads, device=device,
            freeze_epochs=epochs if linear_probe else freeze_epochs, finetune_lr=finetune_lr, freeze_front=freeze_front,
            max_seconds=time_budget,
        )
        result = train(
            data, output, config=config, model_spec=spec,
            feature_config=requested_features(n_mels=n_mels, sample_rate=sample_rate),  # a tagger arch takes its own
            manifest=manifest, split_files=split_files,
            cache_dir=cache_dir, jobs=jobs, force=force, progress=progress, log=err,
        )
        err(f"train: wrote {result.model_path} and {output / 'metrics.json'} in {result.seconds:.0f} s")
