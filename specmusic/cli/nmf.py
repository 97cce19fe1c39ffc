"""``specmusic nmf``: split a song into NMF parts (``specmusic nmf SONG``), or mosaic (``specmusic nmf mosaic``)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from specmusic.cli._options import PROGRESS, SEED, cli_errors, err

_DEFAULT = "decompose"


class _NmfGroup(TyperGroup):
    """``specmusic nmf SONG …`` runs ``decompose``; ``specmusic nmf mosaic …`` the mosaic."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:  # type: ignore[override]
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = [_DEFAULT, *args]
        return super().parse_args(ctx, args)


nmf_app = typer.Typer(
    cls=_NmfGroup,
    name="nmf",
    no_args_is_help=True,
    help=(
        "Non-negative matrix factorisation of a song's spectrogram, in two forms.\n\n"
        "specmusic nmf SONG -c 4 --loss kl -o parts/  — split SONG into k parts: W/H arrays, plots, "
        "one WAV per part (they sum to the mix), model.wav (the model W·H with the mix's phase, which "
        "differs from the mix by the model's error) and summary.json "
        "(same as 'specmusic nmf decompose SONG …'; several k: -c 4,6,8 --report; --compare sklearn).\n\n"
        "specmusic nmf mosaic -s bees.wav -t song.wav -o mosaic.wav  — rebuild the target "
        "out of the source's sounds (Let it Bee constraints with --let-it-bee); writes mosaic.png and "
        "mosaic.loss.png beside it."
    ),
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Loss(str, Enum):
    euclidean = "euclidean"
    kl = "kl"
    is_ = "is"


class Init(str, Enum):
    nndsvda = "nndsvda"
    nndsvd = "nndsvd"
    random = "random"


class Compare(str, Enum):
    sklearn = "sklearn"


MAX_MEMORY = typer.Option(
    2.0, "--max-memory", min=0.001,
    help="Refuse, before decoding, a run whose arrays are estimated to need more than this many GB "
    "(the error says how long an excerpt fits).",
)
THREADS = typer.Option(
    0, "--threads", min=0,
    help="Solver threads, each on its own rows of the spectrogram with one BLAS thread (0 = one per CPU; 1 = one core).",
)


@nmf_app.command(_DEFAULT)
def nmf_cli(
    song: Path = typer.Argument(..., help="Audio file to decompose."),
    components: list[str] = typer.Option(
        ["4"], "--components", "-c", help="Number of parts k; several: -c 4,6,8 (or -c 4 -c 6 -c 8)."
    ),
    loss: Loss = typer.Option(Loss.kl, "--loss", help="Divergence: euclidean (β=2), kl (β=1), is (β=0)."),
    output: Path = typer.Option(
        None, "--output", "-o", help="Output folder (several k: one subfolder k<N> each). Without it nothing but the report PNG is written."
    ),
    iterations: int = typer.Option(200, "--iterations", "-i", min=1, help="Multiplicative iterations at most."),
    tol: float = typer.Option(1e-4, "--tol", min=0.0, help="Stop when 10 iterations gain < tol × initial loss (0: never)."),
    init: Init = typer.Option(Init.nndsvda, "--init", help="Initialisation."),
    report: bool = typer.Option(False, "--report", help="Compare the k values: loss-vs-k table on stdout + a PNG."),
    compare: Compare = typer.Option(None, "--compare", help="Also run scikit-learn's NMF(solver='mu') from the same init and iterations; print both."),
    sample_rate: int = typer.Option(22050, "--sr", help="Sample rate to resample to (Hz)."),
    n_fft: int = typer.Option(2048, "--n-fft", help="FFT size (samples)."),
    hop_length: int = typer.Option(512, "--hop-length", help="Hop between frames (samples)."),
    power: float = typer.Option(1.0, "--power", help="Factorise |X|**power: 1 magnitude, 2 power."),
    mask_power: float = typer.Option(2.0, "--mask-power", help="Soft-mask exponent for the part WAVs (2 Wiener-like, 1 ratio)."),
    offset: float = typer.Option(0.0, "--offset", min=0.0, help="Start reading at this time (s)."),
    duration: float = typer.Option(None, "--duration", min=0.0, help="Read at most this many seconds."),
    audio: bool = typer.Option(
        True, "--audio/--no-audio",
        help="Write the part WAVs (they sum to the mix) and model.wav (W·H with the mix's phase: the model's "
        "approximation of the mix; summary.json gives its model_relative_error).",
    ),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write W.png (log frequency axis), H.png and loss.png."),
    float64: bool = typer.Option(False, "--float64", help="Compute in float64 (default float32: faster)."),
    inner: int = typer.Option(
        0, "--inner", min=0,
        help="Multiplicative steps per factor and iteration (0 = 10 for euclidean, reusing each pass over the "
        "spectrogram; 1 otherwise); 1 = the textbook update, as scikit-learn.",
    ),
    relax: float = typer.Option(
        0.0, "--relax", min=0.0, max=2.0,
        help="Exponent on each multiplicative step (0 = 1.5 for kl, 1 otherwise; a step that raises the loss is "
        "undone and the exponent falls back to 1); 1 = the textbook update.",
    ),
    max_memory: float = MAX_MEMORY,
    seed: int = SEED,
    threads: int = THREADS,
    progress: bool = PROGRESS,
) -> None:
    """Split a song into k parts with NMF: W/H arrays, plots, one WAV per part, model.wav.

    Example: specmusic nmf song.wav -c 4 --loss kl -o parts/
    """
    from specmusic.fileio import display_path
    from specmusic.nmf import LOSSES, NMFConfig, SpectrogramConfig, parse_components, sweep_nmf

    def print_run(run: Any) -> None:  # a KRun, as each k is done
        if run.comparison:
            print("\n".join(run.comparison), flush=True)
        elif not report:
            print(json.dumps(run.to_dict(), sort_keys=True), flush=True)

    with cli_errors():
        ks = parse_components(components)
        sweep = sweep_nmf(
            song, ks=ks, output=output, report=report, compare=compare is not None, audio=audio, plots=plots,
            spectrogram=SpectrogramConfig(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, power=power,
                                          mask_power=mask_power),
            config=NMFConfig(n_components=ks[0], beta=LOSSES[loss.value], max_iter=iterations, tol=tol,
                             init=init.value, seed=seed, dtype="float64" if float64 else "float32", threads=threads,
                             inner=inner, relax=relax),
            offset=offset, duration=duration, max_memory_gb=max_memory, progress=progress, log=err, on_run=print_run,
        )
        if sweep.report_png is not None:
            print("\n".join(sweep.table()), flush=True)
            err(f"nmf: loss vs k → {display_path(sweep.report_png)}")


@nmf_app.command("mosaic")
def mosaic_cli(
    source: Path = typer.Option(..., "--source", "-s", help="Audio whose sounds are used (e.g. bees.wav)."),
    target: Path = typer.Option(..., "--target", "-t", help="Audio to imitate (e.g. a song)."),
    output: str = typer.Option(..., "--output", "-o", help="Output audio file (.wav/.flac/.ogg); '-' writes WAV to stdout."),
    sample_rate: int = typer.Option(None, "--sr", help="Sample rate for both (default: the target's own)."),
    iterations: int = typer.Option(50, "--iterations", "-i", min=1, help="Multiplicative updates of H."),
    templates: int = typer.Option(0, "--templates", min=0, help="0: source frames as W (default); N: N learned source templates (target phase)."),
    let_it_bee: bool = typer.Option(False, "--let-it-bee", help="Driedger et al. 2015 constraints with the paper's r=3, p=10, c=3."),
    repetition: int = typer.Option(None, "--repetition", min=0, help="r: damp activations not maximal within ±r frames (0 off)."),
    polyphony: int = typer.Option(None, "--polyphony", min=0, help="p: keep the p strongest activations per frame (0 off)."),
    continuity: int = typer.Option(None, "--continuity", min=0, help="c: diagonal filter 2c+1 long, favouring source frames in order (0 off)."),
    source_duration: float = typer.Option(None, "--source-duration", min=0.0, help="Use at most this many seconds of the source."),
    target_duration: float = typer.Option(None, "--target-duration", min=0.0, help="Use at most this many seconds of the target."),
    n_fft: int = typer.Option(2048, "--n-fft", help="FFT size (samples)."),
    hop_length: int = typer.Option(512, "--hop-length", help="Hop between frames (samples)."),
    plots: bool | None = typer.Option(
        None, "--plots/--no-plots",
        help="Write the output's spectrogram (mosaic.wav → mosaic.png) and loss curve (mosaic.loss.png) beside it "
        "(default: on for a file, off for -o -).",
    ),
    max_memory: float = MAX_MEMORY,
    seed: int = SEED,
    threads: int = THREADS,
    progress: bool = PROGRESS,
) -> None:
    """Rebuild a target from a source's sounds: source frames fixed as W, learn H, resynthesise.

    Example: specmusic nmf mosaic -s bees.wav -t song.wav --let-it-bee -o mosaic.wav
    """
    from specmusic.nmf import MosaicConfig, mosaic_to_file

    with cli_errors():
        config = MosaicConfig.with_constraints(
            let_it_bee=let_it_bee, repetition=repetition, polyphony=polyphony, continuity=continuity,
            n_fft=n_fft, hop_length=hop_length, n_iter=iterations, templates=templates, seed=seed, threads=threads,
        )
        info = mosaic_to_file(source, target, output, config=config, sr=sample_rate, source_duration=source_duration,
                              target_duration=target_duration, plots=plots, on_note=err, progress=progress,
                              max_memory_gb=max_memory)
        err(f"mosaic: {info['mode']} mode, {info.get('source_frames_used', templates)} templates, "
            f"{info['target_frames']} target frames, KL {info['initial_loss']:.4g} → {info['loss']:.4g} "
            f"in {info['seconds']:.1f} s → {info['output']}")
        if output != "-":
            print(json.dumps(info, sort_keys=True), flush=True)
