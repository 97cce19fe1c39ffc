"""Requests per second and p50/p99 latency of `specmusic serve`'s /similar with 16 concurrent clients, beside
the same search called in-process (the Recommender's `recommend`), on synthetic tagged libraries.

    python benchmarks/serve_load.py                                  # 10,000 and 1,000,000 tracks
    python benchmarks/serve_load.py --sizes 10000 --seconds 5        # a quick look

The rule, stated before it runs: /similar at 10,000 tracks answers 16 concurrent clients with a p99
latency under 50 ms on the project's 2-core machine (client threads included, all on loopback).

For each size n: n seeded unit vectors (--dim 128; 1,000 Gaussian clusters, like artists or genres)
with tags (artist, album, title, genre, year, duration) saved as one .npz with the library API;
1. HTTP: `specmusic serve LIB --no-access-log` in its own process on a free loopback port; --clients
   threads, each with one kept-alive connection, ask GET /similar?id=<a random track>&k=10 in a loop for
   --seconds (and at most --max-requests in all), after --warmup seconds not counted;
2. in-process: the same library read into this process (the server stopped first), the same ids, the same
   number of threads calling `InMemoryRecommender.recommend([id], k=10)` for --seconds.
Latency is each request's wall time as its client sees it. Before each phase the benchmark waits (at most
--settle-max s) for the 1-minute load to fall under --settle-load, then prints it with the core count: other
work on the machine slows a phase, and the threads of the phase before leave the average slowly.
Bounded: every loop stops at its deadline; only 127.0.0.1 is asked.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlencode

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from specmusic.embeddings import EmbeddingLibrary, InMemoryRecommender, ModelDescription, read_library, save_library  # noqa: E402
from specmusic.index import l2_normalize  # noqa: E402
from specmusic.metadata import TrackMetadata  # noqa: E402

GOAL_P99_MS = 50.0
GOAL_SIZE = 10_000
GENRES = ("Jazz", "Rock", "Folk", "Electronic", "Classical", "Hip-Hop", "Soul", "Pop")


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (5 min {five:.2f}) on {os.cpu_count()} cores"


def settle(below: float, seconds: float) -> None:
    """Wait (at most ``seconds``) until the 1-minute load is under ``below``: the phase before's threads
    leave the average slowly."""
    end = time.monotonic() + seconds
    while os.getloadavg()[0] >= below and time.monotonic() < end:
        time.sleep(5)


def synthetic_library(n: int, dim: int, seed: int) -> EmbeddingLibrary:
    """``n`` tagged tracks: unit vectors in 1,000 clusters (cluster ``c``: artist ``c``), seeded."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, dim), dtype=np.float32)
    cluster = rng.integers(0, 1000, n)
    vectors = np.empty((n, dim), np.float32)
    for s in range(0, n, 100_000):
        block = slice(s, min(n, s + 100_000))
        vectors[block] = l2_normalize(centres[cluster[block]] + 0.5 * rng.standard_normal((block.stop - s, dim), dtype=np.float32))
    ids = [f"/bench/Artist {c:03d}/Album {i % 7}/{i:07d} Title {i}.flac" for i, c in enumerate(cluster.tolist())]
    meta = [TrackMetadata(artist=f"Artist {c:03d}", album=f"Album {i % 7}", title=f"Title {i}", genre=GENRES[c % 8],
                          year=1960 + c % 60, duration=120.0 + i % 300) for i, c in enumerate(cluster.tolist())]  # fmt: skip
    model = ModelDescription(kind="onnx", name="synthetic", sha256="0" * 64, dim=dim)
    return EmbeddingLibrary(vectors, ids, [None] * n, [None] * n, model, metadata=meta)


def hammer(ask: Callable[[str], None], ids: list[str], *, clients: int, seconds: float, warmup: float,
           max_requests: int) -> dict[str, float]:  # fmt: skip
    """``clients`` threads calling ``ask(id)`` in a loop (warm-up not counted); requests, errors, req/s, p50, p99."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = time.monotonic() + warmup
    end = start + seconds
    budget = threading.Semaphore(max_requests)

    def client(c: int) -> None:
        n = c
        while time.monotonic() < end:
            counted = time.monotonic() >= start
            if counted and not budget.acquire(blocking=False):
                return
            t0 = time.perf_counter()
            try:
                ask(ids[n % len(ids)])
            except Exception:  # noqa: BLE001 — counted, the loop goes on
                errors[c] += counted
            else:
                if counted:
                    latencies[c].append(time.perf_counter() - t0)
            n += clients

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=warmup + seconds + 120)
    elapsed = min(time.monotonic(), end) - start
    lat = np.concatenate([np.asarray(x) for x in latencies]) * 1e3 if any(latencies) else np.zeros(1)
    return {"requests": float(sum(map(len, latencies))), "errors": float(sum(errors)),
            "rps": sum(map(len, latencies)) / max(elapsed, 1e-9),
            "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99))}  # fmt: skip


class Served:
    """``specmusic serve LIB`` on a free loopback port, for one measurement."""

    def __init__(self, library: Path, deadline: float) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, "-m", "specmusic", "serve", str(library), "--port", str(self.port),
                                      "--no-access-log"], stdout=subprocess.DEVNULL, env=env)  # fmt: skip
        end = time.monotonic() + deadline
        while time.monotonic() < end and self.proc.poll() is None:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit(f"serve did not start within {deadline:.0f} s")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)


def http_phase(library: Path, ids: list[str], args: argparse.Namespace) -> dict[str, float]:
    t0 = time.perf_counter()
    served = Served(library, args.start_deadline)
    print(f"#   server ready in {time.perf_counter() - t0:.1f} s; {load()}", flush=True)
    local = threading.local()

    def ask(id_: str) -> None:
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=60)
        local.conn.request("GET", "/similar?" + urlencode({"id": id_, "k": args.k}, quote_via=quote))
        r = local.conn.getresponse()
        body = r.read()
        if r.status != 200 or len(json.loads(body)["neighbors"]) != args.k:
            raise RuntimeError(f"{r.status}: {body[:200]!r}")

    try:
        return hammer(ask, ids, clients=args.clients, seconds=args.seconds, warmup=args.warmup, max_requests=args.max_requests)
    finally:
        served.stop()


def inprocess_phase(library: Path, ids: list[str], args: argparse.Namespace) -> dict[str, float]:
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")  # as `specmusic serve` runs: one BLAS thread a request
    t0 = time.perf_counter()
    rec = InMemoryRecommender.from_library(read_library(library))
    rec.recommend([ids[0]], k=args.k)
    print(f"#   library read in-process in {time.perf_counter() - t0:.1f} s; {load()}", flush=True)

    def ask(id_: str) -> None:
        if len(rec.recommend([id_], k=args.k)[0]["neighbors"]) != args.k:
            raise RuntimeError(id_)

    return hammer(ask, ids, clients=args.clients, seconds=args.seconds, warmup=args.warmup, max_requests=args.max_requests)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=20.0, help="Measured seconds per phase.")
    ap.add_argument("--warmup", type=float, default=3.0, help="Seconds of requests not counted, first.")
    ap.add_argument("--max-requests", type=int, default=100_000, help="Requests counted per phase, at most.")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--start-deadline", type=float, default=900.0, help="Seconds a server may take to start.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--settle-load", type=float, default=2.0, help="Before each phase, wait for the load to fall under this…")
    ap.add_argument("--settle-max", type=float, default=180.0, help="…for at most this many seconds.")
    args = ap.parse_args()
    print(f"# serve_load: /similar?id=…&k={args.k}, {args.clients} clients, {args.seconds:g} s a phase; {args.dim}-d; {load()}")
    print(f"# rule: p99 < {GOAL_P99_MS:g} ms over HTTP at {GOAL_SIZE:,} tracks", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="serve_load-") as tmp:
        for n in args.sizes:
            t0 = time.perf_counter()
            library = Path(tmp) / f"lib-{n}.npz"
            lib = synthetic_library(n, args.dim, args.seed)
            save_library(lib, library)
            ids = [lib.ids[i] for i in np.random.default_rng(args.seed + 1).integers(0, n, 5000)]
            del lib
            print(f"# {n:,} tracks: written in {time.perf_counter() - t0:.1f} s ({library.stat().st_size / 2**20:.0f} MB)", flush=True)
            for path, phase in (("HTTP /similar", http_phase), ("in-process recommend", inprocess_phase)):
                settle(args.settle_load, args.settle_max)
                print(f"# {n:,} tracks, {path}: {load()}", flush=True)
                rows.append((n, path, phase(library, ids, args)))
            library.unlink()
    print(f"\n| tracks | path | requests | errors | req/s | p50 ms | p99 ms | goal (p99 < {GOAL_P99_MS:g} ms at {GOAL_SIZE:,}) |")
    print("|---:|---|---:|---:|---:|---:|---:|---|")
    for n, path, r in rows:
        goal = ("met" if r["p99"] < GOAL_P99_MS else "missed") if n == GOAL_SIZE and path.startswith("HTTP") else ""
        print(f"| {n:,} | {path} | {r['requests']:,.0f} | {r['errors']:.0f} | {r['rps']:,.0f} | {r['p50']:.1f} | {r['p99']:.1f} | {goal} |")
    print(f"\n# {load()}")


if __name__ == "__main__":
    main()
