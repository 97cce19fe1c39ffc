"""Shared CLI plumbing: error reporting, stdin path lists, common options."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import typer

from specmusic.errors import SpecmusicError


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
    """Turn SpecmusicError into ``Error: …`` on stderr and exit code 1 (traceback with --verbose)."""
    try:
        yield
    except SpecmusicError as exc:
        if STATE.verbose:
            raise
        err(f"Error: {exc}")
        raise typer.Exit(1) from None
    except OSError as exc:  # an output that cannot be written, a disk that filled up, …
        if STATE.verbose:
            raise
        from specmusic.fileio import display_path

        where = f"{display_path(exc.filename)}: " if exc.filename else ""
        err(f"Error: {where}{(exc.strerror or str(exc)).lower()} — check the path, its permissions and free space")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err("Interrupted — completed outputs are kept; rerun the same command to resume")
        raise typer.Exit(130) from None


def expand_stdin(inputs: list[str] | None) -> list[str]:
    """Replace a ``-`` argument by the paths read from stdin, one a line."""
    from specmusic.data import read_path_list

    out: list[str] = []
    for item in inputs or []:
        if item == "-":
            out.extend(read_path_list(sys.stdin))
        else:
            out.append(item)
    return out


JOBS = typer.Option(1, "--jobs", "-j", min=1, help="Worker processes.")
PROGRESS = typer.Option(
    None, "--progress/--no-progress", help="Progress bar on stderr (default: only on a terminal)."
)
SEED = typer.Option(0, "--seed", help="Random seed.")
TORCH_THREADS = typer.Option(0, "--threads", min=0, help="Torch threads (0 = the idle cores, by load average).")
