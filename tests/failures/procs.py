"""Real processes for the fault tests: run ``specmusic`` in its own session, find its workers by walking
``/proc``, freeze them (SIGSTOP) to look at a run that cannot move meanwhile, and send real signals.

Every wait here is on a condition, in a bounded poll loop with a generous deadline: a loaded machine
makes a test slower, never wrong.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
DEADLINE = 300.0  # seconds any wait may take before the test fails (generous: a busy 2-core machine)


def wait_for(predicate: Callable[[], T], *, timeout: float = DEADLINE, what: str = "a condition") -> T:
    """Poll ``predicate`` until it returns something true, and return that; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < end, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(0.01)
    return value


@dataclass
class Run:
    """A ``python -m specmusic …`` process; its stdout and stderr go to files (a pipe nobody reads could fill)."""

    proc: subprocess.Popen
    out: Path
    err: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def wait(self, timeout: float = DEADLINE) -> tuple[int, str, str]:
        """Exit status, stdout and stderr once it has ended."""
        rc = self.proc.wait(timeout=timeout)
        return rc, self.out.read_text(errors="replace"), self.stderr()


def spawn(*args: object, logs: Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> Run:
    """Start ``python -m specmusic ARGS`` in a new session (its own process group), logs under ``logs``."""
    logs.mkdir(parents=True, exist_ok=True)
    n = len(list(logs.glob("stdout-*.txt")))
    out, err = logs / f"stdout-{n}.txt", logs / f"stderr-{n}.txt"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen([sys.executable, "-m", "specmusic", *map(str, args)], stdout=fo, stderr=fe,
                                cwd=cwd, env={**os.environ, **(env or {})}, start_new_session=True)  # fmt: skip
    return Run(proc, out, err)


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, …


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (``pgrep -P``): what ``/proc/PID/task/*/children`` lists, else
    a walk over ``/proc``."""
    try:
        found = set()
        for tid in os.listdir(f"/proc/{pid}/task"):
            found.update(int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split())
        return sorted(c for c in found if alive(c))
    except FileNotFoundError:  # a kernel without the children files (or the process is gone)
        pass
    except OSError:
        return []
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and fields[1] == str(pid) and fields[0] != "Z":
                out.append(int(entry))
    return sorted(out)


def open_files(pid: int, under: Path) -> list[str]:
    """The files under ``under`` that process ``pid`` has open now."""
    root = str(under.resolve()) + os.sep
    held = []
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith(root):
                    held.append(target)
    return held


@contextlib.contextmanager
def frozen(pids: list[int]) -> Iterator[list[int]]:
    """SIGSTOP ``pids`` for the block (nothing they do can change meanwhile), SIGCONT after."""
    stopped = []
    try:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
        end = time.monotonic() + DEADLINE
        while not all((_stat(pid) or ["X"])[0] in "TtZX" for pid in stopped):  # stopped for real before we look
            assert time.monotonic() < end, "a process did not stop"
            time.sleep(0.0002)
        yield stopped
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def kill_worker_in_flight(run: Run, inputs: Path, *, holding: str | None = None) -> tuple[int, str]:
    """SIGKILL one worker of ``run`` while it has an input file open (a file in flight): the workers are frozen,
    the one found holding a file under ``inputs`` (the one named ``holding``, if given) is killed, the others go on.
    Between looks the workers run for a moment only, so the run cannot slip past on a loaded machine.

    Returns the killed worker's pid and the file it had open.
    """
    end = time.monotonic() + DEADLINE
    while True:
        assert run.running(), f"the run ended before a file was caught in flight:\n{run.stderr()}"
        assert time.monotonic() < end, "no worker was seen with an input file open"
        with frozen(children(run.pid)) as workers:
            for pid in workers:
                held = [f for f in open_files(pid, inputs) if holding is None or Path(f).name == holding]
                if held:
                    os.kill(pid, signal.SIGKILL)
                    return pid, held[0]
        time.sleep(0.001)


def signal_mid_run(run: Run, sig: int, ready: Callable[[], bool], *, unfinished: Callable[[], bool]) -> list[int]:
    """Send ``sig`` to ``run`` as soon as ``ready()``, while ``unfinished()`` shows work left: each look is taken
    with the whole run frozen (SIGSTOP), and the signal sent before it goes on, so the run cannot end in between.

    Returns the pids of the run's workers at that moment (they must be gone when it exits).
    """
    end = time.monotonic() + DEADLINE
    while True:
        assert time.monotonic() < end, "the run never got going"
        group = [run.pid, *children(run.pid)]
        with frozen(group):
            assert run.running(), f"the run ended before it could be interrupted:\n{run.stderr()}"
            if ready():
                assert unfinished(), "too little work was left to interrupt: make the run longer"
                os.kill(run.pid, sig)
                return group[1:]
        time.sleep(0.001)  # let it run a moment between looks
