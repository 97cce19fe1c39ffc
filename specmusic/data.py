"""Tracks, labels and splits: finding audio, reading manifests, splitting by group.

A :class:`Track` is one input file with an optional label (genre, soundtrack…) and a group (the
unit that must never straddle train and test: the track itself by default, or an artist/album
from a manifest). Nothing here imports torch.
"""

from __future__ import annotations

import csv
import os
import posixpath
import random
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from specmusic.audio import AUDIO_EXTENSIONS
from specmusic.errors import InputError
from specmusic.fileio import display_path, printable_text
from specmusic.outputs import safe_relpath
from specmusic.textfiles import json_records, open_lines

__all__ = [
    "Track",
    "FailedInput",
    "discover_tracks",
    "expand_path_args",
    "gather_inputs",
    "read_manifest",
    "read_path_list",
    "read_split_list",
    "read_split_lists",
    "apply_split_lists",
    "check_list_found",
    "split_by_group",
    "track_key",
]


@dataclass(frozen=True)
class Track:
    """One input track.

    ``relpath`` is where its outputs go (mirroring the input tree), without extension
    semantics: ``rock/song.mp3`` → ``OUT/rock/song.npz``.
    """

    path: str
    relpath: str
    label: str | None = None
    group: str | None = None

    @property
    def group_id(self) -> str:
        """The group, or the track itself when none was given."""
        return self.group if self.group is not None else track_key(self.relpath)


@dataclass(frozen=True)
class FailedInput:
    """An input that could not even be listed (missing path, unreadable folder)."""

    path: str
    message: str
    extra: dict[str, str] = field(default_factory=dict)


def _warn(line: str) -> None:
    sys.stderr.write(f"warning: {line}\n")


def track_key(relpath: str) -> str:
    """Identity of a track for split lists: POSIX relative path without extension.

    GTZAN lists name ``blues/blues.00029.wav`` while the files may be ``.au``: both give
    ``blues/blues.00029``.
    """
    p = PurePosixPath(relpath.replace(os.sep, "/"))
    return str(p.with_suffix("")) if p.suffix.lower() in AUDIO_EXTENSIONS | {".npz", ".npy"} else str(p)


def _walk(
    root: Path, failures: list[FailedInput], extensions: frozenset[str] | set[str], on_skip: Callable[[str], None]
) -> Iterator[Path]:
    def onerror(exc: OSError) -> None:
        where = exc.filename or root
        failures.append(
            FailedInput(
                str(where),
                f"{display_path(where)}: cannot read folder ({exc.strerror}) — check its permissions",
            )
        )

    seen: set[tuple[int, int]] = set()  # real folders already listed: each is visited once
    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=True):
        try:
            st = os.stat(dirpath)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen:  # a symlink back into the tree (or a second link to a folder)
            dirnames.clear()
            on_skip(f"{display_path(dirpath)}: skipped, a link to a folder already listed ({display_path(os.path.realpath(dirpath))})")
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_symlink() and not path.exists():  # os.walk lists a dangling or looping link as a file
                on_skip(f"{display_path(path)}: skipped, a broken or looping link")
            elif os.path.splitext(name)[1].lower() in extensions:
                yield path


def discover_tracks(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    labels_from_folders: bool = True,
    extensions: frozenset[str] | set[str] = AUDIO_EXTENSIONS,
    on_skip: Callable[[str], None] | None = None,
) -> tuple[list[Track], list[FailedInput]]:
    """Expand files and folders (recursively) into tracks.

    Folders: every file below whose extension is in ``extensions`` (default: audio), ``relpath`` relative to the folder (prefixed with the folder's
    name when several folders are given), label = first sub-folder (GTZAN layout
    ``genres/blues/blues.00000.au`` → ``blues``), none for files directly inside.
    Files: ``relpath`` relative to the files' common parent, label = parent folder name.

    Symbolic links are followed, but each real folder is listed once: a link back into the tree
    (a loop) or a second link to the same folder is skipped and reported to ``on_skip`` (default:
    a ``warning:`` line on stderr).

    Returns
    -------
    tracks, failures : inputs that could not be listed become failures, the rest still count
    """
    if on_skip is None:
        on_skip = _warn
    failures: list[FailedInput] = []
    tracks: list[Track] = []
    folders = [Path(p) for p in inputs if os.path.isdir(p)]
    files = [Path(p) for p in inputs if not os.path.isdir(p)]
    for folder in folders:
        prefix = PurePosixPath(folder.resolve().name) if len(folders) > 1 else PurePosixPath()
        if not os.access(folder, os.R_OK | os.X_OK):
            failures.append(
                FailedInput(str(folder), f"{display_path(folder)}: cannot read folder — check its permissions")
            )
            continue
        for path in _walk(folder, failures, extensions, on_skip):
            rel = PurePosixPath(*path.relative_to(folder).parts)
            label = rel.parts[0] if labels_from_folders and len(rel.parts) > 1 else None
            tracks.append(Track(str(path), str(prefix / rel), label))
    existing = []
    for path in files:
        if not path.exists() and not path.is_symlink():
            failures.append(FailedInput(str(path), f"{display_path(path)}: no such file or folder — check the path"))
        else:
            existing.append(path)
    if existing:
        parents = [str(p.resolve().parent) for p in existing]
        common = Path(os.path.commonpath(parents))
        for path in existing:
            rel = PurePosixPath(*path.resolve().relative_to(common).parts)
            label = path.resolve().parent.name if labels_from_folders else None
            tracks.append(Track(str(path), str(rel), label or None))
    return tracks, failures


def read_path_list(stream: Iterable[str]) -> list[str]:
    """Paths, one a line (``find … |``); blank lines and ``#`` comments skipped."""
    out = []
    for line in stream:
        line = line.rstrip("\r\n")
        if line.strip() and not line.lstrip().startswith("#"):
            out.append(line)
    return out


def expand_path_args(items: Iterable[str] | None, *, stdin: Iterable[str] = ()) -> list[str]:
    """Command-line paths with each ``-`` replaced by the paths read from ``stdin``, one a line
    (:func:`read_path_list`; ``stdin`` is read only when a ``-`` is given)."""
    out: list[str] = []
    for item in items or []:
        if item == "-":
            out.extend(read_path_list(stdin))
        else:
            out.append(item)
    return out


def gather_inputs(
    items: Iterable[str] | None,
    manifest: str | os.PathLike[str] | None,
    *,
    labels: bool = True,
    stdin: Iterable[str] = (),
    require_audio: bool = False,
) -> tuple[list[Track], list[FailedInput]]:
    """The tracks of a command's inputs: paths and folders (``-``: paths read from ``stdin``), then a
    manifest's rows; and what failed to list.

    Parameters
    ----------
    items : paths/folders as given on the command line (:func:`expand_path_args`)
    manifest : CSV/JSONL ``path,label[,group]`` (:func:`read_manifest`), or None
    labels : take labels from folder names (:func:`discover_tracks`)
    require_audio : refuse inputs in which nothing was found (no track and no failure)

    Returns
    -------
    tracks, failures : as :func:`discover_tracks`

    Raises
    ------
    InputError
        Neither paths nor a manifest were given; with ``require_audio``, no audio file among them;
        a manifest that cannot be read.
    """
    paths = expand_path_args(items, stdin=stdin)
    if not paths and manifest is None:
        raise InputError("no input — give audio files or folders, '-' for paths on stdin, or --manifest")
    tracks, failures = discover_tracks(paths, labels_from_folders=labels) if paths else ([], [])
    if manifest is not None:
        tracks += read_manifest(manifest)
    if require_audio and not tracks and not failures:
        raise InputError("no audio files found in the inputs — extensions read: .wav .flac .mp3 .ogg .opus .au .aiff")
    return tracks, failures


def read_manifest(path: str | os.PathLike[str], *, on_warning: Callable[[str], None] | None = None) -> list[Track]:
    """Read a CSV (header ``path,label[,group]``) or JSON Lines manifest.

    Relative paths are relative to the manifest's folder. ``relpath`` (where outputs that mirror the
    inputs go) is the path as written, kept inside any output folder: a path that climbs out of the
    manifest's folder (``../../x/a.wav``) loses its ``..`` steps (``x/a.wav``; one ``warning:`` says so)
    and an absolute path keeps its file name (:func:`specmusic.outputs.safe_relpath`).

    The file is UTF-8, with or without a byte-order mark (Excel writes one). A row repeated exactly is
    read once, and a ``warning:`` names the lines (``on_warning``, default: stderr); a file listed twice
    with different labels or groups is refused, naming both lines.

    Raises
    ------
    InputError
        Missing file, no ``path`` column, a line that is not UTF-8 or not JSON, a row without a path, a
        file listed twice with different labels — named with the line number.
    """
    manifest = Path(path)
    name = display_path(manifest)
    if not manifest.is_file():
        raise InputError(f"{name}: manifest not found — check the --manifest path")
    warn = on_warning or _warn
    base = manifest.resolve().parent
    tracks: list[Track] = []
    seen: dict[str, tuple[int, str | None, str | None]] = {}
    repeated: list[tuple[int, int]] = []
    climbing: list[tuple[int, str, str]] = []
    for lineno, row in _manifest_rows(manifest, name):
        raw = (row.get("path") or "").strip()
        if not raw:
            raise InputError(f"{name}:{lineno}: a row has no path — fill in or delete the row")
        label, group = row.get("label") or None, row.get("group") or None
        full = Path(raw) if os.path.isabs(raw) else base / raw
        key = os.path.normpath(full)
        if key in seen:
            first, label0, group0 = seen[key]
            if (label0, group0) != (label, group):
                what, there, here = ("label", label0, label) if label0 != label else ("group", group0, group)
                raise InputError(
                    f"{name}:{lineno}: {display_path(raw)} is also on line {first} with another {what} "
                    f"({printable_text(repr(there))} there, {printable_text(repr(here))} here) — keep one of the two rows"
                )
            repeated.append((first, lineno))
            continue
        seen[key] = (lineno, label, group)
        rel = Path(raw).name if os.path.isabs(raw) else safe_relpath(raw)
        if not os.path.isabs(raw) and rel != posixpath.normpath(raw.replace(os.sep, "/")):
            climbing.append((lineno, raw, rel))
        tracks.append(Track(str(full), rel, label, group))
    if repeated:
        pairs = ", ".join(f"{b} (as {a})" for a, b in repeated[:3]) + (", …" if len(repeated) > 3 else "")
        warn(f"{name}: {len(repeated)} row(s) repeat an earlier one and are read once: line {pairs}")
    if climbing:
        lineno, raw, rel = climbing[0]
        more = f" ({len(climbing)} rows like it)" if len(climbing) > 1 else ""
        warn(f"{name}:{lineno}: {display_path(raw)} lies outside the manifest's folder{more} — outputs that "
             f"mirror the inputs go inside the output folder as {display_path(rel)}")
    return tracks


def _manifest_rows(manifest: Path, name: str) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, row)`` of a manifest: JSON Lines objects, or CSV rows under a header with ``path``."""
    lines = open_lines(manifest)
    if manifest.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        for lineno, obj in json_records(lines, name=name, fix="one object per line"):
            if not isinstance(obj, dict):
                raise InputError(f"{name}:{lineno}: expected a JSON object — one object per line")
            yield lineno, {k: "" if v is None else str(v) for k, v in obj.items()}
        return
    reader = csv.DictReader(lines)
    if not reader.fieldnames or "path" not in reader.fieldnames:
        raise InputError(f"{name}: CSV needs a header with a 'path' column (path,label[,group])")
    for row in reader:
        yield reader.line_num, row


def read_split_list(path: str | os.PathLike[str]) -> set[str]:
    """Track keys from a GTZAN-style split list (lines like ``blues/blues.00029.wav``)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{display_path(p)}: split list not found — check the path")
    return {track_key(line.strip()) for line in open_lines(p) if line.strip() and not line.startswith("#")}


#: A split list may miss at most this share of its entries (files not among the inputs) before it is refused.
MAX_MISSING_SHARE = 0.5


def check_list_found(
    listed: set[str], found: set[str], *, list_path: str | os.PathLike[str], split: str,
    on_warning: Callable[[str], None] | None = None,
) -> None:
    """Say which entries of a split list name no track among the inputs (their keys: :func:`track_key`).

    Entries missing from the inputs (a file deleted, a sample of the dataset, the wrong folder) are
    named with a ``warning:`` (a count and the first three); a list that loses more than
    :data:`MAX_MISSING_SHARE` of its entries is refused, as its split would not be the one the list
    describes (a test accuracy "on 1 track").

    Raises
    ------
    InputError
        More than half the list is missing, or all of it.
    """
    missing = sorted(listed - found)
    if not missing:
        return
    name = display_path(list_path)
    first = ", ".join(missing[:3]) + (", …" if len(missing) > 3 else "")
    if len(missing) == len(listed):
        raise InputError(
            f"{name}: no track matches the {split} list — list entries must be paths relative to the data folder, "
            f"like blues/blues.00029.wav (this list names {first})"
        )
    if len(missing) > MAX_MISSING_SHARE * len(listed):
        raise InputError(
            f"{name}: {len(missing)} of its {len(listed)} entries name no track among the inputs ({first}) — "
            f"the {split} split would hold only {len(listed) - len(missing)}; give the folder the list was made for, "
            "or a list of the files you have"
        )
    (on_warning or _warn)(
        f"{name}: {len(missing)} of its {len(listed)} entries name no track among the inputs and are left out of "
        f"the {split} split: {first}"
    )


def read_split_lists(lists: dict[str, str | os.PathLike[str]]) -> dict[str, set[str]]:
    """Each named list's track keys (:func:`read_split_list`), checked to share no track.

    Raises
    ------
    InputError
        A list that cannot be read, or a track named by two lists.
    """
    keys = {name: read_split_list(p) for name, p in lists.items()}
    names = list(keys)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            both = keys[a] & keys[b]
            if both:
                raise InputError(
                    f"{len(both)} tracks are in both {a} and {b} lists (e.g. {sorted(both)[0]}) — fix the lists"
                )
    return keys


def apply_split_lists(
    tracks: Sequence[Track], lists: dict[str, str | os.PathLike[str]]
) -> dict[str, list[Track]]:
    """Assign tracks to named splits from list files; tracks in no list are dropped, and list entries
    that name no track are named (:func:`check_list_found`).

    Raises
    ------
    InputError
        A track listed in two splits, or a list more than half of whose entries match no track.
    """
    keys = read_split_lists(lists)
    names = list(keys)
    out: dict[str, list[Track]] = {name: [] for name in names}
    for t in tracks:
        k = track_key(t.relpath)
        for name in names:
            if k in keys[name]:
                out[name].append(t)
    found = {track_key(t.relpath) for t in tracks}
    for name in names:
        check_list_found(keys[name], found, list_path=lists[name], split=name)
    return out


def split_by_group(
    tracks: Sequence[Track],
    *,
    fractions: dict[str, float],
    seed: int = 0,
) -> dict[str, list[Track]]:
    """Split tracks so that no group straddles two splits, stratified by label.

    Groups are assigned whole. Within each label, groups are shuffled (seeded) and dealt to the
    splits so each split's share of that label's groups is close to its fraction; every split with a
    positive fraction gets at least one group of a label that has enough groups.

    Parameters
    ----------
    fractions : split name → fraction, e.g. ``{"train": 0.7, "valid": 0.1, "test": 0.2}``
    seed : shuffling seed

    Returns
    -------
    splits : split name → tracks, in input order
    """
    total = sum(fractions.values())
    if total <= 0 or any(v < 0 for v in fractions.values()):
        raise InputError("split fractions must be non-negative and not all zero")
    members: dict[str, list[Track]] = defaultdict(list)
    for t in tracks:
        members[t.group_id].append(t)
    group_label: dict[str, str] = {}
    for g, ts in members.items():
        counts: dict[str, int] = defaultdict(int)
        for t in ts:
            counts[t.label or ""] += 1
        group_label[g] = max(sorted(counts), key=counts.__getitem__)
    by_label: dict[str, list[str]] = defaultdict(list)
    for g in sorted(members):
        by_label[group_label[g]].append(g)
    rng = random.Random(seed)
    names = list(fractions)
    assignment: dict[str, str] = {}
    for label in sorted(by_label):
        groups = by_label[label]
        rng.shuffle(groups)
        n = len(groups)
        # Largest-remainder allocation, then make sure small positive splits are not left empty.
        quota = {s: fractions[s] / total * n for s in names}
        counts = {s: int(quota[s]) for s in names}
        for s in sorted(names, key=lambda s: quota[s] - counts[s], reverse=True)[: n - sum(counts.values())]:
            counts[s] += 1
        for s in names:
            if fractions[s] > 0 and counts[s] == 0:
                donor = max(names, key=lambda d: counts[d])
                if counts[donor] > 1:
                    counts[donor] -= 1
                    counts[s] += 1
        i = 0
        for s in names:
            for g in groups[i : i + counts[s]]:
                assignment[g] = s
            i += counts[s]
    out: dict[str, list[Track]] = {s: [] for s in names}
    for t in tracks:
        out[assignment[t.group_id]].append(t)
    return out
