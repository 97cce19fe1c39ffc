"""The ``specmusic`` Typer app: registers each subcommand module.

:data:`COMMANDS` lists the subcommands in help order. The console script builds the app with only
the subcommand it runs (``specmusic classify …`` imports and converts no other command module: part
of a cold start under a third of a second); anything else — the root ``--help``, a root option,
an unknown name — gets the whole app, which is also what ``specmusic.cli.app.app`` is (built on first
access) for tests and the completion scripts.
"""

from __future__ import annotations

import importlib
import signal
import sys
from typing import Any

import typer

from specmusic import __version__
from specmusic.cli import _coerce
from specmusic.cli._options import STATE

_coerce.install()  # option values converted without importing pydantic (start-up time); same values and errors

#: Subcommand name → ``module:attribute`` (a command function, or a Typer group), in help order.
COMMANDS: dict[str, str] = {
    "spectro": "specmusic.cli.spectro:spectro_cli",
    "describe": "specmusic.cli.describe:describe_cli",
    "nmf": "specmusic.cli.nmf:nmf_app",
    "train": "specmusic.cli.train:train_cli",
    "classify": "specmusic.cli.classify:classify_cli",
    "embed": "specmusic.cli.embed:embed_cli",
    "recommend": "specmusic.cli.recommend:recommend_cli",
    "playlist": "specmusic.cli.playlist:playlist_cli",
    "serve": "specmusic.cli.serve:serve_cli",
    "generate": "specmusic.cli.generate:generate_app",
    "report": "specmusic.cli.report:report_cli",
}
_COMMAND_CLASSES = {"train": "specmusic.cli.train:OptionalValueCommand"}  # --pretrained with no value


def _version(value: bool) -> None:
    if value:
        print(f"specmusic {__version__}")
        raise typer.Exit()


def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Music machine learning on spectrograms: files in, files out, chainable in shell pipelines."""
    from specmusic.batch import show_tracebacks

    STATE.verbose = verbose
    show_tracebacks(verbose)  # a batch's internal errors: each file's traceback, and the batch goes on


def _load(target: str) -> Any:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def build_app(only: str | None = None) -> typer.Typer:
    """The app with every subcommand, or with ``only`` that one (same options, help and errors)."""
    cli = typer.Typer(
        name="specmusic",
        help="Music machine learning on spectrograms: files in, files out, chainable in shell pipelines.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_show_locals=False,
        # Plain Click help: option names never cut at 80 columns, no <bool> metavar on flags, and square
        # brackets (pip install 'specmusic[ann]') printed as written instead of read as rich markup.
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )
    cli.callback()(_root)
    for name, target in COMMANDS.items():
        if only is not None and name != only:
            continue
        command = _load(target)
        if isinstance(command, typer.Typer):
            cli.add_typer(command, name=name)
        elif name in _COMMAND_CLASSES:
            cli.command(name, cls=_load(_COMMAND_CLASSES[name]))(command)
        else:
            cli.command(name)(command)
    return cli


def __getattr__(name: str) -> Any:
    """``app``: the whole app, built on first access (PEP 562)."""
    if name == "app":
        value = globals()["app"] = build_app()
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Console-script entry point.

    SIGTERM (``kill``, systemd, Slurm, Kubernetes) is handled as Ctrl-C is — what finished is kept, the
    same message — and the exit status is 143 (130 for Ctrl-C).
    """
    from specmusic.workers import Terminated, raise_on_sigterm

    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, _on_sigpipe)  # `specmusic … | head` ends quietly
    raise_on_sigterm()
    first = sys.argv[1] if len(sys.argv) > 1 else None
    try:
        cli = build_app(only=first) if first in COMMANDS else __getattr__("app")
        cli()
    except Terminated:  # before a command's own handling started (while importing)
        sys.exit(143)
    except SystemExit as exc:
        if exc.code not in (0, None, 143) and _aborted_by_sigterm(exc):
            sys.exit(143)
        if isinstance(exc.code, int) or exc.code is None:
            _exit_without_teardown(exc.code or 0)
        raise


def _exit_without_teardown(code: int) -> None:
    """End the process as a normal exit would, minus the interpreter's teardown; return when that is unsafe.

    After the command, finalising the interpreter (freeing every module's objects, onnxruntime's session
    and thread pools) took 25–29 ms, an eighth of a cold ``classify song.wav`` (docs/pretrained.md). Only
    when no other thread is alive: the exit handlers run (temporary folders, multiprocessing, coverage), both
    streams are flushed, then ``os._exit``. A stream that cannot be flushed (a reader gone, a full disk)
    returns, and the normal exit reports it as it always has. ``SPECMUSIC_FULL_EXIT=1`` keeps the teardown.
    """
    import atexit
    import os
    import threading

    if os.environ.get("SPECMUSIC_FULL_EXIT") or threading.active_count() > 1:
        return
    atexit._run_exitfuncs()
    if threading.active_count() > 1:  # an exit handler started one: let the interpreter wait for it
        return
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        return
    os._exit(code)


def _on_sigpipe(signum: int, frame: Any) -> None:
    """SIGPIPE: when stdout's reader is gone (``specmusic … | head``), end as quietly as the default action
    would. Another pipe's (a ``--jobs`` worker that died, a lost connection) is no reason to die: the write that
    failed raises, and its owner copes."""
    from specmusic.cli._options import end_if_stdout_gone

    end_if_stdout_gone()


def _aborted_by_sigterm(exc: SystemExit) -> bool:
    """Typer turns a KeyboardInterrupt outside a command's error handling into exit 130: was it SIGTERM's?"""
    from specmusic.workers import Terminated

    cause = exc.__context__
    while cause is not None:
        if isinstance(cause, Terminated):
            return True
        cause = cause.__context__
    return False
