"""The written playlist in real Debian players: every entry opens, in our order, whatever its name.

* mpv (``--ao=null --vo=null``, 0.2 s of each entry): plays an M3U8 whose names hold spaces,
  non-ASCII and bytes that are not UTF-8 (written as the names' own bytes);
* mpd + mpc: an mpd started here on a loopback port with a temporary configuration and the
  collection as its music directory loads the playlist (``mpc load``), lists it (``mpc playlist``) and
  plays each entry. mpd's database holds UTF-8 names only (it skips a file whose name is not UTF-8
  when it scans), so this collection's names are spaces and non-ASCII.

Each test skips, saying so, where its player is missing (``.ci/run`` installs them with apt).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from specmusic.playlists import read_playlist
from tests.conftest import mpd_daemon, tone, write
from tests.playlists.conftest import run, tag

NAMES = ["Ann Artist/First Album/01 a b.flac", "Bob/Café ♫/02 déjà vu.flac", "Cy/Zweite/03 straße.flac",
         "Dee/Four/04 four.flac", "Eve/Five/05 five.flac"]  # fmt: skip
NOT_UTF8 = os.fsdecode(b"Fay/Caf\xe9/06 d\xe9j\xe0.flac")


def _collection(root: Path, names: list[str]) -> Path:
    for i, name in enumerate(names):
        path = write(root / name, tone(220.0 * (1 + 0.1 * i), 1.5, seed=i), format="FLAC")
        tag(path, artist=f"Artist {i}", album=f"Album {i}", title=f"Song {i}")
    return root


def _playlist(root: Path, output: Path, tracks: int) -> list[str]:
    lib = root.parent / "lib.npz"
    r = run("embed", str(root), "-m", "mfcc", "-o", str(lib))
    assert r.exit_code == 0, r.stderr
    seed = str(root / NAMES[0])
    r = run("playlist", str(lib), "--seed", seed, "--tracks", str(tracks), "--artist-gap", "1", "-o", str(output))
    assert r.exit_code == 0, r.stderr
    ids = read_playlist(str(output))
    assert len(ids) == tracks and all(os.path.isfile(i) for i in ids)
    return ids


@pytest.mark.skipif(shutil.which("mpv") is None, reason="mpv is not installed (apt-get install mpv; .ci/run does)")
def test_mpv_plays_every_entry_in_our_order(tmp_path):
    root = _collection(tmp_path / "music", [*NAMES, NOT_UTF8])
    ids = _playlist(root, root / "lists" / "mix.m3u8", 5)
    assert any(os.fsencode(i).endswith(b"d\xe9j\xe0.flac") for i in ids)  # 6 files: all but the seed
    out = subprocess.run(
        ["mpv", "--no-config", "--ao=null", "--vo=null", "--length=0.2", "--quiet", "--term-playing-msg=PLAYING ${path}",
         f"--playlist={root / 'lists' / 'mix.m3u8'}"],
        capture_output=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    played = [line[len(b"PLAYING ") :] for line in out.stdout.splitlines() if line.startswith(b"PLAYING ")]
    assert [os.path.normpath(p) for p in played] == [os.path.normpath(os.fsencode(i)) for i in ids], out.stderr
    assert out.returncode == 0 and b"Failed" not in out.stdout + out.stderr


def _mpc(port: int, *args: str) -> str:
    out = subprocess.run(["mpc", "-h", "127.0.0.1", "-p", str(port), *args], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.decode("utf-8")


@pytest.mark.skipif(shutil.which("mpd") is None or shutil.which("mpc") is None,
                    reason="mpd or mpc is not installed (apt-get install mpd mpc; .ci/run does)")  # fmt: skip
def test_mpd_loads_lists_and_plays_every_entry_in_our_order(tmp_path):
    root = _collection(tmp_path / "music", NAMES)
    ids = _playlist(root, root / "lists" / "mix.m3u8", 4)
    with mpd_daemon(root, tmp_path / "mpd") as port:
        _mpc(port, "update", "--wait")
        assert "loading: lists/mix.m3u8" in _mpc(port, "load", "lists/mix.m3u8")
        expected = [os.path.relpath(i, root) for i in ids]
        assert _mpc(port, "playlist", "-f", "%file%").splitlines() == expected
        _mpc(port, "repeat", "on")  # with single on: the current song repeats until `next`, so a 1.5 s song
        _mpc(port, "single", "on")  # cannot end and advance by itself while a loaded machine runs `mpc current`
        _mpc(port, "play")
        for n, name in enumerate(expected):
            if n:
                _mpc(port, "next")
            assert _mpc(port, "current", "-f", "%file%").strip() == name
            assert "ERROR" not in _mpc(port, "status")
