"""``make_playlist``: each rule (no seed echo, artist and album gaps, duplicates), journeys, extending,
determinism, minutes, filters, sharded libraries and seeds that are not in the library."""

from __future__ import annotations

import numpy as np
import pytest

from specmusic.embeddings import open_recommender, parse_filter
from specmusic.errors import InputError
from specmusic.playlists import Playlist, PlaylistConfig, make_playlist, rule_violations
from tests.conftest import melody, tone, write
from tests.playlists.conftest import ARTISTS, run, tag, track

NO_GAPS = PlaylistConfig(artist_gap=0, album_gap=0)


@pytest.fixture(scope="module")
def rec(library):
    return open_recommender(str(library))


def _no_violations(playlist: Playlist) -> None:
    assert rule_violations(playlist) == {"seed_echo": [], "artist_gap": [], "album_gap": [], "duplicate": []}


def test_no_seed_echo_no_artist_or_album_within_the_gaps(rec, collection):
    seed = track(collection, "Ann", "One", 1)
    playlist = make_playlist(rec, seeds=[seed], tracks=12)
    assert len(playlist) == 12 and seed not in playlist.ids and len(set(playlist.ids)) == 12
    _no_violations(playlist)
    artists = ["Ann", *(e.metadata.artist for e in playlist.entries)]
    assert all(len(set(artists[i : i + 4])) == 4 for i in range(len(artists) - 3))  # artist gap 3, seed included
    albums = [e.metadata.album for e in playlist.entries]
    assert all(len(set(albums[i : i + 6])) == len(albums[i : i + 6]) for i in range(len(albums)))
    assert playlist.notes == []


def test_the_first_track_stays_near_the_seed_and_scores_are_explained(rec, collection):
    playlist = make_playlist(rec, seeds=[track(collection, "Ann", "One", 1)], tracks=5, config=NO_GAPS)
    first = playlist.entries[0]
    assert first.metadata.artist == "Ann"  # the seed's own artist is nearest when no gap keeps it away
    beta = NO_GAPS.balance
    for e in playlist.entries:
        assert e.score == pytest.approx((1 - beta) * e.to_previous + beta * e.to_seeds, abs=1e-5)


def test_a_duplicate_recording_is_skipped(rec, collection):
    original, copy = track(collection, "Ann", "One", 1), str(collection / "Compilation" / "01 Copy.flac")
    echo = make_playlist(rec, seeds=[original], tracks=8, config=NO_GAPS)
    assert copy not in echo.ids  # the seed's copy is the seed again: never echoed
    whole = make_playlist(rec, seeds=[track(collection, "Ann", "One", 2)], tracks=40, config=NO_GAPS)
    assert not {original, copy} <= set(whole.ids)  # one of the two, never both
    assert len(whole) == 29  # 31 tracks, less the seed and one of the pair
    assert any("ends after 29" in n for n in whole.notes)
    _no_violations(whole)


def test_journey_starts_and_ends_at_its_ends(rec, collection):
    a, b = track(collection, "Ann", "One", 1), track(collection, "Eve", "Two", 3)
    journey = make_playlist(rec, start=a, end=b, tracks=7)
    assert len(journey) == 7 and journey.ids[0] == a and journey.ids[-1] == b
    assert [e.role for e in journey.entries] == ["from"] + ["track"] * 5 + ["to"]
    assert len(set(journey.ids)) == 7
    _no_violations(journey)
    free = make_playlist(rec, start=a, end=b, tracks=9, config=NO_GAPS)
    order = list(ARTISTS)  # pitches rise from Ann to Eve: without gaps the way goes up, not back and forth
    steps = [order.index(e.metadata.artist) for e in free.entries]
    assert np.corrcoef(np.arange(len(steps)), steps)[0, 1] > 0.8, steps


def test_extend_goes_on_from_the_last_track(rec, collection):
    first = make_playlist(rec, seeds=[track(collection, "Cy", "One", 1)], tracks=6)
    more = make_playlist(rec, extend=[*(s.id for s in first.seeds), *first.ids], tracks=6)
    assert more.mode == "extend" and len(more) == 6
    assert not set(more.ids) & {*first.ids, first.seeds[0].id}
    last_artists = {e.metadata.artist for e in first.entries[-3:]}
    assert more.entries[0].metadata.artist not in last_artists
    _no_violations(more)


def test_one_random_seed_one_playlist(rec, collection):
    seed = [track(collection, "Dee", "One", 2)]
    a = make_playlist(rec, seeds=seed, tracks=10, random_seed=7)
    assert make_playlist(rec, seeds=seed, tracks=10, random_seed=7).ids == a.ids
    assert any(make_playlist(rec, seeds=seed, tracks=10, random_seed=s).ids != a.ids for s in range(1, 6))
    greedy = PlaylistConfig(variety=1)
    assert len({tuple(make_playlist(rec, seeds=seed, tracks=10, config=greedy, random_seed=s).ids) for s in range(3)}) == 1


def test_minutes_and_several_seeds(rec, collection):
    seeds = [track(collection, "Ann", "Two", 1), track(collection, "Eve", "One", 1)]
    playlist = make_playlist(rec, seeds=seeds, minutes=9 / 60)  # 1.5 s tracks: 6 of them
    assert len(playlist) == 6 and playlist.duration == pytest.approx(9.0)
    assert [s.id for s in playlist.seeds] == seeds


def test_where_keeps_only_matching_tracks(rec, collection):
    where = parse_filter(["genre=jazz"], year="1990..2000")
    playlist = make_playlist(rec, seeds=[track(collection, "Bob", "One", 1)], tracks=10, config=NO_GAPS, where=where)
    assert playlist.entries and all(e.metadata.artist == "Ann" for e in playlist.entries)  # Ann: jazz, 1995-1996
    assert len(playlist) == 6 and any("meeting --where" in n for n in playlist.notes)


def test_a_seed_that_is_not_in_the_library_is_embedded_now(rec, collection, tmp_path):
    outside = write(tmp_path / "new.wav", tone(1109.0 * 1.02, 1.5, seed=999))
    playlist = make_playlist(rec, seeds=[str(outside)], tracks=3, config=NO_GAPS)
    assert [e.metadata.artist for e in playlist.entries] == ["Eve"] * 3  # its pitch is Eve's
    assert playlist.seeds[0].metadata.source == "folders"  # read from the file, not the library


def test_gaps_are_relaxed_with_a_note_when_nothing_else_is_left(rec, collection):
    where = parse_filter(["artist=ann"])
    playlist = make_playlist(rec, seeds=[track(collection, "Ann", "One", 1)], tracks=4, where=where)
    assert len(playlist) == 4 and any("--artist-gap" in n for n in playlist.notes)


def test_sharded_library_gives_the_same_playlist(library, collection, tmp_path):
    folder = tmp_path / "lib"
    r = run("embed", str(collection), "-m", "mfcc", "-o", f"{folder}/")
    assert r.exit_code == 0, r.stderr
    seed = [track(collection, "Bob", "Two", 2)]
    sharded = make_playlist(open_recommender(str(folder)), seeds=seed, tracks=10)
    assert sharded.ids == make_playlist(open_recommender(str(library)), seeds=seed, tracks=10).ids
    journey = make_playlist(open_recommender(str(folder)), start=seed[0], end=track(collection, "Dee", "One", 1), tracks=5)
    _no_violations(journey)


@pytest.mark.parametrize("kwargs,message", [
    ({}, "no seed"),
    ({"start": "x"}, "both ends"),
    ({"seeds": ["nowhere.flac"]}, "unknown query"),
    ({"start": "Ann/One/01 Song.flac", "end": "Ann/One/01 Song.flac"}, "same track"),
    ({"seeds": ["Ann/One/01 Song.flac"], "tracks": 0}, "above 0"),
])  # fmt: skip
def test_bad_requests(rec, kwargs, message):
    with pytest.raises(InputError, match=message):
        make_playlist(rec, **kwargs)


def test_dedupe_audio_finds_another_edit_the_vectors_miss(tmp_path):
    music = tmp_path / "music"
    for i in range(6):
        tag(write(music / f"t{i}.flac", melody(8.0, seed=i), format="FLAC"), artist=f"A{i}", title=f"Song {i}")
    tag(write(music / "edit.flac", melody(8.0, seed=0)[22050:], format="FLAC"), artist="A0", title="Radio Edit")  # 1 s cut
    assert run("embed", str(music), "-m", "mfcc", "-o", str(tmp_path / "lib.npz")).exit_code == 0
    rec = open_recommender(str(tmp_path / "lib.npz"))
    seed, wanted = [str(music / "t1.flac")], {str(music / "t0.flac"), str(music / "edit.flac")}
    plain = make_playlist(rec, seeds=seed, tracks=6, config=NO_GAPS)
    assert wanted <= set(plain.ids)  # the stored vectors of a cut edit differ: both taken
    audio = make_playlist(rec, seeds=seed, tracks=6, config=PlaylistConfig(artist_gap=0, album_gap=0, audio_duplicates=True))
    assert len(audio) == 5 and len(wanted & set(audio.ids)) == 1


def test_tags_naming_one_song_are_one_recording():
    from specmusic.metadata import TrackMetadata
    from specmusic.playlists import same_recording_by_tags

    a = TrackMetadata(artist="Nina Simone", title="Sinnerman", duration=620.0)
    assert same_recording_by_tags(a, TrackMetadata(artist="nina simone", title="Sinnerman (Remastered 2013)", duration=610.0))
    assert not same_recording_by_tags(a, TrackMetadata(artist="Nina Simone", title="Lilac Wine"))
    assert not same_recording_by_tags(a, TrackMetadata(artist="Nina Simone", title="Sinnerman", source="folders"))
    assert same_recording_by_tags(TrackMetadata(musicbrainz_recording="x"), TrackMetadata(musicbrainz_recording="x"))
