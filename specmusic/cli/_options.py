"""Shared CLI plumbing: error reporting, stdin path lists, common options."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import typer

from specmusic import errors


@dataclass
class _State:
    verbose: bool = False


STATE = _State()


def err(line: str) -> None:
    """Print one line to stderr (never stdout: stdout carries data)."""
    sys.stderr.write(line.rstrip("\n") + "\n")
    sys.stderr.flush()


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Turn SpecmusicError into ``Error: …`` on stderr and exit code 1 (traceback with --verbose); Ctrl-C into
    exit 130 and SIGTERM into 143, both with one line saying what is kept."""
    try:
        yield
    except errors.SpecmusicError as exc:
        if STATE.verbose:
            raise
        err(f"Error: {exc}")
        raise typer.Exit(1) from None
    except OSError as exc:  # an output that cannot be written, a disk that filled up, …
        if isinstance(exc, BrokenPipeError):
            end_if_stdout_gone()  # `| head` has read enough: end quietly
        if STATE.verbose:
            raise
        from specmusic.fileio import display_path, stdout_if_full

        where = exc.filename or stdout_if_full(exc)  # a full disk under `> file` names stdout
        where = f"{display_path(where)}: " if where else ""
        err(f"Error: {where}{(exc.strerror or str(exc)).lower()} — check the path, its permissions and free space")
        raise typer.Exit(1) from None
    except ModuleNotFoundError as exc:  # torch/onnx: the runtime install (pip install specmusic) has neither
        if STATE.verbose or (exc.name or "").split(".")[0] not in TRAIN_ONLY_MODULES:
            raise
        err(f"Error: {_command_name()} needs PyTorch ({exc.name.split('.')[0]} is not installed) — {TRAIN_EXTRA}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (specmusic.workers.Terminated): the same path
        from specmusic.workers import Terminated

        err("Interrupted — completed outputs are kept; rerun the same command to resume")
        raise typer.Exit(143 if isinstance(exc, Terminated) else 130) from None


def end_if_stdout_gone() -> None:
    """End the process as SIGPIPE's default action does (quietly, status 141) when stdout is a pipe whose
    reader is gone (``specmusic … | head`` read enough); return otherwise."""
    import os
    import select
    import signal

    try:
        poller = select.poll()
        poller.register(1, select.POLLOUT)
        gone = any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no poll (Windows), no stdout
        return
    if gone and hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGPIPE)


#: Packages of the ``train`` extra: ``pip install specmusic`` (the runtime) leaves them out.
TRAIN_ONLY_MODULES = ("torch", "onnx")
TRAIN_EXTRA = "pip install 'specmusic[train]'"


def _command_name() -> str:
    """``specmusic generate train``: the running command, for error lines ("this command" outside one)."""
    try:
        from typer._click.globals import get_current_context  # typer vendors click
    except ImportError:  # pragma: no cover - an older typer on plain click
        from click import get_current_context
    ctx = get_current_context(silent=True)
    words = ctx.command_path.split()[1:] if ctx is not None else []
    return " ".join(["specmusic", *words]) if words else "this command"


def _importable(module: str) -> bool:
    """Whether ``module`` is installed, without importing it."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a finder that refuses it, or a half-imported module
        return False


def require_torch(command: str, *, onnx: bool = False) -> None:
    """Stop with one line (exit 1) when PyTorch (and, with ``onnx``, the onnx package for the export)
    is not installed; training commands call this first, before any work is done. The runtime install
    leaves both out: ``pip install 'specmusic[train]'`` adds them."""
    missing = [m for m in TRAIN_ONLY_MODULES[: 2 if onnx else 1] if not _importable(m)]
    if missing:
        what = "PyTorch" if "torch" in missing else "the onnx package (for the ONNX export)"
        err(f"Error: {command} needs {what} — {TRAIN_EXTRA}")
        raise typer.Exit(1)


def expand_stdin(inputs: list[str] | None) -> list[str]:
    """Replace a ``-`` argument by the paths read from stdin, one a line."""
    from specmusic.data import expand_path_args

    return expand_path_args(inputs, stdin=sys.stdin)


def gather_tracks(inputs: list[str] | None, manifest, *, labels: bool = True, require_audio: bool = False):  # noqa: ANN001, ANN201
    """Tracks from paths/folders (``-`` reads paths from stdin) plus a manifest's rows, and what failed to list.

    Returns ``(tracks, failures)`` as :func:`specmusic.data.gather_inputs`.

    Raises
    ------
    InputError
        Neither paths nor a manifest were given (with ``require_audio``: or no audio file in them).
    """
    from specmusic.data import gather_inputs

    return gather_inputs(inputs, manifest, labels=labels, stdin=sys.stdin, require_audio=require_audio)


JOBS = typer.Option(1, "--jobs", "-j", min=1, help="Worker processes.")
PROGRESS = typer.Option(
    None, "--progress/--no-progress", help="Progress bar on stderr (default: only on a terminal)."
)
SEED = typer.Option(0, "--seed", help="Random seed.")
CLUSTER = typer.Option(
    None, "--cluster", metavar="local[:N]|tcp://HOST:PORT",
    help="Run on Dask: a local cluster of N worker processes, or a running scheduler (workers read audio by path: "
    "a shared filesystem; pip install 'specmusic[cluster]'; docs/scaling.md).",
)


def check_cluster(cluster: str | None, jobs: int = 1) -> str | None:
    """``--cluster``, checked before any work (:func:`specmusic.distributed.check_cluster`).

    Raises
    ------
    ConfigError
        One line saying what to change.
    """
    if cluster is None:  # without one, specmusic.distributed is not imported (start-up time)
        return None
    from specmusic.distributed import check_cluster as check

    return check(cluster, jobs)


def _check_windows(value: str | None) -> str | None:
    """``--windows``: a positive whole number or ``all`` (a usage error otherwise: exit 2)."""
    if value is None:
        return None
    from specmusic.windowing import parse_windows  # the one reader of the option's grammar

    try:
        parse_windows(value)
    except errors.InputError:
        raise typer.BadParameter(f"{value!r} is neither a positive whole number nor 'all' (e.g. --windows 8)") from None
    return value


#: Parsed by :func:`specmusic.windowing.parse_windows`; the default is ``windowing.DEFAULT_WINDOWS``.
WINDOWS = typer.Option(
    None, "--windows", metavar="N|all", callback=_check_windows,
    help="Windows per track, spread evenly: only they are decoded and analysed (default 6); 'all': every window.",
)
TORCH_THREADS = typer.Option(0, "--threads", min=0, help="Torch threads (0 = the idle cores, by load average).")
