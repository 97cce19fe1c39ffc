"""``specmusic describe`` on 10,000 clips with ``--jobs 2``: wall time, clips/s, peak memory, duplicate recall.

The data set is built here, in ``--workdir`` (13 GB for 10,000 WAV clips of 30 s; removed afterwards
unless ``--keep``):

- *distinct* clips: seeded synthetic music (random harmonic notes with decays and noise hits),
  22050 Hz mono 16-bit WAV, each seed a different piece;
- *duplicate families*: a source and perturbed copies of it. Sources are the 10 real GTZAN clips and
  30 s excerpts of the cc-music pieces (``../shared/data``; 44.1 kHz stereo Ogg) when present, plus
  synthetic ones. Copies: ``exact`` (same PCM, other name), ``gain`` (-9 dB), ``resampled``
  (to 16 kHz), ``mp3`` and ``ogg`` re-encoded, ``shifted`` (starts 2.5 s later) and ``part`` (only
  seconds 10..30). Every pair inside a family is a true duplicate pair;
- labels ``l0``..``l9`` (one folder each, a family stays in its label), and split lists: each clip
  in ``test`` with probability 0.2, else ``train``, so some families straddle the split (leakage).

Printed next to each other: the describe run and its baseline, a decode-only pass over the same
files with the same 2 processes (what any tool that reads every file must pay), and precision and
recall of the reported duplicate pairs against the families, per kind of copy.

Usage::

    nice -n 10 .venv/bin/python benchmarks/describe_speed.py --clips 10000 --jobs 2
    nice -n 10 .venv/bin/python benchmarks/describe_speed.py --clips 500   # a quick look
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from itertools import combinations
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
SR = 22050
LABELS = [f"l{i}" for i in range(10)]
VARIANTS = ("exact", "gain", "resampled", "mp3", "ogg", "shifted", "part")

from tests.conftest import melody  # noqa: E402  (seeded synthetic music, shared with tests/describe/test_describe.py)


def _write_distinct(job: tuple[str, int, float]) -> None:
    path, seed, seconds = job
    sf.write(path, melody(seconds, seed, level_jitter=True), SR, subtype="PCM_16")


def _real_sources(seconds: float) -> list[tuple[np.ndarray, int]]:
    """(audio [frames, channels] or [frames], rate) of GTZAN clips and non-overlapping cc-music excerpts."""
    out = []
    for path in sorted(glob.glob(str(SHARED / "gtzan-sample" / "*" / "*.au"))):
        y, sr = sf.read(path, dtype="float32")
        out.append((y, sr))
    for path in sorted(glob.glob(str(SHARED / "cc-music" / "*.ogg"))):
        y, sr = sf.read(path, dtype="float32")
        step = int(seconds * sr)
        for start in range(0, len(y) - step + 1, step):
            out.append((y[start : start + step], sr))
    return out


def _write_family(job: tuple[str, int, int, list[str], object]) -> list[tuple[str, str]]:
    """Write a source and its copies; returns (path, variant) rows."""
    import soxr

    folder, family, seed, variants, real = job
    if real is None:
        y, sr = melody(30.0, seed, level_jitter=True), SR
    else:
        y, sr = real  # type: ignore[misc]
    rows = []
    src = f"{folder}/fam{family:04d}_src.wav"
    sf.write(src, y, sr, subtype="PCM_16")
    rows.append((src, "source"))
    for v in variants:
        name = f"{folder}/fam{family:04d}_{v}"
        if v == "exact":
            shutil.copyfile(src, name + ".wav")
            rows.append((name + ".wav", v))
            continue
        if v == "gain":
            sf.write(name + ".wav", y * 10 ** (-9 / 20), sr, subtype="PCM_16")
        elif v == "resampled":
            sf.write(name + ".wav", soxr.resample(y, sr, 16000), 16000, subtype="PCM_16")
        elif v in ("mp3", "ogg"):
            sf.write(name + "." + v, y, sr, format="MP3" if v == "mp3" else "OGG")
        elif v == "shifted":
            sf.write(name + ".wav", y[int(2.5 * sr) :], sr, subtype="PCM_16")
        elif v == "part":
            sf.write(name + ".wav", y[int(10 * sr) :], sr, subtype="PCM_16")
        rows.append((name + (f".{v}" if v in ("mp3", "ogg") else ".wav"), v))
    return rows


def build(workdir: Path, clips: int, seconds: float, families: int, jobs: int, seed: int) -> dict:
    """Write the data set; returns its ground truth (families, splits)."""
    rng = np.random.default_rng(seed)
    data = workdir / "data"
    for label in LABELS:
        (data / label).mkdir(parents=True, exist_ok=True)
    real = _real_sources(seconds)
    fam_jobs = []
    for f in range(families):
        label = LABELS[f % len(LABELS)]
        if f < len(real):
            variants = list(VARIANTS)
        else:
            variants = list(rng.choice(VARIANTS, size=3, replace=False))
        fam_jobs.append((str(data / label), f, 10_000_000 + f, variants, real[f] if f < len(real) else None))
    with ProcessPoolExecutor(jobs) as pool:
        rows_per_family = list(pool.map(_write_family, fam_jobs))
    n_dup_files = sum(len(r) for r in rows_per_family)
    distinct = [(str(data / LABELS[i % len(LABELS)] / f"clip{i:05d}.wav"), i, seconds)
                for i in range(max(0, clips - n_dup_files))]
    with ProcessPoolExecutor(jobs) as pool:
        list(pool.map(_write_distinct, distinct, chunksize=16))
    every = [p for rows in rows_per_family for p, _ in rows] + [p for p, _, _ in distinct]
    split = {p: ("test" if rng.random() < 0.2 else "train") for p in every}
    for name in ("train", "test"):
        lines = [os.path.relpath(p, data) for p in every if split[p] == name]
        (workdir / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return {"families": [[(os.path.abspath(p), v) for p, v in rows] for rows in rows_per_family],
            "split": {os.path.abspath(p): s for p, s in split.items()}, "files": len(every), "real": len(real)}


def _decode_only(path: str) -> int:
    from specmusic.audio import stream_audio

    n = 0
    for block in stream_audio(path, sr=None, mono=False):
        n += block.shape[-1]
    return n


def decode_baseline(data: Path, jobs: int) -> tuple[float, float]:
    """Wall and CPU seconds of decoding every file once (no analysis), in ``jobs`` processes."""
    files = sorted(str(p) for p in data.rglob("*") if p.is_file())
    t = time.perf_counter()
    with ProcessPoolExecutor(jobs) as pool:
        cpu = sum(pool.map(_decode_cpu, [files[i::64] for i in range(64)]))
    return time.perf_counter() - t, cpu


def _decode_cpu(files: list[str]) -> float:
    t = time.process_time()
    for f in files:
        _decode_only(f)
    return time.process_time() - t


def run_describe(workdir: Path, jobs: int) -> tuple[float, float, float, float, dict]:
    """Wall seconds, CPU seconds (all processes), peak RSS of the largest process and of all processes
    together (MiB), the JSON."""
    import resource

    import psutil

    out = workdir / "describe.json"
    cmd = [sys.executable, "-m", "specmusic", "describe", str(workdir / "data"), "--jobs", str(jobs),
           "--split-file", str(workdir / "train.txt"), "--test-file", str(workdir / "test.txt"),
           "-o", str(out), "--plots", str(workdir / "plots"), "--no-progress"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak_one = peak_all = 0.0
    while proc.poll() is None:
        try:
            rss = [p.memory_info().rss for p in [ps, *ps.children(recursive=True)]]
            peak_one, peak_all = max(peak_one, max(rss)), max(peak_all, sum(rss))
        except psutil.Error:
            pass
        time.sleep(0.25)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # describe and its workers (reaped by it)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    stderr = proc.stderr.read() if proc.stderr else ""
    if proc.returncode not in (0, 1):
        raise SystemExit(f"describe failed ({proc.returncode}): {stderr[-2000:]}")
    return wall, cpu, peak_one / 2**20, peak_all / 2**20, json.loads(out.read_text())


def score(truth: dict, record: dict) -> dict:
    """Precision/recall of the duplicate pairs; recall per kind of copy (pairs with the family's source)."""
    true_pairs = set()
    kind_of: dict[frozenset, str] = {}
    for fam in truth["families"]:
        for (a, va), (b, vb) in combinations(fam, 2):
            key = frozenset((a, b))
            true_pairs.add(key)
            if "source" in (va, vb):
                kind_of[key] = vb if va == "source" else va
    found = {frozenset((os.path.abspath(d["a"]), os.path.abspath(d["b"]))) for d in record["duplicates"]}
    hits = found & true_pairs
    per_kind = {}
    for v in VARIANTS:
        keys = [k for k, kind in kind_of.items() if kind == v]
        if keys:
            per_kind[v] = (sum(k in found for k in keys), len(keys))
    split = truth["split"]
    leaks = {k for k in true_pairs if len({split[p] for p in k}) == 2}
    reported_leaks = {frozenset((os.path.abspath(d["a"]), os.path.abspath(d["b"])))
                      for d in record["duplicates"] if d["leakage"]}
    return {"true": len(true_pairs), "found": len(found), "hits": len(hits),
            "precision": len(hits) / max(1, len(found)), "recall": len(hits) / max(1, len(true_pairs)),
            "per_kind": per_kind, "leaks": len(leaks), "leaks_found": len(leaks & reported_leaks),
            "false": sorted(tuple(sorted(os.path.basename(p) for p in k)) for k in found - true_pairs)[:10]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--families", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/specmusic-describe-bench"))
    ap.add_argument("--keep", action="store_true", help="Keep the data set (13 GB at 10,000 clips).")
    ap.add_argument("--reuse", action="store_true", help="Reuse a data set kept by an earlier --keep run.")
    args = ap.parse_args()
    truth_file = args.workdir / "truth.json"
    load0 = os.getloadavg()
    t = time.perf_counter()
    if args.reuse and truth_file.is_file():
        truth = json.loads(truth_file.read_text())
    else:
        shutil.rmtree(args.workdir, ignore_errors=True)
        args.workdir.mkdir(parents=True)
        truth = build(args.workdir, args.clips, args.seconds, args.families, args.jobs, args.seed)
        truth_file.write_text(json.dumps(truth))
    built = time.perf_counter() - t
    base, base_cpu = decode_baseline(args.workdir / "data", args.jobs)
    wall, cpu, rss_one, rss_all, record = run_describe(args.workdir, args.jobs)
    load1 = os.getloadavg()
    s = score(truth, record)
    hours = record["duration"]["total"] / 3600
    print(f"describe_speed: {record['clips']} clips ({hours:.1f} h of audio; {truth['real']} real sources), "
          f"--jobs {args.jobs}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"  load average before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, "
          f"after {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}; data set written in {built:.0f} s")
    n = record["clips"]
    print(f"  {'':24s} {'wall s':>8s} {'clips/s':>8s} {'CPU s':>8s} {'CPU ms/clip':>12s}")
    print(f"  {'baseline: decode only':24s} {base:8.1f} {n / base:8.1f} {base_cpu:8.1f} {1000 * base_cpu / n:12.1f}")
    print(f"  {'specmusic describe':24s} {wall:8.1f} {n / wall:8.1f} {cpu:8.1f} {1000 * cpu / n:12.1f}")
    print(f"  describe took {wall / 60:.1f} min ({wall / base:.1f}x the decode-only pass); on {args.jobs} cores of its "
          f"own its CPU time would take ~{cpu / args.jobs / 60:.1f} min")
    print(f"  peak RSS: largest process {rss_one:.0f} MiB, all processes together {rss_all:.0f} MiB")
    print(f"  duplicate pairs: {s['true']} true, {s['found']} reported, {s['hits']} correct -> "
          f"precision {s['precision']:.4f}, recall {s['recall']:.4f}")
    print("  recall per copy (pairs with their source): "
          + ", ".join(f"{k} {h}/{n}" for k, (h, n) in s["per_kind"].items()))
    print(f"  leakage pairs (family across train/test): {s['leaks']} true, {s['leaks_found']} reported")
    if s["false"]:
        print(f"  false pairs (first 10): {s['false']}")
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
