"""Debian game-music packages for ``benchmarks/soundtracks.py``: which soundtracks, where their music is,
downloading (``apt-get download``) and unpacking (``dpkg-deb -x``) them into a cache, and finding the
decodable music tracks of each.

``benchmarks/collection_speed.py`` reuses the same cache through ``soundtracks`` (``KNOWN_SOUNDTRACKS``,
``fetch_deb``, ``unpack_deb``, ``find_tracks``).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

# Formats libsndfile (and so soundfile) decodes; anything else is skipped.
READABLE_SUFFIXES = frozenset({".ogg", ".oga", ".opus", ".flac", ".wav", ".mp3"})
# Music formats we recognise but cannot decode without extra tools.
UNREADABLE_MUSIC_SUFFIXES = frozenset({".mod", ".xm", ".it", ".s3m", ".mid", ".midi"})

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
    # -- the third collection (docs/similarity.md): games that neither of the other two uses -----------
    Soundtrack(
        label="drascula",
        package="drascula-music",
        # one copy per language folder, identical audio: the English one
        music_globs=("usr/share/scummvm/drascula/en/track*.ogg",),
        licence="Drascula-License (free redistribution, Alcachofa Soft; as Beneath a Steel Sky)",
    ),
    Soundtrack(
        label="freedink",
        package="freedink-data",
        music_globs=("usr/share/games/dink/dink/Sound/*.ogg",),
        licence="GPL-3+ (free sound replacements by Sylvain Beucler et al.; copyright file)",
    ),
    Soundtrack(
        label="hyperrogue",
        package="hyperrogue-music",
        music_globs=("usr/share/hyperrogue/music/*.ogg",),
        licence="GPL-2+ (whole package)",
    ),
    Soundtrack(
        label="planetblupi",
        package="planetblupi-music-ogg",
        music_globs=("usr/share/planetblupi/music/*.ogg",),
        licence="GPL-3+ (whole package)",
    ),
    Soundtrack(
        label="asc",
        package="asc-music",
        music_globs=("usr/share/games/asc/music/*.mp3",),
        licence="GPL-2+ (whole package)",
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
