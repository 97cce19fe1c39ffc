"""A full disk (issue 22, item 7): one line naming the path that could not be written, no partial output set.

On a real 3 MB tmpfs where the machine lets the tests mount one (root; skipped with the reason
elsewhere), and with ``ENOSPC`` (or libsndfile's "System error") raised by a monkeypatched writer
everywhere: ``nmf`` and ``generate sample`` write whole sets or none, ``spectro`` stops with one line
and lists the tracks it did not finish in ``errors.jsonl``, ``embed``/``report``/``mosaic`` name the
file, ``classify > file`` names stdout.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from specmusic.cli.app import app
from specmusic.fileio import named_write_error
from tests.conftest import tone, write
from tests.failures.test_failures import assert_clean_failure, no_partial_files, run

ROOT = Path(__file__).resolve().parents[2]
TINY_GEN = ["--n-mels", "16", "--patch-frames", "16", "--base", "8", "--batch-size", "4", "--threads", "1",
            "--no-progress"]


def noisy(seconds: float, seed: int = 0) -> np.ndarray:
    """A tone in noise: arrays and WAVs of it do not compress to nothing."""
    rng = np.random.default_rng(seed)
    return (tone(220.0 * (1 + seed), seconds) + 0.05 * rng.standard_normal(int(seconds * 22050))).astype(np.float32)


def fill(disk: Path) -> None:
    """Write zeros to ``disk`` until no byte is left."""
    fd = os.open(disk / "fill", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
        while True:  # the last few bytes
            try:
                os.write(fd, b"\0" * 512)
            except OSError:
                break
    finally:
        os.close(fd)


def hidden_or_temp(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(".") or p.suffix in (".tmp", ".part")]


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs (``mount -t tmpfs -o size=3m``), unmounted afterwards; skipped where it cannot be mounted."""
    where = tmp_path / "disk"
    where.mkdir()
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a 3 MB tmpfs needs root; the monkeypatched ENOSPC tests cover this machine")
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(where)], capture_output=True,
                              text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc})")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode})")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


@pytest.fixture(scope="module")
def long_songs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Six 20 s songs: an array and a picture each are ~560 kB, so five fit in 3 MB and the sixth does not."""
    root = tmp_path_factory.mktemp("long")
    return [write(root / "songs" / f"s{i}.wav", noisy(20.0, seed=i)) for i in range(6)]


@pytest.fixture(scope="module")
def generator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gen")
    for li, (label, f) in enumerate((("low", 110.0), ("high", 1760.0))):
        for i in range(2):
            write(root / "data" / label / f"{label}.{i}.wav", tone(f * (1 + 0.03 * i), 1.5, seed=10 * li + i))
    res = run("generate", "train", root / "data", "-o", root / "gen", "--epochs", "1", *TINY_GEN)
    assert res.exit_code == 0, res.stderr
    return root / "gen"


def no_space_line(result, path_part: str) -> str:  # noqa: ANN001
    line = assert_clean_failure(result, path_part)
    assert "no space left on device" in line.lower(), line
    return line


# -- on a real, small disk ------------------------------------------------------------------------
def test_nmf_on_a_full_disk_leaves_no_partial_set(disk: Path, long_songs: list[Path]) -> None:
    """Was a traceback (LibsndfileError: System error) and ``nmf.npz`` without parts or ``summary.json``."""
    line = no_space_line(run("nmf", long_songs[0], "-c", "4", "-i", "5", "-o", disk / "parts"), "component-0")
    assert str(disk / "parts") in line
    assert list((disk / "parts").iterdir()) == []


def test_generate_sample_on_a_full_disk_keeps_whole_samples(disk: Path, generator: Path) -> None:
    (disk / "other").write_bytes(b"\0" * 2_000_000)  # ~1 MB left: room for two 10 s samples (~0.5 MB each)
    res = run("generate", "sample", generator, "-n", "4", "--seconds", "10", "--steps", "2", "--gl-iter", "2",
              "-o", disk / "s", "--no-progress")
    no_space_line(res, str(disk / "s"))
    names = sorted(p.name for p in (disk / "s").iterdir())
    stems = {n.rsplit(".", 1)[0] for n in names}
    assert names == sorted(f"{s}.{ext}" for s in stems for ext in ("npy", "png", "wav")) and 0 < len(stems) < 4
    assert [json.loads(line)["path"] for line in res.stdout.splitlines()] == [
        str(disk / "s" / f"{s}.wav") for s in sorted(stems)]


def test_spectro_on_a_full_disk_names_the_file_and_every_track_it_did_not_do(disk: Path,
                                                                            long_songs: list[Path]) -> None:
    out = disk / "specs"
    res = run("spectro", long_songs[0].parent, "-o", out, "--png")
    line = no_space_line(res, str(out))
    done = [json.loads(r)["path"] for r in (out / "manifest.jsonl").read_text().splitlines()]
    assert 0 < len(done) < 6 and all((out / p).is_file() for p in done)
    rows = [json.loads(r) for r in (out / "errors.jsonl").read_text().splitlines()]
    undone = {Path(r["source"]).name for r in rows}
    assert undone == {s.name for s in long_songs} - {Path(p).stem + ".wav" for p in done}
    assert f"{len(undone)} input(s) not processed" in line and "errors.jsonl" in line
    assert all("not processed" in r["error"] and r["severity"] == "error" for r in rows)
    assert not hidden_or_temp(out)


@pytest.mark.parametrize("where", ["lib.npz", "lib/", "lib.jsonl"])
def test_embed_on_a_full_disk_names_its_file(disk: Path, where: str, tmp_path: Path) -> None:
    write(tmp_path / "music" / "a.wav", tone(220.0, 1.0))
    fill(disk)
    res = run("embed", tmp_path / "music", "-m", "mfcc", "-o", f"{disk}/{where}")
    no_space_line(res, str(disk / where.rstrip("/")))
    assert not hidden_or_temp(disk)
    assert not (disk / f"{where}.partial.jsonl").exists()  # an empty journal is not left behind


def test_report_on_a_full_disk_names_its_page(disk: Path, long_songs: list[Path], tmp_path: Path) -> None:
    assert run("spectro", long_songs[0], "-o", tmp_path / "specs", "--png").exit_code == 0
    fill(disk)
    no_space_line(run("report", tmp_path / "specs", "-o", disk / "r.html"), "r.html")
    assert not hidden_or_temp(disk)


def test_classify_into_a_file_on_a_full_disk_names_stdout(disk: Path, model: Path, tmp_path: Path) -> None:
    songs = [write(tmp_path / f"t{i}.wav", tone(220.0 * (i + 1), 1.0)) for i in range(3)]
    fill(disk)
    with open(disk / "out.jsonl", "wb") as stdout:
        done = subprocess.run([sys.executable, "-m", "specmusic", "classify", *map(str, songs), "-m", str(model), "--json"],
                              stdout=stdout, stderr=subprocess.PIPE, text=True, cwd=tmp_path, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert errors == ["Error: stdout: no space left on device — check the path, its permissions and free space"], done.stderr
    assert "Traceback" not in done.stderr


# -- with a monkeypatched full disk, everywhere -----------------------------------------------------
def test_named_write_error() -> None:
    full = OSError(errno.ENOSPC, "No space left on device")
    named = named_write_error(full, "out/a.npz")
    assert isinstance(named, OSError) and named.filename == "out/a.npz" and named.errno == errno.ENOSPC
    temp = OSError(errno.ENOSPC, "No space left on device", "out/.a.npz.x1.tmp")
    assert named_write_error(temp, "out/a.npz", temp="out/.a.npz.x1.tmp").filename == "out/a.npz"
    assert named_write_error(OSError(errno.ENOENT, "nope", "in.wav"), "out/a.npz") is None  # names its own file
    assert named_write_error(ValueError("bad"), "out/a.npz") is None


def test_a_libsndfile_system_error_on_a_full_disk_is_no_space(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("specmusic.fileio._free_bytes", lambda folder: 0)
    named = named_write_error(sf.LibsndfileError(2), tmp_path / "m.wav")
    assert named is not None and named.errno == errno.ENOSPC and named.filename == str(tmp_path / "m.wav")
    monkeypatch.setattr("specmusic.fileio._free_bytes", lambda folder: 10**9)
    assert "libsndfile" in named_write_error(sf.LibsndfileError(2), tmp_path / "m.wav").strerror


def _soundfile_full_after(monkeypatch: pytest.MonkeyPatch, calls: int) -> None:
    """``soundfile.write`` writes ``calls`` files, then fails as libsndfile does on a full disk."""
    real, seen = sf.write, []

    def write_until_full(*args: object, **kwargs: object) -> None:
        seen.append(1)
        if len(seen) > calls:
            raise sf.LibsndfileError(2)
        real(*args, **kwargs)

    monkeypatch.setattr(sf, "write", write_until_full)
    monkeypatch.setattr("specmusic.fileio._free_bytes", lambda folder: 0)


def test_nmf_with_enospc_leaves_no_partial_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    song = write(tmp_path / "song.wav", noisy(2.0))
    parts = tmp_path / "parts"
    assert run("nmf", song, "-c", "2", "-i", "5", "-o", parts).exit_code == 0
    before = {p.name: p.read_bytes() for p in parts.iterdir()}
    _soundfile_full_after(monkeypatch, 1)
    no_space_line(run("nmf", song, "-c", "3", "-i", "5", "-o", parts), str(parts / "component-02.wav"))
    assert {p.name: p.read_bytes() for p in parts.iterdir()} == before  # the earlier set is whole, nothing new
    assert no_partial_files(parts)


def test_mosaic_with_enospc_leaves_neither_audio_nor_pictures(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    source, target = write(tmp_path / "s.wav", noisy(1.0, 1)), write(tmp_path / "t.wav", noisy(1.0, 2))

    def no_room(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("specmusic.nmf.plots.save_mosaic_plots", no_room)
    res = run("nmf", "mosaic", "-s", source, "-t", target, "-i", "3", "-o", tmp_path / "out" / "m.wav")
    assert_clean_failure(res)
    assert "no space left on device" in res.stderr.lower()
    assert not (tmp_path / "out" / "m.wav").exists() and list((tmp_path / "out").iterdir()) == []


def test_generate_sample_with_enospc_keeps_whole_samples(monkeypatch: pytest.MonkeyPatch, generator: Path,
                                                         tmp_path: Path) -> None:
    _soundfile_full_after(monkeypatch, 2)
    out = tmp_path / "s"
    res = run("generate", "sample", generator, "-n", "4", "--seconds", "1", "--steps", "2", "--gl-iter", "2",
              "-o", out, "--no-progress")
    no_space_line(res, str(out / "sample_0_002.wav"))
    assert sorted(p.name for p in out.iterdir()) == [f"sample_0_00{i}.{e}" for i in range(2) for e in ("npy", "png", "wav")]


def test_spectro_with_enospc_stops_with_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    songs = [write(tmp_path / "songs" / f"s{i}.wav", tone(220.0 * (i + 1), 1.0)) for i in range(4)]
    real, seen = np.savez, []

    def savez_until_full(file: object, *args: object, **kwargs: object) -> None:
        seen.append(1)
        if len(seen) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(file, *args, **kwargs)

    monkeypatch.setattr(np, "savez", savez_until_full)
    out = tmp_path / "out"
    line = no_space_line(run("spectro", tmp_path / "songs", "-o", out), str(out / "s2.npz"))
    assert "2 input(s) not processed (s2.wav, s3.wav;" in line
    assert sorted(p.name for p in out.glob("*.npz")) == ["s0.npz", "s1.npz"]
    rows = [json.loads(r) for r in (out / "errors.jsonl").read_text().splitlines()]
    assert sorted(Path(r["source"]).name for r in rows) == ["s2.wav", "s3.wav"]
    monkeypatch.setattr(np, "savez", real)  # space freed: the rerun finishes the rest
    res = CliRunner().invoke(app, ["spectro", str(tmp_path / "songs"), "-o", str(out)])
    assert res.exit_code == 0, res.stderr
    assert sorted(p.name for p in out.glob("*.npz")) == [s.with_suffix(".npz").name for s in songs]
    assert not (out / "errors.jsonl").exists()
