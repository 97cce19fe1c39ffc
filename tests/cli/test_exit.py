"""How the console script ends: a command's status and output as ever, without the interpreter's teardown.

``specmusic.cli.app.main`` ends with ``os._exit`` once the exit handlers have run and both streams are
flushed (a cold ``classify song.wav`` spends ~35 ms freeing what it imported); a live thread, or
``SPECMUSIC_FULL_EXIT=1``, keeps the normal exit. Each test runs the real entry point in a fresh process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import tone, write

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """\
import atexit, os, sys, threading
marks = sys.argv[1]
mode = sys.argv[2]
sys.argv = ["specmusic", *sys.argv[3:]]

def mark(name):
    with open(os.path.join(marks, name), "w") as f:
        f.write("1")

atexit.register(mark, "atexit")

class Torn:  # freed by the interpreter's teardown, if there is one
    def __del__(self, _open=open, _path=os.path.join(marks, "teardown")):
        with _open(_path, "w") as f:
            f.write("1")

TORN = Torn()

import specmusic.cli.app as app

if mode == "thread":  # a live thread that finishes only once the command is over
    go = threading.Event()
    def late():
        go.wait()
        mark("thread")
    threading.Thread(target=late).start()
    original = app._exit_without_teardown
    def exit_after_go(code):
        go.set()
        original(code)
    app._exit_without_teardown = exit_after_go
app.main()
"""


def _run(tmp_path: Path, mode: str, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, set[str]]:
    marks = tmp_path / "marks"  # one run a test
    marks.mkdir()
    full_env = {k: v for k, v in os.environ.items() if k != "SPECMUSIC_FULL_EXIT"}
    full_env.update({"PYTHONPATH": str(ROOT), **(env or {})})
    argv = [sys.executable, "-c", SCRIPT, str(marks), mode, *args]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=full_env, timeout=300)
    return proc, {p.name for p in marks.iterdir()}


def test_a_finished_command_skips_the_teardown_but_runs_exit_handlers_and_flushes(tmp_path: Path) -> None:
    songs = [write(tmp_path / f"song{i}.wav", tone(220.0 * (i + 1), 2.0)) for i in range(3)]
    proc, marks = _run(tmp_path, "plain", "classify", "--json", *map(str, songs))
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 3  # block-buffered stdout (a pipe) reached the reader
    assert "atexit" in marks  # exit handlers ran (temporary folders, multiprocessing, coverage)
    assert "teardown" not in marks  # the interpreter did not free its modules' objects


def test_a_failed_command_keeps_its_status_and_message(tmp_path: Path) -> None:
    proc, marks = _run(tmp_path, "plain", "classify", str(tmp_path / "missing.wav"))
    assert proc.returncode == 1
    assert "missing.wav" in proc.stderr and "1 failed" in proc.stderr
    assert "atexit" in marks and "teardown" not in marks


def test_a_live_thread_keeps_the_normal_exit(tmp_path: Path) -> None:
    proc, marks = _run(tmp_path, "thread", "classify", str(tmp_path / "missing.wav"))
    assert proc.returncode == 1
    assert {"atexit", "thread"} <= marks  # the interpreter waited for the thread, then ran the handlers


def test_full_exit_variable_keeps_the_teardown(tmp_path: Path) -> None:
    env = {"SPECMUSIC_FULL_EXIT": "1"}
    proc, marks = _run(tmp_path, "plain", "classify", str(tmp_path / "missing.wav"), env=env)
    assert proc.returncode == 1
    assert {"atexit", "teardown"} <= marks
