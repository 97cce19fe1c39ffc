"""A sharded library's search: exact streaming vs FAISS IVF-Flat vs IVF-PQ built from the parts, in one run.

    nice -n 10 python benchmarks/shard_index.py                       # 200k × 256-d in parts of 8192
    python benchmarks/shard_index.py --n 20000 --shard-size 2048      # quick

A synthetic library (seeded clustered vectors, 256-d, offset so that the library-wide z-scoring
matters, ``"standardize": true`` as the default model's libraries) is written with
ShardedLibraryWriter, part by part (never held whole). Then each phase runs in a fresh process,
which reports its own peak RSS (``ru_maxrss``), so the figures say what that phase needed:

  load whole   read_sharded(): the library in memory (the baseline a single-file library needs)
  exact        ShardedRecommender(ann="exact"): --queries library ids, top 10, streaming the parts
  ivf / ivfpq  build_shard_index() then search with it (ivfpq re-scored ×4 from the parts, and raw)

Printed side by side: build seconds, peak RSS (MB), index bytes per vector, query ms (batched),
recall@10 against exact, and the size a 1 M / 10 M-track index of this dimension would take.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODEL = {"kind": "synthetic", "standardize": True, "sha256": "0" * 64}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_library(folder: Path, n: int, dim: int, shard_size: int, seed: int, data: str = "clustered") -> None:
    from specmusic.embeddings import ModelDescription, ShardedLibraryWriter
    from specmusic.embeddings.store.library import track_record
    from specmusic.index import l2_normalize

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(1000, dim)) * 1.5
    basis = rng.normal(size=(32, dim)) * 0.5  # lowrank: within a cluster, tracks vary along 32 directions
    w = ShardedLibraryWriter.open(folder, ModelDescription.from_dict(MODEL), shard_size=shard_size, flush_seconds=1e9)
    for start in range(0, n, shard_size):
        m = min(shard_size, n - start)
        within = rng.normal(size=(m, 32)) @ basis + 0.1 * rng.normal(size=(m, dim)) if data == "lowrank" else rng.normal(size=(m, dim))
        x = l2_normalize(centres[rng.integers(0, len(centres), m)] + within + 0.5)
        for j in range(m):
            i = start + j
            w.add(track_record(f"/music/a{i % 97}/t{i:07d}.flac", None, None, i, 1.0, None, []), x[j])
    w.finish()


def phase(args: argparse.Namespace) -> dict:
    """One measurement, in this (fresh) process."""
    from specmusic.embeddings import ShardedRecommender, read_sharded
    from specmusic.embeddings.store.shard_catalog import read_catalog

    folder = Path(args.folder)
    base = peak_mb()
    out: dict = {"phase": args.phase, "rss_imports": base}
    if args.phase == "load":
        t = time.perf_counter()
        lib = read_sharded(folder)
        out.update(seconds=time.perf_counter() - t, rss=peak_mb(), n=len(lib))
        return out
    _, cat = read_catalog(folder)
    rng = np.random.default_rng(1)
    queries = [cat.ids[i] for i in rng.choice(len(cat), size=args.queries, replace=False)]
    t = time.perf_counter()
    build_s = 0.0
    kind, _, pq_m = args.phase.partition(":")
    if kind != "exact":
        from specmusic.embeddings import build_shard_index

        build_shard_index(folder, kind=kind, pq_m=int(pq_m or 0), seed=0)
        build_s = time.perf_counter() - t
        out["rss_build"] = peak_mb()
        out["bytes"] = json.loads((folder / "index.json").read_text())["ann"]["bytes"]
    rec = ShardedRecommender(folder, ann=kind, build=False, nprobe=args.nprobe)
    results = {}
    for rerank in ([0, 4, 16] if kind == "ivfpq" else [4]):
        rec.rerank = rerank
        t = time.perf_counter()
        res = rec.recommend(queries, k=10)
        results[rerank] = (time.perf_counter() - t, [[n["id"] for n in r["neighbors"]] for r in res])
    out.update(build_s=build_s, rss=peak_mb(), n=len(cat), results={str(k): v for k, v in results.items()})
    return out


def child(folder: Path, name: str, queries: int, nprobe: int) -> dict:
    cmd = [sys.executable, __file__, "--phase", name, "--folder", str(folder), "--queries", str(queries),
           "--nprobe", str(nprobe)]  # fmt: skip
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--shard-size", type=int, default=8192)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", choices=["clustered", "lowrank"], default="clustered",
                    help="clustered: 1000 centres + isotropic noise (hard for PQ); lowrank: + 32-d variation")
    ap.add_argument("--nprobe", type=int, default=32, help="inverted lists scanned per query")
    ap.add_argument("--pq-m", type=int, nargs="+", default=[32, 64], help="IVF-PQ bytes per vector to try")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(phase(args)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "library"
        t = time.perf_counter()
        make_library(folder, args.n, args.dim, args.shard_size, args.seed, args.data)
        parts = len(list(folder.glob("part-*.npz")))
        part_mb = max(p.stat().st_size for p in folder.glob("part-*.npz")) / 2**20
        print(f"library ({args.data}): {args.n} × {args.dim}-d float32 = {args.n * args.dim * 4 / 2**20:.0f} MB in {parts} parts "
              f"of ≤{args.shard_size} ({part_mb:.1f} MB each), written in {time.perf_counter() - t:.1f} s; "
              f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
        load = child(folder, "load", args.queries, args.nprobe)
        print(f"{'load whole':<18} {load['seconds']:7.1f} s  peak RSS {load['rss']:7.0f} MB (imports {load['rss_imports']:.0f} MB)")
        exact = child(folder, "exact", args.queries, args.nprobe)
        truth = exact["results"]["4"][1]
        print(f"{'':<18} {'build s':>8} {'peak RSS MB':>12} {'B/vector':>9} {'1M idx':>8} {'10M idx':>8} "
              f"{'query ms':>9} {'recall@10':>9}")  # fmt: skip
        ms = exact["results"]["4"][0] / args.queries * 1000
        print(f"{'exact (stream)':<18} {'-':>8} {exact['rss']:>12.0f} {'-':>9} {'-':>8} {'-':>8} {ms:>9.2f} {1.0:>9.3f}")
        for kind in ["ivf"] + [f"ivfpq:{m}" for m in args.pq_m]:
            r = child(folder, kind, args.queries, args.nprobe)
            per = r["bytes"] / r["n"]
            for rerank, (secs, found) in r["results"].items():
                recall = np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth)])
                label = kind if kind == "ivf" else f"ivfpq m={kind[6:]} " + (f"re×{rerank}" if rerank != "0" else "raw")
                print(f"{label:<18} {r['build_s']:>8.1f} {r['rss_build']:>12.0f} {per:>9.1f} "
                      f"{per * 1e6 / 2**30:>7.2f}G {per * 1e7 / 2**30:>7.2f}G "
                      f"{secs / args.queries * 1000:>9.2f} {recall:>9.3f}")  # fmt: skip
        print(f"nprobe {args.nprobe}; load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
