"""Choose the default pretrained tagger by measurement: genre agreement and latency of all 8 checkpoints.

Run (weights from ../shared or any copy of the repository's models/ tree; models converted once
into the cache)::

    .venv/bin/python benchmarks/tagger_choice.py [--weights DIR] [--data DIR] [--threads 1]

Data: ``gtzan-sample/<genre>/*.au`` (one 30 s GTZAN clip per genre) and ``cc-music/*.ogg``
(8 CC excerpts; the 6 whose style is clear from their descriptions are scored, see EXPECTED_CC).

Columns
-------
gtzan top1   the GTZAN genre whose best-scoring matching tag (GENRE_TAGS) is highest is the true
             one, out of 10 (a vocabulary without the genre's tag cannot score it)
gtzan in-top5 a tag of the true genre is among the track's 5 best tags, out of 10
cc in-top5   a tag of the expected style is among the 5 best tags, out of 6
genres       how many of the 10 GTZAN genres the vocabulary can name at all
sanity       the issue's 3 checks: string orchestra and Tchaikovsky get a classical-type tag above
             every rock tag; drum & bass gets an electronic/dance-type tag above every classical one
ms/track     classify latency of a 30 s clip with onnxruntime (features + network), mean of the 10
             GTZAN clips, and its ratio to the features alone (the shared baseline, same run)

Cold start (``--cold``, default on): wall time of fresh ``specmusic`` processes, median of 3,
beside the CLI's own start-up (``specmusic --version``): classify one 30 s clip with the default
tagger already cached (torch-free), and the first use with an empty cache (local weights,
conversion included; no download).

Choice rule (printed at the end): pass all 3 sanity checks and have the genre tags the issue
asks the default to output (rock, jazz, metal, electronic); then the most hits (gtzan top1 +
gtzan in-top5 + cc in-top5); then the lowest latency.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from specmusic import fileio  # noqa: E402
from specmusic.models import zoo  # noqa: E402
from specmusic.models.zoo.convert import tagger_metadata  # noqa: E402
from specmusic.features import compute_features_file  # noqa: E402
from specmusic.inference import load_model, predict_track  # noqa: E402

SHARED = ROOT.parent / "shared"

#: Tags (lower case) that count as each GTZAN genre, in any of the three vocabularies.
GENRE_TAGS: dict[str, set[str]] = {
    "blues": {"blues"},
    "classical": {"classical", "classic", "orchestral"},
    "country": {"country"},
    "disco": {"disco", "dance", "funk"},
    "hiphop": {"hip-hop", "hiphop"},
    "jazz": {"jazz"},
    "metal": {"metal", "heavy metal"},
    "pop": {"pop", "indie pop", "poprock", "popfolk", "instrumentalpop"},
    "reggae": {"reggae"},
    "rock": {"rock", "classic rock", "hard rock", "alternative rock", "indie rock", "progressive rock", "poprock"},
}
CLASSICAL = {"classical", "classic", "orchestral", "strings", "violin", "cello", "harpsichord", "choral", "opera"}
ROCK = GENRE_TAGS["rock"] | GENRE_TAGS["metal"]
ELECTRONIC = {
    "electronic", "electronica", "electro", "techno", "dance", "house", "trance", "drummachine", "beat", "beats",
    "synth", "synthesizer",
}  # fmt: skip
#: cc-music excerpts (file name prefix → tags any of which should be in the top 5).
EXPECTED_CC: dict[str, set[str]] = {
    "442789__lena-orsa": {"piano"},  # piano ragtime
    "Hungarian_Dance": CLASSICAL,  # string orchestra
    "Kevin_MacLeod_-_P_I_Tchaikovsky": CLASSICAL,
    "Kevin_MacLeod_-_Vibe_Ace": {"jazz"},  # from a jazz sampler
    "admiralbob77": ELECTRONIC,  # drum & bass stems
    "sorohanro": {"jazz", "trumpet", "solo"},  # jazz trumpet loop
}


def best(probs: np.ndarray, labels: list[str], tags: set[str]) -> float:
    scores = [p for p, name in zip(probs, labels) if name.lower() in tags]
    return max(scores) if scores else -np.inf


def cold_start(clip: Path, weights: str, repeats: int = 3) -> None:
    """Time fresh processes: CLI start-up, classify with a cached model, first use (conversion)."""
    import shutil
    import statistics
    import subprocess
    import tempfile

    exe = str(Path(sys.executable).with_name("specmusic"))

    def timed(argv: list[str], env: dict[str, str], setup: object = None) -> float:
        times = []
        for _ in range(repeats):
            if callable(setup):
                setup()
            t0 = time.perf_counter()
            subprocess.run(argv, env=env, check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        env = {**os.environ, fileio.CACHE_ENV: str(cache), zoo.WEIGHTS_ENV: weights}
        version = timed([exe, "--version"], env)
        first = timed([exe, "classify", str(clip), "--no-progress"], env, lambda: shutil.rmtree(cache, True))
        cached = timed([exe, "classify", str(clip), "--no-progress"], env)
    print(f"# cold start ({zoo.DEFAULT_TAGGER}, one 30 s clip, median of {repeats} fresh processes):")
    print(f"#   specmusic --version (baseline)            {version:6.2f} s")
    print(f"#   classify, model cached (torch-free)       {cached:6.2f} s  ({cached / version:.1f}x baseline)")
    print(f"#   classify, first use (convert, no download) {first:5.2f} s  ({first / version:.1f}x baseline)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=os.environ.get(zoo.WEIGHTS_ENV) or SHARED / "weights/sota-music-tagging")
    parser.add_argument("--data", type=Path, default=SHARED / "data")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads")
    parser.add_argument("--show", action="store_true", help="also print each track's top 5 tags")
    parser.add_argument("--cold", action=argparse.BooleanOptionalAction, default=True, help="time fresh processes")
    args = parser.parse_args()

    gtzan = sorted((args.data / "gtzan-sample").glob("*/*.au"))
    cc = sorted((args.data / "cc-music").glob("*.ogg"))
    if not gtzan or not cc:
        sys.exit(f"no data under {args.data} — pass --data DIR holding gtzan-sample/ and cc-music/")
    load = os.getloadavg()
    print(f"# load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; onnxruntime threads {args.threads}")

    # Features once (all 8 taggers share the front end), timed: the latency baseline.
    config = tagger_metadata(zoo.TAGGERS[zoo.DEFAULT_TAGGER])["feature_config"]
    from specmusic.features import FeatureConfig

    fc = FeatureConfig.from_dict(config)
    feats: dict[Path, np.ndarray] = {}
    t0 = time.perf_counter()
    for path in gtzan:
        feats[path] = compute_features_file(path, fc)[0]
    feature_ms = (time.perf_counter() - t0) / len(gtzan) * 1000
    for path in cc:
        feats[path] = compute_features_file(path, fc)[0]

    header = (
        f"{'tagger':<16} {'genres':>6} {'gtzan top1':>10} {'gtzan in-top5':>13} {'cc in-top5':>10} {'sanity':>6} "
        f"{'ms/track':>9} {'x features':>10} {'convert s':>9}"
    )
    print(header)
    print("-" * len(header))
    shows: list[str] = []
    rows: list[tuple[int, int, float, str]] = []
    for name, tagger in zoo.TAGGERS.items():
        t0 = time.perf_counter()
        onnx_path = zoo.ensure_model(name, weights=args.weights, progress=False)
        convert_s = time.perf_counter() - t0
        model = load_model(onnx_path, threads=args.threads)
        labels = model.labels
        top1 = in5 = 0
        net_s = 0.0
        for path in gtzan:
            t0 = time.perf_counter()
            probs = predict_track(model, feats[path], windows=None)
            net_s += time.perf_counter() - t0
            genre = path.parent.name
            scores = {g: best(probs, labels, tags) for g, tags in GENRE_TAGS.items()}
            top1 += max(scores, key=scores.get) == genre and np.isfinite(scores[genre])
            top5 = {labels[i].lower() for i in np.argsort(-probs)[:5]}
            in5 += bool(top5 & GENRE_TAGS[genre])
            shows.append(f"{name:<16} {genre:<28} {', '.join(labels[i] for i in np.argsort(-probs)[:5])}")
        cc_hits = cc_n = sanity = 0
        for path in cc:
            probs = predict_track(model, feats[path], windows=None)
            top5 = {labels[i].lower() for i in np.argsort(-probs)[:5]}
            shows.append(f"{name:<16} {path.name[:28]:<28} {', '.join(labels[i] for i in np.argsort(-probs)[:5])}")
            for prefix, tags in EXPECTED_CC.items():
                if path.name.startswith(prefix):
                    cc_n += 1
                    cc_hits += bool(top5 & tags)
            if path.name.startswith(("Hungarian_Dance", "Kevin_MacLeod_-_P_I_Tchaikovsky")):
                sanity += best(probs, labels, CLASSICAL) > best(probs, labels, ROCK)
            if path.name.startswith("admiralbob77"):
                sanity += best(probs, labels, ELECTRONIC) > best(probs, labels, CLASSICAL)
        net_ms = net_s / len(gtzan) * 1000
        total_ms = feature_ms + net_ms
        named = sum(any(t.lower() in tags for t in labels) for tags in GENRE_TAGS.values())
        required = {"rock", "jazz", "metal", "electronic"} <= {t.lower() for t in labels}
        rows.append((sanity == 3 and required, int(top1) + in5 + cc_hits, -total_ms, name))
        print(
            f"{name:<16} {named:>3}/10 {top1:>7}/10 {in5:>10}/10 {cc_hits:>7}/{cc_n} {sanity:>4}/3 "
            f"{total_ms:>9.0f} {total_ms / feature_ms:>10.2f} {convert_s:>9.2f}"
        )
    print(f"# features alone (baseline): {feature_ms:.0f} ms per 30 s clip")
    choice = max(rows)[3]
    note = "" if choice == zoo.DEFAULT_TAGGER else f" (differs from DEFAULT_TAGGER {zoo.DEFAULT_TAGGER})"
    print(f"# choice (3/3 sanity + rock/jazz/metal/electronic tags, then most hits, then fastest): {choice}{note}")
    if args.cold:
        cold_start(gtzan[0], str(args.weights))
    load = os.getloadavg()
    print(f"# load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.show:
        print("\n".join(shows))


if __name__ == "__main__":
    main()
