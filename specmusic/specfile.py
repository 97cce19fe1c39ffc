"""The ``.npz`` spectrogram format written by ``specmusic spectro`` and read by ``train``, ``classify``, ``embed``, ``generate``.

One track per file, named arrays (never pickled objects)::

    spec            float32 [n_rows, n_frames]   the feature matrix
    format_version  int                          SPEC_FORMAT_VERSION
    config          str (JSON)                   the FeatureConfig
    config_hash     str                          FeatureConfig.digest()
    duration        float                        seconds analysed
    source_size, source_mtime                    to notice a changed source

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
from specmusic.fileio import PICKLE_REASON, display_path, numpy_load_reason

__all__ = ["SPEC_FORMAT_VERSION", "MANIFEST_NAME", "ERRORS_NAME", "npz_meta", "load_spectrogram", "read_spectro_manifest"]

SPEC_FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.jsonl"
ERRORS_NAME = "errors.jsonl"


# -- arrays ---------------------------------------------------------------------------------
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
    """Records of ``OUT/manifest.jsonl`` (empty list when there is none)."""
    path = Path(out_dir) / MANIFEST_NAME
    if not path.exists():
        return []
    records = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    raise InputError(f"{display_path(path)}:{i}: corrupt manifest line — rerun `specmusic spectro`") from None
    return records
