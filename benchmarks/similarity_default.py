"""Which embedding should `specmusic embed` make by default? Every candidate, valid and test, one run.

    nice -n 10 .venv/bin/python benchmarks/similarity_default.py            # benchmarks/data/soundtracks
    python benchmarks/similarity_default.py --taggers jamendo-fcn mtat-musicnn   # fewer taggers
    nice -n 10 .venv/bin/python benchmarks/similarity_default.py --musicnn-wheel musicnn-0.1.0-py3-none-any.whl \
        --taggers pons-msd-musicnn pons-mtt-musicnn pons-msd-vgg pons-mtt-vgg jamendo-fcn mtat-musicnn --no-library

Protocol (that of ``benchmarks/retrieval.py``, so the numbers compare with docs/similarity.md):
for every clip of a split, its 10 nearest clips among the clips of *other* source tracks;
P@10 = share with the query's label. NMI/ARI: KMeans with k = number of labels on the same
vectors (as ``embed --map``). The library a split is searched in is that split's clips, so any
statistics a candidate takes from "the library" (column z-scores) come from those clips, without
labels — what ``recommend`` does with a user's library.

Every clip is analysed once per tagger (every window: a 30 s clip is 2 FCN/CRNN windows of 29 s,
10 MusiCNN windows of 3 s): the features are computed once (all taggers share them), each
tagger's per-window ``embedding`` and ``logits`` are cached under --cache, and the candidates are
poolings and concatenations of those windows:

  mfcc                  mean+std of 20 MFCCs, columns z-scored (``embed --model mfcc``)
  NAME:POOL             one tagger's penultimate features pooled over its windows (mean | meanstd
                        | max; ``embed --model NAME --pooling POOL``); ``NAME:mean`` for
                        jamendo-fcn is the default before this benchmark
  NAME:mean:z           the same, columns z-scored over the library
  NAME:tags             the tagger's 50 tag probabilities (``--layer probabilities``)
  NAME/OUTPUT:POOL      another per-window output of the model pooled the same way: Pons' MusiCNN
                        models (``pons-*``, :mod:`specmusic.models.musicnn`, converted from the
                        ``musicnn`` wheel given by --musicnn-wheel unless bundled) also give
                        ``mean_pool`` and ``max_pool`` (753 back-end features); not a recipe of
                        ``embed`` (which stores ``embedding``), so never chosen by the rule
  NAME:adapt32          ``--adapt`` as the issue sketches it, a projection learnt on the library
                        without labels (windows of one clip are positives: between-clip vs
                        within-clip scatter, 32 generalised eigenvectors), then mean-pooled
  A+B+…:POOL            ``embed --model A+B --pooling POOL``: each tagger's pooled vector
                        L2-normalised, concatenated, columns z-scored over the library at search
                        time (``topR=…``: the R best single taggers by valid P@10)
  A+B+…:mean:no-z       the same vectors searched without the z-scores
  A+B+…:mean:zblock     each block z-scored and scaled by 1/sqrt(its dim) (blocks weigh the same)
  A+B+…:mean:zfix       zblock with fixed statistics from the train split instead of the library's
  A+B+…:mean+tags       the tag probabilities of each tagger as more blocks

Taggers with different features (Pons' models: 16 kHz logC mel) get their own feature pass per clip.
Besides the top-R sets, each Pons model and layer is tried beside today's default blocks
(``jamendo-fcn+P``, ``mtat-musicnn+P``, ``jamendo-fcn+mtat-musicnn+P``).

The default is chosen on the validation split by :data:`RULE` and reported on test. The last rows
run the library itself (``make_embedder`` → ``embed_tracks`` → ``search_vectors``, with
``embed``'s default windows a track) so that before (``jamendo-fcn``) and after (the new
default) are measured through the code users run.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from retrieval import DEFAULT_DATA, DEFAULT_WEIGHTS, embed_cached, precision_at_k, print_goal, read_dataset  # noqa: E402

from specmusic.cluster import cluster_embeddings  # noqa: E402
from specmusic.data import Track  # noqa: E402
from specmusic.embeddings import POOLINGS, concat_blocks, make_embedder, pool_windows, search_vectors  # noqa: E402
from specmusic.features import chunk_features  # noqa: E402
from specmusic.index import l2_normalize  # noqa: E402


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


#: Extra per-window outputs kept when a model has them (Pons' MusiCNN: the back-end's pooled
#: front- and mid-end features); each becomes a pseudo-tagger ``NAME/OUTPUT``.
EXTRA_OUTPUTS = ("mean_pool", "max_pool")


def model_path(name: str, weights: str | None, wheel: Path | None, cache: Path) -> Path:
    """The ONNX file of tagger ``name``: bundled/cached/converted (:func:`specmusic.models.zoo.ensure_model`), or
    for a Pons model not bundled, converted once from the musicnn wheel into ``cache/onnx``."""
    from specmusic.models import zoo
    from specmusic.models.zoo.convert import convert_pons_model

    if name not in zoo.PONS_MODELS or zoo.bundled_model(name) is not None:
        return zoo.ensure_model(name, weights=weights, progress=True)
    out = cache / "onnx" / zoo.PONS_MODELS[name].onnx_name
    if not out.is_file():
        if wheel is None:
            raise SystemExit(f"{name} needs --musicnn-wheel (pip download --no-deps musicnn -d DIR)")
        out.parent.mkdir(parents=True, exist_ok=True)
        convert_pons_model(name, wheel, out)
    return out


def extract_windows(tracks: list[Track], taggers: list[str], weights: str | None, cache: Path,
                    wheel: Path | None = None) -> dict[str, Windows]:
    """Per-window embeddings and logits of every tagger on every clip, cached per tagger (by model sha).

    Taggers that share a feature config share one feature computation per clip; a model's extra
    outputs (:data:`EXTRA_OUTPUTS`) come back as pseudo-taggers ``NAME/OUTPUT``."""
    from specmusic import inference
    from specmusic.fileio import sha256_file

    models, paths, extras = {}, {}, {}
    for name in taggers:
        onnx = model_path(name, weights, wheel, cache)
        paths[name] = cache / f"windows-{name}-{sha256_file(onnx)[:12]}.npz"
        models[name] = inference.load_model(onnx)
        have = {o.name for o in models[name].session.get_outputs()}
        extras[name] = [o for o in EXTRA_OUTPUTS if o in have]
    groups: dict[str, list[str]] = {}
    for name, m in models.items():
        groups.setdefault(m.feature_config.digest(), []).append(name)
    stored: dict[str, dict[str, list[np.ndarray]]] = {n: {} for n in taggers}
    for name, path in paths.items():
        if path.is_file():
            with np.load(path, allow_pickle=False) as z:
                keys = ["emb", "logits", *extras[name]]
                if all(k in z for k in keys):
                    arrays = [z[k] for k in keys]  # read once: each z[k] decodes the whole array again
                    offsets = z["offsets"]
                    for j, id_ in enumerate(z["ids"]):
                        s = slice(int(offsets[j]), int(offsets[j + 1]))
                        stored[name][str(id_)] = [a[s] for a in arrays]
    todo = [t for t in tracks if any(t.path not in stored[n] for n in taggers)]
    t0 = time.perf_counter()
    for k, t in enumerate(todo):
        for names in groups.values():
            names = [n for n in names if t.path not in stored[n]]
            if not names:
                continue
            spec, _ = inference.track_features(models[names[0]], t.path)
            for name in names:
                m = models[name]
                chunks = chunk_features(spec, m.chunk_frames, m.chunk_hop_frames)
                logits, emb, *more = inference._run_outputs(m, chunks, ["logits", "embedding", *extras[name]])
                stored[name][t.path] = [emb, logits, *more]
        if (k + 1) % 25 == 0 or k + 1 == len(todo):
            print(f"# windows: {k + 1}/{len(todo)} clips ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
            _save_windows(stored, paths, extras)
    out = {}
    for name in taggers:
        parts = [stored[name][t.path] for t in tracks]
        offsets = np.concatenate([[0], np.cumsum([len(p[0]) for p in parts])])
        logits = np.concatenate([p[1] for p in parts])
        out[name] = Windows([t.path for t in tracks], offsets, np.concatenate([p[0] for p in parts]), logits)
        for j, extra in enumerate(extras[name]):
            out[f"{name}/{extra}"] = Windows(out[name].ids, offsets, np.concatenate([p[2 + j] for p in parts]), logits)
    return out


def _save_windows(stored: dict[str, dict[str, list[np.ndarray]]], paths: dict[str, Path],
                  extras: dict[str, list[str]]) -> None:
    import os

    for name, path in paths.items():
        ids = list(stored[name])
        if not ids:
            continue
        offsets = np.concatenate([[0], np.cumsum([len(stored[name][i][0]) for i in ids])])
        arrays = {key: np.concatenate([stored[name][i][j] for i in ids])
                  for j, key in enumerate(["emb", "logits", *extras[name]])}  # fmt: skip
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, ids=np.array(ids, dtype=np.str_), offsets=offsets, **arrays)
        os.replace(tmp, path)


# -- candidates -----------------------------------------------------------------------------
def pooled(win: Windows, rows: list[int], how: str) -> np.ndarray:
    """Each clip's windows pooled (:func:`pool_windows`, as ``embed --pooling``) [n_clips, d]; ``mean``
    is L2-normalised like the library's (inference.analyse_track)."""
    x = np.stack([pool_windows(win.emb[win.clip(i)], how) for i in rows]).astype(np.float64)
    return l2_normalize(x.astype(np.float32)).astype(np.float64) if how == "mean" else x


def tag_probs(win: Windows, rows: list[int]) -> np.ndarray:
    return np.stack([(1 / (1 + np.exp(-win.logits[win.clip(i)]))).mean(axis=0) for i in rows]).astype(np.float64)


def zscore(x: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    """Columns z-scored with ``ref``'s statistics (default: ``x``'s own: the library's)."""
    ref = x if ref is None else ref
    mean, std = ref.mean(axis=0), ref.std(axis=0)
    return (x - mean) / np.where(std > 1e-8 * max(float(std.max()), 1e-30), std, 1.0)


def library_recipe(blocks: list[np.ndarray], *, standardize: bool = True) -> np.ndarray:
    """What ``embed --model A+B`` stores (:func:`concat_blocks`, then L2) and ``recommend`` searches
    (``standardize``: columns z-scored over the library, :func:`search_vectors`)."""
    x = l2_normalize(np.stack([concat_blocks(list(parts)) for parts in zip(*blocks)]))
    return zscore(x.astype(np.float64)) if standardize else x


def zblocks(blocks: list[np.ndarray], refs: list[np.ndarray] | None = None) -> np.ndarray:
    """Alternative: each block z-scored (library or ``refs`` statistics), scaled by 1/sqrt(dim), concatenated."""
    parts = [zscore(b, None if refs is None else r) / np.sqrt(b.shape[1])
             for b, r in zip(blocks, refs or [None] * len(blocks))]  # fmt: skip
    return np.concatenate(parts, axis=1)


def adapt_projection(windows: list[np.ndarray], n_components: int, reg: float = 1e-3) -> np.ndarray:
    """Unsupervised projection: directions whose variance is between clips, not within one clip.

    ``windows`` holds each clip's z-scored window features (windows of one clip are positives);
    solves Sb v = λ (Sw + reg·I) v and keeps the ``n_components`` largest. Returns [d, n_components].
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
    vals, vecs = eigh(sb / len(allw), sw / len(allw) + reg * np.trace(sw) / len(allw) / d * np.eye(d))
    return vecs[:, np.argsort(-vals)[:n_components]]


def adapted(win: Windows, rows: list[int], n_components: int) -> np.ndarray:
    """Windows z-scored with the library's window statistics, projected (:func:`adapt_projection`), mean-pooled."""
    w = [win.emb[win.clip(i)].astype(np.float64) for i in rows]
    allw = np.concatenate(w)
    mean, std = allw.mean(axis=0), allw.std(axis=0)
    w = [(x - mean) / np.where(std > 1e-8, std, 1.0) for x in w]
    proj = adapt_projection(w, min(n_components, allw.shape[1]))
    return np.stack([(x @ proj).mean(axis=0) for x in w])


def evaluate(x: np.ndarray, labels: np.ndarray, groups: np.ndarray, *, k: int, seed: int) -> tuple[float, float, float]:
    """P@k (other source tracks only), NMI and ARI of KMeans (k = number of labels) on L2-normalised ``x``."""
    x = l2_normalize(np.asarray(x, dtype=np.float32))
    p, _ = precision_at_k(x @ x.T, labels, groups, k)
    m = cluster_embeddings(x, labels=list(labels), seed=seed).metrics
    return p, m.get("nmi", float("nan")), m.get("ari", float("nan"))


#: The rule that picks the default (fixed before the library rows are measured; see docs/similarity.md):
#: the highest validation P@10 among recipes ``embed`` implements (``--model A+B --pooling P``) that
#: run at most MAX_TAGGERS taggers on every track — each one is another network pass per track.
MAX_TAGGERS = 2
RULE = (f"highest valid P@10 among `embed --model A[+B] --pooling P` recipes of at most {MAX_TAGGERS} taggers "
        "(single taggers: NAME:POOL; concatenations: A+B:POOL)")  # fmt: skip


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--taggers", nargs="+", default=None,
                    help="default: all 8 pretrained taggers, and Pons' 4 musicnn-wheel models when available")
    ap.add_argument("--musicnn-wheel", type=Path, default=None,
                    help="the musicnn wheel (.whl) or its unzipped folder: converts Pons' MusiCNN/VGG models "
                         "(pip download --no-deps musicnn -d DIR)")  # fmt: skip
    ap.add_argument("--weights", default=str(DEFAULT_WEIGHTS) if DEFAULT_WEIGHTS.is_dir() else None)
    ap.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "data" / "cache" / "similarity")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-library", action="store_true", help="skip the before/after rows measured through `embed`")
    return ap.parse_args()


@dataclass
class Table:
    """Every candidate's (P@k, NMI, ARI) on valid and test, its dimension, and which are `embed` recipes."""

    splits: dict[str, list[Track]]
    k: int
    seed: int
    results: dict[str, dict[str, tuple[float, float, float]]] = field(default_factory=dict)
    dims: dict[str, int] = field(default_factory=dict)
    recipes: dict[str, int] = field(default_factory=dict)  # candidates `embed` implements → taggers they run

    def add(self, name: str, make, *, recipe: int = 0) -> None:
        """Evaluate ``make(split) -> [n, d]`` search-space vectors on valid and test."""
        self.results[name] = {}
        for s in ("valid", "test"):
            x = make(s)
            self.dims[name] = x.shape[1]
            ts = self.splits[s]
            self.results[name][s] = evaluate(x, np.array([t.label for t in ts]), np.array([t.group for t in ts]),
                                             k=self.k, seed=self.seed)  # fmt: skip
        if recipe:
            self.recipes[name] = recipe


def embed_libraries(args: argparse.Namespace, splits: dict[str, list[Track]]) -> dict[str, dict]:
    """Libraries made by the code users run (embed_tracks → library): MFCC, and unless ``--no-library``
    the default before (jamendo-fcn) and after (``embed``'s default now)."""
    from specmusic.models import zoo

    libs = {}
    if not args.no_library:  # the code users run: embed_tracks → library → search_vectors
        for label, model in (("mfcc", "mfcc"), ("before", zoo.DEFAULT_TAGGER), ("after", None)):
            emb = make_embedder(model, weights=args.weights)
            libs[label] = {s: embed_cached(f"lib-{label}-{s}", emb, splits[s], args.cache) for s in ("valid", "test")}
    else:
        emb = make_embedder("mfcc")
        libs["mfcc"] = {s: embed_cached(f"lib-mfcc-{s}", emb, splits[s], args.cache) for s in ("valid", "test")}
    return libs


def add_single_taggers(table: Table, win: dict[str, Windows], rows: dict[str, list[int]], taggers: list[str]) -> None:
    """Each tagger (and extra layer) pooled every way, z-scored, as tag probabilities, and adapted."""
    for n in win:  # taggers, then the extra layers NAME/OUTPUT (not what `embed` stores: no recipe)
        for how in POOLINGS:
            table.add(f"{n}:{how}", lambda s, n=n, how=how: pooled(win[n], rows[s], how), recipe=int("/" not in n))
        table.add(f"{n}:mean:z", lambda s, n=n: zscore(pooled(win[n], rows[s], "mean")))
        if "/" not in n:
            table.add(f"{n}:tags", lambda s, n=n: tag_probs(win[n], rows[s]))
    for n in taggers:
        if np.median(np.diff(win[n].offsets)) > 2:  # needs several windows per clip to learn from
            table.add(f"{n}:adapt32", lambda s, n=n: adapted(win[n], rows[s], 32))


def tagger_sets(table: Table, win: dict[str, Windows], taggers: list[str]) -> dict[str, list[str]]:
    """The concatenations tried: the best r single taggers (ranked by valid P@10 of NAME:mean), and fixed sets."""
    from specmusic.models import zoo

    ranked = sorted(taggers, key=lambda n: -table.results[f"{n}:mean"]["valid"][0])
    sets = {f"top{r}": ranked[:r] for r in range(2, len(ranked) + 1)}
    for arch in ("fcn", "crnn", "musicnn"):
        sets[f"all-{arch}"] = [n for n in taggers if n.endswith(arch) and n in zoo.TAGGERS]
    sets["all-pons"] = [n for n in taggers if n in zoo.PONS_MODELS]
    for p in [n for n in win if n.split("/")[0] in zoo.PONS_MODELS]:  # Pons' models and layers with today's blocks
        for names in (("jamendo-fcn", p), ("mtat-musicnn", p), ("jamendo-fcn", "mtat-musicnn", p)):
            sets["+".join(names)] = [n for n in names if n in win]
    sets["pons-msd-musicnn+pons-mtt-musicnn"] = [n for n in ("pons-msd-musicnn", "pons-mtt-musicnn") if n in win]
    for names in (("jamendo-fcn", "mtat-musicnn"), ("jamendo-fcn", "jamendo-musicnn"), ("jamendo-fcn", "msd-fcn"),
                  ("jamendo-fcn", "mtat-fcn", "mtat-musicnn", "jamendo-musicnn")):  # fmt: skip
        sets["+".join(names)] = [n for n in names if n in taggers]
    return sets


def add_concatenations(table: Table, sets: dict[str, list[str]], win: dict[str, Windows],
                       rows: dict[str, list[int]]) -> None:
    """Every distinct set of two or more taggers, concatenated each way."""
    seen: set[tuple[str, ...]] = set()
    for label, names in sets.items():
        if len(names) < 2 or tuple(sorted(names)) in seen:
            continue
        seen.add(tuple(sorted(names)))
        tag = "+".join(names) if "+" in label else f"{label}={'+'.join(names)}"
        for how in POOLINGS:
            table.add(f"{tag}:{how}", lambda s, names=names, how=how: library_recipe([pooled(win[n], rows[s], how)
                                                                                      for n in names]),
                      recipe=0 if any("/" in n for n in names) else len(names))  # fmt: skip
        table.add(f"{tag}:mean:no-z", lambda s, names=names: library_recipe(
            [pooled(win[n], rows[s], "mean") for n in names], standardize=False))  # fmt: skip
        table.add(f"{tag}:mean:zblock", lambda s, names=names: zblocks([pooled(win[n], rows[s], "mean") for n in names]))
        table.add(f"{tag}:mean:zfix", lambda s, names=names: zblocks(
            [pooled(win[n], rows[s], "mean") for n in names], [pooled(win[n], rows["train"], "mean") for n in names]))
        table.add(f"{tag}:mean+tags", lambda s, names=names: library_recipe(
            [pooled(win[n], rows[s], "mean") for n in names] + [tag_probs(win[n], rows[s]) for n in names]))


def print_results(table: Table) -> None:
    """One line per candidate, with its difference from MFCC statistics on valid and test."""
    print(f"\n{'candidate':<70} {'dim':>5} | {'valid P@10':>10} {'NMI':>6} {'ARI':>6} | "
          f"{'test P@10':>9} {'NMI':>6} {'ARI':>6} | {'vs mfcc v/t':>12}")
    base = table.results["mfcc"]
    for name, r in table.results.items():
        v, t = r["valid"], r["test"]
        print(f"{name:<70} {table.dims[name]:>5} | {v[0]:>10.3f} {v[1]:>6.3f} {v[2]:>6.3f} | {t[0]:>9.3f} {t[1]:>6.3f} "
              f"{t[2]:>6.3f} | {100 * (v[0] - base['valid'][0]):>+5.1f} {100 * (t[0] - base['test'][0]):>+5.1f}")


def report_choice(table: Table) -> None:
    """Apply :data:`RULE`, print the chosen candidate beside MFCC, today's and the previous default, and the goal."""
    from specmusic.models import zoo

    results, base = table.results, table.results["mfcc"]
    eligible = [n for n, c in table.recipes.items() if c <= MAX_TAGGERS]
    best = max(eligible, key=lambda n: (results[n]["valid"][0], -table.dims[n]))
    today = f"{zoo.DEFAULT_TAGGER}:mean"
    bv, bt = results[best]["valid"][0], results[best]["test"][0]
    print(f"\n# chosen by the rule: {best} — valid {bv:.3f} ({100 * (bv - base['valid'][0]):+.1f} pt vs mfcc, "
          f"{100 * (bv - results[today]['valid'][0]):+.1f} vs today's {today}); "
          f"test {bt:.3f} ({100 * (bt - base['test'][0]):+.1f} pt vs mfcc, {100 * (bt - results[today]['test'][0]):+.1f} "
          f"vs today's)")
    gap = 100 * (bt - base["test"][0])
    ahead = bv > results[today]["valid"][0]
    previous = "jamendo-fcn+mtat-musicnn:mean"  # embed's default chosen by this script (before --adapt)
    if previous in results:
        cv, ct = results[previous]["valid"][0], results[previous]["test"][0]
        print(f"# the default this script chose, {previous}: valid {cv:.3f}, test {ct:.3f} "
              f"({100 * (ct - base['test'][0]):+.1f} pt vs mfcc); chosen minus it: "
              f"valid {100 * (bv - cv):+.1f}, test {100 * (bt - ct):+.1f} pt")  # fmt: skip
    print("# embed's default now (pons-msd-musicnn + --adapt, a space learnt from the library) is measured by "
          "benchmarks/similarity_adapt.py")  # fmt: skip
    print_goal(gap, ahead)


def main() -> None:
    args = parse_args()
    from specmusic.models import zoo

    pons = [n for n in zoo.PONS_MODELS if args.musicnn_wheel or zoo.bundled_model(n) is not None]
    taggers = args.taggers or list(zoo.TAGGERS) + pons
    with open("/proc/loadavg") as f:
        print(f"# loadavg before: {f.read().strip()}", flush=True)
    splits = {s: read_dataset(args.data, s) for s in ("train", "valid", "test")}
    every = [t for s in splits.values() for t in s]
    args.cache.mkdir(parents=True, exist_ok=True)
    win = extract_windows(every, taggers, args.weights, args.cache, args.musicnn_wheel)
    row_of = {t.path: i for i, t in enumerate(every)}
    rows = {s: [row_of[t.path] for t in ts] for s, ts in splits.items()}
    print("# windows per 30 s clip: " + ", ".join(f"{n} {np.median(np.diff(w.offsets)):.0f}" for n, w in win.items()))
    print(f"# valid: {len(splits['valid'])} clips, test: {len(splits['test'])} clips; selection rule: {RULE}", flush=True)

    table = Table(splits, args.k, args.seed)
    libs = embed_libraries(args, splits)
    table.add("mfcc", lambda s: search_vectors(libs["mfcc"][s]))
    add_single_taggers(table, win, rows, taggers)
    add_concatenations(table, tagger_sets(table, win, taggers), win, rows)
    if libs.get("after"):
        table.add("embed (library) before: jamendo-fcn", lambda s: search_vectors(libs["before"][s]))
        after_name = libs["after"]["test"].model.name
        table.add(f"embed (library) after: {after_name}", lambda s: search_vectors(libs["after"][s]))
    print_results(table)
    report_choice(table)


if __name__ == "__main__":
    main()
