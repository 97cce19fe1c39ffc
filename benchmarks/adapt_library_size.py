"""How many tracks does a library need before the learnt space (``--adapt``) beats z-scored features?

    nice -n 10 .venv/bin/python benchmarks/adapt_library_size.py      # after benchmarks/similarity_adapt.py

``specmusic.embeddings.search.adapt.MIN_TRACKS`` is the size below which ``recommend`` searches z-scored
track means instead of learning a space. This script measures the choice: libraries of n clips drawn
at random (``--draws`` per size) from the soundtrack benchmark's **train and valid** clips (357; the
selection set of docs/similarity.md), each searched three ways with the default embedding's rows
(pons-msd-musicnn, 6 windows, packed): the space learnt from those n clips, their z-scored means, and
their plain means. P@10 as everywhere (neighbours among the library's clips of other source tracks,
share with the query's label). The rule: the smallest n of the grid from which the learnt space is
ahead of z-scores on average at every larger n. The test split (118 clips, one library) is printed
below for the record, not for the choice.

The rows come from the library that ``benchmarks/similarity_adapt.py`` embedded (its cache), or are
embedded here the same way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from retrieval import DEFAULT_DATA, embed_cached, precision_at_k, read_dataset  # noqa: E402

from specmusic.embeddings import make_embedder  # noqa: E402
from specmusic.embeddings.search.adapt import GROUPS, SpaceStats, fit_space, unpack  # noqa: E402
from specmusic.index import l2_normalize  # noqa: E402


def three_ways(rows: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> tuple[float, float, float]:
    """P@10 of the learnt space, z-scored means and plain means of one library of packed rows."""
    stats = SpaceStats(GROUPS).add(rows)
    out = []
    for space in (fit_space(stats, min_tracks=0), fit_space(stats, min_tracks=10**9)):
        x = l2_normalize(space.apply(rows))
        out.append(precision_at_k(x @ x.T, labels, groups, 10)[0])
    means = unpack(rows, GROUPS)[0]
    out.append(precision_at_k(means @ means.T, labels, groups, 10)[0])
    return out[0], out[1], out[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "data" / "cache" / "similarity-adapt")
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 50, 71, 100, 150, 200, 250, 300, 357])
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    every = read_dataset(args.data, None)
    lib = embed_cached("soundtracks-pons-msd-musicnn-adapt", make_embedder(None), every, args.cache)
    at = {t.path: i for i, t in enumerate(every)}
    vec = np.asarray(lib.vectors)
    pool = [t for s in ("train", "valid") for t in read_dataset(args.data, s)]
    rng = np.random.default_rng(args.seed)
    print(f"libraries drawn from the {len(pool)} train+valid clips; {args.draws} draws per size; P@10 mean (sd)")
    print(f"{'n':>5} | {'learnt':>13} | {'z-scored':>13} | {'plain':>13} | {'learnt - z':>10} | {'learnt ahead':>12}")
    ahead = {}
    for n in args.sizes:
        runs = []
        for _ in range(1 if n >= len(pool) else args.draws):
            pick = [pool[i] for i in rng.choice(len(pool), size=min(n, len(pool)), replace=False)]
            rows = vec[[at[t.path] for t in pick]]
            runs.append(three_ways(rows, np.array([t.label for t in pick]), np.array([t.group for t in pick])))
        r = np.array(runs)
        diff = r[:, 0] - r[:, 1]
        ahead[n] = float(diff.mean())
        print(f"{n:>5} | {r[:, 0].mean():.3f} ({r[:, 0].std():.3f}) | {r[:, 1].mean():.3f} ({r[:, 1].std():.3f}) | "
              f"{r[:, 2].mean():.3f} ({r[:, 2].std():.3f}) | {100 * diff.mean():>+8.1f} pt | "
              f"{int((diff > 0).sum()):>5} of {len(diff)}")  # fmt: skip
    sizes = sorted(ahead)
    chosen = next((n for i, n in enumerate(sizes) if all(ahead[m] > 0 for m in sizes[i:])), None)
    print(f"\n# rule: smallest n from which the learnt space is ahead on average at every larger n: {chosen}")
    test = read_dataset(args.data, "test")
    rows = vec[[at[t.path] for t in test]]
    lt, zt, pt = three_ways(rows, np.array([t.label for t in test]), np.array([t.group for t in test]))
    print(f"# for the record, the test split as one library of {len(test)} clips: learnt {lt:.3f}, z-scored {zt:.3f}, "
          f"plain {pt:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
