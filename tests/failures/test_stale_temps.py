"""Temporary files that a killed process left (SIGKILL: no handler runs) are swept by the next run: only names of
the atomic writer's pattern, only inside the output folder, only files no live process holds."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from specmusic.cli.app import app
from specmusic.fileio import atomic_path, sweep_stale_temps
from tests.conftest import tone, write
from tests.failures.procs import DEADLINE, children, frozen, spawn


def _old(path: Path, text: str = "half-written") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (time.time() - 3600, time.time() - 3600))
    return path


def _partial(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*") if p.is_file())


def test_the_sweep_removes_only_what_no_live_process_holds(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(gone.stdout)  # a pid that lived, and is gone
    stale = [_old(tmp_path / ".t01.npz.k3j4h5g6.tmp"), _old(tmp_path / "sub" / ".t02.png.a_b9c8d7.png"),
             _old(tmp_path / f".t05.png.{dead}.tmp.png")]
    mine = _old(tmp_path / f".t06.png.{os.getpid()}.tmp.png")  # a live writer's pid: kept
    foreign = [_old(tmp_path / ".bashrc"), _old(tmp_path / "notes.tmp"), _old(tmp_path / ".t03.npz.short.tmp")]
    young = tmp_path / ".t04.npz.abcdefgh.tmp"
    young.write_text("being written")  # modified after the run started: kept
    with atomic_path(tmp_path / "live.npz") as live:  # a write in progress holds its lock
        os.utime(live, (time.time() - 3600, time.time() - 3600))
        assert sweep_stale_temps(tmp_path, before=time.time() - 60) == 2  # not recursive: the top folder only
        assert live.exists() and not stale[0].exists() and stale[1].exists() and not stale[2].exists()
        assert sweep_stale_temps(tmp_path, before=time.time() - 60, recursive=True) == 1
        assert live.exists() and not stale[1].exists()
    assert all(p.exists() for p in foreign) and young.exists() and mine.exists()
    other = _old(tmp_path / ".other.json.abcdefgh.tmp")
    assert sweep_stale_temps(tmp_path, targets=["doc.json"]) == 0 and other.exists()  # only the named outputs'
    assert sweep_stale_temps(tmp_path, targets=["other.json"]) == 1 and not other.exists()


def test_a_live_write_in_another_process_is_kept(tmp_path: Path) -> None:
    """The lock is what tells: a writer alive in another process keeps its temporary file, a dead one does not."""
    code = ("import sys, time; from specmusic.fileio import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n    print(tmp, flush=True); time.sleep(3600)\n")  # fmt: skip
    writer = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "lib.npz")], stdout=subprocess.PIPE, text=True)
    try:
        tmp = Path(writer.stdout.readline().strip())
        assert sweep_stale_temps(tmp_path, before=time.time() + 60) == 0 and tmp.exists()
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=DEADLINE)
        assert tmp.exists()  # SIGKILL: nothing removed it
        assert sweep_stale_temps(tmp_path, before=time.time() + 60) == 1 and not tmp.exists()
    finally:
        writer.kill()
        writer.wait()


@pytest.fixture
def songs(tmp_path: Path) -> Path:
    root = tmp_path / "songs"
    for i in range(40):
        write(root / f"t{i:02d}.wav", tone(100.0 + 30 * i, 2.0, seed=i))
    return root


def test_spectro_killed_mid_write_leaves_nothing_after_the_rerun(songs: Path, tmp_path: Path) -> None:
    """SIGKILL to the whole run while a worker writes a picture; the rerun completes and removes the leftover."""
    out = tmp_path / "specs"
    run = spawn("spectro", songs, "--png", "-j", "2", "-o", out, logs=tmp_path / "logs")
    end = time.monotonic() + DEADLINE
    while True:  # freeze the run; kill it if a temporary file is there, else let it go on and look again
        assert run.running() and time.monotonic() < end, "never caught the run writing a file"
        with frozen([run.pid, *children(run.pid)]) as group:
            if _partial(out):
                for pid in group:
                    os.kill(pid, signal.SIGKILL)
                break
        time.sleep(0.005)
    run.wait()
    left = _partial(out)
    assert left, "the killed run left no temporary file"
    res = CliRunner().invoke(app, ["spectro", str(songs), "--png", "-o", str(out)])
    assert res.exit_code == 0, res.stderr
    assert _partial(out) == []
    assert len(list(out.glob("t*.npz"))) == len(list(out.glob("t*.png"))) == 40


def test_embed_sweeps_what_a_killed_run_left_beside_its_library(songs: Path, tmp_path: Path) -> None:
    """A library file's folder (only that library's temporary files: the folder may hold anything) and a sharded
    library's folder (all of them, recursively: the folder is the library's) are swept when an embed starts."""
    stale = _old(tmp_path / ".lib.npz.k3j4h5g6.tmp")
    other = _old(tmp_path / ".notes.txt.abcdefgh.tmp")  # not the library's: kept
    res = CliRunner().invoke(app, ["embed", str(songs), "-m", "mfcc", "--duration", "0.5", "-o", str(tmp_path / "lib.npz")])
    assert res.exit_code == 0, res.stderr
    assert not stale.exists() and other.exists()
    shards = tmp_path / "shards"
    res = CliRunner().invoke(app, ["embed", str(songs), "-m", "mfcc", "--duration", "0.5", "-o", f"{shards}/"])
    assert res.exit_code == 0, res.stderr
    left = [_old(shards / ".index.faiss.abcdefgh.tmp"), _old(shards / ".stats.npz.k3j4h5g6.tmp")]
    res = CliRunner().invoke(app, ["embed", str(songs), "-m", "mfcc", "--duration", "0.5", "-o", f"{shards}/"])
    assert res.exit_code == 0, res.stderr
    assert not any(p.exists() for p in left) and _partial(shards) == []


def test_figures_are_written_through_atomic_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A picture's temporary file is atomic_path's (locked, ``.NAME.XXXXXXXX.png``), which the sweep knows."""
    from specmusic.plotting import pyplot, save_figure_atomic

    fig, ax = pyplot().subplots()
    ax.plot([0, 1], [0, 1])
    written = []
    savefig = fig.savefig
    monkeypatch.setattr(fig, "savefig", lambda path, **kw: (written.append(Path(path).name), savefig(path, **kw)))
    save_figure_atomic(fig, tmp_path / "pic.png")
    assert len(written) == 1 and re.fullmatch(r"\.pic\.png\.[a-z0-9_]{8}\.png", written[0]), written
    assert [p.name for p in tmp_path.iterdir()] == ["pic.png"]
