"""One file's unexpected exception, or a task that kills its worker, never aborts a batch: every batch command
carries on, names the file in one line and exits 1 at the end.

A FLAC cut to a third of its length makes libsndfile raise ``Internal psf_fseek() failed`` (a
``LibsndfileError`` nobody expects) when a window past the cut is sought: the input of the issue.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import soundfile as sf
from typer.testing import CliRunner

from specmusic.batch import open_executor, run_tasks
from specmusic.cli.app import app
from specmusic.embeddings import read_library
from specmusic.embeddings.store.shard_catalog import read_sharded
from specmusic.errors import ConfigError
from specmusic.workers import worker_pool
from tests.conftest import melody, tone, write
from tests.embeddings.test_embeddings import make_tiny_onnx

GOOD = ["a.wav", "b.wav", "c.wav"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three good 24 s songs and ``cut.flac``: 30 s of music whose file was cut to a third."""
    root = tmp_path_factory.mktemp("folder")
    for i, name in enumerate(GOOD):
        write(root / name, tone(150.0 * (i + 1), 24.0, seed=i))
    full = write(root.parent / "full.flac", melody(30.0, seed=1), format="FLAC")
    data = full.read_bytes()
    (root / "cut.flac").write_bytes(data[: len(data) // 3])
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_onnx(tmp_path_factory.mktemp("model") / "model.onnx")


def run(*args: object):  # noqa: ANN201
    return CliRunner().invoke(app, [str(a) for a in args])


def one_error(result, name: str) -> str:  # noqa: ANN001
    """Exit 1, exactly one ``Error:`` line and it names ``name``, no traceback."""
    assert result.exit_code == 1, (result.exit_code, result.stderr, result.exception)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and name in lines[0], result.stderr
    return lines[0]


def _outputs(command: str, out: Path, stdout: str) -> list[str]:
    """The songs the command's outputs hold."""
    if command.startswith("spectro"):
        return sorted(Path(json.loads(line)["source"]).name for line in (out / "specs" / "manifest.jsonl").open())
    if command == "embed -o f.npz":
        return sorted(Path(i).name for i in read_library(out / "lib.npz").ids)
    if command == "embed -o dir/":
        return sorted(Path(i).name for i in read_sharded(out / "lib").ids)
    if command == "classify":
        return sorted(Path(json.loads(line)["path"]).name for line in stdout.splitlines())
    return sorted(Path(f["path"]).name for f in json.loads(stdout)["files"])


def _args(command: str, folder: Path, model: Path | None, out: Path) -> list[object]:
    return {
        "spectro": ["spectro", folder, "-o", out / "specs"],
        "spectro --offset": ["spectro", folder, "--offset", "18", "-o", out / "specs"],  # a seek past the cut
        "classify": ["classify", folder, "-m", model, "--json"],
        "embed -o f.npz": ["embed", folder, *(["-m", model] if model else []), "-o", out / "lib.npz"],
        "embed -o dir/": ["embed", folder, *(["-m", model] if model else []), "-o", f"{out}/lib/"],
        "describe": ["describe", folder, "--json"],
    }[command]


COMMANDS = ["spectro", "spectro --offset", "classify", "embed -o f.npz", "embed -o dir/", "describe"]


def test_embed_of_a_folder_with_a_truncated_flac_writes_the_library(folder: Path, tmp_path: Path) -> None:
    """The issue's input: ``embed FOLDER -o lib.npz`` with the default model, whose windows seek past the cut."""
    res = run("embed", folder, "-o", tmp_path / "lib.npz")
    line = one_error(res, "cut.flac")
    # the default model's windows now meet the cut where the decoder reports it (a decoding error); where
    # libsndfile raises from the seek instead (spectro --offset below), it is an internal error: one line either way
    assert ("decoding failed (" in line and "check that it is a complete" in line) or (
        "internal error (LibsndfileError: Internal psf_fseek() failed.) — rerun with -v for the traceback" in line)
    assert sorted(Path(i).name for i in read_library(tmp_path / "lib.npz").ids) == GOOD


@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_truncated_flac_among_good_files(command: str, jobs: str, folder: Path, model: Path,
                                           tmp_path: Path) -> None:  # fmt: skip
    res = run(*_args(command, folder, model, tmp_path), "-j", jobs)
    line = one_error(res, "cut.flac")
    if command == "spectro --offset":
        assert "internal error (LibsndfileError" in line
    assert _outputs(command, tmp_path, res.stdout) == GOOD


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clean")
    for i, name in enumerate(GOOD):
        write(root / name, tone(150.0 * (i + 1), 3.0, seed=i))
    return root


@pytest.fixture
def exploding_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening ``b.wav`` raises an exception no code expects (forked workers inherit the patch)."""
    opened = sf.SoundFile.__init__

    def explode(self, file, *args, **kwargs) -> None:  # noqa: ANN001
        opened(self, file, *args, **kwargs)
        if os.path.basename(os.fsdecode(file)) == "b.wav":
            self.close()
            raise ZeroDivisionError("the decoder divided by zero")

    monkeypatch.setattr(sf.SoundFile, "__init__", explode)


@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("command", ["spectro", "classify", "embed -o f.npz", "embed -o dir/", "describe"])
def test_any_exception_in_a_task_is_that_files_failure(command: str, jobs: str, clean: Path, model: Path,
                                                       tmp_path: Path, exploding_decoder: None) -> None:  # fmt: skip
    res = run(*_args(command, clean, model, tmp_path), "-j", jobs)
    line = one_error(res, "b.wav")
    assert line.endswith("b.wav: internal error (ZeroDivisionError: the decoder divided by zero) — rerun with -v "
                         "for the traceback")
    assert _outputs(command, tmp_path, res.stdout) == ["a.wav", "c.wav"]


def test_verbose_prints_the_traceback_of_each_internal_error(folder: Path, tmp_path: Path) -> None:
    res = run("-v", "spectro", folder, "--offset", "18", "-o", tmp_path / "specs", "-j", "2")
    assert res.exit_code == 1, res.stderr
    assert "Traceback (most recent call last)" in res.stderr and "LibsndfileError: Internal psf_fseek()" in res.stderr
    (line,) = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert "cut.flac: internal error (LibsndfileError" in line and line.endswith("its traceback is above")
    assert _outputs("spectro", tmp_path, "") == GOOD


# -- the local pool itself: which task is blamed when a worker dies ----------------------------------
def _task(item: str, marks: str) -> str:
    """Module level, so forked workers run it: ``poison`` kills its worker every time, ``once`` the first time."""
    if item == "poison" or (item == "once" and not os.path.exists(os.path.join(marks, "once"))):
        if item == "once":
            Path(marks, "once").touch()
        os.kill(os.getpid(), signal.SIGKILL)
    Path(marks, f"ran-{item}-{os.getpid()}").touch()
    return item.upper()


def _results(items: list[str], marks: Path) -> dict[str, object]:
    with open_executor(jobs=2, n_items=len(items)) as executor:
        return dict(run_tasks(executor, _task, items, args=(str(marks),), on_failure=lambda item, error: error))


def test_a_task_that_kills_its_worker_twice_is_blamed_and_only_it(tmp_path: Path) -> None:
    items = [f"t{i:02d}" for i in range(12)] + ["poison"] + [f"u{i:02d}" for i in range(12)]
    results = _results(items, tmp_path)
    assert results["poison"] == (
        "poison: its worker died each time it ran (killed by SIGKILL) — the file may crash the decoder or need "
        "more memory than a worker has; check it, or leave it out"
    )
    assert {k: v for k, v in results.items() if k != "poison"} == {i: i.upper() for i in items if i != "poison"}


def test_one_death_blames_nobody(tmp_path: Path) -> None:
    """The task in flight on the dead worker, and those beside it, are run again: all succeed."""
    items = [f"t{i:02d}" for i in range(8)] + ["once"] + [f"u{i:02d}" for i in range(8)]
    assert _results(items, tmp_path) == {i: i.upper() for i in items}
    assert (tmp_path / "once").exists()  # it did kill a worker


def _die_at_start() -> None:
    os._exit(3)


def test_a_pool_whose_workers_die_at_start_gives_up_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"keep dying before they finish a task \(exit status 3\)"):
        with worker_pool(2, initializer=_die_at_start) as pool:
            from specmusic.distributed import map_bounded

            list(map_bounded(pool, abs, range(-4, 0)))
