"""How often `specmusic nmf` records the loss by default (``loss_every``): chosen by a rule, on two collections.

The loss of every kept iterate is what lets over-relaxed steps be undone when they raise it, and what the
tolerance stops on; computing it costs a pass of logarithms over ``V`` for KL and IS (nothing of ``V``'s
size for Euclidean). Recording it every ``n`` iterations costs that pass once per ``n``, and an undone
step then goes back up to ``n`` iterations.

The rule, stated before anything was measured: candidates ``loss_every`` ∈ {1, 2, 4, 8}. For every clip ×
loss × k (30 s of two clips from collections that share no source, cc-music and GTZAN; KL, Euclidean, IS;
k 4, 16, 64), scikit-learn 1.x's ``NMF(solver="mu")`` 200-iteration divergence from the shared NNDSVDa init
is the target (as ``benchmarks/nmf_speed.py`` (b)); each candidate runs specmusic's defaults for the
iterations its own loss curve needs to reach the target (confirmed by ``beta_divergence``), and that run
is timed (median of ``--repeats`` runs alternating between the candidates). A candidate's score is the median
over the cells of its time ÷ the time with ``loss_every=1``. The default becomes the candidate with the
lowest score if that score is at most 0.97 and no cell of it is slower than 1.10× the ``loss_every=1``
time (a worst-case guard); otherwise it stays 1. Every candidate's score and worst cell are printed.

Usage:  python benchmarks/nmf_loss_every.py [--repeats 3] [--k 4,16,64] [--losses kl,euclidean,is]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nmf_speed import (
    CLIPS, SETTLE_SECONDS, OtherWork, blas_line, default_iterations_to, load_clip, run_ours, sklearn_target,
)

from specmusic.nmf import LOSSES, initialize_nmf

CANDIDATES = (1, 2, 4, 8)
MOST_SCORE = 0.97
WORST_CELL = 1.10


def cell(V: np.ndarray, beta: float, k: int, repeats: int) -> dict[int, tuple[int | None, float]]:
    """{candidate: (iterations to the target, median seconds)} for one clip × loss × k."""
    W0, H0 = initialize_nmf(V, k, init="nndsvda", seed=0)
    target = sklearn_target(V, W0, H0, beta, 200)
    its = {every: default_iterations_to(V, W0, H0, beta, target, 200, loss_every=every) for every in CANDIDATES}
    times: dict[int, list[float]] = {every: [] for every in CANDIDATES}
    for _ in range(repeats):
        for every, n in its.items():
            if n is None:
                continue
            time.sleep(SETTLE_SECONDS)  # BLAS threads of the run before stop spinning
            times[every].append(run_ours(V, W0, H0, beta, n, textbook=False, loss_every=every)[0])
    return {every: (its[every], statistics.median(times[every]) if times[every] else float("inf")) for every in CANDIDATES}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--k", default="4,16,64")
    ap.add_argument("--losses", default="kl,euclidean,is")
    args = ap.parse_args()
    import sklearn

    load = os.getloadavg()
    print(f"# scikit-learn {sklearn.__version__}, numpy {np.__version__}, {blas_line()}, {len(os.sched_getaffinity(0))} CPUs")
    print(f"# load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; candidates loss_every {CANDIDATES}, "
          f"medians of {args.repeats} alternating runs")
    other = OtherWork()
    rows = []
    print("| clip | loss | k | " + " | ".join(f"every {e}: it, s (÷ every 1)" for e in CANDIDATES) + " |")
    print("|---|---|---:|" + "---:|" * len(CANDIDATES))
    for path in CLIPS:
        name, V = load_clip(str(path), 30.0)
        for loss in args.losses.split(","):
            for k in (int(x) for x in args.k.split(",")):
                res = cell(V, LOSSES[loss], k, args.repeats)
                base = res[1][1]
                rows.append({every: s / base for every, (_, s) in res.items()})
                print(f"| {name} | {loss} | {k} | " + " | ".join(
                    f"{n}, {s:.3f} ({s / base:.2f})" if n else "not reached" for n, s in res.values()) + " |", flush=True)
    print("\n| loss_every | median time ÷ every 1 | worst cell ÷ every 1 | eligible |\n|---:|---:|---:|---|")
    scores = {}
    for every in CANDIDATES:
        ratios = [r[every] for r in rows]
        score, worst = statistics.median(ratios), max(ratios)
        ok = every == 1 or (score <= MOST_SCORE and worst <= WORST_CELL)
        scores[every] = (score, ok)
        print(f"| {every} | {score:.3f} | {worst:.3f} | {'yes' if ok else 'no'} |")
    chosen = min((e for e, (_, ok) in scores.items() if ok), key=lambda e: scores[e][0])
    load = os.getloadavg()
    print(f"\n# chosen by the rule: loss_every = {chosen}")
    print(f"# load average after: {load[0]:.2f}; other processes used {other.share():.0%} of the CPUs over the run")


if __name__ == "__main__":
    main()
