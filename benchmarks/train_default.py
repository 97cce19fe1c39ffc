#!/usr/bin/env python3
"""Which ``specmusic train DATA`` should run by default: a written rule, five candidates, three collections.

THE RULE (written before any candidate was measured; printed first, before any figure):

  Score. A candidate's score on a collection is its mean held-out test-track accuracy over seeds 0, 1
  and 2, on the collection's own split lists (train / valid / test by source track). Its overall
  score is the mean of its three collection scores (soundtracks, other-games, third-games).
  Eligible. Three finished seeds on each of the three collections. A candidate with fewer is shown
  with its figures and marked ineligible: it cannot win, and nothing is guessed for it.
  1. Accuracy first. A candidate loses a collection when its score there is more than 2 points below
     the best eligible score on that collection. Of the eligible candidates that lose no collection,
     the one with the highest overall score leads; if every one loses some collection, the one whose
     largest loss is smallest leads (and step 2 does not apply).
  2. Minutes as the tie-break. An eligible candidate that loses no collection and whose overall score
     is within 1 point of the leader's ties with it; of the tied ones the one with the fewest minutes
     wins. Minutes = CPU minutes (user + system) of a first run (fresh run folder and feature cache,
     features computed), averaged over the three collections; wall minutes are shown beside them
     (CPU time is the steadier of the two on this shared 2-core machine).
  3. The verdict. If the scratch CNN wins, `train DATA` stays as it is and the docs say so. Otherwise
     `train DATA` with no options runs the winner (its options become the CLI's defaults) and the
     scratch CNN stays one flag away (`--arch cnn`); a winner that needs weights makes `train DATA`
     fetch them once, as `--pretrained` does.
  Macro-F1, peak memory and the cached reruns' time are reported, and decide nothing. A head on
  frozen features is deterministic given the split lists, so its three seeds agree (sd 0); a network's
  seeds change its initialisation, crop order and dropout on the same split. The test sets hold
  118 / 67 / 49 clips from a few source tracks per label: one clip is 0.8-2 points.

Candidates (``benchmarks/train_default_runs.py``): the scratch CNN with its default options;
``--head linear`` on audioset-mn04 and on pons-msd-musicnn; the MusiCNN (MTAT) linear probe with its
default 20 epochs; audioset-mn04 fine-tuned for 3 epochs, the first one frozen (lr and fine-tune lr
at their defaults, 3e-3 and 3e-4): 3 epochs is what fits ~2 h of CPU for 9 runs (a fine-tune step is
~125 ms per 3 s example on this CPU). Not a candidate: the joined ``audioset-mn04+pons-msd-musicnn``,
which ``--backbone`` refuses (one backbone per head). Every run is ``--threads 1``, so two run side by
side (``--parallel 2``) on the 2 cores.

Added after the verdict, deciding nothing: an MFCC reference (statistics of 20 MFCCs and their deltas +
logistic regression, ``benchmarks/train_default_mfcc.py``) on the same split lists, printed last.

Examples::

    nice -n 10 .venv/bin/python benchmarks/train_default.py --data-root ../main/benchmarks/data
    .venv/bin/python benchmarks/train_default.py --table-only          # reprint from the finished runs
    nice -n 10 .venv/bin/python benchmarks/train_default.py --candidates scratch,probe-mn04 --collections third-games
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_default_runs import CANDIDATES, COLLECTIONS, Job, load_record, run_jobs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RULE = __doc__.split("THE RULE", 1)[1].split("\nCandidates (", 1)[0]
LOSS_POINTS = 2.0  # a collection lost: more than this below the best eligible score there
TIE_POINTS = 1.0  # overall scores this close tie, and minutes decide


def plan(candidates: list[str], collections: list[str], seeds: int) -> list[Job]:
    """Every job, in the order they should start: seed 0 everywhere first; the fine-tune on the two small
    collections before the large one, so that 3 seeds on 2 collections come first."""
    jobs = [Job(c, col, s) for s in range(seeds) for col in reversed(collections) for c in candidates
            if CANDIDATES[c].lane == "main"]
    slow = [c for c in candidates if CANDIDATES[c].lane != "main"]
    small = [col for col in collections if col != "soundtracks"]
    jobs += [Job(c, col, s) for c in slow for s in range(seeds) for col in reversed(small)]
    jobs += [Job(c, "soundtracks", s) for c in slow for s in range(seeds) if "soundtracks" in collections]
    return jobs


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def cell_stats(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One candidate on one collection: accuracy and macro-F1 over seeds, the first run's cost, reruns'."""
    acc = [r["metrics"]["test"]["accuracy"] for r in records]
    f1 = [r["metrics"]["test"]["macro_f1"] for r in records]
    first = next((r for r in records if r["seed"] == 0), None)
    reruns = [r["wall_s"] for r in records if r["seed"] != 0]
    return {"n": len(records), "acc": acc, "f1": f1, "score": statistics.mean(acc),
            "first_wall_min": first["wall_s"] / 60 if first else None,
            "first_cpu_min": first["cpu_s"] / 60 if first else None,
            "rerun_wall_min": statistics.median(reruns) / 60 if reruns else None,
            "peak_rss_mb": max(r["peak_rss_mb"] for r in records),
            "load": (min(r["load_before"] for r in records), max(r["load_after"] for r in records))}


def verdict(scores: dict[str, dict[str, float]], minutes: dict[str, float], eligible: list[str],
            collections: list[str]) -> tuple[str | None, list[str], dict[str, float]]:
    """THE RULE applied: the winner, the reasons in words, and each candidate's largest loss (points).

    ``scores[candidate][collection]`` = mean test accuracy over seeds; ``minutes[candidate]`` = mean
    first-run CPU minutes; ``eligible`` = candidates with every seed on every collection."""
    if not eligible:
        return None, ["no candidate is eligible: nothing to decide"], {}
    best = {col: max(scores[c][col] for c in eligible) for col in collections}
    overall = {c: statistics.mean(scores[c][col] for col in collections) for c in eligible}
    loss = {c: max(100 * (best[col] - scores[c][col]) for col in collections) for c in eligible}
    robust = [c for c in eligible if loss[c] <= LOSS_POINTS + 1e-9]
    why = [f"best score per collection: " + ", ".join(f"{col} {best[col]:.3f}" for col in collections)]
    if not robust:
        leader = min(eligible, key=lambda c: (loss[c], -overall[c]))
        why.append(f"every candidate loses a collection by more than {LOSS_POINTS:g} points; {leader} loses least "
                   f"({loss[leader]:.1f} points) and wins")
        return leader, why, loss
    leader = max(robust, key=lambda c: overall[c])
    dropped = [c for c in eligible if c not in robust and overall[c] > overall[leader]]
    for c in dropped:
        why.append(f"{c} has a higher overall score ({overall[c]:.3f}) but loses a collection by {loss[c]:.1f} points")
    why.append(f"accuracy leader: {leader}, overall {overall[leader]:.3f}, largest loss {loss[leader]:.1f} points")
    tied = [c for c in robust if overall[leader] - overall[c] <= TIE_POINTS / 100 + 1e-9]
    winner = min(tied, key=lambda c: (minutes[c], -overall[c]))
    if len(tied) > 1:
        why.append(f"within {TIE_POINTS:g} point of it: " + ", ".join(
            f"{c} ({overall[c]:.3f}, {minutes[c]:.1f} CPU min)" for c in tied) + f"; the fastest, {winner}, wins")
    else:
        why.append(f"no other candidate that loses no collection is within {TIE_POINTS:g} point: {winner} wins")
    return winner, why, loss


def fmt_min(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def report(candidates: list[str], collections: list[str], seeds: int, out: Path) -> str | None:
    """Print the two tables and the verdict from the finished runs; return the winner."""
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for c in candidates:
        for col in collections:
            records = [r for s in range(seeds) if (r := load_record(Job(c, col, s), out)) is not None]
            if records:
                cells[(c, col)] = cell_stats(records)
    print("\n| candidate | collection | seeds | test acc mean ± sd | per seed | macro-F1 mean ± sd | first run wall min "
          "| first run CPU min | rerun wall min | peak RSS MB | load |")
    print("|---|---|---:|---:|---|---:|---:|---:|---:|---:|---|")
    for c in candidates:
        for col in collections:
            st = cells.get((c, col))
            if st is None:
                print(f"| {CANDIDATES[c].label} | {col} | 0 | not run | | | | | | | |")
                continue
            print(f"| {CANDIDATES[c].label} | {col} | {st['n']} | {mean_sd(st['acc'])} | "
                  f"{' '.join(f'{a:.3f}' for a in st['acc'])} | {mean_sd(st['f1'])} | {fmt_min(st['first_wall_min'])} | "
                  f"{fmt_min(st['first_cpu_min'])} | {fmt_min(st['rerun_wall_min'])} | {st['peak_rss_mb']:.0f} | "
                  f"{st['load'][0]:.1f}–{st['load'][1]:.1f} |")
    eligible = [c for c in candidates if all(cells.get((c, col), {}).get("n") == seeds for col in collections)
                and all(cells[(c, col)]["first_cpu_min"] is not None for col in collections)]
    scores = {c: {col: cells[(c, col)]["score"] for col in collections if (c, col) in cells} for c in candidates}
    minutes = {c: statistics.mean(cells[(c, col)]["first_cpu_min"] for col in collections) for c in eligible}
    winner, why, loss = verdict(scores, minutes, eligible, collections)
    print("\n| candidate | eligible | " + " | ".join(collections) + " | overall | largest loss (points) "
          "| first run CPU min (mean) | first run wall min (mean) |")
    print("|---|---|" + "---:|" * (len(collections) + 4))
    for c in candidates:
        per = [scores[c].get(col) for col in collections]
        have = [v for v in per if v is not None]
        walls = [cells[(c, col)]["first_wall_min"] for col in collections if (c, col) in cells]
        cpus = [cells[(c, col)]["first_cpu_min"] for col in collections if (c, col) in cells]
        overall = f"{statistics.mean(have):.3f}" + ("" if len(have) == len(collections) else " (partial)") if have else "–"
        mark = "**" if c == winner else ""
        print(f"| {mark}{CANDIDATES[c].label}{mark} | {'yes' if c in eligible else 'no'} | "
              + " | ".join("–" if v is None else f"{v:.3f}" for v in per)
              + f" | {overall} | {fmt_min(loss.get(c))} | "
              f"{fmt_min(statistics.mean(v for v in cpus if v is not None) if any(v is not None for v in cpus) else None)} | "
              f"{fmt_min(statistics.mean(v for v in walls if v is not None) if any(v is not None for v in walls) else None)} |")
    print("\nverdict:")
    for line in why:
        print(f"  {line}")
    if winner is not None:
        stays = winner == "scratch"
        print(f"  => `train DATA` {'stays the scratch CNN' if stays else 'should run: ' + CANDIDATES[winner].label}"
              + ("" if stays else f" (`{CANDIDATES[winner].args}`)"))
    return winner


def print_mfcc_reference(candidates: list[str], collections: list[str], out: Path) -> None:
    """MFCC statistics + logistic regression on each collection's split (not a candidate: the floor)."""
    from train_default_mfcc import mfcc_reference

    cells = []
    for col in collections:
        finished = [Job(c, col, 0).folder(out) for c in candidates if load_record(Job(c, col, 0), out) is not None]
        cells.append(mfcc_reference(out, col, finished[0]) if finished else None)
    print("\n| reference (not a candidate) | " + " | ".join(collections) + " | overall |")
    print("|---|" + "---:|" * (len(collections) + 1))
    accs = [c["accuracy"] for c in cells if c is not None]
    overall = f"{statistics.mean(accs):.3f}" if accs else "–"
    print("| MFCC statistics + logistic regression: test acc (macro-F1) | " + " | ".join(
        "–" if c is None else f"{c['accuracy']:.3f} ({c['macro_f1']:.3f})" for c in cells) + f" | {overall} |")


def run_span(candidates: list[str], collections: list[str], seeds: int, out: Path) -> str:
    """First start to last finish of the recorded runs, and their summed wall and CPU time."""
    records = [r for c in candidates for col in collections for s in range(seeds)
               if (r := load_record(Job(c, col, s), out)) is not None]
    if not records:
        return "no finished runs"
    starts = [time.mktime(time.strptime(r["started"], "%Y-%m-%d %H:%M:%S")) for r in records]
    ends = [s + r["wall_s"] for s, r in zip(starts, records)]
    return (f"{len(records)} runs from {min(r['started'] for r in records)} to "
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(max(ends)))} ({(max(ends) - min(starts)) / 60:.0f} min); "
            f"summed wall {sum(r['wall_s'] for r in records) / 60:.0f} min, "
            f"summed CPU {sum(r['cpu_s'] for r in records) / 60:.0f} min")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, default=ROOT / "benchmarks" / "data",
                    help="folder holding the collections (soundtracks/, other-games/, third-games/)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "data" / "runs" / "train_default")
    ap.add_argument("--weights", type=Path, default=ROOT.parent / "shared" / "weights",
                    help="holds sota-music-tagging/ and efficientat/ (the pretrained candidates' checkpoints)")
    ap.add_argument("--candidates", default=",".join(CANDIDATES), help="comma list of " + ", ".join(CANDIDATES))
    ap.add_argument("--collections", default=",".join(COLLECTIONS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--parallel", type=int, default=2, help="training processes at a time (each one thread)")
    ap.add_argument("--stop-after", type=float, default=0.0, help="start no run after this many minutes (0: no limit)")
    ap.add_argument("--table-only", action="store_true", help="run nothing; tables and verdict from finished runs")
    args = ap.parse_args()
    candidates = [c.strip() for c in args.candidates.split(",") if c.strip()]
    collections = [c.strip() for c in args.collections.split(",") if c.strip()]
    unknown = [c for c in candidates if c not in CANDIDATES] + [c for c in collections if c not in COLLECTIONS]
    if unknown:
        sys.exit(f"unknown candidate or collection {unknown[0]!r}")

    print("THE RULE" + RULE.rstrip(), flush=True)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    print(f"\ndate {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; commit {commit.stdout.strip() or '?'}; {os.cpu_count()} "
          f"CPU cores; niceness {os.nice(0)}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    t0 = time.perf_counter()
    if not args.table_only:
        todo = [j for j in plan(candidates, collections, args.seeds) if load_record(j, args.out) is None]
        print(f"{len(todo)} runs to do, {args.parallel} at a time", flush=True)
        stop_at = time.time() + 60 * args.stop_after if args.stop_after else None
        run_jobs(todo, parallel=args.parallel, data_root=args.data_root.resolve(), out=args.out.resolve(),
                 weights=args.weights.resolve(), stop_at=stop_at)
        print(f"this invocation trained for {(time.perf_counter() - t0) / 60:.0f} min", flush=True)
    report(candidates, collections, args.seeds, args.out.resolve())
    print_mfcc_reference(candidates, collections, args.out.resolve())
    print(f"\nruns: {run_span(candidates, collections, args.seeds, args.out.resolve())}")
    print(f"load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
