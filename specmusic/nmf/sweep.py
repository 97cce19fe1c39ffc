"""``specmusic nmf SONG -c 4,6,8``: one song factorised for each k, from one decoding of it.

:func:`sweep_nmf` checks the outputs and the memory the largest k needs before decoding, computes the
spectrogram once, fits every k (:func:`~specmusic.nmf.solver.fit_nmf`), writes each k's folder
(:func:`~specmusic.nmf.files.save_decomposition`: one folder, or ``k<N>/`` each for several k) and, with
``compare``, runs scikit-learn from the same start beside it (:mod:`specmusic.nmf.compare`). It returns one
:class:`KRun` per k (the command's JSON line, :meth:`KRun.to_dict`, and the comparison's lines) in an
:class:`NMFSweep`, whose :meth:`~NMFSweep.table` is ``--report``'s loss-vs-k table (the sweep draws its picture).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from specmusic.errors import ConfigError
from specmusic.fileio import display_path, ensure_writable_dir
from specmusic.nmf.divergence import loss_name
from specmusic.nmf.files import decomposition_files, save_decomposition
from specmusic.nmf.memory import DEFAULT_MAX_MEMORY_GB, check_nmf_memory
from specmusic.nmf.separate import Decomposition, SpectrogramConfig, load_spectrogram_for_nmf
from specmusic.nmf.solver import NMFConfig, fit_nmf, initialize_nmf
from specmusic.outputs import check_not_an_input

__all__ = ["KRun", "NMFSweep", "parse_components", "sweep_nmf"]


@dataclass
class KRun:
    """One k of a sweep: the fit's numbers, the folder written, scikit-learn's run beside it."""

    k: int
    loss_name: str  # euclidean | kl | is | beta=<β>
    loss: float  # final divergence
    initial_loss: float
    iterations: int
    converged: bool
    seconds: float  # the fit's wall time, rounded to 0.1 ms
    output: str | None = None  # the folder written (display path); None: nothing written
    model_relative_error: float | None = None  # RMS of model.wav − mix over the mix's; None: no audio written
    comparison: list[str] = field(default_factory=list)  # the --compare sklearn lines; empty without

    def to_dict(self) -> dict[str, Any]:
        """The JSON line of ``specmusic nmf`` (``output`` and ``model_relative_error`` only when set)."""
        row: dict[str, Any] = {
            "k": self.k, "loss_name": self.loss_name, "loss": self.loss, "initial_loss": self.initial_loss,
            "iterations": self.iterations, "converged": self.converged, "seconds": self.seconds,
        }
        if self.output is not None:
            row["output"] = self.output
        if self.model_relative_error is not None:
            row["model_relative_error"] = self.model_relative_error
        return row


def parse_components(values: Iterable[str]) -> list[int]:
    """``--components`` values → the k to fit: ``["4,6", "8"]`` → ``[4, 6, 8]`` (sorted, without repeats).

    Raises
    ------
    ConfigError
        A part that is not a positive whole number, or no k at all.
    """
    ks: list[int] = []
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            if not part:
                continue
            if not part.isdigit() or int(part) < 1:
                raise ConfigError(f"--components {part!r} is not a positive whole number — e.g. -c 4 or -c 4,6,8")
            ks.append(int(part))
    if not ks:
        raise ConfigError("--components names no k — e.g. -c 4 or -c 4,6,8")
    return sorted(dict.fromkeys(ks))


@dataclass
class NMFSweep:
    """What :func:`sweep_nmf` did: one :class:`KRun` per k, and where loss against k was drawn."""

    runs: list[KRun]
    report_png: Path | None = None  # None: no report asked for

    def table(self) -> list[str]:
        """``--report``'s table: per k the final loss, its ratio to the first k's, iterations and seconds."""
        first = self.runs[0]
        lines = [(f"{'k':>4s}  {'final ' + first.loss_name:>16s}  {'vs k=' + str(first.k):>8s}  "
                  f"{'iterations':>10s}  {'seconds':>8s}")]
        base = first.loss or first.initial_loss
        lines += [f"{r.k:>4d}  {r.loss:>16.6g}  {r.loss / base:>8.3f}  {r.iterations:>10d}  {r.seconds:>8.2f}"
                  for r in self.runs]
        return lines


def sweep_nmf(
    song: str | os.PathLike[str],
    *,
    ks: Sequence[int],
    spectrogram: SpectrogramConfig | None = None,
    config: NMFConfig | None = None,
    output: str | os.PathLike[str] | None = None,
    report: bool = False,
    compare: bool = False,
    audio: bool = True,
    plots: bool = True,
    offset: float = 0.0,
    duration: float | None = None,
    max_memory_gb: float = DEFAULT_MAX_MEMORY_GB,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    on_run: Callable[[KRun], None] | None = None,
) -> NMFSweep:
    """Factorise ``song``'s spectrogram for each k of ``ks`` (one decoding), writing each k's folder.

    Parameters
    ----------
    ks : the numbers of components, in the order fitted (:func:`parse_components`)
    spectrogram : the STFT and the soft masks (default :class:`~specmusic.nmf.separate.SpectrogramConfig`)
    config : the solver's settings; ``n_components`` is each k in turn, ``tol`` is 0 with ``compare``
    output : folder for the files of :func:`~specmusic.nmf.files.save_decomposition` (``k<N>/`` in it for
        each k when there are several); None: no folder is written
    report : at the end, draw the final loss against k (:func:`~specmusic.nmf.plots.save_report_plot`) into
        ``output/report.png``, or ``SONG.nmf-report.png`` in the working folder without ``output``
    compare : run scikit-learn's ``NMF(solver="mu")`` from the same start for as many iterations (the
        lines in :attr:`KRun.comparison`)
    audio, plots : write the part WAVs and ``model.wav``; ``W.png``/``H.png``/``loss.png``
    offset, duration : the part of ``song`` to read (seconds; ``duration`` None: to the end)
    max_memory_gb : refuse, before decoding, a run estimated to need more (:mod:`specmusic.nmf.memory`)
    progress : progress bar on stderr (None: only on a terminal)
    log : receives one line per step (what was decoded, each folder written)
    on_run : called with each k's :class:`KRun` as soon as it is fitted and written

    Returns
    -------
    NMFSweep
        One :class:`KRun` per k, in the order of ``ks``, and the report's picture.

    Raises
    ------
    ConfigError
        No k, more memory than ``max_memory_gb``, or scikit-learn missing for ``compare``.
    InputError
        An output folder that cannot be written (before any work); a silent or too short song.
    AudioError
        An unreadable song.
    """
    if not ks:
        raise ConfigError("--components names no k — e.g. -c 4 or -c 4,6,8")
    spec = spectrogram or SpectrogramConfig()
    config = replace(config or NMFConfig(), tol=0.0) if compare else (config or NMFConfig())
    say = log or (lambda _line: None)
    report_png = None
    if report:
        report_png = Path(output) / "report.png" if output is not None else Path(f"{Path(song).stem}.nmf-report.png")
    _check_before_decoding(song, ks=ks, spec=spec, config=config, output=output, report_png=report_png,
                           compare=compare, audio=audio, offset=offset, duration=duration, max_gb=max_memory_gb)
    y, X, V = load_spectrogram_for_nmf(song, spec=spec, offset=offset, duration=duration)
    name = display_path(song)
    say(f"nmf: {name}: {len(y) / spec.sample_rate:.1f} s → |STFT|{'²' if spec.power == 2 else ''} "
        f"{V.shape[0]}×{V.shape[1]}, loss {loss_name(config.beta)}, k = {' '.join(map(str, ks))}")
    runs = []
    for k in ks:
        out = None if output is None else Path(output) / f"k{k}" if len(ks) > 1 else Path(output)
        run = _fit_one(y, X, V, spec=spec, config=replace(config, n_components=k), out=out, source=name,
                       audio=audio, plots=plots, progress=progress, compare=compare, log=say)
        runs.append(run)
        if on_run is not None:
            on_run(run)
    if report_png is not None:
        from specmusic.nmf.plots import save_report_plot

        save_report_plot(report_png, [r.to_dict() for r in runs], title=Path(song).name)
    return NMFSweep(runs, report_png)


def _check_before_decoding(
    song: str | os.PathLike[str], *, ks: Sequence[int], spec: SpectrogramConfig, config: NMFConfig,
    output: str | os.PathLike[str] | None, report_png: Path | None, compare: bool, audio: bool,
    offset: float, duration: float | None, max_gb: float,
) -> None:
    """An output that cannot be written or would overwrite the song, or a run that would not fit in memory, is
    refused now."""
    if output is not None:
        ensure_writable_dir(output, option="-o")
        folders = [Path(output) / f"k{k}" for k in ks] if len(ks) > 1 else [Path(output)]
        for folder, k in zip(folders, ks):
            for name in decomposition_files(k, audio=audio):
                check_not_an_input(folder / name, [song])  # nmf parts/model.wav -o parts/
    elif report_png is not None:
        ensure_writable_dir(report_png.parent, option="-o")
    if report_png is not None:
        check_not_an_input(report_png, [song])
    check_nmf_memory(song, sample_rate=spec.sample_rate, n_fft=spec.n_fft, hop_length=spec.hop_length,
                     power=spec.power, n_components=max(ks), beta=config.beta,
                     itemsize=8 if config.dtype == "float64" else 4, threads=config.threads, init=config.init,
                     audio=audio and output is not None, compare=compare, offset=offset, duration=duration,
                     max_gb=max_gb)


def _fit_one(
    y: np.ndarray, X: np.ndarray, V: np.ndarray, *, spec: SpectrogramConfig, config: NMFConfig, out: Path | None,
    source: str, audio: bool, plots: bool, progress: bool | None, compare: bool, log: Callable[[str], None],
) -> KRun:
    """Fit one k; write its folder when ``out`` is set; run scikit-learn beside it with ``compare``."""
    W0 = H0 = None
    if compare:  # the same starting point for both solvers
        W0, H0 = initialize_nmf(V, config.n_components, init=config.init, seed=config.seed, dtype=config.dtype)
    result = fit_nmf(V, config=config, W=W0, H=H0, progress=progress)
    run = KRun(k=config.n_components, loss_name=loss_name(result.beta), loss=result.loss,
               initial_loss=float(result.losses[0]), iterations=result.n_iter, converged=result.converged,
               seconds=round(result.seconds, 4))
    if out is not None:
        dec = Decomposition(y=y, X=X, V=V, result=result, spec=spec, sr=spec.sample_rate)
        summary = save_decomposition(out, dec, source=source, plots=plots, audio=audio)
        run.output = display_path(out)
        log(f"nmf: k={config.n_components} {run.loss_name} {result.loss:.6g} after {result.n_iter} iterations "
            f"({result.seconds:.2f} s) → {display_path(out)}")
        if audio:
            run.model_relative_error = summary["model_relative_error"]
            log(f"nmf: the component WAVs add up to the mix (RMS error {summary['parts_sum_rms_error']:.1e}); "
                f"model.wav is the model W·H with the mix's phase, {100 * summary['model_relative_error']:.1f} % "
                "RMS away from the mix (the model's approximation error)")
    if compare:
        from specmusic.nmf.compare import compare_sklearn, comparison_table

        run.comparison = comparison_table(config, result, compare_sklearn(V, W0, H0, config))
    return run
