"""Clips of the soundtrack benchmark (``benchmarks/soundtracks.py``): how many clips each track gives and
where they start, the track-disjoint train/valid/test split, cutting the clips (OGG Vorbis, atomically,
reusing clips already cut with the same spec), and ``manifest.csv`` with the split lists.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from soundtrack_packages import FILE_MODE, ClassReport, Track, log, write_atomic

SPLITS: tuple[str, ...] = ("train", "valid", "test")
SPLIT_FRACTIONS: dict[str, float] = {"train": 0.60, "valid": 0.15, "test": 0.25}
STATE_VERSION = 1


# ------------------------------------------------------------------ clip planning


def plan_clips(
    tracks: list[Track],
    clip_seconds: float,
    skip_head: float,
    skip_tail: float,
    max_per_track: int,
    max_per_class: int,
    rng: random.Random,
) -> None:
    """Choose clip start frames for the tracks of one class (in place).

    Clips are allocated round-robin over the tracks (in a seeded random order)
    until the class cap is reached, then spread evenly over the usable part of
    each track: ``[skip_head, duration - skip_tail]``.
    """
    capacity: dict[int, int] = {}
    for i, track in enumerate(tracks):
        usable = track.duration - skip_head - skip_tail
        if usable < clip_seconds:  # short track: drop the head/tail margins
            usable = track.duration
        capacity[i] = min(max_per_track, int(usable // clip_seconds))

    order = list(range(len(tracks)))
    rng.shuffle(order)
    counts = dict.fromkeys(order, 0)
    total = 0
    while total < max_per_class:
        progressed = False
        for i in order:
            if counts[i] < capacity[i] and total < max_per_class:
                counts[i] += 1
                total += 1
                progressed = True
        if not progressed:
            break

    for i, track in enumerate(tracks):
        track.clip_starts = spread_clips(track, counts[i], clip_seconds, skip_head, skip_tail)


def spread_clips(
    track: Track, count: int, clip_seconds: float, skip_head: float, skip_tail: float
) -> list[int]:
    """Start frames of *count* non-overlapping clips spread evenly over a track."""
    if count <= 0:
        return []
    sr = track.samplerate
    clip = int(round(clip_seconds * sr))
    start, stop = int(skip_head * sr), track.frames - int(skip_tail * sr)
    if stop - start < clip * count:
        start, stop = 0, track.frames
    gap = (stop - start - clip * count) / count  # equal slack before each clip
    return [int(start + gap / 2 + k * (clip + gap)) for k in range(count)]


# ------------------------------------------------------------------------- splits


def split_tracks(tracks: list[Track], families: Sequence[Sequence[str]], rng: random.Random) -> None:
    """Assign whole tracks to train/valid/test, aiming at 60/15/25 % of the clips.

    The unit of assignment is a track, or a whole family of related tracks.
    Units are visited largest first (ties in seeded random order) and each goes
    to the split furthest below its clip target. Afterwards the constraints are
    enforced: >= 2 tracks in train, >= 1 in test and (with >= 4 tracks) >= 1 in
    valid, by moving the smallest unit out of a split that can spare it.
    """
    for track in tracks:
        track.split = ""
    used = [t for t in tracks if t.clip_starts]
    label = tracks[0].label if tracks else "?"
    if len(used) < 3:
        raise SystemExit(f"class {label}: only {len(used)} usable tracks, need >= 3")

    family_of = {slug: n for n, family in enumerate(families) for slug in family}
    grouped: dict[Any, list[Track]] = {}
    for track in used:
        grouped.setdefault(family_of.get(track.slug, track.slug), []).append(track)
    units = list(grouped.values())

    def clips_of(unit: list[Track]) -> int:
        return sum(len(t.clip_starts) for t in unit)

    rng.shuffle(units)
    units.sort(key=clips_of, reverse=True)
    total = sum(clips_of(u) for u in units)
    assigned: dict[str, list[list[Track]]] = {s: [] for s in SPLITS}
    for unit in units:
        filled = {s: sum(clips_of(u) for u in assigned[s]) for s in SPLITS}
        best = max(SPLITS, key=lambda s: (SPLIT_FRACTIONS[s] * total - filled[s], -SPLITS.index(s)))
        assigned[best].append(unit)

    def n_tracks(split: str) -> int:
        return sum(len(u) for u in assigned[split])

    minimum = {"train": 2, "test": 1, "valid": 1 if len(used) >= 4 else 0}
    for split in ("test", "train", "valid"):
        while n_tracks(split) < minimum[split]:
            # Smallest unit of a split that keeps its own minimum without it.
            options = [
                (clips_of(u), s, i)
                for s in SPLITS
                if s != split
                for i, u in enumerate(assigned[s])
                if n_tracks(s) - len(u) >= minimum[s]
            ]
            if not options:
                raise SystemExit(f"class {label}: too few tracks (or too large families) for the splits")
            _, donor, index = min(options)
            assigned[split].append(assigned[donor].pop(index))

    for split, split_units in assigned.items():
        for unit in split_units:
            for track in unit:
                track.split = split


# -------------------------------------------------------------------------- clips


def clip_spec(track: Track, start: int, clip_frames: int, out_samplerate: int) -> dict[str, Any]:
    """Everything that determines the content of one clip file."""
    return {
        "package_path": track.rel,
        "start_frame": start,
        "frames": clip_frames,
        "source_samplerate": track.samplerate,
        "samplerate": out_samplerate or track.samplerate,
        "channels": track.channels,
        "format": "OGG/VORBIS",
    }


def cut_clip(track: Track, start: int, frames: int, out_samplerate: int, target: Path) -> None:
    """Decode one segment of a track and write it as OGG Vorbis (atomically)."""
    with sf.SoundFile(str(track.path)) as src:
        src.seek(start)
        audio = src.read(frames, dtype="float32", always_2d=True)
    if audio.shape[0] < frames:  # decoders can report a few frames too many
        audio = np.pad(audio, ((0, frames - audio.shape[0]), (0, 0)))
    samplerate = track.samplerate
    if out_samplerate and out_samplerate != samplerate:
        import soxr  # only needed when resampling

        audio = soxr.resample(audio, samplerate, out_samplerate, quality="HQ")
        samplerate = out_samplerate
    audio = np.clip(audio, -1.0, 1.0)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        sf.write(tmp, audio, samplerate, format="OGG", subtype="VORBIS")
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_previous_specs(out: Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Clip specs and labels recorded by a previous run in ``sources.json``."""
    state = out / "sources.json"
    if not state.is_file():
        return {}, []
    try:
        data = json.loads(state.read_text())
    except (OSError, json.JSONDecodeError):
        return {}, []
    if data.get("state_version") != STATE_VERSION:
        return {}, []
    specs: dict[str, dict[str, Any]] = {}
    for track in data.get("tracks", []):
        for clip in track.get("clips", []):
            specs[clip["path"]] = clip["spec"]
    return specs, [c["label"] for c in data.get("classes", [])]


def write_clips(
    reports: list[ClassReport],
    out: Path,
    clip_seconds: float,
    out_samplerate: int,
    previous: dict[str, dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Cut every planned clip that is not already on disk with the same spec."""
    specs: dict[str, dict[str, Any]] = {}
    todo: list[tuple[Track, int, str, dict[str, Any]]] = []
    for report in reports:
        for track in report.tracks:
            frames = int(round(clip_seconds * track.samplerate))
            for k, start in enumerate(track.clip_starts):
                rel = track.clip_relpath(k)
                spec = clip_spec(track, start, frames, out_samplerate)
                specs[rel] = spec
                if previous.get(rel) != spec or not (out / rel).is_file():
                    todo.append((track, start, rel, spec))
    log(f"clips: {len(specs)} planned, {len(specs) - len(todo)} reused, {len(todo)} to cut")
    for n, (track, start, rel, spec) in enumerate(todo, 1):
        cut_clip(track, start, spec["frames"], out_samplerate, out / rel)
        if n % 25 == 0 or n == len(todo):
            log(f"  cut {n}/{len(todo)} ({rel})")
    return specs


def remove_stale_clips(out: Path, labels: Iterable[str], keep: set[str]) -> int:
    """Delete clip files of our labels that the current plan no longer contains."""
    removed = 0
    for label in labels:
        folder = out / label
        if not folder.is_dir():
            continue
        for path in folder.glob(f"{label}.*.ogg"):
            if f"{label}/{path.name}" not in keep:
                path.unlink()
                removed += 1
        for tmp in folder.glob(".*.tmp"):  # leftovers of an interrupted run
            tmp.unlink()
        if not any(folder.iterdir()):
            folder.rmdir()
    return removed


# ------------------------------------------------------------------------ outputs


def write_manifest(reports: list[ClassReport], out: Path) -> None:
    """``manifest.csv`` with columns path,label,group and the three split lists."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "label", "group"])
    lists: dict[str, list[str]] = {s: [] for s in SPLITS}
    for report in reports:
        for track in report.tracks:
            for k in range(len(track.clip_starts)):
                rel = track.clip_relpath(k)
                writer.writerow([rel, track.label, track.group])
                lists[track.split].append(rel)
    write_atomic(out / "manifest.csv", buffer.getvalue())
    for split, paths in lists.items():
        write_atomic(out / "splits" / f"{split}_filtered.txt", "".join(f"{p}\n" for p in sorted(paths)))


def count_clips(reports: list[ClassReport]) -> dict[str, dict[str, tuple[int, int]]]:
    """label -> split -> (clips, tracks)."""
    table: dict[str, dict[str, tuple[int, int]]] = {}
    for report in reports:
        row = {s: (0, 0) for s in SPLITS}
        for track in report.tracks:
            if track.clip_starts:
                clips, n_tracks = row[track.split]
                row[track.split] = (clips + len(track.clip_starts), n_tracks + 1)
        table[report.soundtrack.label] = row
    return table
