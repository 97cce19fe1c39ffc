"""Describe a dataset: analyse every file once (``--jobs`` processes), then find duplicates and summarise.

:func:`describe_tracks` is the library entry point of ``specmusic describe``. Files are analysed
by :func:`specmusic.describe.analyze.safe_analyse_file` through :mod:`specmusic.batch` (longest
first across workers, so one long file does not finish alone; any exception, or a worker that dies
on a file twice, is that file's failure); the parent keeps each file's numbers and fingerprint and
adds its small log-mel picture to its label's running sum, so memory grows by ~6 KB a clip. With a
:class:`~specmusic.describe.journal.DescribeJournal`, each analysis is also kept as it comes, and
files an interrupted run analysed are not analysed again. Duplicates come last: exact ones by PCM
hash, near ones by :func:`~specmusic.describe.fingerprint.find_near_duplicates`.
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from specmusic.batch import open_executor, run_tasks
from specmusic.data import FailedInput, Track, read_split_lists, track_key
from specmusic.describe.analyze import (
    SPEC_COLUMNS,
    SPEC_MELS,
    DescribeConfig,
    FileAnalysis,
    safe_analyse_file,
)
from specmusic.describe.fingerprint import find_near_duplicates
from specmusic.describe.journal import DescribeJournal
from specmusic.fileio import display_path

__all__ = ["SPLIT_NAMES", "UNLABELLED", "Description", "Duplicate", "assign_splits", "describe_tracks", "label_of"]

SPLIT_NAMES = ("train", "valid", "test")
UNLABELLED = "(no label)"


def label_of(label: str | None) -> str:
    """The key a track's label has in the per-label tables (unlabelled tracks share one)."""
    return label or UNLABELLED


@dataclass(frozen=True)
class Duplicate:
    """Two files holding the same audio (indices into :attr:`Description.tracks`)."""

    a: int
    b: int
    kind: str  # "exact" (identical decoded PCM) or "near"
    similarity: float
    offset_seconds: float  # b's first frame lies this far into a (negative: a starts inside b)
    overlap_seconds: float


@dataclass
class Description:
    """Everything measured; :func:`specmusic.describe.document.description_record` turns it into the JSON."""

    tracks: list[Track]  # analysed, in input order
    analyses: list[FileAnalysis]  # same order; pictures dropped (summed per label instead)
    splits: list[str | None]  # per track: train / valid / test, or None (in no list)
    failed: list[dict[str, str]] = field(default_factory=list)  # {"path", "error"}
    duplicates: list[Duplicate] = field(default_factory=list)
    spectrogram_sums: dict[str, np.ndarray] = field(default_factory=dict)  # label -> [mels, columns] dB sum
    spectrogram_counts: dict[str, np.ndarray] = field(default_factory=dict)
    split_lists: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # split lists that match no track
    config: DescribeConfig = field(default_factory=DescribeConfig)

    def mean_spectrogram(self, label: str) -> np.ndarray:
        """The label's mean log-mel picture [shape=(64, 60)] in dB (NaN where no clip reaches)."""
        counts = self.spectrogram_counts[label]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, self.spectrogram_sums[label] / np.maximum(counts, 1), np.nan)


def assign_splits(tracks: Sequence[Track], lists: Mapping[str, str | os.PathLike[str] | None]) -> tuple[
        list[str | None], list[str]]:
    """Each track's split by GTZAN-style lists, as ``specmusic train --split-file/--valid-file/--test-file``.

    A track is in the split whose list names its key (its path relative to the data folder, without
    extension). As in ``train``: without a train list, tracks in no list are training tracks; with
    one, they are in no split (``None``; train leaves them out).

    Returns
    -------
    splits : per track
    notes : one line per list that names no track (``train`` would stop there; describe goes on)

    Raises
    ------
    InputError
        A list that does not exist, or a track named by two lists.
    """
    given = {name: p for name, p in lists.items() if p is not None}
    keys = read_split_lists(given)
    names = list(keys)
    out: list[str | None] = []
    used = defaultdict(int)
    for t in tracks:
        k = track_key(t.relpath)
        split = next((name for name in names if k in keys[name]), None)
        if split is None and given and "train" not in given:
            split = "train"
        out.append(split)
        used[split] += 1
    notes = [f"{display_path(given[n])}: no track matches the {n} list — entries must be paths relative to the "
             "data folder, like blues/blues.00029.wav" for n in names if not used.get(n)]
    return out, notes


@dataclass(frozen=True)
class _Clip:
    """A file to analyse: its place among the tracks, and the size and mtime it is analysed from."""

    index: int
    path: str
    size: int = -1
    mtime: float = 0.0


def _analyse_clip(clip: _Clip, config: DescribeConfig) -> tuple[str, FileAnalysis | None, str | None]:
    """The per-file task (module level: workers import it)."""
    return safe_analyse_file(clip.path, config)


def _clips(tracks: Sequence[Track]) -> list[_Clip]:
    clips = []
    for i, t in enumerate(tracks):
        try:
            st = os.stat(t.path)
            clips.append(_Clip(i, t.path, st.st_size, st.st_mtime))
        except OSError:
            clips.append(_Clip(i, t.path))  # its analysis says what is wrong
    return clips


def _analyse_all(
    tracks: Sequence[Track], config: DescribeConfig, *, jobs: int, progress: bool | None,
    on_error: Callable[[str], None], on_result: Callable[[int, FileAnalysis], None],
    journal: DescribeJournal | None = None,
) -> tuple[dict[int, FileAnalysis], list[dict[str, str]]]:  # fmt: skip
    from tqdm import tqdm

    results: dict[int, FileAnalysis] = {}
    failed: list[dict[str, str]] = []
    bar = tqdm(total=len(tracks), desc="describe", unit="clip", file=sys.stderr,
               disable=None if progress is None else not progress, dynamic_ncols=True)

    def collect(i: int, outcome: tuple[str, FileAnalysis | None, str | None]) -> None:
        _, analysis, error = outcome
        if analysis is None:
            failed.append({"path": tracks[i].path, "error": error or "unreadable"})
            on_error(error or f"{display_path(tracks[i].path)}: unreadable")
        else:
            on_result(i, analysis)
            results[i] = analysis
        bar.update(1)

    try:
        todo = []
        for clip in _clips(tracks):
            found = journal.lookup(clip.path, clip.size, clip.mtime) if journal is not None else None
            if found is not None:  # an interrupted run analysed it
                collect(clip.index, (clip.path, found, None))
            else:
                todo.append(clip)
        with open_executor(jobs=jobs, n_items=len(todo)) as executor:
            ordered = todo if executor is None else sorted(todo, key=lambda c: c.size, reverse=True)
            for clip, outcome in run_tasks(
                executor, _analyse_clip, ordered, args=(config,),
                on_failure=lambda clip, error: (clip.path, None, error),
            ):  # fmt: skip
                if journal is not None and outcome[1] is not None and clip.size >= 0:
                    journal.add(outcome[1], clip.size, clip.mtime)  # before on_result drops its picture
                collect(clip.index, outcome)
    finally:
        bar.close()
    return results, failed


def _duplicates(analyses: Sequence[FileAnalysis], config: DescribeConfig) -> list[Duplicate]:
    """Exact pairs (same PCM hash), then near pairs the fingerprint finds that are not exact."""
    hop = config.fingerprint.hop_seconds
    by_hash: dict[str, list[int]] = defaultdict(list)
    for i, a in enumerate(analyses):
        by_hash[a.pcm_hash].append(i)
    out = []
    exact = set()
    for members in by_hash.values():
        for a, b in combinations(members, 2):
            exact.add((a, b))
            out.append(Duplicate(a, b, "exact", 1.0, 0.0, analyses[a].duration))
    for m in find_near_duplicates([a.fingerprint for a in analyses], config.fingerprint):
        if (m.a, m.b) not in exact:
            out.append(Duplicate(m.a, m.b, "near", m.similarity, m.offset_frames * hop, m.overlap_frames * hop))
    return sorted(out, key=lambda d: (d.a, d.b))


def describe_tracks(
    tracks: Sequence[Track],
    *,
    config: DescribeConfig = DescribeConfig(),
    split_lists: Mapping[str, str | os.PathLike[str] | None] | None = None,
    listing_failures: Sequence[FailedInput] = (),
    jobs: int = 1,
    progress: bool | None = None,
    on_error: Callable[[str], None] | None = None,
    journal: DescribeJournal | None = None,
) -> Description:
    """Analyse every track, find duplicates, and keep what the report needs.

    Parameters
    ----------
    tracks : from :func:`specmusic.data.discover_tracks` or :func:`specmusic.data.read_manifest`
    config : thresholds (:class:`~specmusic.describe.analyze.DescribeConfig`)
    split_lists : ``{"train": path, "valid": path, "test": path}`` (any may be missing or None)
    listing_failures : inputs that failed while listing; reported with the unreadable files
    jobs : worker processes
    progress : progress bar on stderr (None: only on a terminal)
    on_error : called with each unreadable file's one-line message as it happens
    journal : where each analysis is kept as it comes, and what an interrupted run kept is taken from
        (files of the same size and mtime are not analysed again); the caller finishes it

    Raises
    ------
    InputError
        A split list that does not exist or names a track twice.
    """
    emit = on_error or (lambda line: None)
    lists = {k: v for k, v in (split_lists or {}).items() if v is not None}
    all_splits, notes = assign_splits(tracks, lists)
    failed = [{"path": f.path, "error": f.message} for f in listing_failures]
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}

    def add_picture(i: int, a: FileAnalysis) -> None:  # summed as results come, then dropped
        label = label_of(tracks[i].label)
        if label not in sums:
            sums[label] = np.zeros((SPEC_MELS, SPEC_COLUMNS))
            counts[label] = np.zeros((SPEC_MELS, SPEC_COLUMNS))
        seen = np.isfinite(a.spectrogram)
        sums[label][seen] += a.spectrogram[seen]
        counts[label] += seen
        a.spectrogram = np.zeros((0, 0), dtype=np.float32)

    results, unreadable = _analyse_all(tracks, config, jobs=jobs, progress=progress, on_error=emit,
                                       on_result=add_picture, journal=journal)
    order = sorted(results)
    desc = Description(
        tracks=[tracks[i] for i in order], analyses=[results[i] for i in order],
        splits=[all_splits[i] for i in order], failed=failed + unreadable, spectrogram_sums=sums,
        spectrogram_counts=counts, split_lists={k: str(v) for k, v in lists.items()}, notes=notes, config=config,
    )
    desc.duplicates = _duplicates(desc.analyses, config)
    return desc
