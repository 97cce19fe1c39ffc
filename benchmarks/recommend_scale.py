"""Query latency, memory and recall of `recommend`'s search: exact numpy vs ANN, in one run.

    nice -n 10 python benchmarks/recommend_scale.py                          # 10k, 100k, 1M × 256-d
    python benchmarks/recommend_scale.py --sizes 10000 100000 --backends hnsw faiss --threads 2

For each size n, n random unit vectors (seeded Gaussian, 256-d: the hardest case for an ANN index,
with no cluster structure to exploit) are indexed and --queries held-out random vectors are searched
for their top 10:
  exact   specmusic.index exact search (chunked matrix product + argpartition), one query at a time
          and as one batch; memory = the float32 matrix (n × d × 4 bytes).
  hnsw    hnswlib (M, ef_construction lowered so that 1M builds in minutes on 2 cores; ef_search=128)
  faiss   faiss IVF-Flat (about 4·√n lists, 32 probed)
Prints build time, per-query latency (single and batched), the index's extra resident memory
(RSS growth while building, beyond the vectors) and recall@10 of each ANN against exact, with
the ratio exact/ANN latency on the same line, so machine load affects both sides alike.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specmusic.index import IndexConfig, ann_backends, build_index, l2_normalize  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def random_unit(n: int, d: int, seed: int, *, clustered: bool = False, block: int = 100_000) -> np.ndarray:
    """Seeded unit vectors: isotropic Gaussian, or (clustered) 1,000 Gaussian blobs around random
    centres with noise of half the centres' spread, like embeddings of genres/artists."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(12345).standard_normal((1000, d), dtype=np.float32)
    out = np.empty((n, d), np.float32)
    for s in range(0, n, block):
        m = min(block, n - s)
        x = rng.standard_normal((m, d), dtype=np.float32)
        if clustered:
            x = centres[rng.integers(0, len(centres), m)] + 0.5 * x
        out[s : s + block] = l2_normalize(x)
    return out


def time_queries(index, queries: np.ndarray, k: int) -> tuple[float, float, np.ndarray]:
    """(ms per query one at a time, ms per query in one batch, batch results)."""
    t0 = time.perf_counter()
    for q in queries:
        index.search(q[None], k)
    single = (time.perf_counter() - t0) / len(queries) * 1e3
    t0 = time.perf_counter()
    idx, _ = index.search(queries, k)
    batch = (time.perf_counter() - t0) / len(queries) * 1e3
    return single, batch, idx


def recall_at(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--backends", nargs="+", default=["hnsw", "faiss"], choices=["hnsw", "faiss"])
    ap.add_argument("--threads", type=int, default=2, help="ANN build/query threads")
    ap.add_argument("--hnsw-m", type=int, default=12)
    ap.add_argument("--ef-construction", type=int, default=64)
    ap.add_argument("--ef-search", type=int, default=128)
    ap.add_argument("--nprobe", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--data", nargs="+", default=["random"], choices=["random", "clustered"],
        help="random: isotropic (as the issue asks; worst case for ANN); clustered: 1,000 blobs",
    )
    args = ap.parse_args()

    available = ann_backends()
    backends = [b for b in args.backends if b in available]
    for b in args.backends:
        if b not in available:
            print(f"# {b}: not installed (pip install 'specmusic[ann]'), skipped", flush=True)
    print(f"# loadavg before: {open('/proc/loadavg').read().strip()}  cpus: {os.cpu_count()}", flush=True)
    print(f"# {args.dim}-d random unit vectors, {args.queries} held-out queries, top-{args.k}", flush=True)
    header = f"{'n':>9} {'method':<6} {'build s':>8} {'ms/query':>9} {'ms/q batch':>10} {'memory MB':>10} {'recall@10':>9} {'speed-up':>8}"
    print(header, flush=True)
    for kind in args.data:
        print(f"# data: {kind}", flush=True)
        run_sizes(args, backends, clustered=kind == "clustered")
    print(f"# loadavg after: {open('/proc/loadavg').read().strip()}", flush=True)
    print("# memory: exact = the float32 vectors; ANN = extra RSS while building (its own copy + graph/lists)")
    print("# speed-up: exact ms/query ÷ this method's ms/query, one query at a time")


def run_sizes(args: argparse.Namespace, backends: list[str], *, clustered: bool) -> None:
    queries = random_unit(args.queries, args.dim, seed=args.seed + 1, clustered=clustered)
    for n in args.sizes:
        vectors = random_unit(n, args.dim, seed=args.seed, clustered=clustered)
        base_mb = vectors.nbytes / 2**20
        t0 = time.perf_counter()
        exact = build_index(vectors, config=IndexConfig(backend="exact"))
        build = time.perf_counter() - t0
        single, batch, truth = time_queries(exact, queries, args.k)
        print(
            f"{n:>9} {'exact':<6} {build:>8.2f} {single:>9.3f} {batch:>10.3f} {base_mb:>10.0f} {1.0:>9.3f} {1.0:>7.1f}x",
            flush=True,
        )
        for backend in backends:
            gc.collect()
            before = rss_mb()
            config = IndexConfig(
                backend=backend,
                hnsw_m=args.hnsw_m,
                ef_construction=args.ef_construction,
                ef_search=args.ef_search,
                faiss_nprobe=args.nprobe,
                threads=args.threads,
                seed=args.seed,
            )
            t0 = time.perf_counter()
            ann = build_index(vectors, config=config)
            build = time.perf_counter() - t0
            extra = rss_mb() - before
            a_single, a_batch, got = time_queries(ann, queries, args.k)
            print(
                f"{n:>9} {backend:<6} {build:>8.2f} {a_single:>9.3f} {a_batch:>10.3f} {extra:>10.0f} "
                f"{recall_at(got, truth):>9.3f} {single / a_single:>7.1f}x",
                flush=True,
            )
            del ann
        del exact, vectors
        gc.collect()


if __name__ == "__main__":
    main()
