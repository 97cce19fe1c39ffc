"""``specmusic serve`` as a player or plugin meets it: a real process on a free loopback port, asked over HTTP.

Status codes and JSON shapes, the same answers as the library searched in-process, playlists as JSON,
M3U8 (by Accept and by format=) and XSPF, the 400/404 rules, the bearer token, and libraries that
cannot be read at start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, urlencode

import numpy as np
import pytest

from specmusic.embeddings import EmbeddingLibrary, InMemoryRecommender, ModelDescription, save_library
from specmusic.metadata import TrackMetadata
from tests.conftest import tone, write
from tests.serve.conftest import ROOT, Server, make_library, needs_serve, track_id

TOKEN = "s3cret-token-0123456789"


def _q(**params) -> str:  # noqa: ANN003
    return urlencode(params, doseq=True, quote_via=quote)


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:  # noqa: ANN001
    path = tmp_path_factory.mktemp("serve") / "lib.npz"
    save_library(make_library(40), path)
    return path


@pytest.fixture(scope="module")
def server(library: Path, tmp_path_factory):  # noqa: ANN001, ANN201
    srv = Server(library, tmp=tmp_path_factory.mktemp("logs")).wait_ready()
    yield srv
    assert srv.stop() == 0, srv.stderr
    assert srv.stdout == b""  # stdout carries data only: a server has none
    assert "serve: stopped" in srv.stderr


@needs_serve
def test_health_says_what_is_served(server: Server, library: Path) -> None:
    r = server.get("/health")
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {**r.json(), "status": "ok", "tracks": 40, "dim": 8, "model": "tiny-test", "generation": 1,
                        "library": str(library)}  # fmt: skip
    assert "serve: 40 tracks of" in server.stderr and f"http://127.0.0.1:{server.port}/" in server.stderr


@needs_serve
def test_similar_answers_what_recommend_answers_by_track_and_by_id(server: Server, library: Path) -> None:
    from specmusic.embeddings import read_library

    rec = InMemoryRecommender.from_library(read_library(library))
    expected = rec.recommend([track_id(7)], k=5)[0]
    by_tail = server.get(f"/similar?{_q(track='007 Song 7.flac', k=5)}")
    assert by_tail.status == 200, by_tail.body
    body = by_tail.json()
    assert set(body) == {"query", "warnings", "neighbors"} and body["query"] == "007 Song 7.flac"
    assert [(n["rank"], n["id"], n["score"]) for n in body["neighbors"]] == [
        (n["rank"], n["id"], n["score"]) for n in expected["neighbors"]
    ]
    first = body["neighbors"][0]
    assert set(first) >= {"rank", "id", "score", "label", "group", "metadata"} and first["metadata"]["source"] == "tags"
    by_id = server.get(f"/similar?{_q(id=track_id(7), k=5)}").json()
    assert by_id["neighbors"] == body["neighbors"] and by_id["query"] == track_id(7)
    assert track_id(7) not in [n["id"] for n in body["neighbors"]]


@needs_serve
def test_similar_takes_recommends_filters_and_group_key(server: Server, library: Path) -> None:
    jazz = server.get(f"/similar?{_q(track=track_id(3), k=40, where=['genre=jazz'], year='1990..2009')}").json()
    assert jazz["neighbors"] and all(n["metadata"]["genre"] == "Jazz" and 1990 <= n["metadata"]["year"] <= 2009
                                     for n in jazz["neighbors"])  # fmt: skip
    others = server.get(f"/similar?{_q(track=track_id(3), k=40, group_key='artist')}").json()["neighbors"]
    assert len(others) == 32 and "Dee" not in {n["metadata"]["artist"] for n in others}  # 8 tracks of Dee, one asked


@needs_serve
def test_playlist_is_json_or_m3u8_by_accept_and_by_format(server: Server) -> None:
    query = _q(seed=[track_id(1), track_id(2)], minutes=15, random=3)
    plain = server.get(f"/playlist?{query}")
    assert plain.status == 200 and plain.headers["content-type"] == "application/json"
    made = plain.json()
    assert made["mode"] == "seeds" and [s["id"] for s in made["seeds"]] == [track_id(1), track_id(2)]
    ids = [e["id"] for e in made["entries"]]
    assert 4 <= len(ids) <= 6 and not {track_id(1), track_id(2)} & set(ids)  # ~15 min of ~3-minute tracks, no seed echo
    assert all(set(e) >= {"id", "score", "to_previous", "to_seeds", "role", "metadata"} for e in made["entries"])
    for how in ({"headers": {"Accept": "audio/x-mpegurl"}}, {"query": "&format=m3u8"},
                {"headers": {"Accept": "text/html;q=0.9, application/vnd.apple.mpegurl"}}):  # fmt: skip
        m3u = server.get(f"/playlist?{query}{how.get('query', '')}", how.get("headers"))
        assert m3u.status == 200 and m3u.headers["content-type"] == "audio/x-mpegurl", how
        lines = m3u.body.decode().splitlines()
        assert lines[0] == "#EXTM3U" and [x for x in lines if not x.startswith("#")] == ids, how  # the same playlist
        assert lines[1].startswith("#EXTINF:") and " - Song " in lines[1]
    xspf = server.get(f"/playlist?{query}&format=xspf")
    assert xspf.status == 200 and xspf.headers["content-type"] == "application/xspf+xml" and b"<trackList>" in xspf.body
    assert server.get(f"/playlist?{query}", {"Accept": "audio/x-mpegurl;q=0.5, application/json"}).json() == made
    refused = server.get(f"/playlist?{query}", {"Accept": "text/html"})
    assert refused.status == 406 and refused.json()["parameter"] == "Accept"


@needs_serve
def test_a_journey_and_filters_in_a_playlist(server: Server) -> None:
    r = server.get(f"/playlist?{_q(**{'from': track_id(0), 'to': track_id(9), 'tracks': 5})}").json()
    assert r["mode"] == "journey" and [e["role"] for e in r["entries"]] == ["from", "track", "track", "track", "to"]
    rock = server.get(f"/playlist?{_q(seed=track_id(0), tracks=5, where='genre=rock')}").json()
    assert all(e["metadata"]["genre"] == "Rock" for e in rock["entries"])


@needs_serve
def test_tracks_searches_the_tags_and_pages(server: Server) -> None:
    r = server.get(f"/tracks?{_q(q='ann JAZZ', limit=2)}")
    assert r.status == 200
    body = r.json()
    assert body["more"] is True and len(body["tracks"]) == 2 and set(body["tracks"][0]) == {"id", "label", "group", "metadata"}
    every = server.get(f"/tracks?{_q(q='ann jazz', limit=100)}").json()["tracks"]
    assert [t["id"] for t in every] == [track_id(i) for i in range(40) if i % 5 == 0 and i % 3 == 0]
    page2 = server.get(f"/tracks?{_q(q='ann jazz', limit=2, offset=2)}").json()
    assert [t["id"] for t in page2["tracks"]] == [t["id"] for t in every[2:4]]
    assert server.get(f"/tracks?{_q(q='song', year='2000..', limit=100)}").json()["tracks"] == [
        t for t in server.get(f"/tracks?{_q(limit=100)}").json()["tracks"] if t["metadata"]["year"] >= 2000
    ]
    assert server.get(f"/tracks?{_q(q='no such words')}").json()["tracks"] == []


@needs_serve
@pytest.mark.parametrize(("path", "parameter"), [
    ("/similar?k=abc&track=007%20Song%207.flac", "k"),
    ("/similar?k=0&track=007%20Song%207.flac", "k"),
    ("/similar?k=100000&track=007%20Song%207.flac", "k"),
    ("/similar?k=5", "track"),
    ("/similar?track=x&id=y", "track"),
    ("/similar?track=007%20Song%207.flac&where=genre", "where"),
    ("/similar?track=007%20Song%207.flac&where=colour%3Dred", "where"),
    ("/similar?track=007%20Song%207.flac&year=soon", "year"),
    ("/similar?track=007%20Song%207.flac&group_key=mood", "group_key"),
    ("/similar?trak=007%20Song%207.flac", "trak"),
    ("/playlist", "seed"),
    ("/playlist?seed=007%20Song%207.flac&minutes=-5", "minutes"),
    ("/playlist?seed=007%20Song%207.flac&tracks=0", "tracks"),
    ("/playlist?seed=007%20Song%207.flac&format=mp3", "format"),
    ("/playlist?from=007%20Song%207.flac", "to"),
    ("/playlist?from=007%20Song%207.flac&to=007%20Song%207.flac", "to"),
    ("/tracks?limit=0", "limit"),
    ("/tracks?offset=-1", "offset"),
])  # fmt: skip
def test_bad_parameters_are_400_naming_the_parameter(server: Server, path: str, parameter: str) -> None:
    r = server.get(path)
    assert r.status == 400, (path, r.body)
    body = r.json()
    assert body["parameter"] == parameter and " — " in body["error"], body


@needs_serve
def test_unknown_tracks_are_404_and_audio_files_outside_the_library_are_never_embedded(server: Server, tmp_path: Path) -> None:
    outside = write(tmp_path / "new.wav", tone(440.0, 1.0))  # `recommend -q new.wav` would embed it
    for path, parameter in ((f"/similar?{_q(track=str(outside))}", "track"), (f"/similar?{_q(id='/music/none.flac')}", "id"),
                            (f"/playlist?{_q(seed=str(outside))}", "seed"), (f"/playlist?{_q(seed=[track_id(1), 'x.flac'])}", "seed"),
                            (f"/playlist?{_q(**{'from': track_id(1), 'to': str(outside)})}", "to")):  # fmt: skip
        r = server.get(path)
        assert r.status == 404 and r.json()["parameter"] == parameter, (path, r.body)
    by_tail_only = server.get(f"/similar?{_q(id='007 Song 7.flac')}")  # id= is exact
    assert by_tail_only.status == 404
    nowhere = server.get("/files/etc/passwd")
    assert nowhere.status == 404 and "error" in nowhere.json()


@needs_serve
def test_ids_that_are_not_utf8_travel_as_in_recommend_json(tmp_path: Path) -> None:
    lib = make_library(6)
    lib.ids[2] = "/music/caf\udce9.flac"  # a Latin-1 byte in a file name, as os.fsdecode gives it
    save_library(lib, tmp_path / "lib.npz")
    srv = Server(tmp_path / "lib.npz", tmp=tmp_path).wait_ready()
    try:
        found = srv.get(f"/tracks?{_q(q='caf')}")
        assert found.status == 200 and b'"/music/caf\\udce9.flac"' in found.body
        assert json.loads(found.body)["tracks"][0]["id"] == "/music/caf\udce9.flac"
        escaped = "/music/caf\\xe9.flac"  # the \xNN form text output shows
        r = srv.get(f"/similar?{_q(track=escaped, k=2)}")
        assert r.status == 200 and r.json()["query"] == escaped
    finally:
        assert srv.stop() == 0


@needs_serve
def test_a_token_is_needed_beyond_loopback_and_checked_on_every_request(library: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SPECMUSIC_TOKEN", None)
    refused = subprocess.run([sys.executable, "-m", "specmusic", "serve", str(library), "--host", "0.0.0.0", "--port", "0"],
                             capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "--token" in refused.stderr and refused.stderr.startswith("Error: ")
    # With --token, every request needs it (here on loopback, so the test listens on no outside address: the
    # token is checked the same whatever --host is).
    srv = Server(library, tmp=tmp_path, token=TOKEN).wait_ready()
    try:
        assert "Authorization: Bearer" in srv.stderr
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": f"Basic {TOKEN}"}):
            r = srv.get(f"/similar?{_q(track=track_id(1))}", headers, auth=False)
            assert r.status == 401 and r.headers["www-authenticate"] == "Bearer" and r.json()["parameter"] == "Authorization"
        assert srv.get("/health", auth=False).status == 401
        assert srv.get(f"/similar?{_q(track=track_id(1))}").status == 200
        assert srv.get("/health").status == 200
        assert srv.get("/openapi.json", auth=False).status == 200  # the API's description is no secret
    finally:
        assert srv.stop() == 0


@needs_serve
def test_openapi_docs_describe_every_endpoint(server: Server) -> None:
    schema = server.get("/openapi.json").json()
    assert {"/similar", "/playlist", "/tracks", "/health"} <= set(schema["paths"])
    params = {p["name"] for p in schema["paths"]["/playlist"]["get"]["parameters"]}
    assert {"seed", "from", "to", "minutes", "tracks", "where", "year", "format"} <= params
    assert server.get("/docs").status == 200


def _garbage(path: Path) -> Path:
    path.write_bytes(b"not a library")
    return path


@pytest.mark.parametrize("make", [
    lambda tmp: tmp / "missing.npz",
    lambda tmp: _garbage(tmp / "garbage.npz"),
    lambda tmp: (tmp / "empty-folder").mkdir() or tmp / "empty-folder",
    lambda tmp: "-",
], ids=["missing", "garbage", "folder-without-index", "stdin"])  # fmt: skip
@needs_serve
def test_a_library_that_cannot_be_read_is_one_line_and_exit_1(make, tmp_path: Path) -> None:  # noqa: ANN001
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "specmusic", "serve", str(make(tmp_path)), "--port", "0"],
                       capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)  # fmt: skip
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1 and " — " in r.stderr, r.stderr


HIDE_SERVE = """\
import importlib.machinery

_find = importlib.machinery.PathFinder.find_spec.__func__


def _hidden(cls, name, path=None, target=None):  # the serve extra is "not installed"
    if name.partition(".")[0] in ("fastapi", "uvicorn"):
        return None
    return _find(cls, name, path, target)


importlib.machinery.PathFinder.find_spec = classmethod(_hidden)
"""


def test_without_the_serve_extra_one_line_says_what_to_install(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HIDE_SERVE)
    save_library(EmbeddingLibrary(np.eye(2, dtype=np.float32), ["a", "b"], [None] * 2, [None] * 2,
                                  ModelDescription(kind="onnx", name="t", dim=2),
                                  metadata=[TrackMetadata(title="a"), None]), tmp_path / "lib.npz")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    r = subprocess.run([sys.executable, "-m", "specmusic", "serve", str(tmp_path / "lib.npz")], capture_output=True,
                       text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)  # fmt: skip
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "pip install 'specmusic[serve]'" in r.stderr, r.stderr
