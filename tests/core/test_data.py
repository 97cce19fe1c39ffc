"""Track discovery, manifests, GTZAN split lists and group-aware splits."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from specmusic.data import (
    Track,
    apply_split_lists,
    discover_tracks,
    read_manifest,
    read_split_list,
    split_by_group,
    track_key,
)
from specmusic.errors import InputError
from tests.conftest import SHARED, chirp, needs_shared, write


def test_folder_labels_come_from_first_subfolder(genre_tree: Path) -> None:
    tracks, failures = discover_tracks([genre_tree])
    assert not failures
    assert len(tracks) == 12
    assert Counter(t.label for t in tracks) == {"low": 4, "mid": 4, "high": 4}
    t = next(t for t in tracks if t.relpath == "mid/mid.00002.wav")
    assert t.group_id == "mid/mid.00002"


def test_loose_files_and_missing_paths(tmp_path: Path) -> None:
    a = write(tmp_path / "rock" / "a.wav", chirp(0.2))
    b = write(tmp_path / "jazz" / "b.wav", chirp(0.2))
    tracks, failures = discover_tracks([a, b, tmp_path / "missing.wav"])
    assert [(t.relpath, t.label) for t in tracks] == [("rock/a.wav", "rock"), ("jazz/b.wav", "jazz")]
    assert len(failures) == 1 and "no such file" in failures[0].message


def test_unreadable_folder_is_a_failure_not_a_crash(genre_tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sub-folder that cannot be listed is reported; the rest is still found.

    Tests run as root here, which ignores chmod, so os.walk's error callback is triggered the way
    the kernel would trigger it for a mode-000 folder.
    """
    import os

    real_walk = os.walk

    def walk(top, onerror=None, **kw):
        for dirpath, dirnames, filenames in real_walk(top, onerror=onerror, **kw):
            if os.path.basename(dirpath) == "mid":
                onerror(PermissionError(13, "Permission denied", dirpath))
                continue
            yield dirpath, dirnames, filenames

    monkeypatch.setattr("specmusic.data.os.walk", walk)
    tracks, failures = discover_tracks([genre_tree])
    assert len(tracks) == 8
    assert len(failures) == 1 and "mid: cannot read folder (Permission denied)" in failures[0].message


def test_csv_and_jsonl_manifests(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("path,label,group\nx/a.wav,rock,artist1\n/abs/b.mp3,jazz,\n")
    tracks = read_manifest(tmp_path / "m.csv")
    assert tracks[0] == Track(str(tmp_path / "x/a.wav"), "x/a.wav", "rock", "artist1")
    assert tracks[1].path == "/abs/b.mp3" and tracks[1].group is None and tracks[1].group_id == "b"
    lines = [{"path": "a.wav", "label": "pop"}, {"path": "b.wav", "label": None, "group": "g"}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    j = read_manifest(tmp_path / "m.jsonl")
    assert [(t.label, t.group) for t in j] == [("pop", None), (None, "g")]


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [("label\nrock\n", ".csv", "'path' column"), ("{not json\n", ".jsonl", "not valid JSON"), ("path\n\n", ".csv", "")],
)
def test_bad_manifests(tmp_path: Path, content: str, suffix: str, message: str) -> None:
    p = tmp_path / f"m{suffix}"
    p.write_text(content)
    if not message:
        assert read_manifest(p) == []
        return
    with pytest.raises(InputError, match=message):
        read_manifest(p)


def test_track_key_ignores_audio_extension() -> None:
    assert track_key("blues/blues.00029.wav") == track_key("blues/blues.00029.au") == "blues/blues.00029"


def test_split_lists_assign_tracks(tmp_path: Path, genre_tree: Path) -> None:
    tracks, _ = discover_tracks([genre_tree])
    (tmp_path / "train.txt").write_text("low/low.00000.wav\nmid/mid.00000.wav\nhigh/high.00000.wav\n")
    (tmp_path / "test.txt").write_text("low/low.00001.wav\n")
    splits = apply_split_lists(tracks, {"train": tmp_path / "train.txt", "test": tmp_path / "test.txt"})
    assert len(splits["train"]) == 3 and [t.relpath for t in splits["test"]] == ["low/low.00001.wav"]
    (tmp_path / "bad.txt").write_text("low/low.00001.wav\n")
    with pytest.raises(InputError, match="both"):
        apply_split_lists(tracks, {"test": tmp_path / "test.txt", "valid": tmp_path / "bad.txt"})


def _grouped_tracks() -> list[Track]:
    tracks = []
    for label, n_groups in (("a", 10), ("b", 6), ("c", 4)):
        for g in range(n_groups):
            for chunk in range(3):
                rel = f"{label}/{g}/{chunk}.wav"
                tracks.append(Track(rel, rel, label, f"{label}-artist{g}"))
    return tracks


def test_group_split_never_straddles_and_is_stratified_and_seeded() -> None:
    tracks = _grouped_tracks()
    fractions = {"train": 0.6, "valid": 0.2, "test": 0.2}
    splits = split_by_group(tracks, fractions=fractions, seed=1)
    groups = {name: {t.group_id for t in ts} for name, ts in splits.items()}
    assert not groups["train"] & groups["test"] and not groups["train"] & groups["valid"]
    assert not groups["valid"] & groups["test"]
    assert sum(len(ts) for ts in splits.values()) == len(tracks)
    for name in fractions:  # every label in every split
        assert {t.label for t in splits[name]} == {"a", "b", "c"}
    assert Counter(t.label for t in splits["train"])["a"] == 18  # 6 of 10 groups x 3 chunks
    again = split_by_group(tracks, fractions=fractions, seed=1)
    assert again == splits
    other = split_by_group(tracks, fractions=fractions, seed=2)
    assert other != splits


@needs_shared
def test_gtzan_fault_filtered_lists_parse() -> None:
    splits = SHARED / "data" / "gtzan-sample" / "splits"
    sizes = {n: len(read_split_list(splits / f"{n}_filtered.txt")) for n in ("train", "valid", "test")}
    assert sizes == {"train": 443, "valid": 197, "test": 290}
    tracks, _ = discover_tracks([SHARED / "data" / "gtzan-sample"])
    keys = {track_key(t.relpath) for t in tracks}
    listed = set().union(*(read_split_list(splits / f"{n}_filtered.txt") for n in ("train", "valid", "test")))
    assert keys & listed  # the .au sample files match .wav list entries
