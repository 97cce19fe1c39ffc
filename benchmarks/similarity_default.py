"""Which embedding should `specmusic embed` make by default? Every candidate, one run, valid and test.

    nice -n 10 .venv/bin/python benchmarks/similarity_default.py            # benchmarks/data/soundtracks
    python benchmarks/similarity_default.py --taggers jamendo-fcn mtat-musicnn   # fewer taggers

Protocol (that of ``benchmarks/retrieval.py``, so the numbers compare with docs/similarity.md):
for every clip of a split, its 10 nearest clips among the clips of *other* source tracks;
P@10 = share with the query's label. NMI/ARI: KMeans with k = number of labels on the same
vectors (as ``embed --map``). The library a split is searched in is that split's clips, so any
statistics a candidate takes from "the library" (column z-scores) come from those clips, without
labels — what ``recommend`` does with a user's library.

Every clip is analysed once per tagger: the features are computed once (all taggers share them),
each tagger's per-window ``embedding`` and ``logits`` are cached under --cache; candidates are then
poolings and concatenations of those windows. Candidates:

  mfcc                          mean+std of 20 MFCCs, columns z-scored (``embed --model mfcc``)
  NAME:POOL                     one tagger's penultimate features pooled over its windows
                                (mean | meanstd | max), L2-normalised; ``NAME:mean`` is what
                                ``embed --model NAME`` gave before this benchmark
  NAME:POOL:z                   the same with the library's column z-scores first
  NAME:tags                     the tagger's 50 tag probabilities (mean over windows)
  A+B+…:POOL:z                  concatenation: each tagger's pooled block z-scored with the
                                library's statistics and scaled by 1/sqrt(block dim) (each block
                                weighs the same), then L2-normalised
  …:zfix                        the same, with fixed per-block statistics measured on the train
                                split instead of the library's
  …:adapt                       a projection learnt on the library without labels (windows of one
                                clip are positives: within-clip vs total scatter, generalised
                                eigenvectors), applied to z-scored window features then pooled

The default is chosen on the validation split (see RULE below) and reported on test. The last
rows run the library itself (``make_embedder(None)`` → ``embed_tracks`` → ``search_vectors``) so
"after" is measured through the code users run, beside "before" (jamendo-fcn mean).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from retrieval import DEFAULT_DATA, DEFAULT_WEIGHTS, embed_cached, precision_at_k, read_dataset  # noqa: E402

from specmusic.cluster import cluster_embeddings  # noqa: E402
from specmusic.data import Track  # noqa: E402
from specmusic.embeddings import make_embedder, search_vectors  # noqa: E402
from specmusic.features import chunk_features  # noqa: E402
from specmusic.index import l2_normalize, standardize_columns  # noqa: E402


# -- window cache ---------------------------------------------------------------------------
@dataclass
class Windows:
    """One tagger's per-window outputs for every clip: rows ``offsets[i]:offsets[i+1]`` are clip i's."""

    ids: list[str]
    offsets: np.ndarray  # [n_clips + 1]
    emb: np.ndarray  # [n_windows, dim]
    logits: np.ndarray  # [n_windows, 50]

    def clip(self, i: int) -> slice:
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))


def extract_windows(tracks: list[Track], taggers: list[str], weights: str | None, cache: Path) -> dict[str, Windows]:
    """Per-window embeddings and logits of every tagger on every clip, cached per tagger (by model sha)."""
    from specmusic import inference
    from specmusic.fileio import sha256_file
    from specmusic.models import pretrained

    models, paths = {}, {}
    for name in taggers:
        onnx = pretrained.ensure_model(name, weights=weights, progress=True)
        paths[name] = cache / f"windows-{name}-{sha256_file(onnx)[:12]}.npz"
        models[name] = inference.load_model(onnx)
    digests = {m.feature_config.digest() for m in models.values()}
    assert len(digests) == 1, "taggers with different features: extract them separately"
    stored: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {n: {} for n in taggers}
    for name, path in paths.items():
        if path.is_file():
            with np.load(path, allow_pickle=False) as z:
                for j, id_ in enumerate(z["ids"]):
                    s = slice(int(z["offsets"][j]), int(z["offsets"][j + 1]))
                    stored[name][str(id_)] = (z["emb"][s], z["logits"][s])
    todo = [t for t in tracks if any(t.path not in stored[n] for n in taggers)]
    t0 = time.perf_counter()
    first = next(iter(models.values()))
    for k, t in enumerate(todo):
        spec, _ = inference.track_features(first, t.path)
        for name, m in models.items():
            if t.path in stored[name]:
                continue
            chunks = chunk_features(spec, m.chunk_frames, m.chunk_hop_frames)
            logits, emb = inference._run_outputs(m, chunks, ["logits", "embedding"])
            stored[name][t.path] = (emb, logits)
        if (k + 1) % 25 == 0 or k + 1 == len(todo):
            print(f"# windows: {k + 1}/{len(todo)} clips ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
            _save_windows(stored, paths)
    out = {}
    for name in taggers:
        embs = [stored[name][t.path][0] for t in tracks]
        logits = [stored[name][t.path][1] for t in tracks]
        offsets = np.concatenate([[0], np.cumsum([len(e) for e in embs])])
        out[name] = Windows([t.path for t in tracks], offsets, np.concatenate(embs), np.concatenate(logits))
    return out


def _save_windows(stored: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], paths: dict[str, Path]) -> None:
    import os

    for name, path in paths.items():
        ids = list(stored[name])
        if not ids:
            continue
        offsets = np.concatenate([[0], np.cumsum([len(stored[name][i][0]) for i in ids])])
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, ids=np.array(ids, dtype=np.str_), offsets=offsets,
                 emb=np.concatenate([stored[name][i][0] for i in ids]),
                 logits=np.concatenate([stored[name][i][1] for i in ids]))  # fmt: skip
        os.replace(tmp, path)


# -- candidates -----------------------------------------------------------------------------
def pool(w: np.ndarray, how: str) -> np.ndarray:
    """Pool window features [n, d] into one vector (the library's :func:`pool_windows` recipe)."""
    from specmusic.embeddings.embedders import pool_windows

    return pool_windows(w, how)


def pooled(win: Windows, rows: list[int], how: str) -> np.ndarray:
    return np.stack([pool(win.emb[win.clip(i)], how) for i in rows]).astype(np.float64)


def tag_probs(win: Windows, rows: list[int]) -> np.ndarray:
    return np.stack([(1 / (1 + np.exp(-win.logits[win.clip(i)]))).mean(axis=0) for i in rows]).astype(np.float64)


def zscore(x: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    """Columns z-scored with ``ref``'s statistics (default: ``x``'s own: the library's)."""
    ref = x if ref is None else ref
    mean, std = ref.mean(axis=0), ref.std(axis=0)
    return (x - mean) / np.where(std > 1e-8 * max(float(std.max()), 1e-30), std, 1.0)


def concat_blocks(blocks: list[np.ndarray], refs: list[np.ndarray] | None = None) -> np.ndarray:
    """Each block z-scored (library or ``refs`` statistics) and scaled by 1/sqrt(dim), concatenated."""
    parts = [zscore(b, None if refs is None else r) / np.sqrt(b.shape[1]) for b, r in
             zip(blocks, refs or [None] * len(blocks))]  # fmt: skip
    return np.concatenate(parts, axis=1)


def adapt_projection(windows: list[np.ndarray], n_components: int, reg: float = 1e-3) -> np.ndarray:
    """Unsupervised projection: directions whose variance is between clips, not within one clip.

    ``windows`` holds each clip's z-scored window features; solves Sb v = λ (Sw + reg·I) v and keeps
    the ``n_components`` largest. Returns [d, n_components].
    """
    from scipy.linalg import eigh

    allw = np.concatenate(windows)
    mu = allw.mean(axis=0)
    d = allw.shape[1]
    sw, sb = np.zeros((d, d)), np.zeros((d, d))
    for w in windows:
        c = w - w.mean(axis=0)
        sw += c.T @ c
        m = (w.mean(axis=0) - mu)[:, None]
        sb += len(w) * (m @ m.T)
    sw /= len(allw)
    sb /= len(allw)
    vals, vecs = eigh(sb, sw + reg * np.trace(sw) / d * np.eye(d))
    return vecs[:, np.argsort(-vals)[:n_components]]


def evaluate(x: np.ndarray, labels: np.ndarray, groups: np.ndarray, *, k: int, seed: int) -> tuple[float, float, float]:
    x = l2_normalize(np.asarray(x, dtype=np.float32))
    p, _ = precision_at_k(x @ x.T, labels, groups, k)
    m = cluster_embeddings(x, labels=list(labels), seed=seed).metrics
    return p, m.get("nmi", float("nan")), m.get("ari", float("nan"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--taggers", nargs="+", default=None, help="default: all 8 pretrained taggers")
    ap.add_argument("--weights", default=str(DEFAULT_WEIGHTS) if DEFAULT_WEIGHTS.is_dir() else None)
    ap.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "data" / "cache" / "similarity")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-library", action="store_true", help="skip the rows measured through the library")
    args = ap.parse_args()
    from specmusic.models import pretrained

    taggers = args.taggers or list(pretrained.TAGGERS)
    print(f"# loadavg before: {open('/proc/loadavg').read().strip()}", flush=True)
    splits = {s: read_dataset(args.data, s) for s in ("train", "valid", "test")}
    every = [t for s in splits.values() for t in s]
    args.cache.mkdir(parents=True, exist_ok=True)
    win = extract_windows(every, taggers, args.weights, args.cache)
    row_of = {t.path: i for i, t in enumerate(every)}
    rows = {s: [row_of[t.path] for t in ts] for s, ts in splits.items()}
    print(f"# windows per clip: " + ", ".join(
        f"{n} {np.median(np.diff(w.offsets)):.0f}" for n, w in win.items()), flush=True)  # fmt: skip

    results: dict[str, dict[str, tuple[float, float, float]]] = {}
    dims: dict[str, int] = {}

    def add(name: str, make) -> None:  # make(split) -> [n, d] search-space vectors
        results[name] = {}
        for s in ("valid", "test"):
            x = make(s)
            dims[name] = x.shape[1]
            ts = splits[s]
            results[name][s] = evaluate(x, np.array([t.label for t in ts]), np.array([t.group for t in ts]),
                                        k=args.k, seed=args.seed)  # fmt: skip

    mfcc = {s: embed_cached("mfcc", make_embedder("mfcc"), splits[s], args.cache) for s in ("valid", "test")}
    add("mfcc", lambda s: search_vectors(mfcc[s]))
    for n in taggers:
        for how in ("mean", "meanstd", "max"):
            add(f"{n}:{how}", lambda s, n=n, how=how: pooled(win[n], rows[s], how))
            add(f"{n}:{how}:z", lambda s, n=n, how=how: zscore(pooled(win[n], rows[s], how)))
        add(f"{n}:tags", lambda s, n=n: tag_probs(win[n], rows[s]))

    # concatenations: fixed sets, plus the best k single taggers ranked on *valid*
    ranked = sorted(taggers, key=lambda n: -results[f"{n}:mean:z"]["valid"][0])
    sets: dict[str, list[str]] = {}
    for r in range(2, len(ranked) + 1):
        sets[f"top{r}"] = ranked[:r]
    for arch in ("fcn", "crnn", "musicnn"):
        sets[f"all-{arch}"] = [n for n in taggers if n.endswith(arch)]
    sets["jamendo-fcn+mtat-musicnn"] = [n for n in ("jamendo-fcn", "mtat-musicnn") if n in taggers]
    sets["jamendo-fcn+jamendo-musicnn"] = [n for n in ("jamendo-fcn", "jamendo-musicnn") if n in taggers]
    sets["musicnn+fcn (mtat, jamendo)"] = [n for n in ("jamendo-fcn", "mtat-fcn", "mtat-musicnn", "jamendo-musicnn")
                                          if n in taggers]  # fmt: skip
    seen = set()
    for label, names in sets.items():
        key = tuple(sorted(names))
        if len(names) < 2 or key in seen:
            continue
        seen.add(key)
        tag = f"{label}={'+'.join(names)}" if label.startswith(("top", "all")) else "+".join(names)
        for how in ("mean", "meanstd", "max"):
            add(f"{tag}:{how}:z", lambda s, names=names, how=how: concat_blocks([pooled(win[n], rows[s], how)
                                                                                  for n in names]))  # fmt: skip
        add(f"{tag}:meanstd:zfix", lambda s, names=names: concat_blocks(
            [pooled(win[n], rows[s], "meanstd") for n in names],
            [pooled(win[n], rows["train"], "meanstd") for n in names]))  # fmt: skip

    print(f"\n{'candidate':<64} {'dim':>5} | {'valid P@10':>10} {'NMI':>6} {'ARI':>6} | "
          f"{'test P@10':>9} {'NMI':>6} {'ARI':>6} | {'vs mfcc v/t':>12}")
    base = results["mfcc"]
    for name, r in results.items():
        v, t = r["valid"], r["test"]
        print(f"{name:<64} {dims[name]:>5} | {v[0]:>10.3f} {v[1]:>6.3f} {v[2]:>6.3f} | {t[0]:>9.3f} {t[1]:>6.3f} "
              f"{t[2]:>6.3f} | {100 * (v[0] - base['valid'][0]):>+5.1f} {100 * (t[0] - base['test'][0]):>+5.1f}")
    print(f"# loadavg after: {open('/proc/loadavg').read().strip()}", flush=True)


if __name__ == "__main__":
    main()
