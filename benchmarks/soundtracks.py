#!/usr/bin/env python3
"""Build a labelled music benchmark from the soundtracks of Debian game packages.

Each class is one game soundtrack (label = short game name, e.g. ``hedgewars``).
The script

1. downloads the Debian packages with ``apt-get download`` into a cache folder
   (no installation, no root needed) and unpacks them with ``dpkg-deb -x``;
2. finds the music tracks of each package (curated music folders; sound
   effects, ambience loops, jingles shorter than ``--min-track-seconds`` and
   known near-duplicate variants of another track are left out), decoding with
   soundfile only (tracker/MIDI files such as .mod/.xm/.it/.mid cannot be
   decoded and are skipped and counted);
3. cuts non-overlapping clips (30 s by default) spread evenly over each track,
   at most ``--max-clips-per-track`` per track and ``--max-per-class`` per class
   (clips are handed out round-robin over the tracks so that every track
   contributes before any track gets a second clip);
4. writes the clips GTZAN-style as ``OUT/<label>/<label>.<track-slug>.<NN>.ogg``
   (OGG Vorbis, original sample rate and channels unless ``--samplerate`` is
   given) together with ``manifest.csv`` (``path,label,group``), the split lists
   ``splits/{train,valid,test}_filtered.txt`` (same format as the fault-filtered
   GTZAN lists: one ``label/file`` path per line, relative to OUT), a
   ``README.md``, ``sources.json`` and a copy of each package's copyright file.

Splits are made by *track* (``group`` = ``<label>/<track-slug>``): all clips of
a track land in the same split, stratified per class to roughly 60/15/25 % of
the clips, seeded by ``--seed``.

The script is idempotent: cached .deb files, unpacked trees and already cut
clips (same source, offset and format, as recorded in ``sources.json``) are
reused, and every file is written under a temporary name and moved into place
with ``os.replace``.

The benchmark scripts that consume this dataset also accept a GTZAN folder via
``--gtzan DIR`` with its ``splits/*_filtered.txt`` lists, since both share the
same layout (one folder per label plus the three split lists).

Example::

    nice -n 10 .venv/bin/python benchmarks/soundtracks.py
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import fnmatch
import hashlib
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_CACHE = BENCH_DIR / "data" / "cache"
DEFAULT_OUT = BENCH_DIR / "data" / "soundtracks"

# Formats libsndfile (and so soundfile) decodes; anything else is skipped.
READABLE_SUFFIXES = frozenset({".ogg", ".oga", ".opus", ".flac", ".wav", ".mp3"})
# Music formats we recognise but cannot decode without extra tools.
UNREADABLE_MUSIC_SUFFIXES = frozenset({".mod", ".xm", ".it", ".s3m", ".mid", ".midi"})

SPLITS: tuple[str, ...] = ("train", "valid", "test")
SPLIT_FRACTIONS: dict[str, float] = {"train": 0.60, "valid": 0.15, "test": 0.25}
STATE_VERSION = 1
FILE_MODE = 0o644  # outputs are shared with other users of the checkout

_T0 = time.monotonic()


@dataclass(frozen=True)
class Soundtrack:
    """Where the music of one Debian package lives and how to label it."""

    label: str
    package: str
    # Glob patterns (pathlib style, relative to the unpacked package root).
    music_globs: tuple[str, ...]
    # fnmatch patterns on the path relative to the package root; matches are skipped.
    exclude: tuple[str, ...] = ()
    # Slugs of tracks that share thematic material (an arrangement of another
    # track, alternative mixes, a jingle quoting a theme). Each family is kept in
    # one split so that the same melody cannot be in train and test.
    families: tuple[tuple[str, ...], ...] = ()
    # Licence of the music as read (by a human) from usr/share/doc/PKG/copyright.
    licence: str = "see copyright file"
    note: str = ""


# The default classes. Each package was checked to hold >= 8 decodable tracks of
# >= 60 s; the exclusions are non-music loops or alternative versions of a track
# that is kept (a variant in another split would leak the piece across splits).
# The families were found by comparing every pair of tracks of a class with
# mean-centred 20 s chroma windows (best match over all alignments): the pairs
# listed scored 0.4-0.8 where unrelated pairs score about 0.1-0.3.
KNOWN_SOUNDTRACKS: tuple[Soundtrack, ...] = (
    Soundtrack(
        label="hedgewars",
        package="hedgewars-data",
        music_globs=("usr/share/games/hedgewars/Data/Music/*",),
        exclude=("*/olympics_sd.ogg",),  # "sudden death" variant of Olympics.ogg
        licence="GPL-2 (copyright stanza 'Files: *'; the music is not listed separately)",
    ),
    Soundtrack(
        label="wesnoth",
        package="wesnoth-1.16-music",
        music_globs=("usr/share/games/wesnoth/1.16/data/core/music/*",),
        exclude=("*/frantic-old.ogg",),  # older version of frantic.ogg
        families=(("loyalists", "revelation"),),
        licence="GPL-2+ (whole package)",
    ),
    Soundtrack(
        label="supertux",
        package="supertux-data",
        music_globs=("usr/share/games/supertux2/music/**/*",),
        # *_old: SuperTux 0.1 versions of tracks that exist in a newer form;
        # airship_remix: remix of airship_2.
        exclude=("*/retro/*_old.ogg", "*/airship_remix.ogg"),
        families=(("christmas-theme", "theme"), ("call-of-the-winding-path", "shallow-green")),
        licence="GPL-2+ (copyright stanza 'Files: data/music/*')",
    ),
    Soundtrack(
        label="openclonk",
        package="openclonk-data",
        music_globs=("usr/share/games/openclonk/Music.ocg/*",),
        licence="copyright file: game content under CC-BY-3.0 or CC0 (engine ISC); "
        "Music.ocg/authors.txt: music by K-Pone, CC-BY-3.0 unless stated otherwise",
    ),
    Soundtrack(
        label="warmux",
        package="warmux-data",
        music_globs=("usr/share/games/warmux/music/**/*",),
        exclude=("*/Olivier_Militon.-.Apnee2.ogg",),  # alternative take of Apnee.ogg
        licence="GPL-2+ (whole package)",
    ),
    Soundtrack(
        label="flare",
        package="flare-game",
        music_globs=("usr/share/games/flare/mods/*/music/*",),
        exclude=("*/wind_ambient.ogg",),  # wind noise loop, not music
        licence="CC-BY-SA-3.0+ (copyright stanza 'Files: *')",
    ),
    Soundtrack(
        label="freedroidrpg",
        package="freedroidrpg-data",
        music_globs=("usr/share/freedroidrpg/data/sound/music/*",),
        families=(("ambience", "ambientbattle", "techbattle"), ("hellfortressentrance", "hellfortresstwo")),
        licence="GPL-2+ (copyright stanza 'Files: *')",
    ),
    Soundtrack(
        label="singularity",
        package="singularity-music",
        music_globs=("usr/share/games/singularity/music/**/*",),
        families=(("advanced-simulacra", "march-thee-to-dis"),),
        licence="CC-BY-SA-3.0 (Max McCracken)",
    ),
    Soundtrack(
        label="warzone2100",
        package="warzone2100-music",
        music_globs=("usr/share/games/warzone2100/music/**/*",),
        # *_enhanced are remakes of track3.opus and menu.opus, which are kept.
        exclude=("*/track3_enhanced.opus", "*/menu_enhanced.opus"),
        families=(("track11", "track12", "track14", "track16"),),
        licence="GPL-2+ (copyright 'Files: *'); Aftermath album also CC-BY-SA-3.0+ per its license.txt",
        note="Opus files; three albums (original, legacy, aftermath) by two composers.",
    ),
)


@dataclass
class Package:
    """A downloaded and unpacked Debian package."""

    name: str
    version: str
    deb: Path
    root: Path
    deb_size: int
    deb_sha256: str
    copyright_file: Path | None


@dataclass
class Track:
    """One decodable music file of a soundtrack."""

    label: str
    slug: str
    path: Path  # absolute path of the unpacked file
    rel: str  # path inside the package (as installed, without leading /)
    frames: int
    samplerate: int
    channels: int
    clip_starts: list[int] = field(default_factory=list)  # in source frames
    split: str = ""

    @property
    def duration(self) -> float:
        return self.frames / self.samplerate

    @property
    def group(self) -> str:
        return f"{self.label}/{self.slug}"

    def clip_relpath(self, index: int) -> str:
        return f"{self.label}/{self.label}.{self.slug}.{index:02d}.ogg"


@dataclass
class ClassReport:
    """What was found in one package, for the README and the progress log."""

    soundtrack: Soundtrack
    package: Package
    tracks: list[Track]
    skipped: dict[str, list[str]]  # reason -> package-relative paths


# --------------------------------------------------------------------------- utils


def log(message: str) -> None:
    """Print a progress line with the elapsed time on stderr."""
    print(f"[{time.monotonic() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write *data* to a temporary file next to *path*, then rename it over *path*."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.chmod(tmp, FILE_MODE)  # mkstemp creates 0600 files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def hash_file(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def slugify(text: str) -> str:
    """Lower-case ASCII slug without dots (dots separate fields in clip names)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "track"


def label_from_package(package: str) -> str:
    """Derive a short label from a package name (``foo-data`` -> ``foo``)."""
    name = re.sub(r"-(data|music|musics|game|common)$", "", package)
    name = re.sub(r"-\d+(\.\d+)*$", "", name)  # wesnoth-1.16 -> wesnoth
    return slugify(name).replace("-", "")


def run_command(cmd: Sequence[str], cwd: Path | None = None) -> str:
    """Run a command, returning stdout; raise with its stderr on failure."""
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


# ----------------------------------------------------------------------- packages


def resolve_soundtracks(names: Iterable[str]) -> list[Soundtrack]:
    """Map ``--packages`` entries (package names or known labels) to soundtracks.

    Unknown packages get a generic configuration: every file below a folder
    called ``music``/``musics`` (any case) anywhere in the package.
    An entry ``package=label`` sets the label explicitly.
    """
    by_key = {s.package: s for s in KNOWN_SOUNDTRACKS} | {s.label: s for s in KNOWN_SOUNDTRACKS}
    chosen: list[Soundtrack] = []
    for raw in names:
        entry = raw.strip()
        if not entry:
            continue
        package, _, label = entry.partition("=")
        known = by_key.get(package)
        if known is not None:
            chosen.append(known if not label else dataclasses.replace(known, label=label))
        else:
            chosen.append(
                Soundtrack(
                    label=slugify(label).replace("-", "") if label else label_from_package(package),
                    package=package,
                    music_globs=("**/[Mm]usic/**/*", "**/[Mm]usics/**/*", "**/MUSIC/**/*"),
                )
            )
    labels = [s.label for s in chosen]
    duplicates = sorted({x for x in labels if labels.count(x) > 1})
    if duplicates:
        raise SystemExit(f"duplicate labels in --packages: {', '.join(duplicates)}")
    return chosen


def fetch_deb(package: str, deb_dir: Path) -> Path:
    """Return the cached .deb of *package*, downloading it with apt-get if missing."""
    deb_dir.mkdir(parents=True, exist_ok=True)
    cached = sorted(deb_dir.glob(f"{package}_*.deb"))
    if cached:
        if len(cached) > 1:
            log(f"  {package}: several cached .debs, using {cached[-1].name}")
        return cached[-1]
    log(f"  {package}: apt-get download ...")
    # Download into a private folder first so that an interrupted download
    # never leaves a truncated .deb where the cache lookup would find it.
    with tempfile.TemporaryDirectory(prefix=f".dl-{package}-", dir=deb_dir) as tmp:
        try:
            run_command(["apt-get", "download", package], cwd=Path(tmp))
        except RuntimeError as exc:
            raise SystemExit(
                f"could not download {package}: {exc}\n"
                "(is the package name right? `apt-get update` may be needed first)"
            ) from exc
        downloaded = sorted(Path(tmp).glob(f"{package}_*.deb"))
        if not downloaded:
            raise SystemExit(f"apt-get download {package} produced no .deb")
        target = deb_dir / downloaded[-1].name
        os.replace(downloaded[-1], target)
        # apt may run as _apt and create the file without read access for others.
        target.chmod(0o644)
    return target


def unpack_deb(package: str, deb: Path, unpack_dir: Path) -> Package:
    """Unpack *deb* once into ``unpack_dir/<deb stem>`` and describe it."""
    fields = run_command(["dpkg-deb", "-f", str(deb), "Package", "Version"])
    info = dict(line.split(": ", 1) for line in fields.splitlines() if ": " in line)
    root = unpack_dir / deb.stem
    if not root.is_dir():
        log(f"  {package}: dpkg-deb -x {deb.name}")
        unpack_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{deb.stem}.", dir=unpack_dir))
        try:
            run_command(["dpkg-deb", "-x", str(deb), str(tmp)])
            os.replace(tmp, root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    copyright_file = root / "usr" / "share" / "doc" / package / "copyright"
    return Package(
        name=info.get("Package", package),
        version=info.get("Version", "?"),
        deb=deb,
        root=root,
        deb_size=deb.stat().st_size,
        deb_sha256=hash_cached(deb),
        copyright_file=copyright_file if copyright_file.is_file() else None,
    )


def hash_cached(path: Path) -> str:
    """SHA-256 of a cached file, memoised in a ``.sha256`` file next to it."""
    stamp = path.with_name(path.name + ".sha256")
    stat = path.stat()
    key = f"{stat.st_size}:{int(stat.st_mtime)}"
    if stamp.is_file():
        saved_key, _, digest = stamp.read_text().strip().partition(" ")
        if saved_key == key and digest:
            return digest
    digest = hash_file(path)
    write_atomic(stamp, f"{key} {digest}\n")
    return digest


def read_licence_names(copyright_file: Path | None) -> list[str]:
    """Short licence names from the ``License:`` fields of a copyright file."""
    if copyright_file is None:
        return []
    names: list[str] = []
    for line in copyright_file.read_text(errors="replace").splitlines():
        match = re.match(r"^License:\s*(\S.*)$", line)
        if match and match.group(1).strip() not in names:
            names.append(match.group(1).strip())
    return names


# ------------------------------------------------------------------------- tracks


def find_tracks(soundtrack: Soundtrack, package: Package, min_track_seconds: float) -> ClassReport:
    """List the decodable music tracks of a package, recording what was skipped."""
    skipped: dict[str, list[str]] = {}
    candidates: dict[Path, str] = {}
    for pattern in soundtrack.music_globs:
        for path in package.root.glob(pattern):
            if path.is_file():
                candidates.setdefault(path, path.relative_to(package.root).as_posix())

    seen_real: set[Path] = set()
    seen_hash: set[str] = set()
    tracks: list[Track] = []
    for path, rel in sorted(candidates.items(), key=lambda item: item[1]):
        suffix = path.suffix.lower()
        if suffix in UNREADABLE_MUSIC_SUFFIXES:
            skipped.setdefault("tracker/MIDI format soundfile cannot decode", []).append(rel)
            continue
        if suffix not in READABLE_SUFFIXES:
            continue  # text, images, ... next to the music
        if any(fnmatch.fnmatch(rel, pattern) for pattern in soundtrack.exclude):
            skipped.setdefault("excluded (variant of a kept track, or not music)", []).append(rel)
            continue
        real = path.resolve()
        digest = hash_file(real, "sha1")
        if real in seen_real or digest in seen_hash:
            skipped.setdefault("duplicate file", []).append(rel)
            continue
        seen_real.add(real)
        seen_hash.add(digest)
        try:
            info = sf.info(str(path))
        except (RuntimeError, sf.LibsndfileError) as exc:
            skipped.setdefault("not decodable by soundfile", []).append(f"{rel} ({exc})")
            continue
        if info.frames / info.samplerate < min_track_seconds:
            skipped.setdefault(f"shorter than {min_track_seconds:g} s", []).append(rel)
            continue
        tracks.append(
            Track(
                label=soundtrack.label,
                slug="",
                path=path,
                rel=rel,
                frames=int(info.frames),
                samplerate=int(info.samplerate),
                channels=int(info.channels),
            )
        )
    assign_slugs(tracks)
    return ClassReport(soundtrack=soundtrack, package=package, tracks=tracks, skipped=skipped)


def assign_slugs(tracks: list[Track]) -> None:
    """Give each track a unique slug: its file stem, prefixed by folders on clashes."""
    depth = 0
    while True:
        for track in tracks:
            parts = Path(track.rel).with_suffix("").parts
            track.slug = slugify("-".join(parts[len(parts) - 1 - depth :]))
        slugs = [t.slug for t in tracks]
        if len(set(slugs)) == len(slugs) or depth > 8:
            break
        depth += 1
    # Last resort for pathological names: number the clashing ones.
    counts: dict[str, int] = {}
    for track in tracks:
        counts[track.slug] = counts.get(track.slug, 0) + 1
        if counts[track.slug] > 1:
            track.slug = f"{track.slug}-{counts[track.slug]}"


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


def copy_copyrights(reports: list[ClassReport], out: Path) -> None:
    """Copy each package's copyright file to ``OUT/licenses/<package>.copyright``."""
    wanted: set[str] = set()
    for report in reports:
        source = report.package.copyright_file
        if source is not None:
            name = f"{report.package.name}.copyright"
            wanted.add(name)
            write_atomic(out / "licenses" / name, source.read_bytes())
    for old in (out / "licenses").glob("*.copyright"):
        if old.name not in wanted:  # a class dropped since the last run
            old.unlink()


def write_readme(reports: list[ClassReport], out: Path, args: argparse.Namespace, command: str) -> None:
    """Human-readable description of the dataset."""
    table = count_clips(reports)
    total_clips = sum(c for row in table.values() for c, _ in row.values())
    rates = sorted({t.samplerate for r in reports for t in r.tracks if t.clip_starts})
    rate_text = (
        f"{args.samplerate} Hz"
        if args.samplerate
        else ("original sample rate of each track (" + ", ".join(f"{r} Hz" for r in rates) + ")")
    )
    lines = [
        "# Game soundtracks benchmark",
        "",
        f"{total_clips} clips of {args.clip_seconds:g} s from {len(reports)} free game soundtracks "
        "shipped by Debian 12 (bookworm). The label of a clip is the game whose soundtrack it "
        "comes from, so the task is *soundtrack / composer-style identification*.",
        "",
        "Generated by `benchmarks/soundtracks.py`; rebuild with",
        "",
        f"    {command}",
        "",
        "## Layout",
        "",
        "GTZAN-style: `<label>/<label>.<track-slug>.<NN>.ogg` (OGG Vorbis, "
        f"{rate_text}, original channel count), `manifest.csv` (`path,label,group`; "
        "`group` = `<label>/<track-slug>`, shared by all clips of one source track), and "
        "`splits/{train,valid,test}_filtered.txt` in the format of the fault-filtered GTZAN "
        "split lists. Splits are made by track: no source track has clips in two splits, and "
        "tracks that share thematic material (listed in `sources.json`, `same_split_families`) "
        "are kept in the same split. "
        "`sources.json` records, for every clip, the package file and start frame it was cut from.",
        "",
        f"Clips are spread evenly over each track (skipping the first {args.skip_head:g} s and the "
        f"last {args.skip_tail:g} s), at most {args.max_clips_per_track} per track and "
        f"{args.max_per_class} per class, and do not overlap. Tracks shorter than "
        f"{args.min_track_seconds:g} s, sound effects and ambience are not used. Split seed: {args.seed}.",
        "",
        "## Clips per class and split (clips / tracks)",
        "",
        "| label | " + " | ".join(SPLITS) + " | total |",
        "|---|" + "---|" * (len(SPLITS) + 1),
    ]
    for label, row in table.items():
        cells = [f"{row[s][0]} / {row[s][1]}" for s in SPLITS]
        lines.append(
            f"| {label} | "
            + " | ".join(cells)
            + f" | {sum(c for c, _ in row.values())} / {sum(n for _, n in row.values())} |"
        )
    split_totals = [sum(row[s][0] for row in table.values()) for s in SPLITS]
    lines.append("| **all** | " + " | ".join(str(n) for n in split_totals) + f" | {total_clips} |")
    lines += [
        "",
        "## Sources and licences",
        "",
        "Licences as stated in each package's `/usr/share/doc/<package>/copyright` "
        "(copied to `licenses/<package>.copyright`). The audio is redistributable under "
        "these terms; keep the attribution when sharing the clips.",
        "",
        "| label | Debian package | version | .deb size | music tracks used | licence of the music |",
        "|---|---|---|---|---|---|",
    ]
    for report in reports:
        used = sum(1 for t in report.tracks if t.clip_starts)
        lines.append(
            f"| {report.soundtrack.label} | `{report.package.name}` | {report.package.version} | "
            f"{report.package.deb_size / 1e6:.1f} MB | {used} | {report.soundtrack.licence} |"
        )
    lines += ["", "## Files not used", ""]
    for report in reports:
        notes = [f"{reason}: {len(paths)}" for reason, paths in sorted(report.skipped.items())]
        unused = sum(1 for t in report.tracks if not t.clip_starts)
        if unused:
            notes.append(f"tracks left out by the per-class cap: {unused}")
        lines.append(f"- **{report.soundtrack.label}**: " + ("; ".join(notes) if notes else "none"))
        if report.soundtrack.note:
            lines.append(f"  ({report.soundtrack.note})")
    lines += [
        "",
        "Benchmark scripts that read this folder also accept a GTZAN folder (`--gtzan DIR`) "
        "with its `splits/*_filtered.txt` lists: the layout is the same.",
        "",
    ]
    write_atomic(out / "README.md", "\n".join(lines))


def write_sources(
    reports: list[ClassReport],
    out: Path,
    specs: dict[str, dict[str, Any]],
    args: argparse.Namespace,
    command: str,
) -> None:
    """Machine-readable provenance: packages, tracks, and the spec of every clip."""
    classes = []
    tracks = []
    for report in reports:
        pkg = report.package
        classes.append(
            {
                "label": report.soundtrack.label,
                "package": pkg.name,
                "version": pkg.version,
                "deb": pkg.deb.name,
                "deb_size": pkg.deb_size,
                "deb_sha256": pkg.deb_sha256,
                "licence": report.soundtrack.licence,
                "licence_fields_in_copyright": read_licence_names(pkg.copyright_file),
                "copyright_copy": f"licenses/{pkg.name}.copyright" if pkg.copyright_file else None,
                "music_globs": list(report.soundtrack.music_globs),
                "excluded_patterns": list(report.soundtrack.exclude),
                "same_split_families": [list(f) for f in report.soundtrack.families],
                "skipped": report.skipped,
            }
        )
        for track in report.tracks:
            clips = [
                {
                    "path": track.clip_relpath(k),
                    "start_seconds": round(s / track.samplerate, 3),
                    "spec": specs[track.clip_relpath(k)],
                }
                for k, s in enumerate(track.clip_starts)
            ]
            tracks.append(
                {
                    "group": track.group,
                    "label": track.label,
                    "package": pkg.name,
                    "package_path": "/" + track.rel,
                    "duration": round(track.duration, 3),
                    "samplerate": track.samplerate,
                    "channels": track.channels,
                    "split": track.split or None,
                    "clips": clips,
                }
            )
    data = {
        "state_version": STATE_VERSION,
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "settings": {
            "clip_seconds": args.clip_seconds,
            "max_clips_per_track": args.max_clips_per_track,
            "max_per_class": args.max_per_class,
            "min_track_seconds": args.min_track_seconds,
            "skip_head": args.skip_head,
            "skip_tail": args.skip_tail,
            "samplerate": args.samplerate or "original",
            "seed": args.seed,
            "split_fractions": SPLIT_FRACTIONS,
        },
        "classes": classes,
        "tracks": tracks,
    }
    write_atomic(out / "sources.json", json.dumps(data, indent=1, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------- CLI


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Build the game-soundtrack benchmark (GTZAN-style clips, manifest and "
        "track-disjoint splits) from Debian game-music packages.",
        epilog="Default classes: "
        + ", ".join(f"{s.label} ({s.package})" for s in KNOWN_SOUNDTRACKS)
        + ". Consumers of this dataset also accept a GTZAN folder with splits/*_filtered.txt.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=DEFAULT_CACHE,
        help="cache for .debs and unpacked packages (default: %(default)s)",
    )
    parser.add_argument(
        "--packages",
        default=",".join(s.package for s in KNOWN_SOUNDTRACKS),
        help="comma-separated Debian packages (or known labels); 'pkg=label' sets a "
        "label; unknown packages use every file below a 'music' folder",
    )
    parser.add_argument("--clip-seconds", type=float, default=30.0, help="clip length (default: %(default)s)")
    parser.add_argument("--max-clips-per-track", type=int, default=6, help="default: %(default)s")
    parser.add_argument("--max-per-class", type=int, default=56, help="default: %(default)s")
    parser.add_argument(
        "--min-track-seconds",
        type=float,
        default=40.0,
        help="ignore shorter files (jingles, effects) (default: %(default)s)",
    )
    parser.add_argument(
        "--skip-head",
        type=float,
        default=5.0,
        help="seconds skipped at the start of a track (default: %(default)s)",
    )
    parser.add_argument(
        "--skip-tail",
        type=float,
        default=5.0,
        help="seconds skipped at the end of a track (default: %(default)s)",
    )
    parser.add_argument(
        "--samplerate",
        type=int,
        default=0,
        help="resample clips to this rate; 0 keeps each track's rate (default)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and clip allocation")
    parser.add_argument(
        "--dry-run", action="store_true", help="download and plan, print the counts, write nothing to --out"
    )
    args = parser.parse_args(argv)
    if args.clip_seconds <= 0 or args.max_clips_per_track < 1 or args.max_per_class < 3:
        parser.error("--clip-seconds must be > 0, --max-clips-per-track >= 1, --max-per-class >= 3")
    if args.min_track_seconds < args.clip_seconds:
        args.min_track_seconds = args.clip_seconds
    return args


def rebuild_command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run (defaults left out)."""
    parts = ["nice -n 10 .venv/bin/python benchmarks/soundtracks.py"]
    defaults = vars(parse_args([]))
    for key, value in vars(args).items():
        if key == "dry_run" or value == defaults[key]:
            continue
        parts.append(f"--{key.replace('_', '-')} {value}")
    return " ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    soundtracks = resolve_soundtracks(args.packages.split(","))
    cache: Path = args.cache.resolve()
    out: Path = args.out.resolve()
    log(f"{len(soundtracks)} soundtracks; cache {cache}; output {out}")

    reports: list[ClassReport] = []
    for soundtrack in soundtracks:
        deb = fetch_deb(soundtrack.package, cache / "debs")
        package = unpack_deb(soundtrack.package, deb, cache / "unpacked")
        report = find_tracks(soundtrack, package, args.min_track_seconds)
        slugs = {t.slug for t in report.tracks}
        unknown = sorted({x for family in soundtrack.families for x in family} - slugs)
        if unknown:
            log(f"  warning: {soundtrack.label}: family members not found: {', '.join(unknown)}")
        rng = random.Random(f"{args.seed}:{soundtrack.label}")
        plan_clips(
            report.tracks,
            args.clip_seconds,
            args.skip_head,
            args.skip_tail,
            args.max_clips_per_track,
            args.max_per_class,
            rng,
        )
        split_tracks(report.tracks, soundtrack.families, rng)
        skipped = sum(len(v) for v in report.skipped.values())
        n_clips = sum(len(t.clip_starts) for t in report.tracks)
        log(
            f"  {soundtrack.label}: {package.name} {package.version}: {len(report.tracks)} tracks "
            f">= {args.min_track_seconds:g} s, {n_clips} clips, {skipped} files skipped"
        )
        reports.append(report)

    table = count_clips(reports)
    for label, row in table.items():
        log(f"  {label:>14}: " + "  ".join(f"{s} {row[s][0]:3d} clips/{row[s][1]:2d} tracks" for s in SPLITS))
    if args.dry_run:
        log("dry run: nothing written")
        return 0

    out.mkdir(parents=True, exist_ok=True)
    previous, previous_labels = load_previous_specs(out)
    specs = write_clips(reports, out, args.clip_seconds, args.samplerate, previous)
    labels = {r.soundtrack.label for r in reports} | set(previous_labels)
    removed = remove_stale_clips(out, sorted(labels), set(specs))
    if removed:
        log(f"removed {removed} stale clips")
    command = rebuild_command(args)
    write_manifest(reports, out)
    copy_copyrights(reports, out)
    write_readme(reports, out, args, command)
    write_sources(reports, out, specs, args, command)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    log(f"done: {len(specs)} clips, {size / 1e6:.1f} MB in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
