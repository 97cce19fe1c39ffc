"""``specmusic describe``: what is in a labelled audio dataset, before training on it.

One pass per file (:mod:`~specmusic.describe.analyze`) measures duration, format, integrated
loudness (:mod:`~specmusic.describe.loudness`, ITU-R BS.1770-4), peak, clipping and digital
silence, and computes a fingerprint (:mod:`~specmusic.describe.fingerprint`) and a small log-mel
picture. :mod:`~specmusic.describe.run` runs that over a dataset and finds exact and near
duplicates (the same audio under two names), in particular pairs that straddle the train/test
split lists; :mod:`~specmusic.describe.document` turns it into per-label tables, warnings, the JSON
and the terminal table; :mod:`~specmusic.describe.plots` draws the PNGs; :mod:`~specmusic.describe.dataset`
(:func:`describe_dataset`) does all of that for the command, files included. numpy, scipy, soxr and
soundfile only (matplotlib for the plots): no torch, no librosa.
"""

from __future__ import annotations

from specmusic.describe.analyze import DescribeConfig, FileAnalysis, analyse_file
from specmusic.describe.dataset import describe_dataset
from specmusic.describe.fingerprint import FingerprintConfig, find_near_duplicates
from specmusic.describe.loudness import LoudnessMeter, integrated_loudness, k_weighting
from specmusic.describe.document import KIND, VERSION, description_record, format_table
from specmusic.describe.run import (
    Description,
    Duplicate,
    assign_splits,
    describe_tracks,
)

__all__ = [
    "KIND",
    "VERSION",
    "DescribeConfig",
    "Description",
    "Duplicate",
    "FileAnalysis",
    "FingerprintConfig",
    "LoudnessMeter",
    "analyse_file",
    "assign_splits",
    "describe_dataset",
    "describe_tracks",
    "description_record",
    "find_near_duplicates",
    "format_table",
    "integrated_loudness",
    "k_weighting",
]
