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

import numpy as np

__all__ = ["mfcc_reference"]


def mfcc_reference(out: Path, collection: str, splits_from: Path) -> dict[str, Any] | None:
    """Accuracy, macro-F1 and seconds of the MFCC reference on ``collection``, using the split lists of the
    run in ``splits_from`` (its ``splits.json``); None when that run has not finished."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from train_genre import mfcc_stats

    from specmusic.training import classification_metrics

    try:
        splits = json.loads((splits_from / "splits.json").read_text())
    except (OSError, ValueError):
        return None
    cache = out / collection / "mfcc-reference" / "features.json"
    cache.parent.mkdir(parents=True, exist_ok=True)
    feats: dict[str, list[float]] = json.loads(cache.read_text()) if cache.exists() else {}
    t0 = time.perf_counter()
    rows = {}
    for name in ("train", "valid", "test"):
        for r in splits[name]:
            if r["source"] not in feats:
                feats[r["source"]] = mfcc_stats(r["source"]).tolist()
        rows[name] = (np.asarray([feats[r["source"]] for r in splits[name]]), np.asarray([r["label"] for r in splits[name]]))
    tmp = cache.with_suffix(".part")
    tmp.write_text(json.dumps(feats))
    tmp.replace(cache)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, C=1.0))
    clf.fit(np.concatenate([rows["train"][0], rows["valid"][0]]), np.concatenate([rows["train"][1], rows["valid"][1]]))
    X_test, y_test = rows["test"]
    pred = clf.predict(X_test)
    labels = sorted(set(rows["train"][1]))
    index = {lab: i for i, lab in enumerate(labels)}
    m = classification_metrics(np.array([index[v] for v in y_test]), np.array([index[v] for v in pred]), labels)
    return {"accuracy": float((pred == y_test).mean()), "macro_f1": float(m["macro_f1"]),
            "seconds": time.perf_counter() - t0}
