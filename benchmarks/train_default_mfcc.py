"""The MFCC reference of ``benchmarks/train_default.py``: statistics of 20 MFCCs and their deltas (80
numbers a clip, ``benchmarks/train_genre.py``'s baseline) and a standardised logistic regression fitted
on train + valid, scored on the test tracks — the same split lists as every candidate (read from a
finished run's ``splits.json``). Not a candidate: the floor the candidates are read against.
Deterministic, so one run stands for every seed; the clips' features are cached in
``OUT/<collection>/mfcc-reference/features.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

__all__ = ["mfcc_reference"]


def mfcc_reference(out: Path, collection: str, splits_from: Path) -> dict[str, Any] | None:
    """Accuracy, macro-F1 and seconds of the MFCC reference on ``collection``, using the split lists of the
    run in ``splits_from`` (its ``splits.json``); None when that run has not finished."""
    from train_genre import baseline

    try:
        splits = json.loads((splits_from / "splits.json").read_text())
    except (OSError, ValueError):
        return None
    cache = out / collection / "mfcc-reference" / "features.json"
    cache.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = baseline(splits, cache)
    return {**result, "seconds": time.perf_counter() - t0}
