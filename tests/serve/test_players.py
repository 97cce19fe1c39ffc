"""The recipes of docs/serve.md against a running ``specmusic serve``: the mpd script (curl, jq, mpc) queues what
/similar and /playlist answer in a real mpd, mpv plays the M3U8 the server sends, and the plugin's Python
function gets the neighbours. Each skips, saying so, where its program is missing (``.ci/run`` installs mpd,
mpc and mpv; curl and jq come with the machine)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from tests.conftest import mpd_daemon, tone, write
from tests.playlists.conftest import run, tag
from tests.serve.conftest import ROOT, Server, needs_serve

DOC = (ROOT / "docs" / "serve.md").read_text(encoding="utf-8")
NAMES = [f"{artist}/{artist} Album/0{n} Song {n}.flac" for artist in ("Ann", "Bob", "Cy", "Dee") for n in (1, 2, 3)]


def _doc_block(language: str, marker: str) -> str:
    """The fenced ``language`` block of docs/serve.md that holds ``marker``."""
    blocks = re.findall(rf"```{language}\n(.*?)```", DOC, flags=re.S)
    return next(b for b in blocks if marker in b)


@pytest.fixture(scope="module")
def served(tmp_path_factory):  # noqa: ANN001, ANN201
    """A tagged collection of 12 tracks (4 artists), its MFCC library, and a server over it."""
    root = tmp_path_factory.mktemp("players") / "music"
    for i, name in enumerate(NAMES):
        path = write(root / name, tone(110.0 * 2 ** (i / 6), 1.5, seed=i), format="FLAC")
        artist = name.split("/")[0]
        tag(path, artist=artist, album=f"{artist} Album", title=f"{artist} song {i}")
    lib = root.parent / "lib.npz"
    r = run("embed", str(root), "-m", "mfcc", "-o", str(lib))
    assert r.exit_code == 0, r.stderr
    srv = Server(lib, tmp=root.parent).wait_ready()
    yield root, srv
    assert srv.stop() == 0


@needs_serve
@pytest.mark.skipif(any(shutil.which(p) is None for p in ("mpd", "mpc", "curl", "jq")),
                    reason="mpd, mpc, curl or jq is not installed (apt-get install mpd mpc curl jq)")  # fmt: skip
def test_the_mpd_script_queues_what_similar_and_playlist_answer(served, tmp_path: Path) -> None:  # noqa: ANN001
    root, srv = served
    script = tmp_path / "more-like-this"
    script.write_text(_doc_block("sh", "#!/bin/sh"))
    script.chmod(0o755)
    with mpd_daemon(root, tmp_path / "mpd") as port:
        _run_the_script(script, root, srv, port)


def _run_the_script(script: Path, root: Path, srv: Server, port: int) -> None:
    env = {**os.environ, "MPD_HOST": "127.0.0.1", "MPD_PORT": str(port), "SPECMUSIC_API": f"http://127.0.0.1:{srv.port}",
           "MUSIC_DIR": str(root)}  # fmt: skip

    def mpc(*args: str) -> str:
        out = subprocess.run(["mpc", *args], capture_output=True, timeout=60, env=env)
        assert out.returncode == 0, out.stderr
        return out.stdout.decode("utf-8")

    mpc("update", "--wait")
    mpc("add", NAMES[0])
    mpc("play")
    assert mpc("current", "-f", "%file%").strip() == NAMES[0]
    done = subprocess.run([str(script)], capture_output=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    similar = srv.get("/similar?" + urlencode({"track": NAMES[0], "k": 10}, quote_via=quote)).json()["neighbors"]
    expected = [os.path.relpath(n["id"], root) for n in similar]
    assert mpc("playlist", "-f", "%file%").splitlines() == [NAMES[0], *expected]
    mpc("clear")
    mpc("add", NAMES[0])
    mpc("play")
    mix = subprocess.run([str(script), "--mix"], capture_output=True, timeout=120, env=env)
    assert mix.returncode == 0, mix.stderr
    queued = mpc("playlist", "-f", "%file%").splitlines()[1:]
    made = srv.get("/playlist?" + urlencode({"seed": NAMES[0], "minutes": 60, "format": "json"}, quote_via=quote)).json()
    assert queued == [os.path.relpath(e["id"], root) for e in made["entries"]] and len(queued) == 11
    assert "ERROR" not in mpc("status")


@needs_serve
@pytest.mark.skipif(shutil.which("mpv") is None, reason="mpv is not installed (apt-get install mpv; .ci/run does)")
def test_mpv_plays_the_m3u8_the_server_sends(served, tmp_path: Path) -> None:  # noqa: ANN001
    root, srv = served
    r = srv.get("/playlist?" + urlencode({"seed": NAMES[5], "tracks": 4}, quote_via=quote), {"Accept": "audio/x-mpegurl"})
    assert r.status == 200 and r.headers["content-type"] == "audio/x-mpegurl"
    (tmp_path / "mix.m3u8").write_bytes(r.body)
    out = subprocess.run(
        ["mpv", "--no-config", "--ao=null", "--vo=null", "--length=0.2", "--quiet", "--term-playing-msg=PLAYING ${path}",
         f"--playlist={tmp_path / 'mix.m3u8'}"], capture_output=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    played = [line[len(b"PLAYING ") :].decode() for line in out.stdout.splitlines() if line.startswith(b"PLAYING ")]
    assert played == [line for line in r.body.decode().splitlines() if not line.startswith("#")] and len(played) == 4
    assert out.returncode == 0, out.stderr


@needs_serve
def test_the_plugin_function_of_the_docs_gets_the_neighbours(served) -> None:  # noqa: ANN001
    root, srv = served
    plugin: dict = {}
    exec(_doc_block("python", "def similar(path"), plugin)  # noqa: S102 — the documented code, as written
    plugin["API"] = f"http://127.0.0.1:{srv.port}"
    found = plugin["similar"](NAMES[3], k=3)
    assert [p for p, _, _ in found] == [n["id"] for n in json.loads(srv.get(
        "/similar?" + urlencode({"track": NAMES[3], "k": 3}, quote_via=quote)).body)["neighbors"]]  # fmt: skip
    assert all(isinstance(s, float) and tags["source"] == "tags" for _, s, tags in found)
    assert plugin["similar"]("not/in/the/library.flac") == []
    with pytest.raises(RuntimeError, match="k=0"):
        plugin["similar"](NAMES[3], k=0)
