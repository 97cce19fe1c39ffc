#!/usr/bin/env python3
"""Transfer learning vs the scratch CNN over several training seeds, on a GPU or the CPU.

`benchmarks/transfer.py` trains each row once on the CPU; one run per row cannot tell a 2-point
difference from seed noise. This script trains every row with several seeds on the **same split**
(the scratch run's train/valid/test lists, so only initialisation, crop order and augmentation
vary) and prints mean ± standard deviation, min–max and the per-seed values side by side, plus the
difference of each pretrained row's mean from the scratch CNN's mean.

Two steps, so the data can travel to a machine that cannot build it (no apt, no audio tools):

1. ``--prepare DIR`` (here, after ``benchmarks/transfer.py --only scratch`` has built its feature
   cache and split): writes ``DIR/mel64`` — the cached 64-band log-mel arrays of all 475 clips as a
   ``spectro`` folder in float16 (what ``train`` holds in memory anyway: the same numbers), and
   ``DIR/splits/{train,valid,test}.txt`` from the scratch run's ``splits.json``.
2. ``DIR`` as data: trains every selected row × seed with ``specmusic train DIR/mel64
   --split-file … --valid-file … --test-file … --seed S --device D``, ``--parallel`` runs at a
   time, then prints the table. Finished runs are reused (``--rerun`` retrains).

Examples::

    .venv/bin/python benchmarks/transfer_seeds.py --prepare .gpu          # here
    python3 benchmarks/transfer_seeds.py .gpu --device cuda --parallel 6  # on a GPU machine
    .venv/bin/python benchmarks/transfer_seeds.py .gpu --only scratch --seeds 3 --device cpu
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPECMUSIC = [sys.executable, "-m", "specmusic"]
EFFNET_FILE = "efficientnet-lite0-57934424.pth"

#: row → (label, extra ``specmusic train`` arguments; ``{effnet}`` = the ImageNet weights file).
ROWS: dict[str, tuple[str, str]] = {
    "scratch": ("scratch CNN (default train)", ""),
    "scratch_40": ("scratch CNN, 40 epochs", "--epochs 40 --patience 40"),
    "effnet_in_128": ("EfficientNet-Lite0, ImageNet init, 128x128",
                      "--arch tf_efficientnet_lite0 --weights {effnet} --img-size 128 --epochs 20 "
                      "--freeze-epochs 1 --lr 3e-3 --finetune-lr 1e-3"),
    "effnet_in_128_aug": ("EfficientNet-Lite0, ImageNet init, 128x128, shift+mask augmentation",
                          "--arch tf_efficientnet_lite0 --weights {effnet} --img-size 128 --epochs 20 "
                          "--freeze-epochs 1 --lr 3e-3 --finetune-lr 1e-3 --augment shift,mask"),
    "effnet_random_128": ("EfficientNet-Lite0, random init, 128x128",
                          "--arch tf_efficientnet_lite0 --img-size 128 --epochs 20 --lr 1e-3"),
    "effnet_in_224": ("EfficientNet-Lite0, ImageNet init, 224x224",
                      "--arch tf_efficientnet_lite0 --weights {effnet} --img-size 224 --epochs 20 "
                      "--freeze-epochs 1 --lr 3e-3 --finetune-lr 1e-3"),
    "effnet_in_224_aug": ("EfficientNet-Lite0, ImageNet init, 224x224, shift+mask augmentation",
                          "--arch tf_efficientnet_lite0 --weights {effnet} --img-size 224 --epochs 20 "
                          "--freeze-epochs 1 --lr 3e-3 --finetune-lr 1e-3 --augment shift,mask"),
    "effnet_in_224_lowlr": ("EfficientNet-Lite0, ImageNet init, 224x224, finetune lr 3e-4",
                            "--arch tf_efficientnet_lite0 --weights {effnet} --img-size 224 --epochs 20 "
                            "--freeze-epochs 1 --lr 3e-3 --finetune-lr 3e-4"),
    "effnet_random_224": ("EfficientNet-Lite0, random init, 224x224",
                          "--arch tf_efficientnet_lite0 --img-size 224 --epochs 20 --lr 1e-3"),
    "vit_random_112": ("ViT-Tiny/16, random init, 112x112",
                       "--arch vit_tiny_patch16_224 --img-size 112 --epochs 20 --lr 5e-4"),
    "vit_random_224": ("ViT-Tiny/16, random init, 224x224",
                       "--arch vit_tiny_patch16_224 --img-size 224 --epochs 20 --lr 5e-4"),
}


def prepare(target: Path, source: Path) -> None:
    """Float16 spectro folder + split lists from ``benchmarks/transfer.py``'s cache and scratch run."""
    feats, splits = source / "features_mel64", source / "scratch" / "splits.json"
    if not (feats / "manifest.jsonl").is_file() or not splits.is_file():
        sys.exit(f"{source}: no feature cache or scratch split — run benchmarks/transfer.py --only scratch first")
    mel = target / "mel64"
    n = 0
    for f in sorted(feats.rglob("*.npz")):
        with np.load(f, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["spec"] = arrays["spec"].astype(np.float16)
        out = mel / f.relative_to(feats)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.stem + ".part.npz")
        np.savez(tmp, **arrays)
        tmp.replace(out)
        n += 1
    shutil.copy(feats / "manifest.jsonl", mel / "manifest.jsonl")
    lists = target / "splits"
    lists.mkdir(parents=True, exist_ok=True)
    split = json.loads(splits.read_text())
    for name in ("train", "valid", "test"):
        (lists / f"{name}.txt").write_text("".join(r["key"] + ".ogg\n" for r in split[name]))
    weights = ROOT / "benchmarks" / "data" / "cache" / EFFNET_FILE
    if weights.is_file():
        shutil.copy(weights, target / EFFNET_FILE)
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file()) / 2**20
    print(f"{target}: {n} float16 arrays, split lists {', '.join(f'{k} {len(v)}' for k, v in split.items())}; "
          f"{size:.0f} MiB in all")


def train_one(data: Path, row: str, seed: int, out: Path, device: str, threads: int) -> dict:
    run = out / row / f"seed{seed}"
    lists = data / "splits"
    extra = ROWS[row][1].format(effnet=data / EFFNET_FILE)
    cmd = [*SPECMUSIC, "train", str(data / "mel64"), "-o", str(run), "--no-progress", "--force",
           "--split-file", str(lists / "train.txt"), "--valid-file", str(lists / "valid.txt"),
           "--test-file", str(lists / "test.txt"), "--seed", str(seed), "--device", device,
           "--threads", str(threads), *shlex.split(extra)]
    run.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(run / "train.log", "w") as log:
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=log)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(f"{row} seed {seed}: failed (exit {proc.returncode}); last lines of {run / 'train.log'}:\n"
              + "".join((run / "train.log").read_text().splitlines(True)[-5:]), file=sys.stderr, flush=True)
        return {}
    m = json.loads((run / "metrics.json").read_text())
    print(f"{row} seed {seed}: test {m['test']['accuracy']:.3f} (best epoch {m['best_epoch']}/{m['epochs_run']}, "
          f"{wall:.0f} s)", file=sys.stderr, flush=True)
    return m


def fmt(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", type=Path, help="folder written by --prepare")
    ap.add_argument("--prepare", type=Path, default=None, help="write the float16 features + split lists here")
    ap.add_argument("--source", type=Path, default=ROOT / "benchmarks" / "data" / "runs" / "transfer",
                    help="benchmarks/transfer.py's output folder (for --prepare)")
    ap.add_argument("--out", type=Path, default=None, help="run folders (default DATA/runs)")
    ap.add_argument("--only", default=None, help=f"comma list of row names: {', '.join(ROWS)}")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--parallel", type=int, default=1, help="training runs at a time")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads per run")
    ap.add_argument("--rerun", action="store_true")
    ap.add_argument("--table-only", action="store_true", help="train nothing; the table of the finished runs")
    args = ap.parse_args()
    if args.prepare:
        prepare(args.prepare, args.source)
        return
    if args.data is None or not (args.data / "mel64" / "manifest.jsonl").is_file():
        sys.exit("give the folder written by --prepare (it holds mel64/ and splits/)")
    out = args.out or args.data / "runs"
    rows = [r.strip() for r in args.only.split(",")] if args.only else list(ROWS)
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        sys.exit(f"unknown row {unknown[0]!r} — choose from {', '.join(ROWS)}")
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
        tv = torch.__version__
    except ImportError:
        gpu, tv = "?", "?"
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; torch {tv}; GPU: {gpu}; "
          f"{os.cpu_count()} CPU cores; device {args.device}; {args.parallel} runs at a time, {args.threads} torch "
          f"threads each; load average before {os.getloadavg()[0]:.2f}", flush=True)

    jobs = [(row, seed) for row in rows for seed in range(args.seeds)]
    results: dict[tuple[str, int], dict] = {}
    todo = []
    for row, seed in jobs:
        done = out / row / f"seed{seed}" / "metrics.json"
        if done.is_file() and not args.rerun:
            results[(row, seed)] = json.loads(done.read_text())
        elif not args.table_only:
            todo.append((row, seed))
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
        futures = {job: pool.submit(train_one, args.data, job[0], job[1], out, args.device, args.threads) for job in todo}
        for job, fut in futures.items():
            results[job] = fut.result()
    print(f"trained {len(todo)} runs in {time.perf_counter() - t0:.0f} s", flush=True)

    reference = sorted(args.data.joinpath("splits", "test.txt").read_text().split())
    print("\n| method | runs | test acc mean ± sd | min–max | macro-F1 mean | per seed | train s (median) | device |")
    print("|---|---:|---:|---:|---:|---|---:|---|")
    means: dict[str, float] = {}
    for row in rows:
        ms = [results[(row, s)] for s in range(args.seeds) if results.get((row, s))]
        if not ms:
            print(f"| {ROWS[row][0]} | 0 | failed | | | | | |")
            continue
        for s in range(args.seeds):
            split = out / row / f"seed{s}" / "splits.json"
            if split.is_file():
                keys = sorted(r["key"] + ".ogg" for r in json.loads(split.read_text())["test"])
                if keys != reference:
                    sys.exit(f"{row} seed {s}: its test split is not the reference list")
        acc = [m["test"]["accuracy"] for m in ms]
        f1 = [m["test"]["macro_f1"] for m in ms]
        secs = statistics.median(m["train_seconds"] for m in ms)
        means[row] = statistics.mean(acc)
        print(f"| {ROWS[row][0]} | {len(ms)} | {fmt(acc)} | {min(acc):.3f}–{max(acc):.3f} | {statistics.mean(f1):.3f} "
              f"| {' '.join(f'{a:.3f}' for a in acc)} | {secs:.0f} | {ms[0].get('device', '?')} |", flush=True)
    if "scratch" in means:
        print()
        for row, mean in means.items():
            if not row.startswith("scratch"):
                pairs = [(results[(row, s)]["test"]["accuracy"], results[("scratch", s)]["test"]["accuracy"])
                         for s in range(args.seeds) if results.get((row, s)) and results.get(("scratch", s))]
                wins = sum(a > b for a, b in pairs)
                print(f"{ROWS[row][0]}: {100 * (mean - means['scratch']):+.1f} points (mean over seeds) vs the scratch "
                      f"CNN's mean (goal >= +5); above the scratch run of the same seed in {wins} of {len(pairs)}")
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
