"""SIGTERM (what ``kill``, systemd, Slurm and Kubernetes send) is Ctrl-C's equal for every long command: what
finished is kept, the same message is printed, the exit status is 143 (130 for Ctrl-C), the workers are gone
before the parent exits, and the rerun does only the rest.

Each test freezes the whole run (SIGSTOP) while it checks that work is left and sends the signal, so the signal
lands mid-run however loaded the machine is.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from specmusic.cli.app import app
from specmusic.embeddings import read_library
from specmusic.embeddings.store.shard_catalog import read_sharded
from tests.conftest import tone, write
from tests.failures.procs import alive, signal_mid_run, spawn
from tests.failures.test_failures import TINY_GEN

INTERRUPTED = "Interrupted — completed outputs are kept; rerun the same command to resume"
N = 40


def _songs(root: Path, seconds: float) -> Path:
    for i in range(N):
        write(root / f"t{i:02d}.wav", tone(100.0 + 30 * i, seconds, seed=i))
    return root


@pytest.fixture(scope="module")
def songs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _songs(tmp_path_factory.mktemp("songs"), 3.0)


def _partial(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if p.is_file()]


def _progress(run, total: int) -> int:  # noqa: ANN001
    """Tracks the run's progress bar says it has finished (what the parent itself has collected)."""
    return max((int(n) for n in re.findall(rf"(\d+)/{total} ", run.stderr())), default=0)


EVERY_TRACK = {"TQDM_MININTERVAL": "0", "TQDM_MINITERS": "1"}  # the bar is drawn at every track


def test_spectro_jobs_stopped_by_sigterm_keeps_its_arrays_and_manifest(songs: Path, tmp_path: Path) -> None:
    """As Ctrl-C (tests/test_failures.py): exit 143 instead of 130, and a manifest of what was kept."""
    out = tmp_path / "specs"
    run = spawn("spectro", songs, "--png", "-j", "2", "-o", out, "--progress", logs=tmp_path, env=EVERY_TRACK)
    done = lambda: _progress(run, N)  # noqa: E731
    workers = signal_mid_run(run, signal.SIGTERM, lambda: done() >= 3, unfinished=lambda: done() <= N - 5)
    rc, _, stderr = run.wait()
    assert rc == 143 and INTERRUPTED in stderr and "Traceback" not in stderr, (rc, stderr)
    assert workers and not any(alive(pid) for pid in workers)  # the parent waited for its workers
    pictured = {p.stem for p in out.glob("t*.png")}
    listed = {Path(json.loads(line)["path"]).stem for line in (out / "manifest.jsonl").open()}
    assert 3 <= len(listed) < N and listed <= pictured  # the manifest lists finished tracks (array and picture)
    assert not _partial(out)
    for path in out.glob("t*.npz"):  # what was kept is whole
        with np.load(path, allow_pickle=False) as z:
            assert np.isfinite(z["spec"]).all()
    res = CliRunner().invoke(app, ["spectro", str(songs), "--png", "-o", str(out)])
    assert res.exit_code == 0, res.stderr
    written, kept = map(int, re.search(r"(\d+) written, (\d+) up to date", res.stderr).groups())
    assert written + kept == N and kept >= len(listed)
    assert len(list(out.glob("t*.npz"))) == len(list(out.glob("t*.png"))) == N


@pytest.fixture(scope="module")
def long_songs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 songs of 20 s: embedding them takes long enough to be watched track by track."""
    return _songs(tmp_path_factory.mktemp("long_songs"), 20.0)


@pytest.mark.parametrize("output", ["lib/", "lib.npz"])
def test_embed_stopped_by_sigterm_keeps_its_tracks(output: str, long_songs: Path, tmp_path: Path) -> None:
    _embed_stopped(signal.SIGTERM, output, long_songs, tmp_path)


@pytest.mark.parametrize("output", ["lib/", "lib.npz"])
def test_embed_interrupted_says_exactly_what_it_kept(output: str, long_songs: Path, tmp_path: Path) -> None:
    """Ctrl-C (a real SIGINT): "N track(s) are kept" counts what the folder or the journal holds, not one less
    (a track written, then interrupted before it was counted) nor one more."""
    _embed_stopped(signal.SIGINT, output, long_songs, tmp_path)


def _embed_stopped(sig: int, output: str, songs: Path, tmp_path: Path) -> None:
    lib = f"{tmp_path}/{output}"
    run = spawn("embed", songs, "-m", "mfcc", "-j", "2", "-o", lib, "--progress", logs=tmp_path, env=EVERY_TRACK)
    done = lambda: _progress(run, N)  # noqa: E731
    signal_mid_run(run, sig, lambda: done() >= 3, unfinished=lambda: done() <= N // 2)
    rc, _, stderr = run.wait()
    assert rc == 128 + sig and INTERRUPTED in stderr, (rc, stderr)
    m = re.search(r"embed: interrupted — (\d+) (?:embedded )?track\(s\) (?:are )?kept in", stderr)
    assert m and int(m.group(1)) >= 3, stderr
    if output == "lib/":
        kept = len(read_sharded(lib))  # an index with its parts, not an index with none
    else:  # the journal's whole lines after its header
        kept = Path(f"{lib}.partial.jsonl").read_bytes().count(b"\n") - 1
    assert 3 <= kept < N
    assert int(m.group(1)) == kept, stderr  # what the line says is what was kept
    res = CliRunner().invoke(app, ["embed", str(songs), "-m", "mfcc", "-o", lib])
    assert res.exit_code == 0, res.stderr
    done_again = f"{N - kept} embedded, {kept} unchanged, 0 failed" if output == "lib/" else \
        f"{N - kept} embedded, 0 unchanged, {kept} resumed"
    assert f"embed: {done_again}" in res.stderr, res.stderr
    assert len(read_sharded(lib) if output == "lib/" else read_library(lib)) == N


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_describe_stopped_by_sigterm_keeps_its_analyses(jobs: str, songs: Path, tmp_path: Path) -> None:
    doc, journal = tmp_path / "doc.json", tmp_path / "doc.json.partial.jsonl"

    def analysed() -> int:  # whole lines after the header
        return max(0, journal.read_bytes().count(b"\n") - 1) if journal.exists() else 0

    run = spawn("describe", songs, "-j", jobs, "-o", doc, logs=tmp_path)
    workers = signal_mid_run(run, signal.SIGTERM, lambda: analysed() >= 3, unfinished=lambda: analysed() <= N - 5)
    rc, _, stderr = run.wait()
    assert rc == 143 and INTERRUPTED in stderr and "Traceback" not in stderr, (rc, stderr)
    assert not any(alive(pid) for pid in workers)
    kept = analysed()
    assert 3 <= kept < N and not doc.exists()
    res = CliRunner().invoke(app, ["describe", str(songs), "--json", "-o", str(doc)])
    assert res.exit_code == 0, res.stderr
    assert json.loads(doc.read_text())["clips"] == N and not journal.exists()


def test_generate_train_stopped_by_sigterm_saves_and_exports(tmp_path: Path) -> None:
    import torch

    data = tmp_path / "music"
    for li, (label, f) in enumerate((("low", 110.0), ("high", 880.0))):
        for i in range(2):
            write(data / label / f"{label}.{i}.wav", tone(f * (1 + 0.03 * i), 1.5, seed=10 * li + i))
    gen = tmp_path / "gen"
    run = spawn("generate", "train", data, "-o", gen, "--minutes", "10", *TINY_GEN, logs=tmp_path)
    signal_mid_run(run, signal.SIGTERM, lambda: (gen / "checkpoint.pt").exists(), unfinished=lambda: True)
    rc, _, stderr = run.wait()
    assert rc == 143 and "interrupted at step" in stderr and "Traceback" not in stderr, (rc, stderr)
    step = torch.load(gen / "checkpoint.pt", map_location="cpu", weights_only=True)["step"]
    assert step > 0 and json.loads((gen / "config.json").read_text())["step"] == step
    assert (gen / "model.onnx").is_file() and not _partial(gen)
    res = CliRunner().invoke(app, ["generate", "train", str(data), "-o", str(gen), "--minutes", "0.005", *TINY_GEN])
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["resumed_from"] == step


def test_train_stopped_by_sigterm_resumes_from_its_checkpoint(genre_tree: Path, tmp_path: Path) -> None:
    import torch

    out = tmp_path / "run"
    fast = ["--chunk-seconds", "0.5", "--threads", "1", "--no-progress"]
    run = spawn("train", genre_tree, "-o", out, "--epochs", "500", "--patience", "500", *fast, logs=tmp_path)
    signal_mid_run(run, signal.SIGTERM, lambda: (out / "checkpoint.pt").exists(), unfinished=lambda: True)
    rc, _, stderr = run.wait()
    assert rc == 143 and INTERRUPTED in stderr and "Traceback" not in stderr, (rc, stderr)
    assert not _partial(out)
    epoch = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)["epoch"]
    res = CliRunner().invoke(app, ["train", str(genre_tree), "-o", str(out), "--epochs", str(epoch + 1),
                                   "--patience", "500", *fast])  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert f"after epoch {epoch}" in res.stderr and (out / "model.onnx").is_file()


def test_sigterm_outside_a_commands_error_handling_still_exits_143(tmp_path: Path) -> None:
    """Typer makes any KeyboardInterrupt that escapes a command exit 130; SIGTERM's stays 143."""
    script = tmp_path / "boom.py"
    script.write_text(
        "import sys\nfrom specmusic.cli import app\nfrom specmusic.workers import Terminated\n\n\n"
        "def boom() -> None:\n    raise Terminated()\n\n\n"
        "app.COMMANDS['boom'] = '__main__:boom'\nsys.argv = ['specmusic', 'boom']\napp.main()\n"
    )
    import subprocess
    import sys

    assert subprocess.run([sys.executable, str(script)], capture_output=True, timeout=600).returncode == 143
