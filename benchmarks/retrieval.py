"""Do neighbours share a label? precision@10 and cluster NMI of each embedding, in one run.

    nice -n 10 python benchmarks/retrieval.py                                  # benchmarks/data/soundtracks
    python benchmarks/retrieval.py --model runs/cnn/model.onnx                 # + a trained CNN
    python benchmarks/retrieval.py --data ~/gtzan --taggers msd-fcn mtat-musicnn  # any labelled folder

For every clip of the dataset's test split (``--split``; GTZAN layout with manifest.csv:
path,label,group, group = source track, and splits/*_filtered.txt; a plain folder of
<label>/<clip> works too, each clip its own group), the 10 most similar clips are looked up among
the clips of *other* tracks (all clips of the query's own track are left out, so a track cannot find itself), and precision@10 is the share of
those 10 with the query's label; ``chance`` is the share a random pick would get. Methods:
  pretrained:<name>:emb   pooled penultimate features of a pretrained tagger (default: the default one)
  pretrained:<name>:tags  the same tagger's 50 tag probabilities (``embed --layer probabilities``)
  cnn                the `embedding` output of --model (a model.onnx from `specmusic train`)
  mfcc               mean+std of 20 MFCCs, columns z-scored (exactly what `recommend` searches)
  pixels             raw spectrogram-pixel distance, the original notebook's idea: the log-mel
                     spectrogram downsampled to 32x32 pixels, Euclidean distance
NMI/ARI: KMeans with k = number of labels on the same vectors (as `embed --map`), against labels.
Embeddings are cached (incrementally, like `specmusic embed`) under --cache.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from specmusic.cluster import cluster_embeddings  # noqa: E402
from specmusic.data import Track, discover_tracks, track_key  # noqa: E402
from specmusic.embeddings import (  # noqa: E402
    EmbeddingLibrary,
    Embedder,
    ModelDescription,
    embed_tracks,
    make_embedder,
    read_library,
    save_library,
    search_vectors,
)
from specmusic.features import FeatureConfig, compute_features_file  # noqa: E402
from specmusic.index import standardize_columns  # noqa: E402

DEFAULT_DATA = ROOT / "benchmarks" / "data" / "soundtracks"
DEFAULT_WEIGHTS = ROOT.parent / "shared" / "weights" / "sota-music-tagging"


class PixelEmbedder(Embedder):
    """Log-mel spectrogram (first ``seconds``) block-averaged to ``size`` x ``size`` pixels."""

    def __init__(self, size: int = 32, seconds: float = 30.0) -> None:
        self.config = FeatureConfig()
        self.size, self.seconds = size, seconds
        self.description = ModelDescription.from_dict(
            {"kind": "pixels", "size": size, "seconds": seconds, "feature_config": self.config.to_dict()}
        )

    def embed_file(self, path: str) -> np.ndarray:
        spec, _ = compute_features_file(path, self.config, duration=self.seconds)
        rows = np.array_split(spec, self.size, axis=0)
        spec = np.stack([r.mean(axis=0) for r in rows])
        cols = np.array_split(spec, self.size, axis=1)
        return np.stack([c.mean(axis=1) if c.size else np.full(self.size, spec.min()) for c in cols], axis=1).ravel()


def read_dataset(root: Path, split: str | None, split_file: Path | None = None) -> list[Track]:
    manifest = root / "manifest.csv"
    if not root.is_dir():
        sys.exit(f"{root} not found — build the dataset: nice -n 10 python benchmarks/soundtracks.py")
    keep = None
    lst = split_file or root / "splits" / f"{split}_filtered.txt"
    if split_file is not None or (split and lst.is_file()):
        keep = {track_key(line.strip()) for line in lst.read_text().splitlines() if line.strip()}
    elif split:
        print(f"# {lst} not found: using every clip", file=sys.stderr)
    if manifest.is_file():
        with open(manifest, newline="") as f:
            tracks = [
                Track(str(root / row["path"]), row["path"], row["label"], row.get("group") or row["path"])
                for row in csv.DictReader(f)
            ]
    else:
        found, _ = discover_tracks([root])
        tracks = [Track(t.path, t.relpath, t.label, t.relpath) for t in found if t.label]
    tracks = [t for t in tracks if keep is None or track_key(t.relpath) in keep]
    if len(tracks) < 2:
        sys.exit(f"{root}: fewer than 2 clips selected (split {split_file or split}) — check the split list")
    return tracks


def print_goal(gap: float, ahead: bool, extra: str = "") -> None:
    """The issue's similarity goal line and the load average after the run (similarity_default/_adapt)."""
    print(f"# goal (>= 20 pt above MFCC on test, ahead of today's default on valid): "
          f"{'met' if gap >= 20 and ahead else 'NOT met'} (test {gap:+.1f} pt; valid ahead: {ahead})")  # fmt: skip
    with open("/proc/loadavg") as f:
        print(f"# loadavg after: {f.read().strip()}{extra}", flush=True)


def precision_at_k(sim: np.ndarray, labels: np.ndarray, groups: np.ndarray, k: int = 10) -> tuple[float, float]:
    """Mean precision@k of same-label neighbours among other groups' clips, and its chance level."""
    s = sim.astype(np.float64, copy=True)
    same_group = groups[:, None] == groups[None, :]
    s[same_group] = -np.inf
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    hits = labels[top] == labels[:, None]
    valid = np.isfinite(np.take_along_axis(s, top, axis=1))
    prec = (hits & valid).sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
    same_label = labels[:, None] == labels[None, :]
    chance = ((same_label & ~same_group).sum(axis=1) / np.maximum((~same_group).sum(axis=1), 1)).mean()
    return float(prec.mean()), float(chance)


def embed_cached(name: str, embedder: Embedder, tracks: list[Track], cache: Path) -> EmbeddingLibrary:
    path = cache / f"{name.replace(':', '_').replace('/', '_')}.npz"
    existing = read_library(path) if path.exists() else None
    t0 = time.perf_counter()
    lib, report = embed_tracks(tracks, embedder, existing=existing, keep_others=False, progress=None,
                               on_error=lambda m: print(f"# {m}", file=sys.stderr))
    save_library(lib, path)
    print(f"# {name}: {len(report.embedded)} embedded, {len(report.reused)} cached, {len(report.failed)} failed "
          f"({time.perf_counter() - t0:.0f} s) → {path}", file=sys.stderr, flush=True)
    return lib


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dataset root with manifest.csv")
    ap.add_argument(
        "--split", default="test",
        help="train|valid|test|all: only that split's clips (default test: a trained CNN never saw them)",
    )
    ap.add_argument("--split-file", type=Path, default=None, help="a list of the clips to use, one a line")
    ap.add_argument("--model", action="append", default=[], help="a trained model.onnx (repeatable)")
    ap.add_argument("--taggers", nargs="*", default=[None], help="pretrained tagger names (default: the default one)")
    ap.add_argument(
        "--layers", nargs="+", default=["embedding", "probabilities"], choices=["embedding", "probabilities"],
        help="pretrained taggers: penultimate features (emb) and/or tag probabilities (tags)",
    )
    ap.add_argument("--weights", default=str(DEFAULT_WEIGHTS) if DEFAULT_WEIGHTS.is_dir() else None)
    ap.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "data" / "cache" / "retrieval")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    tracks = read_dataset(args.data, None if args.split == "all" else args.split, args.split_file)
    print(f"# loadavg before: {open('/proc/loadavg').read().strip()}", flush=True)
    print(f"# {args.data}: {len(tracks)} clips, {len({t.label for t in tracks})} labels, "
          f"{len({t.group for t in tracks})} source tracks (split: {args.split_file or args.split})", flush=True)
    methods: list[tuple[str, Embedder, str]] = []
    from specmusic.models import zoo

    for tagger in args.taggers:
        name = tagger or zoo.DEFAULT_TAGGER
        for layer in args.layers:
            short = {"embedding": "emb", "probabilities": "tags"}[layer]
            methods.append(
                (f"pretrained:{name}:{short}", make_embedder(name, weights=args.weights, layer=layer), "cosine")
            )
    for i, model in enumerate(args.model):
        methods.append((f"cnn{i or ''}:{Path(model).parent.name}:emb", make_embedder(model), "cosine"))
    methods.append(("mfcc", make_embedder("mfcc"), "cosine"))
    methods.append(("pixels", PixelEmbedder(), "euclidean"))

    args.cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, embedder, metric in methods:
        if metric == "cosine":
            lib = embed_cached(name, embedder, tracks, args.cache)
            by_id = {id_: i for i, id_ in enumerate(lib.ids)}
            lib = lib.subset([by_id[t.path] for t in tracks if t.path in by_id])
            labels = np.array([t or "" for t in lib.labels])
            groups = np.array([g or "" for g in lib.groups])
            x = search_vectors(lib)
            sim, cluster_x, dim = x @ x.T, x, lib.dim
        else:  # raw pixels, Euclidean (not L2-normalised, as the notebook compared images)
            x = _pixels(tracks, embedder, args.cache)
            labels = np.array([t.label or "" for t in tracks])
            groups = np.array([t.group or "" for t in tracks])
            sq = (x * x).sum(axis=1)
            sim = -(sq[:, None] + sq[None, :] - 2 * x @ x.T)
            cluster_x, dim = standardize_columns(x)[0], x.shape[1]
        p10, chance = precision_at_k(sim, labels, groups, args.k)
        result = cluster_embeddings(cluster_x, labels=list(labels), seed=args.seed)
        rows.append((name, dim, p10, chance, result.metrics.get("nmi", float("nan")), result.metrics.get("ari", float("nan"))))

    print(f"{'method':<32} {'dim':>5} {'P@' + str(args.k):>6} {'chance':>7} {'NMI':>6} {'ARI':>6} {'vs mfcc':>8}")
    base = next(r[2] for r in rows if r[0] == "mfcc")
    for name, dim, p10, chance, nmi, ari in rows:
        print(f"{name:<32} {dim:>5} {p10:>6.3f} {chance:>7.3f} {nmi:>6.3f} {ari:>6.3f} {100 * (p10 - base):>+7.1f}pt")
    nets = [r for r in rows if r[0].startswith(("pretrained", "cnn"))]
    if nets:
        best = max(nets, key=lambda r: r[2])
        gap = 100 * (best[2] - base)
        verdict = "met" if gap >= 15 else "NOT met"
        print(f"# goal (best network embedding beats MFCC statistics by >= 15 points): {verdict} "
              f"— {best[0]} {100 * best[2]:.1f} vs mfcc {100 * base:.1f} ({gap:+.1f} points)")
    print(f"# loadavg after: {open('/proc/loadavg').read().strip()}", flush=True)


def _pixels(tracks: list[Track], embedder: Embedder, cache: Path) -> np.ndarray:
    """Pixel vectors of every track, cached in ``cache/pixels.npz``."""
    path = cache / "pixels.npz"
    stored: dict[str, np.ndarray] = {}
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            stored = dict(zip((str(i) for i in z["ids"]), z["pixels"]))
    t0, new = time.perf_counter(), 0
    for t in tracks:
        if t.path not in stored:
            stored[t.path] = embedder.embed_file(t.path)
            new += 1
    tmp = path.with_name(".pixels.tmp.npz")
    np.savez(tmp, ids=np.array(list(stored), dtype=np.str_), pixels=np.stack(list(stored.values())))
    os.replace(tmp, path)
    print(f"# pixels: {new} computed, {len(tracks) - new} cached ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return np.stack([stored[t.path] for t in tracks]).astype(np.float64)


if __name__ == "__main__":
    main()
