"""Speed of `specmusic nmf` against scikit-learn's NMF(solver="mu"), per iteration and to the same divergence.

The rule, stated before anything runs: for every clip × loss × k, both solvers start from the same NNDSVDa
init, in float32; specmusic runs its defaults on every CPU this process may use (its solver threads, each
with one BLAS thread, or BLAS threads for Euclidean); scikit-learn runs with 1 BLAS thread and with one per
CPU (BLAS threads are its only parallelism, and on a busy machine one thread can be the faster) and is
judged by the faster of the two. Every timing is the median of --repeats runs that alternate between the
contenders, so machine load falls on all alike, each after a 0.3 s pause (SETTLE_SECONDS: BLAS threads
left spinning by the run before would take the cores from it).

(a) per iteration: specmusic's textbook update (``inner=1, relax=1``: scikit-learn's arithmetic, so the
    same divergence after the same iterations; the loss tracked once, like scikit-learn's one at init)
    against ``NMF(solver="mu", tol=0)``, both 200 iterations; ms per iteration and the ratio. Goal: ≥ 1.5×.
(b) to the same divergence: scikit-learn's divergence after its 200 iterations is the target (the lower
    of its two thread counts' divergences); specmusic with its defaults (accelerated steps, the loss
    recorded at every iteration) runs the iterations its own loss curve needs to reach it; wall time of
    that run against scikit-learn's 200 iterations. The divergence each reaches is recomputed in float64
    by one function (beta_divergence) and printed. Goal: ≥ 2×.
(c) as (a) on one core each, in CPU seconds of the calling thread (where all of the work runs at one
    thread; the process's CPU time also counted the BLAS threads a 2-thread run had left spinning, ~0.1 s
    a call to either contender): specmusic ``threads=1`` against scikit-learn on 1 BLAS thread. Other work on the machine stretches wall times (and stalls BLAS threads waiting for one
    another) far more than it changes the CPU time a single-threaded run needs.

Clips: 30 s from two collections that share no source (cc-music and GTZAN), |STFT| with n_fft 2048,
hop 512 at 22.05 kHz (1025 × 1292). The machine's load average is printed before and after: rerun when
other work was running. ``--loops`` adds Lee & Seung's updates as per-element Python loops (KL and
Euclidean, k 16, first clip), extrapolated per iteration from a short excerpt.

Usage:  python benchmarks/nmf_speed.py [CLIP ...] [--k 4,16,64] [--losses kl,euclidean,is] [--repeats 5]
        [--loops] [--wait-quiet SECONDS] [--retries N]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from specmusic.audio import load_audio  # noqa: E402
from specmusic.fileio import display_path  # noqa: E402
from specmusic.nmf import LOSSES, NMFConfig, beta_divergence, fit_nmf, initialize_nmf, magnitude  # noqa: E402
from specmusic.stft import stft  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
CLIPS = [DATA / "cc-music" / "Kevin_MacLeod_-_Vibe_Ace.ogg", DATA / "gtzan-sample" / "blues" / "blues.00000.au"]
GOAL_PER_ITERATION = 1.5
GOAL_TO_DIVERGENCE = 2.0
#: Pause before each timed run. OpenBLAS's threads keep spinning ~0.1 s after a call and take the cores from
#: whatever runs next: specmusic's default KL run (k 16, blues) took 0.203 s right after a 2-thread
#: scikit-learn run and 0.159 s after a pause, scikit-learn 0.59 s right after specmusic and 0.57 s after a
#: pause. Each contender starts on idle cores, as in a process of its own.
SETTLE_SECONDS = 0.3


# -- the loop baseline: Lee & Seung (2001), one multiply-add at a time -------------------------
def _product(W: list[list[float]], H: list[list[float]]) -> list[list[float]]:
    F, N, K = len(W), len(H[0]), len(H)
    WH = [[0.0] * N for _ in range(F)]
    for i in range(F):
        for mu in range(N):
            s = 0.0
            for a in range(K):
                s += W[i][a] * H[a][mu]
            WH[i][mu] = s
    return WH


def loops_kl(V: list[list[float]], W: list[list[float]], H: list[list[float]], iterations: int) -> None:
    """KL multiplicative updates with explicit per-element loops (W then H, in place)."""
    F, N, K = len(V), len(V[0]), len(H)
    for _ in range(iterations):
        WH = _product(W, H)
        for a in range(K):
            hsum = sum(H[a][mu] for mu in range(N))
            for i in range(F):
                s = 0.0
                for mu in range(N):
                    s += H[a][mu] * V[i][mu] / WH[i][mu]
                W[i][a] *= s / hsum
        WH = _product(W, H)
        for a in range(K):
            wsum = sum(W[i][a] for i in range(F))
            for mu in range(N):
                s = 0.0
                for i in range(F):
                    s += W[i][a] * V[i][mu] / WH[i][mu]
                H[a][mu] *= s / wsum


def loops_euclidean(V: list[list[float]], W: list[list[float]], H: list[list[float]], iterations: int) -> None:
    """Euclidean multiplicative updates with explicit per-element loops (W then H, in place)."""
    F, N, K = len(V), len(V[0]), len(H)
    for _ in range(iterations):
        WH = _product(W, H)
        for i in range(F):
            for a in range(K):
                num = den = 0.0
                for mu in range(N):
                    num += V[i][mu] * H[a][mu]
                    den += WH[i][mu] * H[a][mu]
                W[i][a] *= num / den
        WH = _product(W, H)
        for a in range(K):
            for mu in range(N):
                num = den = 0.0
                for i in range(F):
                    num += W[i][a] * V[i][mu]
                    den += W[i][a] * WH[i][mu]
                H[a][mu] *= num / den


# -- contenders --------------------------------------------------------------------------------
def run_ours(
    V: np.ndarray, W0: np.ndarray, H0: np.ndarray, beta: float, iterations: int, *, textbook: bool, threads: int = 0,
    loss_every: int = 1,
) -> tuple[float, float, np.ndarray, np.ndarray, np.ndarray]:
    """Wall time and the calling thread's CPU time of one ``fit_nmf`` call, its W and H, and its loss curve
    (a loss a tracked iteration: every ``loss_every``-th with the defaults, once with ``textbook``)."""
    extra = dict(inner=1, relax=1, loss_every=max(iterations, 1)) if textbook else dict(loss_every=loss_every)
    config = NMFConfig(n_components=W0.shape[1], beta=beta, max_iter=iterations, tol=0, threads=threads, **extra)
    t, c = time.perf_counter(), time.thread_time()
    r = fit_nmf(V, config=config, W=W0, H=H0)
    return time.perf_counter() - t, time.thread_time() - c, r.W, r.H, np.stack([r.loss_iterations, r.losses])


def run_sklearn(V: np.ndarray, W0: np.ndarray, H0: np.ndarray, beta: float, iterations: int,
                threads: int) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Wall time and the calling thread's CPU time of ``NMF(solver="mu", init="custom", tol=0).fit_transform``
    on ``threads`` BLAS threads, its W and H."""
    from sklearn.decomposition import NMF
    from threadpoolctl import threadpool_limits

    model = NMF(n_components=W0.shape[1], solver="mu", beta_loss=beta, init="custom", max_iter=iterations, tol=0)
    with warnings.catch_warnings(), threadpool_limits(threads, user_api="blas"):
        warnings.simplefilter("ignore")
        t, c = time.perf_counter(), time.thread_time()
        W = model.fit_transform(V, W=W0.copy(), H=H0.copy())
        return time.perf_counter() - t, time.thread_time() - c, W, model.components_


@dataclass
class Cell:
    """One clip × loss × k: medians of both measurements and the divergences behind them."""

    clip: str
    loss: str
    k: int
    sk_threads: int  # scikit-learn's faster BLAS thread count here (by median)
    sk_seconds: float  # scikit-learn, 200 iterations, at that thread count
    sk_loss: float
    textbook_seconds: float  # specmusic textbook, 200 iterations
    textbook_loss: float
    reach: int | None  # specmusic default: iterations to scikit-learn's divergence
    reach_seconds: float
    reach_loss: float
    sk1_cpu: float  # CPU seconds, 1 thread each: scikit-learn (1 BLAS thread), specmusic textbook (threads=1)
    textbook1_cpu: float
    products: float = float("nan")  # seconds of one iteration's matrix products alone, every CPU's BLAS threads
    products1: float = float("nan")  # the same on 1 BLAS thread
    other: float = float("nan")  # other processes' share of the CPUs while this cell ran

    @property
    def per_iteration(self) -> float:
        return self.sk_seconds / self.textbook_seconds

    @property
    def ceiling(self) -> float:
        """Scikit-learn's time ÷ the products' alone as whole-matrix BLAS calls (everything else free): what a
        solver computing them that way could gain per iteration. One that splits them differently can do a
        little better at small k (specmusic's row blocks on worker threads); on one core (:attr:`ceiling1`)
        it is a bound."""
        return self.sk_seconds / self.products

    @property
    def ceiling1(self) -> float:
        return self.sk1_cpu / self.products1

    @property
    def one_thread(self) -> float:
        return self.sk1_cpu / self.textbook1_cpu

    @property
    def to_divergence(self) -> float:
        return self.sk_seconds / self.reach_seconds if self.reach else 0.0


def iterations_to(curve: np.ndarray, target: float) -> int | None:
    """The first tracked iteration whose loss is at or below ``target`` (at least 1)."""
    hit = [int(i) for i, v in zip(curve[0], curve[1]) if v <= target]
    return max(hit[0], 1) if hit else None


def products_seconds(V: np.ndarray, k: int, loss: str, threads: int, iterations: int, repeats: int = 9) -> float:
    """Seconds of ``iterations`` × the matrix products one textbook iteration must compute, alone: the same
    shapes in float32 (KL: W·H, (V/WH)·Hᵀ, W·H again, Wᵀ·(V/WH); IS: the same with the numerator and denominator
    stacked, two of each V-sized product; Euclidean: V·Hᵀ, Wᵀ·V) on ``threads`` BLAS threads, whole matrices, into
    preallocated outputs; median of ``repeats``. Both solvers compute these; their time is a floor for either."""
    from threadpoolctl import threadpool_limits

    f, n = V.shape
    rng = np.random.default_rng(0)
    W, H = rng.random((f, k), dtype=np.float32), rng.random((k, n), dtype=np.float32)
    HT = np.ascontiguousarray(H.T)
    if loss == "euclidean":
        Vc, P, Q = np.ascontiguousarray(V, dtype=np.float32), np.empty((f, k), np.float32), np.empty((k, n), np.float32)
        ops = [lambda: np.matmul(Vc, HT, out=P), lambda: np.matmul(W.T, Vc, out=Q)]
    else:
        halves = 2 if loss == "is" else 1
        X, WH = rng.random((halves * f, n), dtype=np.float32), np.empty((f, n), np.float32)
        G, A = np.empty((halves * f, k), np.float32), np.empty((halves, k, n), np.float32)
        ops = [lambda: np.matmul(W, H, out=WH), lambda: np.matmul(X, HT, out=G), lambda: np.matmul(W, H, out=WH),
               lambda: np.matmul(W.T, X.reshape(halves, f, n), out=A)]
    times = []
    with threadpool_limits(threads, user_api="blas"):
        for _ in range(repeats + 1):
            t = time.perf_counter()
            for op in ops:
                op()
            times.append(time.perf_counter() - t)
    return statistics.median(times[1:]) * iterations


def measure(clip: str, V: np.ndarray, loss: str, k: int, iterations: int, repeats: int) -> Cell:
    """Alternating runs of scikit-learn (1 BLAS thread and every CPU), specmusic's textbook update and
    specmusic's default run to scikit-learn's divergence."""
    beta = LOSSES[loss]
    counts = blas_thread_counts()
    W0, H0 = initialize_nmf(V, k, init="nndsvda", seed=0)
    target = sklearn_target(V, W0, H0, beta, iterations)  # also the warm-up
    reach = default_iterations_to(V, W0, H0, beta, target, iterations)
    contenders = {f"sk{n}": (lambda n=n: run_sklearn(V, W0, H0, beta, iterations, n)) for n in counts}
    contenders["textbook"] = lambda: run_ours(V, W0, H0, beta, iterations, textbook=True)[:4]
    contenders["textbook1"] = lambda: run_ours(V, W0, H0, beta, iterations, textbook=True, threads=1)[:4]
    if reach is not None:
        contenders["reach"] = lambda: run_ours(V, W0, H0, beta, reach, textbook=False)[:4]
    wall: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    out: dict[str, float] = {}
    for _ in range(repeats):
        for name, fn in contenders.items():
            time.sleep(SETTLE_SECONDS)
            seconds, cpu_seconds, W, H = fn()
            wall[name].append(seconds)
            cpu[name].append(cpu_seconds)
            out[name] = beta_divergence(V, W, H, beta=beta)
    med = {name: statistics.median(v) for name, v in wall.items()}
    sk = min(counts, key=lambda n: med[f"sk{n}"])
    return Cell(clip=clip, loss=loss, k=k, sk_threads=sk, sk_seconds=med[f"sk{sk}"], sk_loss=out[f"sk{sk}"],
                textbook_seconds=med["textbook"], textbook_loss=out["textbook"], reach=reach,
                reach_seconds=med.get("reach", float("nan")), reach_loss=out.get("reach", float("nan")),
                sk1_cpu=statistics.median(cpu["sk1"]), textbook1_cpu=statistics.median(cpu["textbook1"]),
                products=min(products_seconds(V, k, loss, n, iterations) for n in counts),
                products1=products_seconds(V, k, loss, 1, iterations))


def blas_thread_counts() -> list[int]:
    """The BLAS thread counts scikit-learn runs at: 1 and one per CPU this process may use."""
    return sorted({1, len(os.sched_getaffinity(0))})


def sklearn_target(V: np.ndarray, W0: np.ndarray, H0: np.ndarray, beta: float, iterations: int) -> float:
    """The divergence to reach: the lower of scikit-learn's after ``iterations`` at 1 and at every CPU's BLAS
    threads (thread counts round differently)."""
    return min(beta_divergence(V, *run_sklearn(V, W0, H0, beta, iterations, n)[2:], beta=beta)
               for n in blas_thread_counts())


def default_iterations_to(V: np.ndarray, W0: np.ndarray, H0: np.ndarray, beta: float, target: float,
                          iterations: int, *, loss_every: int = 1) -> int | None:
    """Iterations of specmusic's defaults (with ``loss_every``) to reach ``target``: its own loss curve says
    when, and :func:`beta_divergence` of a run that long confirms it (one more iteration at a time if not)."""
    reach = None
    for budget in (iterations, 4 * iterations):
        curve = run_ours(V, W0, H0, beta, budget, textbook=False, loss_every=loss_every)[4]
        reach = iterations_to(curve, target)
        if reach is not None:
            break
    while reach is not None and reach < 4 * iterations:  # the tracked float32 loss may round below the target
        W, H = run_ours(V, W0, H0, beta, reach, textbook=False, loss_every=loss_every)[2:4]
        if beta_divergence(V, W, H, beta=beta) <= target:
            break
        reach += 1
    return reach


# -- reporting ---------------------------------------------------------------------------------
def _met(ratio: float, goal: float) -> str:
    return "met" if ratio >= goal else "NOT met"


def print_tables(cells: list[Cell], iterations: int) -> None:
    """Tables (a) per iteration, (b) to the same divergence, (c) one core each: markdown, a row a cell."""
    print(f"\n(a) per iteration, {iterations} iterations from the same init: specmusic textbook "
          f"(--inner 1 --relax 1) vs scikit-learn NMF(solver='mu', tol=0) at its faster BLAS thread count "
          f"(threads); goal ≥ {GOAL_PER_ITERATION:g}×")
    print("`products ms/it`: the matrix products an iteration must compute, alone, at the faster BLAS thread count; "
          "`ceiling ×`: scikit-learn's ms/it ÷ that — what a solver computing them as these whole-matrix calls could "
          "gain (row blocks on worker threads can do a little better at small k)")
    print("| clip | loss | k | sklearn ms/it (threads) | specmusic ms/it | × | goal | products ms/it | ceiling × "
          "| divergence specmusic ÷ sklearn | others |")
    print("|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for c in cells:
        print(f"| {c.clip} | {c.loss} | {c.k} | {c.sk_seconds / iterations * 1e3:.2f} ({c.sk_threads}) | "
              f"{c.textbook_seconds / iterations * 1e3:.2f} | {c.per_iteration:.2f} | "
              f"{_met(c.per_iteration, GOAL_PER_ITERATION)} | {c.products / iterations * 1e3:.2f} | {c.ceiling:.2f} | "
              f"{c.textbook_loss / c.sk_loss:.5f} | {c.other:.0%} |")
    print(f"\n(b) to scikit-learn's {iterations}-iteration divergence: specmusic defaults (accelerated steps, "
          f"loss every iteration) vs scikit-learn's {iterations} iterations; goal ≥ {GOAL_TO_DIVERGENCE:g}×")
    print("| clip | loss | k | sklearn s | sklearn divergence | specmusic iterations | specmusic s | "
          "divergence specmusic ÷ sklearn | × | goal | others |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for c in cells:
        if c.reach is None:
            print(f"| {c.clip} | {c.loss} | {c.k} | {c.sk_seconds:.3f} | {c.sk_loss:.8g} | not reached in "
                  f"{4 * iterations} | | | | NOT met | {c.other:.0%} |")
            continue
        print(f"| {c.clip} | {c.loss} | {c.k} | {c.sk_seconds:.3f} | {c.sk_loss:.8g} | {c.reach} | "
              f"{c.reach_seconds:.3f} | {c.reach_loss / c.sk_loss:.5f} | {c.to_divergence:.2f} | "
              f"{_met(c.to_divergence, GOAL_TO_DIVERGENCE)} | {c.other:.0%} |")
    print(f"\n(c) per iteration on one core each, CPU time (less sensitive to other work on the machine): specmusic "
          f"textbook, threads=1, vs scikit-learn, 1 BLAS thread; goal ≥ {GOAL_PER_ITERATION:g}×")
    print("`products ms/it, 1 thread`, `ceiling ×`: as in (a) on one BLAS thread — on one core the products' own time "
          "bounds any solver that computes them")
    print("| clip | loss | k | sklearn CPU ms/it | specmusic CPU ms/it | × | goal | products ms/it, 1 thread | ceiling × |")
    print("|---|---|---:|---:|---:|---:|---|---:|---:|")
    for c in cells:
        print(f"| {c.clip} | {c.loss} | {c.k} | {c.sk1_cpu / iterations * 1e3:.2f} | "
              f"{c.textbook1_cpu / iterations * 1e3:.2f} | {c.one_thread:.2f} | {_met(c.one_thread, GOAL_PER_ITERATION)} | "
              f"{c.products1 / iterations * 1e3:.2f} | {c.ceiling1:.2f} |")
    for label, values, goal in (("per iteration", [c.per_iteration for c in cells], GOAL_PER_ITERATION),
                                ("per iteration, one core each", [c.one_thread for c in cells], GOAL_PER_ITERATION),
                                ("to the same divergence", [c.to_divergence for c in cells], GOAL_TO_DIVERGENCE)):
        met = sum(v >= goal for v in values)
        print(f"# {label}: ×{min(values):.2f} … ×{max(values):.2f} (median ×{statistics.median(values):.2f}); "
              f"goal ≥ {goal:g}× met in {met} of {len(values)}")
    for label, ceilings, meaning in (
            ("per iteration", [c.ceiling for c in cells], "as whole-matrix BLAS calls"),
            ("per iteration, one core each", [c.ceiling1 for c in cells], "no solver computing them can meet the goal there")):
        print(f"# {label}: the products alone leave scikit-learn's time under {GOAL_PER_ITERATION:g}× theirs in "
              f"{sum(x < GOAL_PER_ITERATION for x in ceilings)} of {len(ceilings)} rows ({meaning})")


def loops_line(V: np.ndarray, loss: str, seconds: float, iterations: int) -> str:
    """Lee & Seung's per-element loops on the first frames of ``V``, extrapolated to all of it."""
    beta = LOSSES[loss]
    n_short = 44
    Vs = np.ascontiguousarray(V[:, :n_short]).astype(np.float64)
    W0, H0 = initialize_nmf(V, 16, init="nndsvda", seed=0)
    Ws, Hs = W0.astype(np.float64), H0[:, :n_short].astype(np.float64)
    Wl, Hl = Ws.tolist(), Hs.tolist()
    t = time.perf_counter()
    (loops_kl if beta == 1 else loops_euclidean)(Vs.tolist(), Wl, Hl, 1)
    per_iteration = (time.perf_counter() - t) * V.shape[1] / n_short
    vec = fit_nmf(Vs, config=NMFConfig(n_components=16, beta=beta, max_iter=1, tol=0, dtype="float64",
                                       inner=1, relax=1), W=Ws, H=Hs)
    agree = np.abs(np.asarray(Wl) @ np.asarray(Hl) - vec.W @ vec.H).max() / np.abs(vec.W @ vec.H).max()
    ours = seconds / iterations
    return (f"# loops, {loss}, k 16: {per_iteration * 1e3:,.0f} ms per iteration (1 iteration on {n_short} frames × "
            f"{V.shape[1]}/{n_short}; max |ΔWH| vs the vectorised update {agree:.1e} of max WH); specmusic's "
            f"textbook update on one thread {ours * 1e3:.2f} ms: {per_iteration / ours:,.0f}× faster")


class OtherWork:
    """How busy the CPUs were with *other* processes over an interval: every CPU's busy time (Linux
    ``/proc/stat``) less this process's own CPU time, as a share of wall time × CPUs. The load average
    lags by minutes; this says whether a measurement was disturbed while it ran."""

    def __init__(self) -> None:
        self.start = self._now()

    @staticmethod
    def _now() -> tuple[float, float, float]:
        try:
            with open("/proc/stat") as f:
                ticks = [int(v) for v in f.readline().split()[1:9]]
            busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError):
            busy = float("nan")
        return time.perf_counter(), busy, time.process_time()

    def wait_quiet(self, limit: float, seconds: float) -> float:
        """Wait (up to ``seconds``) for 3 s in which other processes use under ``limit`` of the CPUs;
        returns the seconds waited. Resets the interval."""
        t0 = time.perf_counter()
        while True:
            self.share()
            time.sleep(3.0)
            if self.share() < limit or time.perf_counter() - t0 > seconds:
                return time.perf_counter() - t0

    def share(self) -> float:
        """Other processes' share of the CPUs since this object was made (or last asked), 0–1."""
        wall, busy, own = self._now()
        w0, b0, o0 = self.start
        self.start = (wall, busy, own)
        return max(0.0, ((busy - b0) - (own - o0)) / max((wall - w0) * len(os.sched_getaffinity(0)), 1e-9))


def measure_quietly(name: str, V: np.ndarray, loss: str, k: int, args: argparse.Namespace) -> Cell:
    """:func:`measure` one row, after waiting for a quiet moment (``--wait-quiet``); notes how busy other
    processes kept the CPUs meanwhile."""
    other = OtherWork()
    if args.wait_quiet > 0:
        waited = other.wait_quiet(0.10, args.wait_quiet)
        print(f"  waited {waited:.0f} s for a quiet moment", file=sys.stderr, flush=True)
    t = time.perf_counter()
    c = measure(name, V, loss, k, args.iterations, args.repeats)
    c.other = other.share()
    print(f"  {name} {loss} k={k}: ×{c.per_iteration:.2f} per iteration, ×{c.to_divergence:.2f} to the divergence "
          f"({c.reach} iterations), other processes {c.other:.0%} of the CPUs  [{time.perf_counter() - t:.0f} s]",
          file=sys.stderr, flush=True)
    return c


def load_clip(path: str, duration: float) -> tuple[str, np.ndarray]:
    y, sr = load_audio(path, sr=22050, duration=duration)
    return Path(path).stem, magnitude(stft(y, n_fft=2048, hop_length=512, dtype=np.complex64))


def blas_line() -> str:
    from threadpoolctl import threadpool_info

    info = [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, {i.get('num_threads')} threads)"
            for i in threadpool_info() if i.get("user_api") == "blas"]
    return ", ".join(info) or "no BLAS found by threadpoolctl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clips", nargs="*", default=[str(p) for p in CLIPS], help="audio files (default: two 30 s clips)")
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--k", default="4,16,64", help="comma list of component counts")
    ap.add_argument("--losses", default="kl,euclidean,is", help="comma list of kl, euclidean, is")
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5, help="alternating runs per contender (medians reported)")
    ap.add_argument("--loops", action="store_true", help="also time the per-element Python loops")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                    help="before each clip × loss × k, wait up to this long for 3 s in which other processes use "
                    "under 10%% of the CPUs (a shared machine); 0: do not wait")
    ap.add_argument("--retries", type=int, default=0,
                    help="re-measure rows that other processes disturbed (> 15%% of the CPUs) up to this many times, "
                    "keeping the least disturbed measurement")
    args = ap.parse_args()
    import sklearn

    ks = [int(k) for k in args.k.split(",")]
    losses = [name.strip() for name in args.losses.split(",")]
    load_before = os.getloadavg()
    print(f"# scikit-learn {sklearn.__version__}, numpy {np.__version__}, {blas_line()}, "
          f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs")
    print(f"# load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} (1, 5, 15 min)")
    print(f"# {args.iterations} iterations, k {args.k}, losses {args.losses}, float32, NNDSVDa init shared, "
          f"medians of {args.repeats} alternating runs")
    clips = [load_clip(path, args.duration) for path in args.clips]
    for (name, V), path in zip(clips, args.clips):
        print(f"# {name}: {display_path(path)}, first {args.duration:g} s, |STFT| {V.shape[0]}×{V.shape[1]}")
    whole = OtherWork()
    jobs = [(name, V, loss, k) for name, V in clips for loss in losses for k in ks]
    cells: list[Cell | None] = [None] * len(jobs)
    for round_ in range(1 + args.retries):
        # round 0 measures every row; each retry re-measures the rows other work disturbed (> 15 % of the
        # CPUs) and keeps whichever measurement was less disturbed
        todo = [i for i, c in enumerate(cells) if c is None or c.other > 0.15]
        for i in todo:
            cell = measure_quietly(*jobs[i], args)
            if cells[i] is None or cell.other < cells[i].other:
                cells[i] = cell
        if not todo:
            break
    print_tables([c for c in cells if c is not None], args.iterations)
    if args.loops:
        V = clips[0][1]
        for loss in ("kl", "euclidean"):
            seconds = run_ours(V, *initialize_nmf(V, 16, init="nndsvda", seed=0), LOSSES[loss],
                               args.iterations, textbook=True, threads=1)[0]
            print(loops_line(V, loss, seconds, args.iterations))
    load_after = os.getloadavg()
    print(f"# load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} "
          f"(before {load_before[0]:.2f}); other processes used {whole.share():.0%} of the CPUs over the run, waits included "
          f"(per row: the 'others' column)")


if __name__ == "__main__":
    main()
