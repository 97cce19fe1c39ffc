"""``specmusic nmf``: split a song into NMF parts (``specmusic nmf SONG``), or mosaic (``specmusic nmf mosaic``)."""

from __future__ import annotations

import json
import os
from enum import Enum
from pathlib import Path

import typer
from typer.core import TyperGroup

from specmusic.cli._options import PROGRESS, SEED, cli_errors, err

_DEFAULT = "decompose"
_K_FLAGS = ("-k", "--components")


class _NmfGroup(TyperGroup):
    """``specmusic nmf SONG …`` runs ``decompose``; ``specmusic nmf mosaic …`` the mosaic.

    Also lets ``-k 4 6 8`` list several values after one flag (Click options take one value each).
    """

    def parse_args(self, ctx, args: list[str]) -> list[str]:  # type: ignore[override]
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = [_DEFAULT, *args]
        if args and args[0] == _DEFAULT:
            args = _expand_k(args)
        return super().parse_args(ctx, args)


def _expand_k(args: list[str]) -> list[str]:
    """``-k 4 6 8`` → ``-k 4 -k 6 -k 8`` (a number that names an existing file stays a path)."""
    out: list[str] = []
    flag: str | None = None
    expect_value = False
    for a in args:
        if expect_value:
            out.append(a)
            expect_value = False
            continue
        if flag is not None and a.isdigit() and not os.path.exists(a):
            out += [flag, a]
            continue
        flag = None
        out.append(a)
        if a in _K_FLAGS:
            flag, expect_value = a, True
    return out


nmf_app = typer.Typer(
    cls=_NmfGroup,
    name="nmf",
    no_args_is_help=True,
    help=(
        "Non-negative matrix factorisation of a song's spectrogram, in two forms.\n\n"
        "specmusic nmf SONG -k 4 --loss kl -o parts/  — split SONG into k parts: W/H arrays, plots, "
        "one WAV per part (they sum to the mix), the reconstruction and summary.json "
        "(same as 'specmusic nmf decompose SONG …'; several k: -k 4 6 8 --report; --compare sklearn).\n\n"
        "specmusic nmf mosaic --source bees.wav --target song.wav -o mosaic.wav  — rebuild the target "
        "out of the source's sounds (Let it Bee constraints with --let-it-bee)."
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


THREADS = typer.Option(
    0, "--threads", min=0,
    help="Solver threads, each on its own rows of the spectrogram with one BLAS thread (0 = every CPU; 1 = one core).",
)


def _parse_ks(values: list[str]) -> list[int]:
    from specmusic.errors import ConfigError

    ks: list[int] = []
    for v in values:
        for part in str(v).split(","):
            part = part.strip()
            if not part:
                continue
            if not part.isdigit() or int(part) < 1:
                raise ConfigError(f"-k {part!r} is not a positive whole number — e.g. -k 4 or -k 4 6 8")
            ks.append(int(part))
    return sorted(dict.fromkeys(ks))


@nmf_app.command(_DEFAULT)
def nmf_cli(
    song: Path = typer.Argument(..., help="Audio file to decompose."),
    components: list[str] = typer.Option(
        ["4"], "--components", "-k", help="Number of parts k; several: -k 4 6 8 (or -k 4,6,8)."
    ),
    loss: Loss = typer.Option(Loss.kl, "--loss", help="Divergence: euclidean (β=2), kl (β=1), is (β=0)."),
    output: Path = typer.Option(
        None, "--output", "-o", help="Output folder (several k: one subfolder k<N> each). Without it nothing but the report PNG is written."
    ),
    iterations: int = typer.Option(200, "--iterations", "-n", min=1, help="Multiplicative iterations at most."),
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
    audio: bool = typer.Option(True, "--audio/--no-audio", help="Write the part WAVs and the reconstruction."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write W.png, H.png and loss.png."),
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
    seed: int = SEED,
    threads: int = THREADS,
    progress: bool = PROGRESS,
) -> None:
    """Split a song into k parts with NMF: W/H arrays, plots, one WAV per part, the reconstruction.

    Example: specmusic nmf song.wav -k 4 --loss kl -o parts/
    """
    from specmusic.fileio import display_path
    from specmusic.nmf import LOSSES, NMFConfig, SpectrogramConfig, load_spectrogram_for_nmf

    with cli_errors():
        ks = _parse_ks(components)
        spec = SpectrogramConfig(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, power=power, mask_power=mask_power
        )
        y, X, V = load_spectrogram_for_nmf(song, spec=spec, offset=offset, duration=duration)
        beta = LOSSES[loss.value]
        name = display_path(song)
        err(f"nmf: {name}: {len(y) / sample_rate:.1f} s → |STFT|{'²' if power == 2 else ''} {V.shape[0]}×{V.shape[1]}, "
            f"loss {loss.value}, k = {' '.join(map(str, ks))}")
        rows = []
        for k in ks:
            config = NMFConfig(
                n_components=k, beta=beta, max_iter=iterations, tol=0.0 if compare else tol, init=init.value,
                seed=seed, dtype="float64" if float64 else "float32", threads=threads, inner=inner, relax=relax,
            )
            row = _run_one(y, X, V, spec=spec, config=config, output=output, multi=len(ks) > 1,
                           source=name, audio=audio, plots=plots, progress=progress, compare=compare)
            rows.append(row)
            if not report and not compare:
                print(json.dumps(row, sort_keys=True), flush=True)
        if report:
            _print_report(rows)
            png = (output / "report.png") if output else Path(f"{song.stem}.nmf-report.png")
            from specmusic.nmf import save_report_plot

            save_report_plot(png, rows, title=song.name)
            err(f"nmf: loss vs k → {display_path(png)}")


def _run_one(y, X, V, *, spec, config, output, multi, source, audio, plots, progress, compare) -> dict:
    from specmusic.fileio import display_path
    from specmusic.nmf import Decomposition, fit_nmf, initialize_nmf, save_decomposition

    W0 = H0 = None
    if compare:  # the same starting point for both solvers
        W0, H0 = initialize_nmf(V, config.n_components, init=config.init, seed=config.seed, dtype=config.dtype)
    result = fit_nmf(V, config=config, W=W0, H=H0, progress=progress)
    row = {
        "k": config.n_components,
        "loss_name": result.summary()["loss_name"],
        "loss": result.loss,
        "initial_loss": float(result.losses[0]),
        "iterations": result.n_iter,
        "converged": result.converged,
        "seconds": round(result.seconds, 4),
    }
    if output is not None:
        out = output / f"k{config.n_components}" if multi else output
        dec = Decomposition(y=y, X=X, V=V, result=result, spec=spec, sr=spec.sample_rate)
        save_decomposition(out, dec, source=source, plots=plots, audio=audio)
        row["output"] = display_path(out)
        err(f"nmf: k={config.n_components} {row['loss_name']} {result.loss:.6g} after {result.n_iter} iterations "
            f"({result.seconds:.2f} s) → {display_path(out)}")
    if compare:
        _compare_sklearn(V, W0, H0, config, result)
    return row


def _compare_sklearn(V, W0, H0, config, ours) -> None:
    import time
    import warnings

    from specmusic.errors import ConfigError
    from specmusic.nmf import beta_divergence

    try:
        from sklearn.decomposition import NMF
    except ImportError:
        raise ConfigError("--compare sklearn needs scikit-learn — pip install scikit-learn") from None
    Vd = V.astype(config.dtype)
    model = NMF(n_components=config.n_components, solver="mu", beta_loss=config.beta, init="custom",
                max_iter=config.max_iter, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        W = model.fit_transform(Vd, W=W0.astype(config.dtype).copy(), H=H0.astype(config.dtype).copy())
        seconds = time.perf_counter() - t0
    theirs = beta_divergence(Vd, W, model.components_, beta=config.beta)
    n = config.max_iter
    from threadpoolctl import threadpool_info

    from specmusic.nmf import solver_threads

    blas = max((i.get("num_threads", 1) for i in threadpool_info() if i.get("user_api") == "blas"), default=1)
    print(f"k={config.n_components}  {ours.summary()['loss_name']}  {n} iterations from the same init, {config.dtype}; "
          f"specmusic {solver_threads(config.threads)} solver thread(s), {config.inner_steps} step(s) per factor and "
          f"pass, step exponent {config.relax_exponent:g}; scikit-learn {blas} BLAS thread(s), textbook steps")
    print(f"{'':22s}{'seconds':>10s}{'ms/iter':>10s}{'final divergence':>20s}")
    print(f"{'specmusic nmf':22s}{ours.seconds:10.3f}{ours.seconds / max(ours.n_iter, 1) * 1e3:10.2f}{ours.loss:20.6g}")
    print(f"{'sklearn NMF(mu)':22s}{seconds:10.3f}{seconds / n * 1e3:10.2f}{theirs:20.6g}")
    print(f"speed-up ×{seconds / max(ours.seconds, 1e-12):.2f}   divergence ratio {ours.loss / theirs:.4f}", flush=True)


def _print_report(rows: list[dict]) -> None:
    first = rows[0]["initial_loss"] if rows else 1.0
    print(f"{'k':>4s}  {'final ' + rows[0]['loss_name']:>16s}  {'vs k=' + str(rows[0]['k']):>8s}  {'iterations':>10s}  {'seconds':>8s}")
    base = rows[0]["loss"] or first
    for r in rows:
        print(f"{r['k']:>4d}  {r['loss']:>16.6g}  {r['loss'] / base:>8.3f}  {r['iterations']:>10d}  {r['seconds']:>8.2f}")


@nmf_app.command("mosaic")
def mosaic_cli(
    source: Path = typer.Option(..., "--source", "-s", help="Audio whose sounds are used (e.g. bees.wav)."),
    target: Path = typer.Option(..., "--target", "-t", help="Audio to imitate (e.g. a song)."),
    output: str = typer.Option(..., "--output", "-o", help="Output audio file (.wav/.flac/.ogg); '-' writes WAV to stdout."),
    sample_rate: int = typer.Option(None, "--sr", help="Sample rate for both (default: the target's own)."),
    iterations: int = typer.Option(50, "--iterations", "-n", min=1, help="Multiplicative updates of H."),
    templates: int = typer.Option(0, "--templates", min=0, help="0: source frames as W (default); N: N learned source templates (target phase)."),
    let_it_bee: bool = typer.Option(False, "--let-it-bee", help="Driedger et al. 2015 constraints with the paper's r=3, p=10, c=3."),
    repetition: int = typer.Option(None, "--repetition", min=0, help="r: damp activations not maximal within ±r frames (0 off)."),
    polyphony: int = typer.Option(None, "--polyphony", min=0, help="p: keep the p strongest activations per frame (0 off)."),
    continuity: int = typer.Option(None, "--continuity", min=0, help="c: diagonal filter 2c+1 long, favouring source frames in order (0 off)."),
    source_duration: float = typer.Option(None, "--source-duration", min=0.0, help="Use at most this many seconds of the source."),
    target_duration: float = typer.Option(None, "--target-duration", min=0.0, help="Use at most this many seconds of the target."),
    n_fft: int = typer.Option(2048, "--n-fft", help="FFT size (samples)."),
    hop_length: int = typer.Option(512, "--hop-length", help="Hop between frames (samples)."),
    seed: int = SEED,
    threads: int = THREADS,
    progress: bool = PROGRESS,
) -> None:
    """Rebuild a target from a source's sounds: source frames fixed as W, learn H, resynthesise.

    Example: specmusic nmf mosaic --source bees.wav --target song.wav --let-it-bee -o mosaic.wav
    """
    from specmusic.audio import save_audio
    from specmusic.fileio import display_path
    from specmusic.nmf import MosaicConfig, mosaic_files

    default = 3 if let_it_bee else 0
    with cli_errors():
        config = MosaicConfig(
            n_fft=n_fft, hop_length=hop_length, n_iter=iterations, templates=templates,
            repetition=default if repetition is None else repetition,
            polyphony=(10 if let_it_bee else 0) if polyphony is None else polyphony,
            continuity=(default if not templates else 0) if continuity is None else continuity,
            seed=seed, threads=threads,
        )
        result = mosaic_files(source, target, sr=sample_rate, config=config, source_duration=source_duration,
                              target_duration=target_duration, on_note=err, progress=progress)
        save_audio(output, result.y, result.sr)
        info = result.info | {"output": output if output == "-" else display_path(output),
                              "repetition": config.repetition, "polyphony": config.polyphony,
                              "continuity": config.continuity, "iterations": config.n_iter}
        err(f"mosaic: {info['mode']} mode, {info.get('source_frames_used', templates)} templates, "
            f"{info['target_frames']} target frames, KL {info['initial_loss']:.4g} → {info['loss']:.4g} "
            f"in {info['seconds']:.1f} s → {info['output']}")
        if output != "-":
            print(json.dumps(info, sort_keys=True), flush=True)
