"""`embed`'s default before and after the learnt space (``adapt``), through the library, on two collections.

    nice -n 10 .venv/bin/python benchmarks/similarity_adapt.py
    python benchmarks/similarity_adapt.py --heldout benchmarks/data/other-games   # the second collection

Every embedding is made by the code users run (``make_embedder`` → ``embed_tracks`` → one
library of the whole collection → ``search_vectors``, the search space ``recommend`` uses).

1. The soundtrack benchmark (``benchmarks/soundtracks.py``; 475 clips of 9 games): the library is
   the *whole collection* (every split's clips, no labels), as a user embeds their collection once;
   each split's clips are then queried among that split's clips of other source tracks (P@10 =
   share of the query's label), so the numbers compare with docs/similarity.md. Where a method uses
   library statistics (the column z-scores of MFCC statistics and of a concatenation, the learnt
   space), they come from the whole collection.
2. A held-out collection never used for any choice (``--heldout``, built with soundtracks.py from
   five other games' packages, see docs/similarity.md): every clip queried among all clips of
   other source tracks.

Methods: MFCC statistics; jamendo-fcn (the issue's "today's default"); jamendo-fcn+mtat-musicnn
(the default before this benchmark); pons-msd-musicnn's plain mean (``--no-adapt``: searched as stored);
and the new default (pons-msd-musicnn, ``adapt``: a space learnt from the library's own tracks,
:mod:`specmusic.embeddings.search.adapt`). NMI/ARI: KMeans with k = number of labels.

The rule (set before the held-out collection was measured; it was built just before): the default is the method
with the highest P@10 over the soundtrack benchmark's train and valid queries pooled (357
queries); the test split and the held-out collection report it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from retrieval import DEFAULT_DATA, DEFAULT_WEIGHTS, embed_cached, precision_at_k, print_goal, read_dataset  # noqa: E402

from specmusic.cluster import cluster_embeddings  # noqa: E402
from specmusic.embeddings import make_embedder, search_vectors  # noqa: E402

METHODS = {  # label -> (--model, adapt)
    "mfcc": ("mfcc", None),
    "jamendo-fcn (the issue's today)": ("jamendo-fcn", False),
    "jamendo-fcn+mtat-musicnn (default before)": ("jamendo-fcn+mtat-musicnn", False),
    "pons-msd-musicnn, plain mean (--no-adapt)": ("pons-msd-musicnn", False),
    "pons-msd-musicnn + adapt (new default)": (None, None),
}


def scores(x: np.ndarray, labels: np.ndarray, groups: np.ndarray, seed: int) -> tuple[float, float, float, float]:
    """P@10 among other groups, its chance level, NMI and ARI of KMeans (k = labels) on ``x`` (L2-normalised)."""
    p, chance = precision_at_k(x @ x.T, labels, groups, 10)
    m = cluster_embeddings(x, labels=list(labels), seed=seed).metrics
    return p, chance, m.get("nmi", float("nan")), m.get("ari", float("nan"))


def collection_rows(data: Path, splits: list[str] | None, cache: Path, weights: str | None, tag: str,
                    seed: int) -> dict[str, dict[str, tuple[float, float, float, float]]]:  # fmt: skip
    """{method: {split: scores}}: one library of every clip, queried split by split (None: all clips)."""
    every = read_dataset(data, None)
    parts = {s: read_dataset(data, s) for s in splits} if splits else {"all": every}
    at = {t.path: i for i, t in enumerate(every)}
    out: dict[str, dict[str, tuple[float, float, float, float]]] = {}
    for label, (model, adapt) in METHODS.items():
        emb = make_embedder(model, weights=weights, adapt=adapt) if model != "mfcc" else make_embedder("mfcc")
        lib = embed_cached(f"{tag}-{label.split()[0]}-{'adapt' if 'adapt' in label and 'no-' not in label else 'plain'}",
                           emb, every, cache)  # fmt: skip
        assert lib.ids == [t.path for t in every], "the cached library lost its order"
        vecs = search_vectors(lib)
        out[label] = {}
        for s, ts in parts.items():
            rows = [at[t.path] for t in ts]
            out[label][s] = scores(vecs[rows], np.array([t.label for t in ts]), np.array([t.group for t in ts]), seed)
        print(f"# {tag} {label}: {vecs.shape[1]}-d search vectors from {len(lib)} tracks", file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--heldout", type=Path, default=ROOT / "benchmarks" / "data" / "other-games")
    ap.add_argument("--weights", default=str(DEFAULT_WEIGHTS) if DEFAULT_WEIGHTS.is_dir() else None)
    ap.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "data" / "cache" / "similarity-adapt")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    with open("/proc/loadavg") as f:
        print(f"# loadavg before: {f.read().strip()}", flush=True)
    t0 = time.perf_counter()
    st = collection_rows(args.data, ["train", "valid", "test"], args.cache, args.weights, "soundtracks", args.seed)
    held = collection_rows(args.heldout, None, args.cache, args.weights, "heldout", args.seed) if args.heldout.is_dir() else {}
    n = {s: len(read_dataset(args.data, s)) for s in ("train", "valid")}
    pooled = {m: (r["train"][0] * n["train"] + r["valid"][0] * n["valid"]) / (n["train"] + n["valid"]) for m, r in st.items()}
    base = st["mfcc"]
    print(f"\nsoundtrack benchmark, one library of the whole collection ({args.data}); P@10 among the split's clips")
    print(f"{'method':<44} | {'train+valid':>11} | {'valid P@10':>10} {'NMI':>6} {'ARI':>6} | {'test P@10':>9} {'NMI':>6} "
          f"{'ARI':>6} | {'vs mfcc valid/test':>18}")  # fmt: skip
    for m, r in st.items():
        v, t = r["valid"], r["test"]
        print(f"{m:<44} | {pooled[m]:>11.3f} | {v[0]:>10.3f} {v[2]:>6.3f} {v[3]:>6.3f} | {t[0]:>9.3f} {t[2]:>6.3f} {t[3]:>6.3f} | "
              f"{100 * (v[0] - base['valid'][0]):>+8.1f} / {100 * (t[0] - base['test'][0]):>+5.1f}")  # fmt: skip
    print(f"chance P@10: valid {base['valid'][1]:.3f}, test {base['test'][1]:.3f}")
    if held:
        hb = held["mfcc"]["all"]
        print(f"\nheld-out collection ({args.heldout}), every clip among all clips of other source tracks")
        print(f"{'method':<44} | {'P@10':>6} {'NMI':>6} {'ARI':>6} | {'vs mfcc':>7}")
        for m, r in held.items():
            a = r["all"]
            print(f"{m:<44} | {a[0]:>6.3f} {a[2]:>6.3f} {a[3]:>6.3f} | {100 * (a[0] - hb[0]):>+7.1f}")
        print(f"chance P@10: {hb[1]:.3f}")
    best = max(pooled, key=pooled.get)  # type: ignore[arg-type]
    today = "jamendo-fcn (the issue's today)"
    gap = 100 * (st[best]["test"][0] - base["test"][0])
    ahead = st[best]["valid"][0] > st[today]["valid"][0]
    print(f"\n# rule (highest train+valid P@10) picks: {best} — test {st[best]['test'][0]:.3f} ({gap:+.1f} pt vs mfcc), "
          f"valid {st[best]['valid'][0]:.3f} (today's {st[today]['valid'][0]:.3f})")  # fmt: skip
    if held:
        print(f"# held-out: {best} {held[best]['all'][0]:.3f} vs mfcc {held['mfcc']['all'][0]:.3f} "
              f"({100 * (held[best]['all'][0] - held['mfcc']['all'][0]):+.1f} pt), vs today's "
              f"{held[today]['all'][0]:.3f}")  # fmt: skip
    print_goal(gap, ahead, f"; {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
