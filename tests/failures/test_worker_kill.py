"""A ``--jobs`` worker killed mid-batch (SIGKILL, as the out-of-memory killer does), for every command that has
``--jobs``: the batch is finished on a restarted pool, nothing is blamed for one death, and a file whose worker
dies each time it runs it is the one reported — one line — while the rest is done.

The workers are found from the parent (``/proc``), frozen, and the one holding an input file open is killed:
a file is in flight for sure, whatever the machine's load.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from specmusic.embeddings import read_library
from specmusic.embeddings.store.shard_catalog import read_sharded
from tests.conftest import tone, write
from tests.failures.procs import kill_worker_in_flight, spawn
from tests.embeddings.test_embeddings import make_tiny_onnx

N = 24  # songs, plus one long one


@pytest.fixture(scope="module")
def songs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("songs")
    for i in range(N):
        write(root / f"s{i:02d}.wav", tone(110.0 * (1 + 0.05 * i), 4.0, seed=i))
    write(root / "long.wav", tone(330.0, 240.0, seed=99))  # in flight long enough to be caught twice
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_onnx(tmp_path_factory.mktemp("model") / "model.onnx")


def _names(ids: list[str]) -> list[str]:
    return sorted(Path(i).name for i in ids)


ALL = sorted([f"s{i:02d}.wav" for i in range(N)] + ["long.wav"])


def _command(name: str, songs: Path, model: Path, out: Path) -> list[object]:
    """Each command, every window of each file read (so that ``long.wav`` is long in flight)."""
    return {
        "spectro": ["spectro", songs, "-o", out / "specs"],
        "embed -o f.npz": ["embed", songs, "-m", model, "--windows", "all", "-o", out / "lib.npz"],
        "embed -o dir/": ["embed", songs, "-m", model, "--windows", "all", "-o", f"{out}/lib/"],
        "classify": ["classify", songs, "-m", model, "--windows", "all", "--json"],
        "describe": ["describe", songs, "--json", "-o", out / "doc.json"],
    }[name]


def _done(name: str, out: Path, stdout: str) -> list[str]:
    """The songs the command's outputs hold."""
    if name == "spectro":
        return _names([json.loads(line)["source"] for line in (out / "specs" / "manifest.jsonl").open()])
    if name == "embed -o f.npz":
        return _names(read_library(out / "lib.npz").ids)
    if name == "embed -o dir/":
        return _names(read_sharded(out / "lib").ids)
    if name == "classify":
        return _names([json.loads(line)["path"] for line in stdout.splitlines()])
    return _names([f["path"] for f in json.loads((out / "doc.json").read_text())["files"]])


COMMANDS = ["spectro", "embed -o f.npz", "embed -o dir/", "classify", "describe"]


@pytest.mark.parametrize("name", COMMANDS)
def test_a_worker_killed_mid_batch_loses_nothing(name: str, songs: Path, model: Path, tmp_path: Path) -> None:
    run = spawn(*_command(name, songs, model, tmp_path), "-j", "2", logs=tmp_path / "logs",
                env={"SPECMUSIC_CACHE": str(tmp_path / "cache")})
    victim, held = kill_worker_in_flight(run, songs)
    rc, stdout, stderr = run.wait()
    assert rc == 0, stderr  # one death blames nobody: the file is run again
    assert "Error" not in stderr and "Traceback" not in stderr, stderr
    assert _done(name, tmp_path, stdout) == ALL
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]  # no temporary file of the killed worker left


@pytest.mark.parametrize("name", ["spectro", "embed -o f.npz", "describe"])
def test_a_file_that_kills_its_worker_twice_is_the_one_reported(name: str, songs: Path, model: Path,
                                                               tmp_path: Path) -> None:
    run = spawn(*_command(name, songs, model, tmp_path), "-j", "2", logs=tmp_path / "logs",
                env={"SPECMUSIC_CACHE": str(tmp_path / "cache")})
    kill_worker_in_flight(run, songs, holding="long.wav")
    kill_worker_in_flight(run, songs, holding="long.wav")  # its retry, on a worker of the new pool
    rc, stdout, stderr = run.wait()
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert rc == 1 and len(errors) == 1, stderr
    assert re.match(r"Error: \S*long\.wav: its worker died each time it ran \(killed by SIGKILL\) — ", errors[0])
    assert "Traceback" not in stderr
    assert _done(name, tmp_path, stdout) == [n for n in ALL if n != "long.wav"]


def test_the_tracks_of_the_killed_worker_keep_their_order(songs: Path, model: Path, tmp_path: Path) -> None:
    """classify prints in input order, whatever was run twice."""
    run = spawn(*_command("classify", songs, model, tmp_path), "-j", "2", logs=tmp_path / "logs")
    kill_worker_in_flight(run, songs)
    rc, stdout, stderr = run.wait()
    assert rc == 0, stderr
    assert [Path(json.loads(line)["path"]).name for line in stdout.splitlines()] == ALL
