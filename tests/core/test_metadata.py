"""Track metadata (:mod:`specmusic.metadata`): tags read with mutagen from every container specmusic
decodes, the guess from folder names, broken tags as warnings, the library columns."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from specmusic.metadata import (
    MAX_TEXT,
    TrackMetadata,
    metadata_columns,
    metadata_from_columns,
    metadata_from_path,
    read_metadata,
)
from tests.conftest import chirp, write

mutagen = pytest.importorskip("mutagen", reason="mutagen (a runtime dependency) is not installed")

TAGS = {"artist": "Nina Simone", "albumartist": "Nina Simone", "album": "Pastel Blues", "title": "Sinnerman",
        "tracknumber": "10/10", "date": "1965-10-01", "genre": ["Jazz", "Soul"], "musicbrainz_trackid": "rec-1"}  # fmt: skip


def tag_file(path: Path, tags: dict[str, object] = TAGS) -> Path:
    """Write ``tags`` with mutagen's easy interface (ID3, Vorbis comments or MP4 atoms, as the file holds)."""
    f = mutagen.File(path, easy=True)
    if path.suffix in (".wav", ".aiff"):  # plain ID3 frames, no easy interface
        from mutagen.id3 import TALB, TIT2, TPE1, UFID

        f.add_tags()
        f.tags.add(TPE1(encoding=3, text=[tags["artist"]]))
        f.tags.add(TALB(encoding=3, text=[tags["album"]]))
        f.tags.add(TIT2(encoding=3, text=[tags["title"]]))
        f.tags.add(UFID(owner="http://musicbrainz.org", data=str(tags["musicbrainz_trackid"]).encode()))
        f.save()
        return path
    if f.tags is None:
        f.add_tags()
    for key, value in tags.items():
        f[key] = value
    f.save()
    return path


@pytest.mark.parametrize("ext,fmt,subtype", [
    ("mp3", "MP3", None), ("ogg", "OGG", "VORBIS"), ("opus", "OGG", "OPUS"), ("flac", "FLAC", None),
])  # fmt: skip
def test_tags_of_each_container(tmp_path, ext, fmt, subtype):
    sr = 48000 if subtype == "OPUS" else 22050
    path = tag_file(write(tmp_path / "x" / f"a.{ext}", chirp(1.0, sr=sr), sr=sr, format=fmt, subtype=subtype))
    meta = read_metadata(str(path))
    assert (meta.artist, meta.albumartist, meta.album, meta.title) == ("Nina Simone", "Nina Simone", "Pastel Blues", "Sinnerman")
    assert (meta.track, meta.year, meta.genre, meta.musicbrainz_recording) == (10, 1965, "Jazz; Soul", "rec-1")
    assert meta.source == "tags" and meta.duration == pytest.approx(1.0, abs=0.1)
    assert meta.display == "Nina Simone — Sinnerman"


def test_wav_id3_frames(tmp_path):
    path = tag_file(write(tmp_path / "Some Artist" / "Some Album" / "01 x.wav", chirp(1.0)))
    meta = read_metadata(str(path))
    assert (meta.artist, meta.album, meta.title, meta.musicbrainz_recording) == ("Nina Simone", "Pastel Blues", "Sinnerman", "rec-1")
    assert meta.track == 1  # not in the tags: from the file name


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (it makes the MP4 file)")
def test_mp4_atoms(tmp_path):
    src = write(tmp_path / "a.wav", chirp(1.0))
    dst = tmp_path / "a.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-c:a", "aac", str(dst)], check=True)
    meta = read_metadata(str(tag_file(dst)))
    assert (meta.artist, meta.title, meta.year, meta.musicbrainz_recording) == ("Nina Simone", "Sinnerman", 1965, "rec-1")


def test_no_tags_falls_back_to_folder_names(tmp_path):
    path = write(tmp_path / "Miles Davis" / "Kind of Blue" / "02 - So What.wav", chirp(1.0))
    meta = read_metadata(str(path))
    assert (meta.artist, meta.album, meta.title, meta.track, meta.source) == ("Miles Davis", "Kind of Blue", "So What", 2, "folders")
    assert meta.duration == pytest.approx(1.0) and meta.display is None  # a guess is not shown as Artist — Title
    assert metadata_from_path("/m/Mix/Artist Name - Song Title.mp3").artist == "Artist Name"


def test_a_broken_tag_is_a_warning_never_a_failure(tmp_path):
    path = tmp_path / "Band" / "Album" / "broken.mp3"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"ID3\x04\x00\x00\x00\x00\x10\x00" + b"\xff" * 64)  # a tag header promising more than there is
    warnings: list[str] = []
    meta = read_metadata(str(path), warnings=warnings)
    assert meta.source == "folders" and meta.album == "Album"
    assert len(warnings) == 1 and "tags are unreadable" in warnings[0] and " — " in warnings[0]
    assert read_metadata(str(tmp_path / "gone.mp3")).title == "gone"  # a missing file: the path alone


def test_non_utf8_file_name(tmp_path):
    path = write(tmp_path / os.fsdecode(b"caf\xe9") / os.fsdecode(b"d\xe9j\xe0.flac"), chirp(1.0), format="FLAC")
    assert read_metadata(str(path)).album == os.fsdecode(b"caf\xe9")
    meta = read_metadata(str(tag_file(path)))
    assert meta.title == "Sinnerman"


def test_long_and_odd_text_is_kept_short(tmp_path):
    path = tag_file(write(tmp_path / "a.flac", chirp(1.0), format="FLAC"), {**TAGS, "title": "x" * 5000 + "\x00"})
    assert len(read_metadata(str(path)).title or "") == MAX_TEXT


def test_record_and_columns_round_trip():
    a = TrackMetadata(artist="A", album="B", title="C", track=3, year=1999, duration=12.5, genre="Jazz")
    b = TrackMetadata(title="t", source="folders")
    assert TrackMetadata.from_dict(a.to_dict()) == a and "albumartist" not in a.to_dict()
    cols = metadata_columns([a, None, b])
    assert cols["meta_year"].tolist() == [1999, -1, -1] and np.isnan(cols["meta_duration"][1])
    assert metadata_from_columns(cols.get, 3) == [a, None, b]
    assert metadata_columns([None, None]) == {} and metadata_from_columns({}.get, 2) is None
    with pytest.raises(ValueError):
        TrackMetadata.from_dict({"year": "soon"})
