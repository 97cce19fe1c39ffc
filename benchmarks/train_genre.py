#!/usr/bin/env python3
"""Default ``specmusic train`` vs an MFCC-statistics + logistic-regression baseline, on the same split.

1. Runs ``specmusic train DATA -o OUT/default`` exactly as a user would (no other flags, fresh run
   folder, so feature extraction is timed too) and measures its wall time.
2. Reads the split that train made (``OUT/default/splits.json``: by group, so clips of one source
   track never straddle train and test) and fits the baseline on the same train+valid tracks:
   mean and standard deviation of 20 MFCCs and their deltas (80 numbers per clip, MFCCs from
   ``specmusic.features``), standardised, ``LogisticRegression``; accuracy on the same test tracks.
3. Prints both accuracies side by side, the difference in points, the wall time and the load
   average before and after.

``--experiments`` then trains variants (chunking, --drop-hard, --augment) on the same split with a
shared feature cache and prints one table row each. ``--use-split-lists`` passes
``DATA/splits/{train,valid,test}_filtered.txt`` to train instead (GTZAN with the fault-filtered lists).

Examples::

    .venv/bin/python benchmarks/train_genre.py                       # benchmarks/data/soundtracks
    .venv/bin/python benchmarks/train_genre.py ~/gtzan/genres --use-split-lists
    nice -n 10 .venv/bin/python benchmarks/train_genre.py --experiments
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPECMUSIC = [str(ROOT / ".venv" / "bin" / "specmusic")] if (ROOT / ".venv" / "bin" / "specmusic").exists() else [
    sys.executable, "-m", "specmusic"]

#: name → extra ``specmusic train`` arguments (the split and the feature cache are shared).
EXPERIMENTS: dict[str, str] = {
    "default: 3 s crops, mean of chunk probabilities": "",
    "chunking: whole 30 s clips": "--chunk-seconds 0",
    "drop-hard 0.1 after 3 epochs": "--drop-hard 0.1",
    "drop-hard 0.25 after 3 epochs": "--drop-hard 0.25",
    "augment shift,mask,gain,freqshift (the earlier default)": "--augment shift,mask,gain,freqshift",
    "augment shift only": "--augment shift",
    "augment shift,mask": "--augment shift,mask",
    "augment shift,mask,gain (no freqshift)": "--augment shift,mask,gain",
    "augment default + mixup": "--augment shift,mask,gain,freqshift,mixup",
}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_train(data: Path, out: Path, extra: list[str]) -> tuple[float, dict]:
    """Run ``specmusic train`` in a fresh process; return (wall seconds, metrics)."""
    cmd = [*SPECMUSIC, "train", str(data), "-o", str(out), *extra]
    print("$ " + " ".join(shlex.quote(c) for c in cmd), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"specmusic train failed with exit code {proc.returncode}")
    return wall, json.loads((out / "metrics.json").read_text())


def mfcc_stats(path: str) -> np.ndarray:
    """20 MFCCs + deltas → mean and std over time: 80 numbers."""
    from specmusic.features import FeatureConfig, compute_features_file

    mfcc, _ = compute_features_file(path, FeatureConfig(kind="mfcc", n_mfcc=20))
    delta = np.diff(mfcc, axis=1)
    return np.concatenate([mfcc.mean(1), mfcc.std(1), delta.mean(1), delta.std(1)]).astype(np.float64)


def baseline(splits: dict, cache: Path) -> dict:
    """MFCC-stats + logistic regression trained on train+valid, scored on test."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from specmusic.training import classification_metrics

    feats: dict[str, list[float]] = json.loads(cache.read_text()) if cache.exists() else {}
    rows = {}
    for name in ("train", "valid", "test"):
        X, y = [], []
        for r in splits[name]:
            if r["source"] not in feats:
                feats[r["source"]] = mfcc_stats(r["source"]).tolist()
            X.append(feats[r["source"]])
            y.append(r["label"])
        rows[name] = (np.asarray(X), np.asarray(y))
    cache.write_text(json.dumps(feats))
    X_fit = np.concatenate([rows["train"][0], rows["valid"][0]])
    y_fit = np.concatenate([rows["train"][1], rows["valid"][1]])
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, C=1.0))
    clf.fit(X_fit, y_fit)
    X_test, y_test = rows["test"]
    pred = clf.predict(X_test)
    labels = sorted(set(rows["train"][1]))
    index = {lab: i for i, lab in enumerate(labels)}
    m = classification_metrics(np.array([index[v] for v in y_test]), np.array([index[v] for v in pred]), labels)
    return {"accuracy": float((pred == y_test).mean()), "macro_f1": m["macro_f1"], "n_test": len(y_test)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", type=Path, default=ROOT / "benchmarks" / "data" / "soundtracks",
                    help="audio folder, one sub-folder per label (soundtracks or GTZAN genres)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "data" / "runs" / "train_genre",
                    help="run folders (under the git-ignored benchmarks/data/)")
    ap.add_argument("--use-split-lists", action="store_true",
                    help="pass DATA/splits/{train,valid,test}_filtered.txt to train (GTZAN)")
    ap.add_argument("--experiments", action="store_true", help="also train the variants in EXPERIMENTS")
    ap.add_argument("--only", default=None, help="with --experiments: comma list of substrings of variant names")
    ap.add_argument("--skip-default", action="store_true", help="reuse OUT/default instead of retraining it")
    args = ap.parse_args()

    data = args.data
    if not data.is_dir():
        sys.exit(f"{data}: not found — build it with benchmarks/soundtracks.py or pass a GTZAN genres folder")
    split_args: list[str] = []
    if args.use_split_lists:
        lists = {k: data / "splits" / f"{k}_filtered.txt" for k in ("train", "valid", "test")}
        split_args = ["--split-file", str(lists["train"]), "--valid-file", str(lists["valid"]),
                      "--test-file", str(lists["test"])]
    args.out.mkdir(parents=True, exist_ok=True)
    default = args.out / "default"
    print(f"data: {data}", flush=True)
    print(f"load average before: {load()} on {os.cpu_count()} cores", flush=True)
    if not args.skip_default:
        if default.exists():
            import shutil

            shutil.rmtree(default)  # a fresh run folder: feature extraction is part of the timing
        wall, metrics = run_train(data, default, split_args)
    else:
        wall, metrics = float("nan"), json.loads((default / "metrics.json").read_text())
    load_after = load()
    splits = json.loads((default / "splits.json").read_text())
    counts = {k: len(v) for k, v in splits.items()}
    t0 = time.perf_counter()
    base = baseline(splits, args.out / "mfcc_stats_cache.json")
    base_s = time.perf_counter() - t0
    cnn_acc = metrics["test"]["accuracy"]
    print(f"split (by group): train {counts['train']}, valid {counts['valid']}, test {counts['test']} clips; "
          f"{len(metrics['labels'])} classes")
    print(f"{'method':<48} {'test acc':>9} {'macro-F1':>9} {'wall s':>8}")
    print(f"{'MFCC-stats + logistic regression (baseline)':<48} {base['accuracy']:>9.3f} {'':>9} {base_s:>8.1f}")
    print(f"{'specmusic train DATA -o RUN (default)':<48} {cnn_acc:>9.3f} {metrics['test']['macro_f1']:>9.3f} "
          f"{wall:>8.1f}")
    print(f"difference: {100 * (cnn_acc - base['accuracy']):+.1f} accuracy points; default train wall time "
          f"{wall / 60:.1f} min (goal <= 10 min, >= +10 points); best epoch {metrics['best_epoch']} of "
          f"{metrics['epochs_run']} run")
    print(f"load average after train: {load_after}", flush=True)
    by_pooling = metrics["test"].get("accuracy_by_pooling")
    if by_pooling:  # the default network's test tracks scored three ways (chunking experiment, no retraining)
        names = {"mean": "mean of chunk probabilities (default)", "vote": "majority vote of chunks",
                 "center": "centre chunk only"}
        print("\ntrack pooling of 3 s chunks, same trained network:")
        for pooling, acc in by_pooling.items():
            print(f"  {names.get(pooling, pooling):<46} {acc:>9.3f}")

    if args.experiments:
        cache = default / "features"
        print(f"\n{'experiment (same split, shared feature cache)':<52} {'test acc':>9} {'macro-F1':>9} "
              f"{'epochs':>7} {'train s':>8}", flush=True)
        wanted = [w.strip() for w in args.only.split(",")] if args.only else None
        for i, (name, extra) in enumerate(EXPERIMENTS.items()):
            if wanted and not any(w in name for w in wanted):
                continue
            if not extra:
                m, w = metrics, metrics.get("train_seconds", float("nan"))
            else:
                out = args.out / f"exp{i:02d}"
                if out.exists():
                    import shutil

                    shutil.rmtree(out)
                w, m = run_train(data, out, [*split_args, "--cache-dir", str(cache), *shlex.split(extra)])
            pool = m["test"].get("accuracy_by_pooling", {})
            pooled = " ".join(f"{k}={v:.3f}" for k, v in pool.items() if k != m.get("track_pooling"))
            print(f"{name:<52} {m['test']['accuracy']:>9.3f} {m['test']['macro_f1']:>9.3f} "
                  f"{m['epochs_run']:>7} {w:>8.1f}   [{extra or 'no flags'}] {pooled}", flush=True)
        print(f"load average after experiments: {load()}")


if __name__ == "__main__":
    main()
