"""The ``.npz`` spectrogram format written by ``specmusic spectro`` and read by ``train``, ``classify``, ``embed``, ``generate``.

One track per file, named arrays (never pickled objects), written by :func:`save_spectrogram` and read
by :func:`load_spectrogram` (the matrix and its config) and :func:`npz_meta` (every other field)::

    spec            float32 [n_rows, n_frames]   the feature matrix
    format_version  int                          SPEC_FORMAT_VERSION
    config          str (JSON)                   the FeatureConfig
    config_hash     str                          FeatureConfig.digest()
    duration        float                        seconds analysed
    offset          float                        where in the source the analysis started (s)
    max_duration    float                        the most seconds asked for (--duration; -1: no limit)
    source_size     int                          the source's size in bytes, and
    source_mtime    float                        its modification time: to notice a changed source
    warning         str                          what was odd about the signal ("" when nothing was)

A spectro output folder also holds ``manifest.jsonl`` (one record per array) and ``errors.jsonl``.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from specmusic.errors import InputError
from specmusic.features import FeatureConfig
from specmusic.fileio import PICKLE_REASON, display_path, numpy_load_reason, save_npz_atomic
from specmusic.textfiles import json_records

__all__ = [
    "SPEC_FORMAT_VERSION",
    "MANIFEST_NAME",
    "ERRORS_NAME",
    "save_spectrogram",
    "npz_meta",
    "current_meta",
    "load_spectrogram",
    "read_spectro_manifest",
]

SPEC_FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.jsonl"
ERRORS_NAME = "errors.jsonl"
_NO_LIMIT = -1.0  # max_duration of an array computed without --duration


# -- arrays ---------------------------------------------------------------------------------
def save_spectrogram(
    path: str | os.PathLike[str],
    spec: np.ndarray,
    *,
    config: FeatureConfig,
    duration: float,
    offset: float = 0.0,
    max_duration: float | None = None,
    source_size: int,
    source_mtime: float,
    warning: str = "",
) -> dict[str, Any]:
    """Write one track's array and every field of the format (atomically: temp file + rename).

    Parameters
    ----------
    spec : np.ndarray [shape=(n_rows, n_frames)], the feature matrix (stored as given: float32 from spectro)
    config : the settings it was computed with (stored as JSON and as its digest)
    duration : seconds analysed
    offset, max_duration : the window asked for (seconds; ``max_duration`` None: to the end)
    source_size, source_mtime : the source's ``st_size`` and ``st_mtime``
    warning : what was odd about the signal (empty: nothing)

    Returns
    -------
    The small fields as :func:`npz_meta` reads them back, ``shape`` included.
    """
    meta: dict[str, Any] = {
        "format_version": SPEC_FORMAT_VERSION,
        "config": json.dumps(config.to_dict(), sort_keys=True),
        "config_hash": config.digest(),
        "duration": duration,
        "offset": float(offset),
        "max_duration": _NO_LIMIT if max_duration is None else float(max_duration),
        "source_size": source_size,
        "source_mtime": source_mtime,
        "warning": warning,
    }
    save_npz_atomic(path, {"spec": spec, **{k: np.asarray(v) for k, v in meta.items()}})
    return {**meta, "shape": list(spec.shape)}


def current_meta(
    path: str | os.PathLike[str], *, config: FeatureConfig, source: os.stat_result, offset: float = 0.0,
    max_duration: float | None = None,
) -> dict[str, Any] | None:
    """The fields of the array at ``path`` (:func:`npz_meta`) when it is up to date: computed with
    ``config`` over the same window of the same source (size and modification time); None otherwise
    (missing, unreadable, or stale)."""
    meta = npz_meta(Path(path))
    if (
        meta is not None
        and meta.get("config_hash") == config.digest()
        and meta.get("source_size") == source.st_size
        and meta.get("source_mtime") == source.st_mtime
        and meta.get("offset") == offset
        and meta.get("max_duration") == (_NO_LIMIT if max_duration is None else max_duration)
    ):
        return meta
    return None


def npz_meta(path: Path) -> dict[str, Any] | None:
    """Small fields of a spectrogram .npz, plus the spec's shape, without reading the spec."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = {k: z[k].item() for k in z.files if k != "spec"}
        with zipfile.ZipFile(path) as zf, zf.open("spec.npy") as member:
            major, _ = np.lib.format.read_magic(member)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, _ = read_header(member)
        meta["shape"] = list(shape)
        return meta
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None


def load_spectrogram(path: str | os.PathLike[str]) -> tuple[np.ndarray, FeatureConfig]:
    """Read an array written by ``spectro`` (never unpickles).

    Returns
    -------
    spec : np.ndarray [shape=(n_rows, n_frames)], float32
    config : the FeatureConfig it was computed with

    Raises
    ------
    InputError
        Not a spectro array, or from a newer format version.
    """
    name = display_path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            version = int(z["format_version"])
            if version > SPEC_FORMAT_VERSION:
                raise InputError(f"{name}: array format {version} is newer than this specmusic — upgrade")
            return z["spec"].astype(np.float32, copy=False), FeatureConfig.from_dict(json.loads(str(z["config"])))
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        reason = numpy_load_reason(exc, path)  # never numpy's advice to unpickle
        what = reason if reason == PICKLE_REASON else f"not a specmusic spectrogram ({reason})"
        raise InputError(f"{name}: {what} — recreate it with `specmusic spectro`") from None


def read_spectro_manifest(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Records of ``OUT/manifest.jsonl`` (empty list when there is none).

    Raises
    ------
    InputError
        A line that is not UTF-8 or not JSON, named by its number.
    """
    path = Path(out_dir) / MANIFEST_NAME
    if not path.exists():
        return []
    with open(path, "rb") as f:
        return [r for _, r in json_records(f, name=display_path(path), invalid="corrupt manifest line",
                                           fix="rerun `specmusic spectro`")]
