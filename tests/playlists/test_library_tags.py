"""Tag columns in libraries: ``.npz``, JSON Lines, incremental runs, journals and sharded folders; old
libraries without them; ``recommend`` showing and filtering by them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from specmusic.embeddings import (
    EmbeddingLibrary,
    ModelDescription,
    ShardedLibraryWriter,
    read_library,
    read_sharded,
)
from specmusic.embeddings.store.journal import EmbedJournal
from specmusic.embeddings.store.library import track_record
from specmusic.metadata import TrackMetadata
from tests.playlists.conftest import make_collection, run, tag, track


def _by_path(lib: EmbeddingLibrary) -> dict[str, TrackMetadata | None]:
    return dict(zip(lib.ids, lib.metadata or []))


def test_npz_keeps_the_tags(library, collection):
    meta = _by_path(read_library(library))
    ann = meta[track(collection, "Ann", "Two", 2)]
    assert (ann.artist, ann.album, ann.title, ann.genre, ann.year, ann.track, ann.source) == (
        "Ann", "Ann Two", "Ann song 5", "Jazz", 1996, 2, "tags")
    assert ann.duration == pytest.approx(1.5)
    assert meta[str(collection / "Compilation" / "01 Copy.flac")].album == "Greatest Hits"


def test_json_lines_carry_the_tags(collection):
    r = run("embed", str(collection / "Bob"), "-m", "mfcc")
    assert r.exit_code == 0, r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()[1:]]
    assert {rec["metadata"]["artist"] for rec in records} == {"Bob"}
    assert read_library("-", stdin=iter(r.stdout.splitlines(True))).metadata[0].genre == "Rock"


def test_incremental_runs_keep_and_refresh_the_tags(tmp_path):
    music = make_collection(tmp_path / "music")
    lib = tmp_path / "lib.npz"
    assert run("embed", str(music), "-m", "mfcc", "-o", str(lib)).exit_code == 0
    again = run("embed", str(music), "-m", "mfcc", "-o", str(lib))
    assert "0 embedded, 31 unchanged" in again.stderr
    assert _by_path(read_library(lib))[track(music, "Cy", "One", 1)].title == "Cy song 1"
    tag(Path(track(music, "Cy", "One", 1)), title="Renamed")  # a tag edit changes the file: embedded again
    third = run("embed", str(music), "-m", "mfcc", "-o", str(lib))
    assert "1 embedded, 30 unchanged" in third.stderr
    assert _by_path(read_library(lib))[track(music, "Cy", "One", 1)].title == "Renamed"


def test_the_journal_of_an_interrupted_run_keeps_the_tags(tmp_path):
    model = ModelDescription.from_dict({"kind": "mfcc", "feature_config": {"n_mfcc": 20}, "standardize": True})
    journal = EmbedJournal.open(tmp_path / "lib.npz", model)
    meta = TrackMetadata(artist="A", title="T", duration=3.0)
    journal.add(track_record("a.flac", None, None, 10, 1.0, None, [], meta), np.ones(4, np.float32) / 2)
    journal.close()  # killed before the library was written
    resumed = EmbedJournal.open(tmp_path / "lib.npz", model)
    assert resumed.resumed is not None and resumed.resumed.metadata == [meta]
    resumed.close()


def test_a_sharded_folder_keeps_the_tags(collection, tmp_path):
    folder = tmp_path / "lib"
    assert run("embed", str(collection), "-m", "mfcc", "-o", f"{folder}/").exit_code == 0
    meta = _by_path(read_sharded(folder))
    assert meta[track(collection, "Eve", "One", 3)].artist == "Eve"
    r = run("recommend", str(folder), "-q", track(collection, "Eve", "One", 3), "-k", "4", "--json",
            "--where", "genre=rock", "--group-key", "artist")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert {n["metadata"]["artist"] for n in json.loads(r.stdout)["neighbors"]} == {"Bob"}


def _strip_tags(lib_path: Path) -> None:
    """The library as specmusic wrote it before tags were kept."""
    with np.load(lib_path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if not k.startswith("meta_")}
    np.savez(lib_path, **arrays)


def test_an_old_library_reads_tags_on_demand_and_embed_fills_them_in(tmp_path):
    music = make_collection(tmp_path / "music")
    lib = tmp_path / "lib.npz"
    assert run("embed", str(music), "-m", "mfcc", "-o", str(lib)).exit_code == 0
    _strip_tags(lib)
    assert not read_library(lib).has_metadata
    r = run("recommend", str(lib), "-q", track(music, "Dee", "Two", 1), "-k", "3", "--where", "artist=dee")
    assert r.exit_code == 0, r.stderr
    assert all("\tDee — Dee song" in line for line in r.stdout.splitlines()[1:])
    assert "keeps no tags (embedded before tags were kept)" in r.stderr and "rerun the same `specmusic embed" in r.stderr
    p = run("playlist", str(lib), "--seed", track(music, "Dee", "Two", 1), "--tracks", "8", "--format", "jsonl")
    assert p.exit_code == 0, p.stderr
    artists = [json.loads(line)["metadata"]["artist"] for line in p.stdout.splitlines()]
    assert len(artists) == 8 and all(len(set(artists[i : i + 3])) == 3 for i in range(6))
    refresh = run("embed", str(music), "-m", "mfcc", "-o", str(lib))
    assert "0 embedded, 31 unchanged" in refresh.stderr and "read the tags of 31 unchanged track(s)" in refresh.stderr
    assert _by_path(read_library(lib))[track(music, "Dee", "Two", 1)].genre == "Folk"


def test_an_old_sharded_folder_gets_its_tags_on_the_next_embed(tmp_path, library):
    music = make_collection(tmp_path / "music")
    fresh = tmp_path / "new.npz"
    assert run("embed", str(music), "-m", "mfcc", "-o", str(fresh)).exit_code == 0
    old = read_library(fresh)
    writer = ShardedLibraryWriter.open(tmp_path / "lib", old.model)
    for i in range(len(old)):
        rec = old.record(i)
        rec.pop("metadata")  # as parts were written before tags were kept
        writer.add(rec, old.vectors[i])
    writer.finish()
    assert not read_sharded(tmp_path / "lib").has_metadata
    r = run("embed", str(music), "-m", "mfcc", "-o", f"{tmp_path / 'lib'}/")
    assert r.exit_code == 0 and "0 embedded, 31 unchanged" in r.stderr, r.stderr
    assert _by_path(read_sharded(tmp_path / "lib"))[track(music, "Bob", "One", 2)].title == "Bob song 2"


def test_recommend_shows_artist_and_title_groups_and_explains_by_them(library, collection):
    q = track(collection, "Cy", "One", 1)
    r = run("recommend", str(library), "-q", q, "-k", "3", "--explain")
    assert r.exit_code == 0, r.stderr
    first = r.stdout.splitlines()[1].split("\t")
    assert first[3].startswith("Cy — Cy song") and "same artist: Cy" in first[-1] and "same genre: Jazz" in first[-1]
    g = run("recommend", str(library), "-q", q, "-k", "5", "--group-key", "album", "--json")
    albums = [n["metadata"]["album"] for n in json.loads(g.stdout)["neighbors"]]
    assert "Cy One" not in albums and len(albums) == 5
    y = run("recommend", str(library), "-q", q, "-k", "20", "--json", "--year", "2000..", "--filter", "genre!=rock")
    found = json.loads(y.stdout)["neighbors"]
    assert found and all(n["metadata"]["artist"] == "Cy" for n in found)  # jazz of 2005-2006


@pytest.mark.parametrize("flag", ["year<>3", "mood=happy", "genre>3", "year~19"])
def test_a_bad_condition_is_one_error_line(library, collection, flag):
    r = run("recommend", str(library), "-q", track(collection, "Cy", "One", 1), "--where", flag)
    assert r.exit_code == 1 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --where") and " — " in lines[0]


def test_non_utf8_names_keep_their_tags(tmp_path):
    music = make_collection(tmp_path / "music")
    odd = music / os.fsdecode(b"Caf\xe9") / os.fsdecode(b"d\xe9j\xe0 vu.flac")
    odd.parent.mkdir()
    os.rename(track(music, "Eve", "Two", 3), odd)
    lib = tmp_path / "lib.npz"
    assert run("embed", str(music), "-m", "mfcc", "-o", str(lib)).exit_code == 0
    assert _by_path(read_library(lib))[str(odd)].artist == "Eve"
