"""Outputs stay inside ``-o`` and never overwrite an input (issue 22, items 4 and 5).

A manifest row that climbs out of its folder, an ``index.json`` naming a part outside the library, a
link inside ``-o`` that leads out; an output that is one of the inputs (by name, through a link);
and every writing command run with ``-o`` in a fresh folder, the rest of its tree compared before and
after.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from specmusic.cli.app import app
from specmusic.errors import InputError
from specmusic.outputs import check_not_an_input, mirror_path, safe_relpath
from tests.conftest import tone, write
from tests.failures.test_failures import assert_clean_failure, run

TINY_GEN = ["--n-mels", "16", "--patch-frames", "16", "--base", "8", "--batch-size", "4", "--threads", "1",
            "--no-progress"]
FAST_TRAIN = ["--epochs", "1", "--chunk-seconds", "0.5", "--threads", "1", "--no-progress"]


def warnings_of(result) -> list[str]:  # noqa: ANN001
    return [line for line in result.stderr.splitlines() if line.startswith("warning:")]


# -- one function places every mirrored output --------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "safe"),
    [("rock/a.wav", "rock/a.wav"), ("../../escape_target/victim.wav", "escape_target/victim.wav"),
     ("a/../../b.wav", "b.wav"), ("./x/./y.wav", "x/y.wav"), ("/music/a.wav", "music/a.wav"), ("..", "_"),
     ("../..", "_")],
)  # fmt: skip
def test_safe_relpath_never_climbs(raw: str, safe: str, tmp_path: Path) -> None:
    assert safe_relpath(raw) == safe
    dest = mirror_path(tmp_path / "out", raw, suffix=".npz")
    assert (tmp_path / "out") in dest.parents and dest.suffix == ".npz"


def test_mirror_path_refuses_a_link_inside_o_that_leads_out(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "rock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InputError, match="outside .*through the link .*rock"):
        mirror_path(tmp_path / "out", "rock/a.wav", suffix=".npz")


# -- item 4: a manifest that escapes the output folder ------------------------------------------
def test_a_manifest_row_outside_its_folder_is_written_inside_o(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's input: ``path,label`` / ``../../escape_target/victim.wav,a``, ``-o out/x``."""
    write(tmp_path / "escape_target" / "victim.wav", tone(330.0, 1.0))
    work = tmp_path / "w"
    (work / "in").mkdir(parents=True)
    (work / "in" / "m.csv").write_text("path,label\n../../escape_target/victim.wav,a\n")
    monkeypatch.chdir(work)
    res = run("spectro", "--manifest", "in/m.csv", "--png", "-o", "out/x")
    assert res.exit_code == 0, res.stderr
    assert sorted(p.name for p in (tmp_path / "escape_target").iterdir()) == ["victim.wav"]
    assert not (work / "escape_target").exists()
    assert (work / "out" / "x" / "escape_target" / "victim.npz").is_file()
    assert (work / "out" / "x" / "escape_target" / "victim.png").is_file()
    (warning,) = warnings_of(res)
    assert "in/m.csv:2" in warning and "escape_target/victim.wav" in warning and "outside" in warning
    (record,) = [json.loads(line) for line in (work / "out" / "x" / "manifest.jsonl").read_text().splitlines()]
    assert record["path"] == "escape_target/victim.npz"


def test_manifest_rows_that_climb_and_an_absolute_row(tmp_path: Path) -> None:
    write(tmp_path / "a" / "one.wav", tone(220.0, 1.0))
    write(tmp_path / "b" / "two.wav", tone(440.0, 1.0))
    lists = tmp_path / "data" / "lists"
    lists.mkdir(parents=True)
    (lists / "m.csv").write_text(f"path,label\n../../a/one.wav,x\n{tmp_path / 'b' / 'two.wav'},y\nsub/../../../a/one.wav,x\n")
    res = run("spectro", "--manifest", lists / "m.csv", "-o", tmp_path / "data" / "out")
    assert res.exit_code == 0, res.stderr
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.npz"))
    assert written == ["data/out/a/one.npz", "data/out/two.npz"]  # the repeated row is read once
    assert any("repeat an earlier one" in w and "line 4 (as 2)" in w for w in warnings_of(res))


def test_spectro_refuses_a_link_in_o_that_leads_out(tmp_path: Path) -> None:
    write(tmp_path / "music" / "rock" / "a.wav", tone(220.0, 1.0))
    (tmp_path / "out").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "out" / "rock").symlink_to(tmp_path / "outside")
    line = assert_clean_failure(run("spectro", tmp_path / "music", "-o", tmp_path / "out"), "rock")
    assert "outside" in line and "remove the link" in line
    assert not list((tmp_path / "outside").iterdir())


# -- item 4: a sharded library whose index.json names parts outside it ---------------------------
@pytest.fixture
def sharded(tmp_path: Path) -> Path:
    for i in range(3):
        write(tmp_path / "music" / f"t{i}.wav", tone(200.0 * (i + 1), 1.0, seed=i))
    res = run("embed", tmp_path / "music", "-m", "mfcc", "-o", f"{tmp_path / 'lib'}/")
    assert res.exit_code == 0, res.stderr
    return tmp_path / "lib"


def _rename_part(library: Path, name: str) -> None:
    index = json.loads((library / "index.json").read_text())
    index["parts"][0]["name"] = name
    (library / "index.json").write_text(json.dumps(index))


@pytest.mark.parametrize("name", ["../x.npz", "ABSOLUTE", "sub/part-00000.npz"])
def test_an_index_naming_a_part_outside_the_folder_is_refused(sharded: Path, name: str) -> None:
    victim = sharded.parent / "x.npz"
    victim.write_bytes(b"not yours")
    _rename_part(sharded, str(victim) if name == "ABSOLUTE" else name)
    for args in (("recommend", sharded, "-q", sharded.parent / "music" / "t0.wav", "-m", "mfcc"),
                 ("embed", sharded.parent / "music", "-m", "mfcc", "-o", f"{sharded}/")):  # fmt: skip
        line = assert_clean_failure(run(*args), "index.json")
        assert "not a file of the library's folder" in line
    assert victim.read_bytes() == b"not yours"


def test_a_part_linked_to_a_file_outside_the_folder_is_refused(sharded: Path) -> None:
    part = sharded / "part-00000.npz"
    outside = sharded.parent / "moved.npz"
    part.rename(outside)
    part.symlink_to(outside)
    line = assert_clean_failure(run("recommend", sharded, "-q", sharded.parent / "music" / "t0.wav", "-m", "mfcc"),
                                "part-00000.npz")
    assert "outside the library's folder" in line


# -- item 5: an output that is one of the inputs -------------------------------------------------
def test_check_not_an_input_sees_links_and_hard_links(tmp_path: Path) -> None:
    song = write(tmp_path / "song.wav", tone(220.0, 0.5))
    (tmp_path / "soft.wav").symlink_to(song)
    os.link(song, tmp_path / "hard.wav")
    for out in (song, tmp_path / "soft.wav", tmp_path / "hard.wav"):
        with pytest.raises(InputError, match="is one of the inputs"):
            check_not_an_input(out, [tmp_path / "other.wav", song])
    check_not_an_input(tmp_path / "new.wav", [song])
    check_not_an_input("-", [song])


def test_describe_o_refuses_the_wav_it_describes(tmp_path: Path) -> None:
    """``describe -o in/track.wav`` wrote JSON over the WAV; now its extension is checked as the others'."""
    track = write(tmp_path / "in" / "track.wav", tone(220.0, 1.0))
    before = track.read_bytes()
    line = assert_clean_failure(run("describe", track, "-o", track), "track.wav")
    assert "JSON document" in line and ".json" in line
    assert track.read_bytes() == before
    assert_clean_failure(run("describe", tmp_path / "in", "-o", tmp_path / "in" / "out"), "no extension")


def test_describe_o_refuses_its_own_manifest(tmp_path: Path) -> None:
    write(tmp_path / "track.wav", tone(220.0, 1.0))
    manifest = tmp_path / "m.json"
    manifest.write_text('{"path": "track.wav", "label": "a"}\n')
    line = assert_clean_failure(run("describe", "--manifest", manifest, "-o", manifest), "m.json")
    assert "is one of the inputs" in line
    assert manifest.read_text() == '{"path": "track.wav", "label": "a"}\n'


@pytest.mark.parametrize("through", ["same", "link"])
def test_mosaic_refuses_to_overwrite_its_target(through: str, tmp_path: Path) -> None:
    """``nmf mosaic -t X.wav -o X.wav`` overwrote its own target."""
    target = write(tmp_path / "X.wav", tone(220.0, 1.0))
    source = write(tmp_path / "S.wav", tone(440.0, 1.0))
    out = target
    if through == "link":
        out = tmp_path / "L.wav"
        out.symlink_to(target)
    before = target.read_bytes()
    line = assert_clean_failure(run("nmf", "mosaic", "-s", source, "-t", target, "-o", out), out.name)
    assert "is one of the inputs" in line
    assert target.read_bytes() == before and not (tmp_path / "X.png").exists()


def test_every_command_that_takes_an_output_file_refuses_an_input(tmp_path: Path) -> None:
    song = write(tmp_path / "song.wav", tone(220.0, 1.0))
    mel = tmp_path / "mel.npy"
    np.save(mel, np.full((16, 40), -30.0, np.float32))
    (tmp_path / "mel.wav").symlink_to(mel)  # an output name that is the array, through a link
    parts = tmp_path / "parts"
    write(parts / "model.wav", tone(330.0, 1.0))
    library = tmp_path / "lib.jsonl"
    assert run("embed", song, "-m", "mfcc", "-o", library).exit_code == 0
    playlist = tmp_path / "p.m3u8"
    playlist.write_text(f"#EXTM3U\n{song}\n")
    cases = [
        (("embed", song, "-m", "mfcc", "-o", song), song),
        (("generate", "invert", mel, "-o", tmp_path / "mel.wav"), mel),
        (("nmf", parts / "model.wav", "-c", "2", "-o", parts), parts / "model.wav"),
        (("playlist", library, "--extend", playlist, "-o", playlist), playlist),
        (("playlist", library, "--seed", song, "-o", library), library),
        (("report", library, "-o", library), library),
    ]
    for args, victim in cases:
        before = victim.read_bytes()
        line = assert_clean_failure(run(*args))
        assert "is one of the inputs" in line, (args, line)
        assert victim.read_bytes() == before, args


# -- nothing outside -o --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Inputs for every writing command: labelled audio, a song, a manifest that climbs, a library, a
    spectro folder, a mel array, a generator."""
    root = tmp_path_factory.mktemp("world")
    for li, (label, f) in enumerate((("low", 110.0), ("mid", 440.0), ("high", 1760.0))):
        for i in range(3):
            write(root / "genres" / label / f"{label}.{i:05d}.wav", tone(f * (1 + 0.03 * i), 1.5, seed=10 * li + i))
    write(root / "song.wav", tone(330.0, 2.0))
    write(root / "escape_target" / "victim.wav", tone(550.0, 1.0))
    (root / "in" / "deep").mkdir(parents=True)  # ../../ from here is the world, two levels above -o
    (root / "in" / "deep" / "m.csv").write_text("path,label\n../../escape_target/victim.wav,a\n"
                                                "../../genres/low/low.00000.wav,low\n")
    np.save(root / "mel.npy", np.random.default_rng(0).uniform(-60, 0, (64, 40)).astype(np.float32))
    for args in (("embed", root / "genres", "-m", "mfcc", "-o", root / "lib.npz"),
                 ("spectro", root / "genres", "-o", root / "specs", "--png"),
                 ("generate", "train", root / "genres", "-o", root / "gen", "--epochs", "1", *TINY_GEN)):  # fmt: skip
        res = CliRunner().invoke(app, [str(a) for a in args])
        assert res.exit_code == 0, res.stderr
    return root


WRITERS: dict[str, list[str]] = {
    "spectro": ["spectro", "{W}/genres", "-o", "{O}", "--png"],
    "spectro --manifest": ["spectro", "--manifest", "{W}/in/deep/m.csv", "--png", "-o", "{O}"],
    "embed -o dir/": ["embed", "{W}/genres", "-m", "mfcc", "-o", "{O}/"],
    "embed -o file": ["embed", "{W}/genres", "-m", "mfcc", "-o", "{O}/lib.jsonl"],
    "describe -o": ["describe", "{W}/genres", "-o", "{O}/d.json", "--plots", "{O}/plots"],
    "nmf": ["nmf", "{W}/song.wav", "-c", "2,3", "--report", "-i", "5", "-o", "{O}"],
    "nmf mosaic": ["nmf", "mosaic", "-s", "{W}/song.wav", "-t", "{W}/genres/low/low.00000.wav", "-i", "3",
                   "-o", "{O}/m.wav"],
    "generate sample": ["generate", "sample", "{W}/gen", "-n", "2", "--seconds", "1", "--steps", "2",
                        "--gl-iter", "2", "-o", "{O}", "--no-progress"],
    "generate invert": ["generate", "invert", "{W}/mel.npy", "-o", "{O}/x.wav", "--gl-iter", "2"],
    "generate train": ["generate", "train", "{W}/genres", "-o", "{O}", "--epochs", "1", *TINY_GEN],
    "report": ["report", "{W}/specs", "-o", "{O}/r.html"],
    "train": ["train", "{W}/genres", "-o", "{O}", *FAST_TRAIN],
    "playlist": ["playlist", "{W}/lib.npz", "--seed", "low.00000.wav", "--tracks", "3", "-o", "{O}/p.m3u8"],
}


def tree_state(root: Path, *, skip: Path) -> dict[str, tuple[int, ...]]:
    """Every entry under ``root`` but ``skip``: its type, and a file's size and modification time."""
    state: dict[str, tuple[int, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p == skip or skip in p.parents:
                continue
            st = p.lstat()
            kind = stat.S_IFMT(st.st_mode)
            state[str(p.relative_to(root))] = (kind,) if stat.S_ISDIR(st.st_mode) else (kind, st.st_size, st.st_mtime_ns)
    return state


@pytest.mark.parametrize("command", list(WRITERS))
def test_no_command_writes_outside_o(command: str, world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = world / f"fresh-{command.replace(' ', '_').replace('/', '')}"
    fresh.mkdir()
    out = fresh / "o"
    monkeypatch.chdir(world)  # a file written to the working folder would show too
    before = tree_state(world, skip=fresh)
    args = [a.format(W=world, O=out) for a in WRITERS[command]]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, (command, res.stderr)
    after = tree_state(world, skip=fresh)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, (command, changed)
    assert any(out.rglob("*")) or out.is_file(), command
