"""Speed of `specmusic nmf` against scikit-learn's NMF(solver="mu") and per-element Python loops.

One run prints everything side by side, so machine load affects every column alike:

- the same 30 s excerpt (|STFT|, n_fft 2048, hop 512, 22.05 kHz), the same NNDSVDa init, the same
  number of iterations (tol = 0 everywhere, no early stop) and the same dtype (float32) for every
  contender, at each of the ``--threads`` counts in turn: specmusic with that many solver threads
  (each with one BLAS thread), scikit-learn with that many BLAS threads (its only parallelism);
- for KL and Euclidean: best (as timeit reports: the least disturbed) and median wall time of the
  whole fit over --repeats alternating runs, time per iteration, the final divergence (recomputed in float64 by one function for all) and the ratios;
- `specmusic` twice: recording the loss at every iteration (what `specmusic nmf` does) and every 10
  iterations (what scikit-learn does when its tolerance test is on); scikit-learn twice: tol=0 (no
  loss at all: the pure update cost) and tol=1e-12 (loss every 10 iterations, never stops early),
  plus scikit-learn given the float64 copy of the same matrix (what a float64 array gets you), at
  the first thread count only;
- a summary per loss: specmusic at the most threads against scikit-learn at *its* fastest thread
  count (more BLAS threads do not always help it), both with and without the loss being tracked;
- Lee & Seung's updates as per-element Python loops, on a short excerpt of the same spectrogram for
  a few iterations, checked against the vectorised result, and extrapolated per iteration to the
  full excerpt (the cost is linear in the number of frames).

Usage:  python benchmarks/nmf_speed.py [AUDIO] [--k 16] [--iterations 200] [--repeats 3] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from specmusic.audio import load_audio  # noqa: E402
from specmusic.fileio import display_path  # noqa: E402
from specmusic.nmf import NMFConfig, beta_divergence, fit_nmf, initialize_nmf, magnitude  # noqa: E402
from specmusic.stft import stft  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data" / "cc-music" / "Kevin_MacLeod_-_Vibe_Ace.ogg"


# -- the loop baseline: Lee & Seung (2001), one multiply-add at a time -------------------------
def loops_kl(V: list[list[float]], W: list[list[float]], H: list[list[float]], iterations: int) -> None:
    """KL multiplicative updates with explicit per-element loops (W then H, in place)."""
    F, N, K = len(V), len(V[0]), len(H)
    for _ in range(iterations):
        WH = [[0.0] * N for _ in range(F)]
        for i in range(F):
            for mu in range(N):
                s = 0.0
                for a in range(K):
                    s += W[i][a] * H[a][mu]
                WH[i][mu] = s
        for a in range(K):
            hsum = 0.0
            for mu in range(N):
                hsum += H[a][mu]
            for i in range(F):
                s = 0.0
                for mu in range(N):
                    s += H[a][mu] * V[i][mu] / WH[i][mu]
                W[i][a] *= s / hsum
        for i in range(F):
            for mu in range(N):
                s = 0.0
                for a in range(K):
                    s += W[i][a] * H[a][mu]
                WH[i][mu] = s
        for a in range(K):
            wsum = 0.0
            for i in range(F):
                wsum += W[i][a]
            for mu in range(N):
                s = 0.0
                for i in range(F):
                    s += W[i][a] * V[i][mu] / WH[i][mu]
                H[a][mu] *= s / wsum


def loops_euclidean(V: list[list[float]], W: list[list[float]], H: list[list[float]], iterations: int) -> None:
    """Euclidean multiplicative updates with explicit per-element loops (W then H, in place)."""
    F, N, K = len(V), len(V[0]), len(H)
    for _ in range(iterations):
        WH = [[0.0] * N for _ in range(F)]
        for i in range(F):
            for mu in range(N):
                s = 0.0
                for a in range(K):
                    s += W[i][a] * H[a][mu]
                WH[i][mu] = s
        for i in range(F):
            for a in range(K):
                num = den = 0.0
                for mu in range(N):
                    num += V[i][mu] * H[a][mu]
                    den += WH[i][mu] * H[a][mu]
                W[i][a] *= num / den
        for i in range(F):
            for mu in range(N):
                s = 0.0
                for a in range(K):
                    s += W[i][a] * H[a][mu]
                WH[i][mu] = s
        for a in range(K):
            for mu in range(N):
                num = den = 0.0
                for i in range(F):
                    num += W[i][a] * V[i][mu]
                    den += W[i][a] * WH[i][mu]
                H[a][mu] *= num / den


# -- contenders --------------------------------------------------------------------------------
def run_ours(V, W0, H0, beta, iterations, loss_every, threads, inner=0, relax=0.0):
    t = time.perf_counter()
    r = fit_nmf(V, config=NMFConfig(n_components=W0.shape[1], beta=beta, max_iter=iterations, tol=0,
                                    loss_every=loss_every, threads=threads, inner=inner, relax=relax), W=W0, H=H0)
    return time.perf_counter() - t, r.W, r.H


def run_sklearn(V, W0, H0, beta, iterations, tol, threads):
    from sklearn.decomposition import NMF
    from threadpoolctl import threadpool_limits

    model = NMF(n_components=W0.shape[1], solver="mu", beta_loss=beta, init="custom", max_iter=iterations, tol=tol)
    with warnings.catch_warnings(), threadpool_limits(threads, user_api="blas"):
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        W = model.fit_transform(V, W=W0.copy(), H=H0.copy())
        seconds = time.perf_counter() - t
    return seconds, W, model.components_


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("audio", nargs="?", default=str(DEFAULT), help="audio file (default: a cc-music clip)")
    ap.add_argument("--offset", type=float, default=0.0)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--n-fft", type=int, default=2048)
    ap.add_argument("--hop-length", type=int, default=512)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5, help="alternating runs per contender (best and median reported)")
    ap.add_argument("--threads", default=f"1,{os.cpu_count() or 1}",
                    help="comma list of thread counts, each run for every contender (default 1 and every CPU)")
    ap.add_argument("--loop-seconds", type=float, default=1.0, help="excerpt length for the Python loops")
    ap.add_argument("--loop-iterations", type=int, default=2)
    args = ap.parse_args()

    import sklearn

    load_before = os.getloadavg()
    y, sr = load_audio(args.audio, sr=22050, offset=args.offset, duration=args.duration)
    V = magnitude(stft(y, n_fft=args.n_fft, hop_length=args.hop_length, dtype=np.complex64))
    W0, H0 = initialize_nmf(V, args.k, init="nndsvda", seed=0)
    print(f"# {display_path(args.audio)}: {len(y) / sr:.1f} s at {sr} Hz → |STFT| {V.shape[0]}×{V.shape[1]} float32, "
          f"k={args.k}, init nndsvda (shared), {args.iterations} iterations, tol=0, thread counts {args.threads}")
    print(f"# numpy {np.__version__}, scikit-learn {sklearn.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average before {load_before[0]:.2f}")
    n_short = max(2, int(round(args.loop_seconds * sr / args.hop_length)) + 1)
    Vs = np.ascontiguousarray(V[:, :n_short]).astype(np.float64)
    V64, W64, H64 = V.astype(np.float64), W0.astype(np.float64), H0.astype(np.float64)

    counts = [int(t) for t in str(args.threads).split(",") if t.strip()]

    for loss, beta in (("kl", 1.0), ("euclidean", 2.0)):
        contenders = {}
        for n in counts:
            contenders |= {
                f"specmusic, {n} thread(s), loss every iteration": lambda n=n: run_ours(V, W0, H0, beta, args.iterations, 1, n),
                f"specmusic, {n} thread(s), loss every 10": lambda n=n: run_ours(V, W0, H0, beta, args.iterations, 10, n),
                f"sklearn, {n} BLAS thread(s), tol=0 (no loss)": lambda n=n: run_sklearn(V, W0, H0, beta, args.iterations, 0.0, n),
                f"sklearn, {n} BLAS thread(s), tol>0 (loss every 10)":
                    lambda n=n: run_sklearn(V, W0, H0, beta, args.iterations, 1e-12, n),
            }
        contenders[f"sklearn, {counts[0]} BLAS thread(s), float64 input"] = (
            lambda: run_sklearn(V64, W64, H64, beta, args.iterations, 0.0, counts[0]))
        for n in counts:  # the textbook update (scikit-learn's arithmetic) too
            contenders[f"specmusic, {n} thread(s), loss every iteration, textbook"] = (
                lambda n=n: run_ours(V, W0, H0, beta, args.iterations, 1, n, inner=1, relax=1))
        times: dict[str, list[float]] = {name: [] for name in contenders}
        final: dict[str, float] = {}
        for _ in range(args.repeats):
            for name, fn in contenders.items():
                seconds, W, H = fn()
                times[name].append(seconds)
                final[name] = beta_divergence(V, W, H, beta=beta)
        med = {name: statistics.median(v) for name, v in times.items()}
        best = {name: min(v) for name, v in times.items()}

        # per-element loops on the short excerpt, checked against the vectorised solver
        Ws, Hs = W0.astype(np.float64), H0[:, :n_short].astype(np.float64)
        Wl, Hl = Ws.tolist(), Hs.tolist()
        t = time.perf_counter()
        (loops_kl if beta == 1 else loops_euclidean)(Vs.tolist(), Wl, Hl, args.loop_iterations)
        loop_per_iter = (time.perf_counter() - t) / args.loop_iterations
        vec = fit_nmf(Vs, config=NMFConfig(n_components=args.k, beta=beta, max_iter=args.loop_iterations, tol=0,
                                           dtype="float64", threads=1, inner=1, relax=1), W=Ws, H=Hs)
        agree = np.abs(np.asarray(Wl) @ np.asarray(Hl) - vec.W @ vec.H).max() / np.abs(vec.W @ vec.H).max()
        loop_full = loop_per_iter * V.shape[1] / n_short

        print(f"\n## {loss} (β={beta:g}), k={args.k}, {args.iterations} iterations, best and median of {args.repeats}")
        b0 = {n: f"sklearn, {n} BLAS thread(s), tol=0 (no loss)" for n in counts}
        b1 = {n: f"sklearn, {n} BLAS thread(s), tol>0 (loss every 10)" for n in counts}
        print(f"{'contender':52s}{'best s':>8s}{'median s':>10s}{'ms/iter':>9s}{'final divergence':>18s}{'÷ sklearn':>11s}"
              f"{'× vs sklearn tol=0':>20s}{'× vs sklearn tol>0':>20s}")
        ref = final[b0[counts[0]]]
        for name in contenders:
            n = next((c for c in counts if f" {c} " in name), counts[0])  # same thread count's sklearn
            print(f"{name:52s}{best[name]:8.3f}{med[name]:10.3f}{best[name] / args.iterations * 1e3:9.2f}"
                  f"{final[name]:18.8g}{final[name] / ref:11.5f}"
                  f"{best[b0[n]] / best[name]:11.2f} /{med[b0[n]] / med[name]:5.2f}"
                  f"{best[b1[n]] / best[name]:13.2f} /{med[b1[n]] / med[name]:5.2f}")
        print(f"{'Python loops (Lee & Seung), extrapolated':52s}{loop_full * args.iterations:8.0f}{'':10s}{loop_full * 1e3:9.0f}")
        top = max(counts)
        ours = best[f"specmusic, {top} thread(s), loss every iteration"] / args.iterations
        print(f"   loops: {loop_per_iter:.2f} s/iteration on a {n_short}-frame excerpt ({args.loop_iterations} iterations), "
              f"× {V.shape[1]}/{n_short} frames; max |ΔWH| vs the vectorised solver = {agree:.1e} of max WH")
        print(f"   specmusic ({top} thread(s), loss every iteration) is {loop_full / ours:,.0f}× faster per iteration "
              f"than the loops ({loop_full * 1e3:,.0f} ms vs {ours * 1e3:.2f} ms)")
        # time to scikit-learn's quality: the first iteration at which specmusic's default (most threads,
        # loss every iteration) is at or below scikit-learn's final divergence after all its iterations;
        # then a run of exactly that many iterations is timed like the others
        target = min(final[b0[c]] for c in counts)
        curve = fit_nmf(V, config=NMFConfig(n_components=args.k, beta=beta, max_iter=args.iterations, tol=0,
                                            threads=top), W=W0, H=H0)
        reach = next((int(i) for i, v in zip(curve.loss_iterations, curve.losses) if v <= target), None)
        if reach is None:
            print(f"   TIME TO TARGET {loss}: specmusic does not reach scikit-learn's final divergence {target:.8g} within "
                  f"{args.iterations} iterations (it ends at {curve.losses[-1]:.8g})")
        else:
            reach = max(reach, 1)
            ts = [run_ours(V, W0, H0, beta, reach, 1, top)[0] for _ in range(args.repeats)]
            check = run_ours(V, W0, H0, beta, reach, 1, top)
            got = beta_divergence(V, check[1], check[2], beta=beta)
            fastest = min(counts, key=lambda c: med[b0[c]])
            print(f"   TIME TO TARGET {loss}: specmusic ({top} threads, loss every iteration) reaches scikit-learn's final "
                  f"divergence after {reach} of its iterations: {min(ts):.3f} s best, {statistics.median(ts):.3f} s median "
                  f"(divergence {got:.8g} = {got / target:.5f} × sklearn's) vs sklearn's {args.iterations} iterations "
                  f"({fastest} BLAS threads, tol=0) {best[b0[fastest]]:.3f} / {med[b0[fastest]]:.3f} s → "
                  f"×{best[b0[fastest]] / min(ts):.2f} best, ×{med[b0[fastest]] / statistics.median(ts):.2f} median")
        # summary: ours at the most threads vs scikit-learn at its own fastest thread count
        for label, theirs in (("tol=0, no loss", b0), ("tol>0, loss every 10", b1)):
            fastest = min(counts, key=lambda c: med[theirs[c]])
            for every in ("every iteration", "every 10"):
                mine = f"specmusic, {top} thread(s), loss {every}"
                print(f"   SUMMARY {loss}: specmusic ({top} threads, loss {every}) vs sklearn ({label}, fastest at "
                      f"{fastest} BLAS thread(s)): ×{best[theirs[fastest]] / best[mine]:.2f} best, "
                      f"×{med[theirs[fastest]] / med[mine]:.2f} median; divergence ratio "
                      f"{final[mine] / final[theirs[fastest]]:.5f}")
    load_after = os.getloadavg()
    print(f"\n# load average after {load_after[0]:.2f} (before {load_before[0]:.2f})")


if __name__ == "__main__":
    main()
