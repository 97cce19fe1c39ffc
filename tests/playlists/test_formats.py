"""Playlist files: M3U8 (relative or absolute paths, odd names), XSPF, JSON Lines, stdout, and reading
them back for ``--extend``; the command's options and its bad input."""

from __future__ import annotations

import json
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from specmusic.metadata import TrackMetadata
from specmusic.playlists import Playlist, PlaylistEntry, read_playlist, render_playlist, write_playlist
from tests.playlists.conftest import run, track

ODD = [b"a b.flac", "café ♫.flac".encode(), b"caf\xe9.flac"]  # spaces, non-ASCII, not UTF-8


def _playlist(folder: Path) -> Playlist:
    entries = []
    for i, name in enumerate(ODD):
        path = os.fsdecode(os.path.join(os.fsencode(folder), b"music", name))
        meta = TrackMetadata(artist=f"Artist {i}", title=f"Title {i}\nwith a newline", album="Al", track=i + 1, duration=61.4)
        entries.append(PlaylistEntry(path, 0.5, 0.4, 0.6, meta))
    return Playlist(entries)


def test_m3u8_paths_are_relative_to_the_playlist_so_the_folder_can_move(tmp_path):
    playlist = _playlist(tmp_path / "here")
    assert write_playlist(playlist, str(tmp_path / "here" / "lists" / "mix.m3u8")) == "m3u8"
    data = (tmp_path / "here" / "lists" / "mix.m3u8").read_bytes()
    lines = data.split(b"\n")
    assert lines[0] == b"#EXTM3U" and lines[1] == b"#EXTINF:61,Artist 0 - Title 0 with a newline"
    assert lines[2] == b"../music/a b.flac" and lines[6] == b"../music/caf\xe9.flac"  # the name's own bytes
    assert read_playlist(str(tmp_path / "here" / "lists" / "mix.m3u8")) == playlist.ids
    shutil.move(tmp_path / "here", tmp_path / "there")  # music and playlist moved together
    assert read_playlist(str(tmp_path / "there" / "lists" / "mix.m3u8")) == _playlist(tmp_path / "there").ids
    write_playlist(playlist, str(tmp_path / "abs.m3u"), absolute=True)
    assert os.fsencode(playlist.ids[2]) in (tmp_path / "abs.m3u").read_bytes().split(b"\n")


def test_xspf_locations_are_uris_any_name_survives(tmp_path):
    playlist = _playlist(tmp_path)
    write_playlist(playlist, str(tmp_path / "mix.xspf"))
    root = ET.parse(tmp_path / "mix.xspf").getroot()
    ns = {"x": "http://xspf.org/ns/0/"}
    locations = [e.text for e in root.iterfind(".//x:location", ns)]
    assert locations == ["music/a%20b.flac", "music/caf%C3%A9%20%E2%99%AB.flac", "music/caf%E9.flac"]
    assert [e.text for e in root.iterfind(".//x:creator", ns)] == ["Artist 0", "Artist 1", "Artist 2"]
    assert root.find(".//x:duration", ns).text == "61400"
    assert read_playlist(str(tmp_path / "mix.xspf")) == playlist.ids
    absolute = render_playlist(playlist, "xspf", base=None).decode()
    assert "file:///" in absolute and "caf%E9.flac" in absolute


def test_json_lines_and_stdout(tmp_path):
    playlist = _playlist(tmp_path)
    write_playlist(playlist, str(tmp_path / "mix.jsonl"))
    recs = [json.loads(line) for line in (tmp_path / "mix.jsonl").read_text().splitlines()]
    assert [r["position"] for r in recs] == [1, 2, 3] and recs[0]["score"] == 0.5 and recs[0]["metadata"]["artist"] == "Artist 0"
    assert [os.fsencode(r["id"]) for r in recs][2].endswith(b"caf\xe9.flac")
    assert read_playlist(str(tmp_path / "mix.jsonl")) == playlist.ids
    assert Playlist.from_dict(playlist.to_dict()) == playlist


def test_read_playlist_takes_file_uris_and_plain_lists(tmp_path):
    (tmp_path / "a.m3u").write_bytes(b"\xef\xbb\xbf#EXTM3U\r\nfile:///music/caf%E9.flac\r\n\r\nsub/x.mp3\nhttp://radio/x\n")
    assert read_playlist(str(tmp_path / "a.m3u")) == [os.fsdecode(b"/music/caf\xe9.flac"), str(tmp_path / "sub" / "x.mp3")]
    (tmp_path / "empty.m3u8").write_text("#EXTM3U\n")
    with pytest.raises(Exception, match="lists no track"):
        read_playlist(str(tmp_path / "empty.m3u8"))


def _one_line_error(r) -> str:
    assert r.exit_code == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and " — " in lines[0], r.stderr
    return lines[0]


def test_cli_writes_every_format_and_extends(library, collection, tmp_path):
    seed = track(collection, "Ann", "One", 1)
    r = run("playlist", str(library), "--seed", seed, "--seed", track(collection, "Eve", "Two", 1), "--tracks", "6",
            "-o", str(tmp_path / "out" / "mix.m3u8"))  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "" and "playlist: 6 tracks, 0.1 min (m3u8)" in r.stderr
    old = read_playlist(str(tmp_path / "out" / "mix.m3u8"))
    more = run("playlist", str(library), "--extend", str(tmp_path / "out" / "mix.m3u8"), "--tracks", "5", "-o", "-",
               "--format", "jsonl")  # fmt: skip
    assert more.exit_code == 0, more.stderr
    new = [json.loads(line)["id"] for line in more.stdout.splitlines()]
    assert len(new) == 5 and not set(new) & set(old)
    journey = run("playlist", str(library), "--from", seed, "--to", track(collection, "Dee", "Two", 3), "--tracks", "5")
    assert journey.exit_code == 0 and journey.stdout.startswith("#EXTM3U\n")
    paths = [line for line in journey.stdout.splitlines() if not line.startswith("#")]
    assert paths[0] == seed and len(paths) == 5  # stdout: absolute paths
    x = run("playlist", str(library), "--seed", seed, "-o", str(tmp_path / "mix.xspf"), "--minutes", "0.1")
    assert x.exit_code == 0 and (tmp_path / "mix.xspf").read_bytes().startswith(b"<?xml")


@pytest.mark.parametrize("args,what", [
    (["--seed", "nowhere.mp3"], "unknown query"),
    (["--from", "Ann/One/01 Song.flac"], "both ends"),
    ([], "no seed"),
    (["--seed", "Ann/One/01 Song.flac", "-o", "mix.txt"], "unknown playlist extension"),
    (["--seed", "Ann/One/01 Song.flac", "--where", "colour=red"], "unknown field"),
    (["--extend", "missing.m3u8"], "cannot read the playlist"),
    (["--from", "Ann/One/01 Song.flac", "--to", "Bob/One/01 Song.flac", "--minutes", "3"], "a journey takes --tracks"),
])  # fmt: skip
def test_cli_bad_input_is_one_error_line(library, args, what):
    assert what in _one_line_error(run("playlist", str(library), *args))


def test_cli_missing_library_and_help():
    assert "no such library" in _one_line_error(run("playlist", "nowhere.npz", "--seed", "x.mp3"))
    h = run("playlist", "--help")
    assert h.exit_code == 0 and "--artist-gap" in h.stdout and "--seed-random" in h.stdout
