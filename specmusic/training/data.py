"""Training data (numpy only, no torch): labelled spectrograms held in memory, and track-aware splits.

:func:`load_training_data` reads audio files and folders (features computed once into a cache folder
by :func:`~specmusic.spectro.run_spectro`), ``specmusic spectro`` output folders and single ``.npz``
arrays into :class:`TrackData`. A file that cannot be read is reported (a line to ``log``, a row in
``CACHE/errors.jsonl``) and left out; loading fails only when nothing usable is left. Arrays computed
with other feature settings are refused, by :meth:`FeatureConfig.require_same
<specmusic.features.FeatureConfig.require_same>`. :func:`make_splits` cuts tracks into train /
valid / test by group. ``specmusic train`` and ``specmusic generate train`` share both.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

import numpy as np

from specmusic.data import (
    FailedInput,
    Track,
    apply_split_lists,
    check_list_found,
    discover_tracks,
    read_manifest,
    read_split_list,
    split_by_group,
    track_key,
)
from specmusic.errors import InputError
from specmusic.features import FeatureConfig
from specmusic.fileio import display_path, write_jsonl_atomic
from specmusic.specfile import ERRORS_NAME, MANIFEST_NAME, load_spectrogram, read_spectro_manifest

__all__ = ["Labelled", "TrackData", "TrainingFile", "TrainingInputs", "list_training_inputs", "load_training_data",
           "make_splits", "is_spectro_output"]

Log = Callable[[str], None]
PathLike = str | os.PathLike[str]


def _quiet(_: str) -> None:
    pass


@dataclass
class TrackData:
    """One track (or clip) held in memory."""

    key: str  # track_key of its path: what split lists name
    label: str | None  # None only where unlabelled clips were asked for
    group: str  # the unit that never straddles two splits
    source: str  # the audio file (or the array) it came from
    spec: np.ndarray  # [n_rows, n_frames]


class Labelled(Protocol):
    """What splitting needs of a track: its key (what split lists name), label and group."""

    @property
    def key(self) -> str: ...

    @property
    def label(self) -> str | None: ...

    @property
    def group(self) -> str: ...

    @property
    def source(self) -> str: ...


T = TypeVar("T", bound=Labelled)


class TrainingFile(NamedTuple):
    """A file to train on, before it is read: a spectrogram array or an audio file, and what its track is called."""

    path: Path
    key: str
    label: str | None
    group: str
    source: str


@dataclass
class TrainingInputs:
    """What the inputs hold, listed but not read (:func:`list_training_inputs`)."""

    arrays: list[TrainingFile]  # spectrogram arrays (spectro folders, single .npz files): read as they are
    audio: list[Track]  # audio files: features still to compute
    failed: list[FailedInput]  # inputs that could not even be listed

    def files(self) -> list[TrainingFile]:
        """Arrays and audio files alike (an audio file's ``path`` is the file itself)."""
        return self.arrays + [TrainingFile(Path(t.path), track_key(t.relpath), t.label, t.group_id, t.path)
                              for t in self.audio]


@dataclass
class _Failures:
    """Files left out: rows for ``CACHE/errors.jsonl``, plus those ``run_spectro`` already wrote there."""

    rows: list[dict[str, str]] = field(default_factory=list)
    spectro: int = 0  # left out by run_spectro (its rows are in the file)
    spectro_ran: bool = False

    @property
    def count(self) -> int:
        return self.spectro + len(self.rows)

    def write(self, cache: Path) -> Path:
        """``CACHE/errors.jsonl``: this run's rows of ``run_spectro``, then ours."""
        path = cache / ERRORS_NAME
        old = _read_jsonl(path) if self.spectro_ran and path.is_file() else []
        if self.rows:
            cache.mkdir(parents=True, exist_ok=True)
            write_jsonl_atomic(path, old + [{"severity": "error", **r} for r in self.rows])
        return path


# -- loading ----------------------------------------------------------------------------------
def load_training_data(
    inputs: PathLike | Sequence[PathLike],
    *,
    cache_dir: PathLike,
    feature_config: FeatureConfig | None = None,
    ignore: Iterable[str] = (),
    manifest: PathLike | None = None,
    split_list: PathLike | None = None,
    unlabelled: bool = False,
    dtype: Any = np.float16,
    jobs: int = 1,
    progress: bool | None = None,
    log: Log = _quiet,
) -> tuple[list[TrackData], FeatureConfig]:
    """Read tracks into memory as feature matrices.

    Parameters
    ----------
    inputs : audio folders (label = first sub-folder) and files (label = their folder), ``spectro``
        output folders (labels and groups from their ``manifest.jsonl``), ``.npz`` arrays
    cache_dir : where features of audio input are computed and kept (reused by later runs); the
        ``errors.jsonl`` of files left out goes here too
    feature_config : the features wanted (default for audio: ``training.DEFAULT_FEATURES``; for
        arrays: their own, which must then all agree)
    ignore : feature fields an array may differ in (``top_db`` where the caller floors the dB itself)
    manifest : CSV/JSONL with path,label[,group] for audio input (default: ``INPUT/manifest.csv``
        or ``.jsonl`` when a single audio folder holds one)
    split_list : keep only the tracks this GTZAN-style list names
    unlabelled : keep tracks without a label (``label=None``); otherwise they are left out
    dtype : of the returned arrays (float16 halves the memory of a training set)
    jobs : processes for feature extraction
    progress : progress bar on stderr (None: only on a terminal)
    log : receives one-line messages (files left out, where labels came from)

    Returns
    -------
    tracks : list of TrackData, ``spec`` [shape=(n_rows, n_frames)] of ``dtype``
    feature_config : the features of every array

    Raises
    ------
    InputError
        No input exists, no track found, none readable (or labelled).
    ConfigError
        An array computed with other feature settings than the rest (or than ``feature_config``).
    """
    paths = _input_paths(inputs)
    listed = list_training_inputs(paths, manifest=manifest, split_list=split_list, log=log)
    failed = _Failures()
    arrays = listed.arrays
    if listed.audio or listed.failed:
        arrays = arrays + _compute_features(listed, cache_dir, feature_config, failed, jobs=jobs, progress=progress,
                                            log=log)
    if not unlabelled:
        arrays = keep_labelled(arrays, log=log)
    items, config = _read_arrays(arrays, feature_config, ignore, failed, dtype=dtype, log=log)
    if failed.count:
        errors = failed.write(Path(cache_dir))
        log(f"{failed.count} file(s) could not be read and are left out (see {display_path(errors)})")
    if not items:
        raise InputError(
            f"{', '.join(display_path(p) for p in paths)}: no {'' if unlabelled else 'labelled '}track could be read — "
            + ("see the errors above" if failed.count else "labels come from sub-folder names (rock/a.wav)")
        )
    return items, config


def _input_paths(inputs: PathLike | Sequence[PathLike]) -> list[Path]:
    return [Path(inputs)] if isinstance(inputs, (str, os.PathLike)) else [Path(p) for p in inputs]


def list_training_inputs(
    inputs: PathLike | Sequence[PathLike],
    *,
    manifest: PathLike | None = None,
    split_list: PathLike | None = None,
    log: Log = _quiet,
) -> TrainingInputs:
    """What ``inputs`` hold, listed but not read: the arrays of ``spectro`` output folders and single
    ``.npz`` files, and audio files (labels and groups from a manifest, else from sub-folders).

    Parameters
    ----------
    inputs, manifest, split_list, log : as :func:`load_training_data`

    Raises
    ------
    InputError
        No input exists, or nothing (that ``split_list`` names) is found in them.
    """
    paths = _input_paths(inputs)
    if not any(p.exists() for p in paths):
        raise InputError(
            f"{display_path(paths[0]) if paths else 'no input'}: no such file or folder — "
            "give an audio folder (one sub-folder per label) or a spectro output folder"
        )
    keep = read_split_list(split_list) if split_list is not None else None
    spectro = [p for p in paths if is_spectro_output(p)]
    sources = [p for p in paths if p not in spectro]
    arrays: list[TrainingFile] = []
    for folder in spectro:
        arrays += _spectro_arrays(folder, prefix=f"{folder.resolve().name}/" if len(paths) > 1 else "")
    tracks: list[Track] = []
    listing: list[FailedInput] = []
    if sources:
        manifest_path = Path(manifest) if manifest is not None else _find_manifest(sources)
        if manifest_path is not None:
            tracks = read_manifest(manifest_path)
            log(f"labels and groups from {display_path(manifest_path)}")
        else:
            tracks, listing = discover_tracks(sources, on_skip=log)
        if keep is not None:
            tracks = [t for t in tracks if track_key(t.relpath) in keep]
        arrays += [TrainingFile(Path(t.path), track_key(t.relpath), t.label, t.group_id, t.path)
                   for t in tracks if t.path.lower().endswith(".npz")]
    if keep is not None:
        check_list_found(keep, {a.key for a in arrays} | {track_key(t.relpath) for t in tracks}, list_path=split_list,
                         split="training")  # before the filter below: names the entries no file answers
        arrays = [a for a in arrays if a.key in keep]
    listed = TrainingInputs(arrays, [t for t in tracks if not t.path.lower().endswith(".npz")], listing)
    if not listed.arrays and not listed.audio and not listed.failed:
        raise InputError(
            f"{', '.join(display_path(p) for p in paths)}: no audio files found"
            + (f" listed in {display_path(split_list)}" if split_list is not None else "")
            + " — put audio in one sub-folder per label (rock/a.wav, jazz/b.wav)"
        )
    return listed


def keep_labelled(files: list[TrainingFile], *, log: Log = _quiet) -> list[TrainingFile]:
    """The files that have a label; says how many were left out."""
    labelled = [f for f in files if f.label]
    if len(labelled) < len(files):
        log(f"{len(files) - len(labelled)} file(s) without a label are left out (labels are sub-folder names)")
    return labelled


def is_spectro_output(folder: Path) -> bool:
    """Whether ``folder`` is a ``specmusic spectro`` output folder (its manifest's records carry a ``config_hash``)."""
    if not (folder / MANIFEST_NAME).is_file():
        return False
    records = read_spectro_manifest(folder)
    return bool(records) and all("config_hash" in r for r in records)


def _record_array(folder: Path, record: dict[str, Any], prefix: str = "") -> TrainingFile:
    key = prefix + track_key(record["path"])
    return TrainingFile(folder / record["path"], key, record.get("label") or None, str(record.get("group") or key),
                  str(record.get("source") or folder / record["path"]))


def _spectro_arrays(folder: Path, *, prefix: str) -> list[TrainingFile]:
    return [_record_array(folder, r, prefix) for r in read_spectro_manifest(folder)]


def _compute_features(
    listed: TrainingInputs,
    cache_dir: PathLike,
    wanted: FeatureConfig | None,
    failed: _Failures,
    *,
    jobs: int,
    progress: bool | None,
    log: Log,
) -> list[TrainingFile]:
    """The arrays of the listed audio files, their features computed into ``cache_dir`` (failures to ``failed``)."""
    from specmusic.spectro import run_spectro
    from specmusic.training.config import DEFAULT_FEATURES

    report = run_spectro(
        listed.audio, cache_dir, config=wanted or DEFAULT_FEATURES, jobs=jobs, failures=listed.failed,
        progress=progress, on_error=lambda line: log("skipped: " + line),
    )
    failed.spectro, failed.spectro_ran = len(report.failed), True
    records = sorted(report.written + report.skipped, key=lambda r: r["path"])
    return [_record_array(Path(cache_dir), r) for r in records]


def _find_manifest(sources: list[Path]) -> Path | None:
    if len(sources) != 1 or not sources[0].is_dir():
        return None
    for name in ("manifest.csv", "manifest.jsonl"):
        if (sources[0] / name).is_file():
            return sources[0] / name
    return None


def _read_arrays(
    arrays: list[TrainingFile],
    wanted: FeatureConfig | None,
    ignore: Iterable[str],
    failed: _Failures,
    *,
    dtype: Any,
    log: Log,
) -> tuple[list[TrackData], FeatureConfig]:
    """Load every array; unreadable ones go to ``failed``. All must have ``wanted``'s features (or, without
    it, the features most of them have): the odd one out raises ConfigError."""
    loaded: list[tuple[TrainingFile, np.ndarray, FeatureConfig]] = []
    for a in arrays:
        try:
            spec, found = load_spectrogram(a.path)
        except InputError as exc:
            failed.rows.append({"source": str(a.path), "error": str(exc)})
            log(f"skipped: {exc}")
            continue
        loaded.append((a, spec.astype(dtype, copy=False), found))
    if not loaded:
        return [], wanted or FeatureConfig()
    common = Counter(found.digest() for _, _, found in loaded).most_common(1)[0][0]
    config = wanted or next(found for _, _, found in loaded if found.digest() == common)
    for a, _, found in loaded:
        found.require_same(
            config, ignore=ignore,
            what=f"{display_path(a.path)}: computed with different feature settings than "
            + ("the requested ones" if wanted else "the other arrays"),
            fix="recompute every array with one `specmusic spectro` command, or train from the audio files",
        )
    return [TrackData(a.key, a.label, a.group, a.source, spec) for a, spec, _ in loaded], config


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# -- splits -----------------------------------------------------------------------------------
def make_splits(
    items: Sequence[T],
    *,
    split_files: dict[str, PathLike | None] | None = None,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> dict[str, list[T]]:
    """Train / valid / test by GTZAN-style lists, the rest carved by group (stratified by label).

    ``items``: :class:`TrackData`, or anything :class:`Labelled`. ``split_files`` may name ``train``, ``valid``, ``test``. Without a train list, training gets every
    track in no given list. A missing valid or test split is carved from the training tracks.

    Raises
    ------
    InputError
        An empty dataset, a class with a single track (or group), a class absent from training.
    """
    _check_classes(items)
    by_key = {t.key: t for t in items}
    lists = {k: v for k, v in (split_files or {}).items() if v is not None}
    if lists:
        assigned = apply_split_lists([Track(t.source, t.key, t.label, t.group) for t in items], lists)
        out = {name: [by_key[t.relpath] for t in ts] for name, ts in assigned.items()}
        if "train" not in out:
            used = {t.key for ts in out.values() for t in ts}
            out["train"] = [t for t in items if t.key not in used]
    else:
        out = {"train": list(items)}
    carved_test = 0.0
    for name, fraction in (("test", test_fraction), ("valid", valid_fraction)):
        if name in out or fraction <= 0:
            out.setdefault(name, [])
            continue
        share = min(0.9, fraction / (1.0 - carved_test))  # fractions are of all tracks in the pool
        carve = split_by_group(
            [Track(t.source, t.key, t.label, t.group) for t in out["train"]],
            fractions={"train": 1.0 - share, name: share},
            seed=seed,
        )
        out["train"] = [by_key[t.relpath] for t in carve["train"]]
        out[name] = [by_key[t.relpath] for t in carve[name]]
        carved_test = fraction if name == "test" else carved_test
    missing = sorted({t.label for t in items} - {t.label for t in out["train"]})
    if missing:
        raise InputError(f"class '{missing[0]}' has no training track — add it to the train list or give more tracks")
    return {name: out[name] for name in ("train", "valid", "test")}


def _check_classes(items: Sequence[Labelled]) -> None:
    """At least two labels, each with two groups (one to train on, one to test)."""
    if not items:
        raise InputError("the dataset is empty — give a folder with labelled audio or spectro arrays")
    counts = Counter(t.label for t in items)
    groups: dict[str | None, set[str]] = {}
    for t in items:
        groups.setdefault(t.label, set()).add(t.group)
    if len(counts) < 2:
        raise InputError(f"only one class ({next(iter(counts))}) — a classifier needs at least two labels")
    for label in sorted(counts, key=str):
        if len(groups[label]) < 2:
            what = "track" if counts[label] == 1 else f"group ({counts[label]} clips of one source)"
            raise InputError(
                f"class '{label}' has only one {what} — add another track of it (one to train, one to test) or remove it"
            )
