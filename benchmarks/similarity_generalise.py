"""Which `embed` and `classify` defaults generalise: every candidate on three collections that share no source.

    nice -n 10 .venv/bin/python benchmarks/similarity_generalise.py
    python benchmarks/similarity_generalise.py --data A/ B/ C/ --mn04 audioset-mn04.onnx
    python benchmarks/similarity_generalise.py --study-only     # the joined --adapt study alone (first collection)

THE RULE, fixed before any figure was measured, printed before any figure (docs/similarity.md):

    A default must win on the average (mean P@10 over the collections) *and* not lose to any other
    candidate on any one collection by more than a point; a tie (within a point on the average)
    goes to the faster recipe (embed seconds per track, measured in the same run).

Read as: a candidate *qualifies* when on every collection its P@10 is at most one point below that
collection's best, and its mean P@10 is at most one point below the best mean; of those, the
fastest wins. FALLBACK, also fixed before measuring, when no candidate qualifies: widen the
margin per collection to the smallest one some candidate meets (``m`` = the least, over
candidates, of its largest shortfall against a collection's best; never below one point); among
the candidates within ``m`` everywhere, the best mean wins, a tie (within a point of that mean)
going to the fastest. The fallback says so when it decides, and names the candidate with the best
mean. "Points" are of P@10 (0.01); comparisons are on unrounded figures.

The same rule picks ``classify``'s default among the bundled networks' classify outputs (their
label scores, ``embed --layer probabilities --no-adapt``, as vectors): jamendo-fcn, mtat-musicnn,
pons-msd-musicnn and audioset-mn04; MFCC statistics are shown beside them, not a candidate.

Protocol, per collection (``--data DIR``; manifest.csv: path,label,group; the group is the source
track): one library of the whole collection, made with no label, as ``embed`` makes it
(``make_embedder`` → ``embed_tracks``, the network outputs read from a per-(network, clip) cache:
benchmarks/generalise_cache.py), searched in the library's own space (``search_vectors``: the
learnt space of packed rows, the column z-scores of MFCC statistics and of plain joins). Every clip
is a query; its 10 nearest clips among those of *other* source tracks; P@10 = the share with the
query's label; chance = the share of same-label clips among those candidates. NMI: KMeans with
k = number of labels on the same search vectors (what ``embed --map`` prints). Speed: a fresh
embedder of each recipe on ``--speed-clips`` clips of each collection (one more warms it up),
decoding included, at the end of the same run; the load average is printed with it.

Embed candidates (each a recipe a user can type) and why each is here:
  mfcc                                 the no-network floor
  jamendo-fcn                          classify's default so far; embed's default two defaults ago
  jamendo-fcn+mtat-musicnn             embed's default before --adapt
  pons-msd-musicnn --no-adapt / --adapt  today's network as stored / today's default
  audioset-mn04 --no-adapt / --adapt   EfficientAT mn04 (AudioSet), the network being bundled
  audioset-mn04+pons-msd-musicnn, audioset-mn04+jamendo-fcn, each with and without --adapt
  extra, named before measuring: mtat-musicnn --adapt (the other bundled MusiCNN in the learnt
  space, at today's cost: does the space or Pons' network make today's default?) and
  jamendo-fcn+mtat-musicnn --adapt (the previous default's two bundled networks in one learnt
  space: does joining help without a new network?).

Joined ``--adapt`` (``-m a+b --adapt``): each network packs its own windows; the joined row holds
every network's L2-normalised mean, then their contrasts (specmusic.embeddings.search.adapt.join_packed).
How search learns from it was chosen on the FIRST collection only, before the other two were
measured (``--study-only``, printed in every run): (joint) one space learnt from the joined rows
lost by 2-9 points to (per network) each network's own space from its block, scaled to unit total
variance, the spaces concatenated — one linear map, what the package does (fit_space with the
adapt blocks) — which matched (own libraries) each network's own library and space,
L2-normalised per network and concatenated. Joint LDA lets the network with the least
within-track variation (FCN's two overlapping 29 s windows on a 30 s clip) take every direction.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from generalise_cache import WindowCache, cached_library, note, seconds_per_track  # noqa: E402
from retrieval import precision_at_k, read_dataset  # noqa: E402

from specmusic.cluster import cluster_embeddings  # noqa: E402
from specmusic.data import Track  # noqa: E402
from specmusic.embeddings import Embedder, make_embedder, search_vectors  # noqa: E402
from specmusic.embeddings.search.adapt import library_space  # noqa: E402
from specmusic.embeddings.embedders import DEFAULT_ADAPT, DEFAULT_EMBEDDING  # noqa: E402
from specmusic.index import l2_normalize  # noqa: E402
from specmusic.models.resolve import known_names  # noqa: E402
from specmusic.models.zoo.registry import DEFAULT_TAGGER  # noqa: E402

RULE = ("A default must win on the average (mean P@10 over the collections) *and* not lose to any other "
        "candidate on any one collection by more than a point; a tie (within a point on the average) goes to "
        "the faster recipe (embed seconds per track, measured in the same run).")  # fmt: skip
FALLBACK = ("If none qualifies: the margin per collection widens to the smallest one some candidate meets "
            "(never below a point); among those within it everywhere, the best mean wins, a tie within a "
            "point going to the faster.")  # fmt: skip
POINT = 0.01
DATA = ROOT / "benchmarks" / "data"
MN04 = "audioset-mn04"


@dataclass(frozen=True)
class Candidate:
    """One recipe: ``embed -m MODEL`` with ``adapt`` (None: the recipe's default) and ``layer``."""

    recipe: str  # as a user types it
    model: str
    adapt: bool | None = None
    layer: str | None = None
    role: str = ""  # "today's default", …


EMBED = (
    Candidate("mfcc", "mfcc", role="floor"),
    Candidate("jamendo-fcn", "jamendo-fcn", False, role="default two defaults ago"),
    Candidate("jamendo-fcn+mtat-musicnn", "jamendo-fcn+mtat-musicnn", False, role="default before --adapt"),
    Candidate("jamendo-fcn+mtat-musicnn --adapt", "jamendo-fcn+mtat-musicnn", True, role="extra"),
    Candidate("mtat-musicnn --adapt", "mtat-musicnn", True, role="extra"),
    Candidate("pons-msd-musicnn --no-adapt", "pons-msd-musicnn", False),
    Candidate("pons-msd-musicnn --adapt", "pons-msd-musicnn", True, role="default before this benchmark"),
    Candidate("audioset-mn04 --no-adapt", MN04, False),
    Candidate("audioset-mn04 --adapt", MN04, True),
    Candidate("audioset-mn04+pons-msd-musicnn", f"{MN04}+pons-msd-musicnn", False),
    Candidate("audioset-mn04+pons-msd-musicnn --adapt", f"{MN04}+pons-msd-musicnn", True),
    Candidate("audioset-mn04+jamendo-fcn", f"{MN04}+jamendo-fcn", False),
    Candidate("audioset-mn04+jamendo-fcn --adapt", f"{MN04}+jamendo-fcn", True),
)
CLASSIFY = tuple(
    Candidate(f"{name} --layer probabilities", name, False, "probabilities",
              "classify's default before this benchmark" if name == "jamendo-fcn" else "")
    for name in ("jamendo-fcn", "mtat-musicnn", "pons-msd-musicnn", MN04)
)  # fmt: skip
BEFORE = ("pons-msd-musicnn --adapt", "jamendo-fcn --layer probabilities")  # the defaults the rule was run against
JOINED = ("jamendo-fcn+mtat-musicnn", f"{MN04}+pons-msd-musicnn", f"{MN04}+jamendo-fcn")


@dataclass
class Score:
    p10: float
    chance: float
    nmi: float


def model_arg(model: str, mn04: Path | None) -> str:
    """``model`` with audioset-mn04 replaced by its ONNX path while the zoo does not name it yet."""
    if MN04 in known_names() or mn04 is None:
        return model
    return "+".join(str(mn04) if part == MN04 else part for part in model.split("+"))


def embedder_of(c: Candidate, mn04: Path | None, weights: str | None) -> Embedder:
    m = model_arg(c.model, mn04)
    if m == "mfcc":
        return make_embedder("mfcc")
    return make_embedder(m, weights=weights, adapt=c.adapt, layer=c.layer)


def score(x: np.ndarray, tracks: list[Track], seed: int) -> Score:
    """P@10 among other source tracks, its chance level, NMI of KMeans (k = labels) on ``x`` (L2-normalised)."""
    labels, groups = np.array([t.label for t in tracks]), np.array([t.group for t in tracks])
    p, chance = precision_at_k(x @ x.T, labels, groups, 10)
    nmi = cluster_embeddings(x, labels=list(labels), seed=seed).metrics.get("nmi", float("nan"))
    return Score(p, chance, float(nmi))


def measure(cands: tuple[Candidate, ...], colls: dict[str, list[Track]], cache: WindowCache, args: argparse.Namespace,
            ) -> dict[str, dict[str, Score]]:  # fmt: skip
    """{recipe: {collection: Score}}: one library per (candidate, collection), searched as users search it."""
    out: dict[str, dict[str, Score]] = {}
    for c in cands:
        out[c.recipe] = {}
        for name, tracks in colls.items():
            t0 = time.perf_counter()
            lib = cached_library(embedder_of(c, args.mn04, args.weights), tracks, cache)
            x = search_vectors(lib)
            out[c.recipe][name] = s = score(x, tracks, args.seed)
            note(f"# {c.recipe} on {name}: {x.shape[1]}-d, P@10 {s.p10:.3f} NMI {s.nmi:.3f} ({time.perf_counter() - t0:.0f} s; "
                 f"cache {cache.computed} computed, {cache.read} read)")  # fmt: skip
    return out


def joined_study(name: str, tracks: list[Track], cache: WindowCache, args: argparse.Namespace) -> list[str]:
    """Three ways to search a joined --adapt library, for every joined pair, on one collection: one space
    learnt from the joined rows; each network's own space, scaled to unit variance and concatenated
    (one linear map: what ``search_vectors`` does); each network's own library searched in its space,
    the search vectors L2-normalised per network and concatenated."""
    lines = [f"joined --adapt, on {name} only: (joint) one space learnt from the joined rows; (per network) each "
             "network's own space, scaled to unit variance, concatenated; (own libraries) each network's own "
             "library and space, vectors L2-normalised per network, concatenated",
             f"{'networks':<34} | {'joint P@10':>10} {'NMI':>6} | {'per network':>11} {'NMI':>6} | "
             f"{'own libraries':>13} {'NMI':>6}"]  # fmt: skip
    for joined in JOINED:
        lib = cached_library(embedder_of(Candidate("", joined, True), args.mn04, args.weights), tracks, cache)
        groups = lib.model.adapt_groups  # no blocks passed: one space for the joined rows
        joint = l2_normalize(library_space(lib.vectors, groups).apply(lib.vectors))
        blocks = [search_vectors(cached_library(embedder_of(Candidate("", m, True), args.mn04, args.weights), tracks, cache))
                  for m in joined.split("+")]  # fmt: skip
        s = [score(x, tracks, args.seed) for x in (joint, search_vectors(lib), l2_normalize(np.concatenate(blocks, axis=1)))]
        lines.append(f"{joined:<34} | " + " | ".join(f"{a.p10:>{w}.3f} {a.nmi:>6.3f}" for a, w in zip(s, (10, 11, 13))))
    return lines


@dataclass
class Verdict:
    winner: str
    how: str  # "rule" | "fallback"
    margin: float  # the per-collection margin used (POINT under the rule)
    best_mean: str
    shortfall: dict[str, float]
    mean: dict[str, float]


def decide(scores: dict[str, dict[str, Score]], speed: dict[str, float]) -> Verdict:
    """THE RULE (module docstring) and its fallback, on unrounded P@10."""
    eps = 1e-12
    names = list(next(iter(scores.values())))
    best = {n: max(s[n].p10 for s in scores.values()) for n in names}
    shortfall = {c: max(best[n] - s[n].p10 for n in names) for c, s in scores.items()}
    mean = {c: float(np.mean([s[n].p10 for n in names])) for c, s in scores.items()}
    top = max(mean, key=mean.get)  # type: ignore[arg-type]
    ok = [c for c in scores if shortfall[c] <= POINT + eps and mean[c] >= mean[top] - POINT - eps]
    if ok:
        return Verdict(min(ok, key=speed.__getitem__), "rule", POINT, top, shortfall, mean)
    margin = max(POINT, min(shortfall.values()))
    within = [c for c in scores if shortfall[c] <= margin + eps]
    lead = max(mean[c] for c in within)
    tied = [c for c in within if mean[c] >= lead - POINT - eps]
    return Verdict(min(tied, key=speed.__getitem__), "fallback", margin, top, shortfall, mean)


def table(title: str, scores: dict[str, dict[str, Score]], speed: dict[str, float], roles: dict[str, str],
          ref: str, v: Verdict) -> list[str]:  # fmt: skip
    """Every candidate's P@10 and NMI on every collection, the means, shortfall, speed, vs ``ref``."""
    names = list(next(iter(scores.values())))
    head = " | ".join(f"{n[:14]:>14} P@10    NMI" for n in names)
    out = [title, f"(short: points below the best P@10 on its worst collection; vs before: mean P@10 against {ref})",
           f"{'recipe':<42} | {head} | mean P@10    NMI | short | s/track | vs before | role"]
    for c, s in scores.items():
        cells = " | ".join(f"{s[n].p10:>19.3f} {s[n].nmi:>6.3f}" for n in names)
        mnmi = float(np.mean([s[n].nmi for n in names]))
        mark = " <- verdict" if c == v.winner else ""
        out.append(f"{c:<42} | {cells} | {v.mean[c]:>9.3f} {mnmi:>6.3f} | {100 * v.shortfall[c]:>5.1f} | "
                   f"{speed[c]:>7.2f} | {100 * (v.mean[c] - v.mean[ref]):>+6.1f} pt | {roles.get(c, '')}{mark}")  # fmt: skip
    first = next(iter(scores.values()))
    out.append("chance P@10: " + ", ".join(f"{n} {first[n].chance:.3f}" for n in names))
    return out


def verdict_lines(what: str, v: Verdict, speed: dict[str, float]) -> list[str]:
    if v.how == "rule":
        return [f"# verdict ({what}): {v.winner} — qualifies under the rule (within a point of every collection's best "
                f"and of the best mean, {v.best_mean} {v.mean[v.best_mean]:.3f}); fastest of those that qualify "
                f"({speed[v.winner]:.2f} s/track)"]  # fmt: skip
    return [f"# verdict ({what}): no candidate qualifies under the rule (best mean: {v.best_mean} {v.mean[v.best_mean]:.3f}, "
            f"{100 * v.shortfall[v.best_mean]:.1f} pt short on one collection). Fallback: margin {100 * v.margin:.1f} pt "
            f"per collection; {v.winner} (mean {v.mean[v.winner]:.3f}, {100 * v.shortfall[v.winner]:.1f} pt short at "
            f"worst, {speed[v.winner]:.2f} s/track)"]  # fmt: skip


def speeds(cands: tuple[Candidate, ...], colls: dict[str, list[Track]], args: argparse.Namespace) -> dict[str, float]:
    """Seconds per track of each recipe, fresh embedder, on the same clips for every recipe."""
    paths: list[str] = []
    for tracks in colls.values():
        step = max(1, len(tracks) // args.speed_clips)
        paths += [t.path for t in tracks[::step][: args.speed_clips]]
    paths.insert(0, paths[-1])  # warm-up
    out = {}
    for c in cands:
        out[c.recipe] = seconds_per_track(lambda c=c: embedder_of(c, args.mn04, args.weights), paths)
        note(f"# speed {c.recipe}: {out[c.recipe]:.2f} s/track")
    return out


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, nargs="+",
                    default=[DATA / "soundtracks", DATA / "other-games", DATA / "third-games"],
                    help="collections (manifest.csv: path,label,group), the first one also for the joined study")  # fmt: skip
    ap.add_argument("--mn04", type=Path, default=None,
                    help="audioset-mn04 ONNX while the zoo does not name it (convert_efficientat's output)")
    ap.add_argument("--weights", default=None, help="pretrained tagger checkpoints (not needed for bundled ones)")
    ap.add_argument("--cache", type=Path, default=DATA / "cache" / "similarity-generalise")
    ap.add_argument("--speed-clips", type=int, default=4, help="clips per collection timed for speed")
    ap.add_argument("--study-only", action="store_true", help="only the joined --adapt study, on the first collection")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    t_start = time.perf_counter()
    print(f"# THE RULE: {RULE}\n# {FALLBACK}", flush=True)
    print(f"# load average before: {loadavg()}; this checkout's defaults: embed -m {'+'.join(DEFAULT_EMBEDDING)} "
          f"{'--adapt' if DEFAULT_ADAPT else '--no-adapt'}, classify {DEFAULT_TAGGER}", flush=True)  # fmt: skip
    colls = {d.name: read_dataset(d, None) for d in args.data}
    for name, tracks in colls.items():
        print(f"# {name}: {len(tracks)} clips, {len({t.label for t in tracks})} labels, "
              f"{len({t.group for t in tracks})} source tracks", flush=True)  # fmt: skip
    cache = WindowCache(args.cache / "windows")
    first = next(iter(colls))
    study = joined_study(first, colls[first], cache, args)
    print("\n" + "\n".join(study), flush=True)
    if args.study_only:
        return
    emb = measure(EMBED, colls, cache, args)
    cls = measure(CLASSIFY, colls, cache, args)
    cls_ref = measure(EMBED[:1], colls, cache, args)
    t_scores = time.perf_counter() - t_start
    print(f"\n# window features: {cache.computed} computed ({cache.seconds:.0f} s), {cache.read} read from the cache; "
          f"load average before the speed runs: {loadavg()}", flush=True)  # fmt: skip
    sp = speeds(EMBED + CLASSIFY, colls, args)
    v_emb, v_cls = decide(emb, sp), decide(cls, sp)
    roles = {c.recipe: c.role for c in EMBED + CLASSIFY}
    print("\n" + "\n".join(table("embed: one library per collection, every clip a query", emb, sp, roles,
                                   BEFORE[0], v_emb)))  # fmt: skip
    print("\n".join(verdict_lines("embed", v_emb, sp)))
    cls_rows = {**cls, "mfcc (reference, not a candidate)": cls_ref["mfcc"]}
    sp["mfcc (reference, not a candidate)"] = sp["mfcc"]
    shown = Verdict(v_cls.winner, v_cls.how, v_cls.margin, v_cls.best_mean, dict(v_cls.shortfall), dict(v_cls.mean))
    shown.shortfall["mfcc (reference, not a candidate)"] = float("nan")
    shown.mean["mfcc (reference, not a candidate)"] = float(np.mean([s.p10 for s in cls_ref["mfcc"].values()]))
    print("\n" + "\n".join(table("classify: label scores as vectors (--layer probabilities), same protocol", cls_rows,
                                   sp, roles, BEFORE[1], shown)))  # fmt: skip
    print("\n".join(verdict_lines("classify", v_cls, sp)))
    print(f"# load average after: {loadavg()}; {time.perf_counter() - t_start:.0f} s in all "
          f"({t_scores:.0f} s to the scores, the rest timing speeds)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
