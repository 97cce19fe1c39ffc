"""The progress of a ``describe`` run, kept as it goes: each file's analysis, so an interrupted run resumes.

``describe`` analyses every file, then compares them all (duplicates) and writes its document at
the end. Until then, each analysed file is appended to a journal (one JSON line: path, size,
mtime and the analysis, arrays in base64; flushed at once, so it survives Ctrl-C, SIGTERM and a
killed process; synced to disk every few seconds):

- ``describe … -o FILE.json``: ``FILE.json.partial.jsonl`` beside it;
- without ``-o``: ``describe/<key>.partial.jsonl`` in the user's cache (:func:`specmusic.fileio.cache_dir`),
  ``<key>`` a hash of the files described.

The next run over the same files reads it and analyses only the rest. A record counts only for a
file of the same size and modification time, and the whole journal only for the same settings
of the analysis (thresholds that only judge the numbers — imbalance, the shares that flag silence
and clipping, the near-duplicate matching — may change). A torn last line (a killed process) is
dropped. The journal is deleted once the document is written; it is locked while a run uses it
(a second run over the same files goes on without one).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

import numpy as np

from specmusic.describe.analyze import SPEC_COLUMNS, SPEC_MELS, DescribeConfig, FileAnalysis
from specmusic.describe.fingerprint import Fingerprint
from specmusic.fileio import cache_dir, lock_fd

__all__ = ["JOURNAL_SUFFIX", "DescribeJournal", "describe_journal_path"]

JOURNAL_SUFFIX = ".partial.jsonl"
KIND = "specmusic-describe-journal"
FORMAT_VERSION = 1
_SYNC_SECONDS = 5.0
#: Settings that only judge the numbers, never change one file's analysis: a journal outlives a change of them.
_JUDGING = {"imbalance_ratio", "clipping_share", "silent_share"}
_MATCHING = {"max_bucket", "min_votes", "min_similarity", "min_overlap", "min_contrast"}


def _analysis_settings(config: DescribeConfig) -> dict[str, Any]:
    """What one file's analysis depends on (every setting but the judging and matching thresholds)."""
    settings = {k: v for k, v in asdict(config).items() if k not in _JUDGING}
    settings["fingerprint"] = {k: v for k, v in settings["fingerprint"].items() if k not in _MATCHING}
    return settings


def describe_journal_path(paths: Sequence[str], json_file: str | os.PathLike[str] | None = None) -> Path:
    """Where a describe run over ``paths`` keeps its progress: beside ``json_file``, else in the user's cache."""
    if json_file is not None:
        return Path(os.fspath(json_file) + JOURNAL_SUFFIX)
    digest = hashlib.sha256("\0".join(sorted(os.path.abspath(p) for p in paths)).encode("utf-8", "surrogateescape"))
    return cache_dir() / "describe" / f"{digest.hexdigest()[:20]}{JOURNAL_SUFFIX}"


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _array(text: str, dtype: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
    out = np.frombuffer(base64.b64decode(text), dtype=dtype).copy()
    return out.reshape(shape) if shape is not None else out


def _record(analysis: FileAnalysis, size: int, mtime: float) -> dict[str, Any]:
    numbers = {k: getattr(analysis, k) for k in ("duration", "sample_rate", "channels", "format", "lufs", "peak_dbfs",
                                                 "clipping_share", "silence_share", "pcm_hash")}  # fmt: skip
    return {
        "path": os.path.abspath(analysis.path), "size": size, "mtime": mtime, **numbers,
        "bits": _b64(analysis.fingerprint.bits.astype("<u4")), "valid": _b64(analysis.fingerprint.valid.astype(bool)),
        "spectrogram": _b64(analysis.spectrogram.astype("<f4")),
    }  # fmt: skip


def _analysis(record: dict[str, Any], path: str) -> FileAnalysis:
    numbers = {k: record[k] for k in ("duration", "sample_rate", "channels", "format", "lufs", "peak_dbfs",
                                      "clipping_share", "silence_share", "pcm_hash")}  # fmt: skip
    return FileAnalysis(
        path=path, **numbers,
        fingerprint=Fingerprint(_array(record["bits"], "<u4").astype(np.uint32), _array(record["valid"], bool)),
        spectrogram=_array(record["spectrogram"], "<f4", (SPEC_MELS, SPEC_COLUMNS)).astype(np.float32),
    )  # fmt: skip


class DescribeJournal:
    """Append-only record of the files a describe run has analysed (see the module docstring).

    Open with :meth:`open` (None when another run holds it, or it cannot be written);
    :meth:`lookup` gives an earlier run's analysis of a file that has not changed; :meth:`add`
    appends one; :meth:`finish` deletes the journal once the document is written.
    """

    def __init__(self, path: Path, file: IO[bytes], found: dict[str, tuple[int, int, int, float]]) -> None:
        self.path = path
        self.resumed = 0  # files looked up and found
        self.added = 0
        self._file = file
        self._found = found  # abs path → (offset, length, size, mtime) of its last record
        self._synced = time.monotonic()

    @classmethod
    def open(cls, path: str | os.PathLike[str], config: DescribeConfig) -> DescribeJournal | None:
        """Open (creating it) and lock the journal at ``path``; what it holds from a run with other settings
        is discarded. None when another run holds it or it cannot be written (the run goes on without one)."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            f = open(path, "a+b")  # noqa: SIM115 — held open (and locked) until finish/close
        except OSError:
            return None
        if not lock_fd(f.fileno(), wait=False):
            f.close()
            return None
        header = {"kind": KIND, "format_version": FORMAT_VERSION, "settings": _analysis_settings(config)}
        f.seek(0)
        found, end = _scan(f, header)
        if end == 0:  # new, or of other settings: start it over
            f.truncate(0)
            f.write((json.dumps(header, sort_keys=True) + "\n").encode("utf-8"))
            f.flush()
        elif end != f.seek(0, os.SEEK_END):
            f.truncate(end)  # a torn last line
        f.seek(0, os.SEEK_END)
        return cls(path, f, found)

    def __len__(self) -> int:
        return len(self._found)

    def lookup(self, path: str, size: int, mtime: float) -> FileAnalysis | None:
        """An earlier run's analysis of ``path``, if it was made from a file of this size and mtime."""
        entry = self._found.get(os.path.abspath(path))
        if entry is None or entry[2] != size or entry[3] != mtime:
            return None
        offset, length = entry[0], entry[1]
        here = self._file.tell()
        try:
            self._file.seek(offset)
            record = json.loads(self._file.read(length))
        except (OSError, ValueError):
            return None
        finally:
            self._file.seek(here)
        self.resumed += 1
        return _analysis(record, path)

    def add(self, analysis: FileAnalysis, size: int, mtime: float) -> None:
        """Append one file's analysis, made from a file of ``size`` bytes modified at ``mtime``; flushed at once."""
        self._file.write((json.dumps(_record(analysis, size, mtime)) + "\n").encode("utf-8"))
        self._file.flush()
        self.added += 1
        if time.monotonic() - self._synced > _SYNC_SECONDS:
            os.fsync(self._file.fileno())
            self._synced = time.monotonic()

    def finish(self) -> None:
        """The document is written: delete the journal (then release it)."""
        self.path.unlink(missing_ok=True)
        self.close()

    def close(self) -> None:
        """Flush and release the journal, keeping it for the next run (unless it holds no analysis)."""
        if not self._found and not self.added:
            self.path.unlink(missing_ok=True)
        if not self._file.closed:
            self._file.close()


def _scan(f: IO[bytes], header: dict[str, Any]) -> tuple[dict[str, tuple[int, int, int, float]], int]:
    """Where each file's last record is in the journal, and where its last whole line ends (0: the journal is
    empty, unreadable or of other settings: nothing of it can be used)."""
    first = f.readline()
    try:
        if not first.endswith(b"\n") or json.loads(first) != json.loads(json.dumps(header, sort_keys=True)):
            return {}, 0
    except ValueError:
        return {}, 0
    found: dict[str, tuple[int, int, int, float]] = {}
    end = offset = len(first)
    for line in f:
        if not line.endswith(b"\n"):
            break
        try:
            record = json.loads(line)
            found[record["path"]] = (offset, len(line), int(record["size"]), float(record["mtime"]))
        except (ValueError, KeyError, TypeError):
            break
        offset += len(line)
        end = offset
    return found, end
