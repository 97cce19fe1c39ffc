"""Do `specmusic playlist`'s mixes keep to the seed's music and keep the rules? And which duplicate
test catches real copies? One run, every figure side by side.

    nice -n 10 .venv/bin/python benchmarks/playlist_quality.py               # soundtracks + other-games
    python benchmarks/playlist_quality.py --collection benchmarks/data/third-games --playlists 20

**Data.** Each collection (``benchmarks/soundtracks.py`` layout: ``<label>/<clip>.ogg`` and
manifest.csv ``path,label,group``; one label = one game's soundtrack) is copied into ``--work`` and
every clip is given real tags with mutagen, written into the copy (the originals are not touched):
artist = album = the soundtrack (one soundtrack = one "album"; its composer is not in the manifest),
title = the source track and clip number, genre ``Soundtrack``. Then **planted duplicates**: 24 clips
(seeded) get a second copy under another name, on another album ("<game> — Best of"), with another
title (so the tags cannot tell): 8 byte-identical copies, 8 re-encoded to MP3 (ffmpeg, 160 kbit/s),
8 re-encoded to Ogg Vorbis (quality 3) with their first second cut (another edit of the same
recording; Opus was the first choice, but libsndfile 1.2.2 refuses half of ffmpeg's Opus files).
The copy is embedded with the default model by the code users run (``embed_library``).

**Duplicates.** Every pair of the collection is scored by (a) the cosine of the stored vectors,
(b) the same after z-scoring each column with the library's statistics (what the playlist's
``duplicate_cosine`` compares), (c) the cosine in the search space (the library's learnt space), and
(d) describe's audio fingerprint (what ``--dedupe-audio`` compares: :mod:`specmusic.playlists.audio`,
describe's matching and thresholds). For each: the planted pairs found (recall) and the other pairs
flagged; for the cosines also the lowest planted pair of each kind against the highest other pair (a
threshold separates them when the first is above the second).

**Playlists** (the rule, set before the run: the default ``balance`` is the one of 0.25, 0.5, 0.75
with the highest same-soundtrack share of consecutive pairs averaged over the collections, gaps off).
For ``--playlists`` seed clips (seeded, original clips only) and ``--tracks`` tracks:

* ours: ``make_playlist`` with the default rules, the same with ``--dedupe-audio``, and with the gaps
  off (artist and album gaps 0; seed echo and duplicates still ruled out) at balance 0.25, 0.5, 0.75;
* random order: tracks drawn at random (seeded) from the library, the seed left out;
* plain top-k: the seed's nearest tracks in rank order (``recommend``).

Figures: the share of consecutive pairs (seed → first track included) from the same soundtrack, the
share of tracks from the seed's soundtrack, the rule breaks under the default rules
(:func:`specmusic.playlists.rule_violations`: seed echo, artist gap, album gap, tags naming one
recording; ours must show 0) and the planted copies heard twice (a clip and its copy both among the
seed and the tracks).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from specmusic.data import Track  # noqa: E402
from specmusic.describe.fingerprint import Fingerprint, find_near_duplicates  # noqa: E402
from specmusic.embeddings import EmbeddingLibrary, embed_library, make_embedder, open_recommender, search_vectors  # noqa: E402
from specmusic.index import l2_normalize, standardize_columns  # noqa: E402
from specmusic.playlists import Playlist, PlaylistConfig, PlaylistEntry, make_playlist, rule_violations  # noqa: E402
from specmusic.playlists.audio import AudioFingerprints, fingerprint_file  # noqa: E402

COLLECTIONS = [ROOT / "benchmarks" / "data" / "soundtracks", ROOT / "benchmarks" / "data" / "other-games"]
PLANTED = {"copy": 8, "mp3": 8, "vorbis-cut": 8}
BALANCES = (0.25, 0.5, 0.75)


def _log(line: str) -> None:
    print(f"# {line}", file=sys.stderr, flush=True)


# -- 1. the tagged copy with planted duplicates ---------------------------------------------
def _tag(path: Path, artist: str, album: str, title: str, track: int) -> None:
    import mutagen

    f = mutagen.File(path, easy=True)
    if f.tags is None:
        f.add_tags()
    f["artist"], f["album"], f["title"], f["tracknumber"], f["genre"] = artist, album, title, str(track), "Soundtrack"
    f.save()


def _encode(src: Path, dst: Path, kind: str) -> None:
    args = {"mp3": ["-c:a", "libmp3lame", "-b:a", "160k"], "vorbis-cut": ["-ss", "1.0", "-c:a", "libvorbis", "-q:a", "3"]}
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), *args[kind], "-map_metadata", "-1", str(dst)], check=True)


def prepare(data: Path, work: Path, seed: int) -> tuple[list[Track], list[tuple[str, str, str]]]:
    """The tagged copy of ``data`` under ``work/music`` and its planted duplicates ``(original, copy, kind)``."""
    music, done = work / "music", work / "prepared.json"
    with open(data / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if done.is_file():
        planted = [tuple(p) for p in json.loads(done.read_text())["planted"]]
    else:
        shutil.rmtree(music / "compilations", ignore_errors=True)
        planted = []
        for i, row in enumerate(rows):
            dst = music / row["path"]
            if dst.is_file():  # copied and tagged by an earlier run (its library keeps it: no re-embedding)
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(data / row["path"], dst)
            slug = row["group"].split("/", 1)[-1]
            _tag(dst, row["label"], row["label"], f"{slug} {Path(row['path']).stem.rsplit('.', 1)[-1]}", i % 99 + 1)
        rng = np.random.default_rng(seed)
        chosen = rng.choice(len(rows), size=sum(PLANTED.values()), replace=False)
        kinds = [k for k, n in PLANTED.items() for _ in range(n)]
        for n, (i, kind) in enumerate(zip(chosen.tolist(), kinds)):
            row = rows[i]
            ext = {"copy": ".ogg", "mp3": ".mp3", "vorbis-cut": ".ogg"}[kind]
            dst = music / "compilations" / f"{row['label']} best of {n:02d}{ext}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            src = music / row["path"]
            shutil.copyfile(src, dst) if kind == "copy" else _encode(src, dst, kind)
            _tag(dst, row["label"], f"{row['label']} — Best of", f"Track {n + 1}", n + 1)
            planted.append((str(src), str(dst), kind))
        done.write_text(json.dumps({"planted": planted}))
    tracks = [Track(str(music / r["path"]), r["path"], r["label"], r["group"]) for r in rows]
    for src, dst, _ in planted:
        original = next(t for t in tracks if t.path == src)
        tracks.append(Track(dst, os.path.relpath(dst, music), original.label, original.group))
    return tracks, planted  # type: ignore[return-value]


def embed(tracks: list[Track], work: Path) -> tuple[Path, EmbeddingLibrary]:
    """The default model's library of the copy (incremental: a rerun embeds nothing)."""
    out = work / "library.npz"
    t0 = time.perf_counter()
    outcome = embed_library(tracks, embedder=lambda: make_embedder(None), output=str(out), prune=True, on_error=_log)
    _log(f"{outcome.summary()} ({time.perf_counter() - t0:.0f} s)")
    return out, outcome.library  # type: ignore[return-value]


# -- 2. duplicates --------------------------------------------------------------------------
def _pair_table(sim: np.ndarray, ids: list[str], planted: list[tuple[str, str, str]]) -> tuple[float, dict[str, float]]:
    """The highest pair that is not planted, and the lowest planted pair of each kind."""
    iu = np.triu_indices(len(ids), 1)
    truth = {frozenset((a, b)) for a, b, _ in planted}
    is_planted = np.array([frozenset((ids[a], ids[b])) in truth for a, b in zip(*iu)], bool)
    row = {i: n for n, i in enumerate(ids)}
    kinds = {kind: round(float(min(sim[row[a], row[b]] for a, b, k in planted if k == kind)), 4) for kind in PLANTED}
    return float(sim[iu][~is_planted].max()), kinds


def fingerprints(ids: list[str], work: Path) -> tuple[dict[str, Fingerprint], float]:
    """``--dedupe-audio``'s fingerprint of every track (cached in ``work``), and the seconds spent making them."""
    cache = work / "fingerprints.npz"
    stored = dict(np.load(cache, allow_pickle=False)) if cache.is_file() else {}
    out, t0, made = {}, time.perf_counter(), 0
    for n, path in enumerate(ids):
        key = f"f{n}"
        if f"{key}_bits" not in stored:
            fp = fingerprint_file(path)
            stored[f"{key}_bits"], stored[f"{key}_valid"], made = fp.bits, fp.valid, made + 1
        out[path] = Fingerprint(stored[f"{key}_bits"], stored[f"{key}_valid"])
    if made:
        np.savez(cache, **stored)
    return out, time.perf_counter() - t0


def duplicates(library: EmbeddingLibrary, planted: list[tuple[str, str, str]], prints: dict[str, Fingerprint],
               threshold: float) -> dict[str, object]:  # fmt: skip
    """Each duplicate test's recall and false pairs on the planted copies (module docstring)."""
    ids = library.ids
    truth = {frozenset((a, b)) for a, b, _ in planted}
    spaces = {
        "stored vectors": l2_normalize(library.vectors),
        "stored, columns z-scored": l2_normalize(standardize_columns(library.vectors)[0]),
        "search space": l2_normalize(search_vectors(library)),
    }
    out: dict[str, object] = {}
    for name, x in spaces.items():
        sim = x @ x.T
        high, kinds = _pair_table(sim, ids, planted)
        row: dict[str, object] = {"lowest planted, by kind": kinds, "highest other": round(high, 4)}
        if name == "stored, columns z-scored":
            iu = np.triu_indices(len(ids), 1)
            flagged = {frozenset((ids[a], ids[b])) for a, b in zip(*iu) if sim[a, b] >= threshold}
            row[f"at {threshold}"] = {"planted found": len(flagged & truth), "other pairs": len(flagged - truth)}
        out[name] = row
    found = {frozenset((ids[m.a], ids[m.b])) for m in find_near_duplicates([prints[i] for i in ids])}
    by_kind = {kind: sum(frozenset((a, b)) in found for a, b, k in planted if k == kind) for kind in PLANTED}
    out["audio fingerprint"] = {"planted found": len(found & truth), "by kind": by_kind, "other pairs": len(found - truth)}
    return out


# -- 3. playlists ---------------------------------------------------------------------------
def _as_playlist(ids: list[str], seed: str, meta: dict[str, PlaylistEntry]) -> Playlist:
    return Playlist([meta[i] for i in ids], "seeds", [meta[seed]], PlaylistConfig())


def _coherence(playlist: Playlist, label: dict[str, str], seed: str) -> tuple[float, float]:
    chain = [seed, *playlist.ids]
    same = [label[a] == label[b] for a, b in zip(chain, chain[1:])]
    return float(np.mean(same)), float(np.mean([label[i] == label[seed] for i in playlist.ids]))


def playlists(source: Path, library: EmbeddingLibrary, planted: list[tuple[str, str, str]], *, n: int, tracks: int,
              seed: int, prints: dict[str, Fingerprint]) -> dict[str, dict[str, float]]:  # fmt: skip
    """Coherence and violations of each method, averaged over ``n`` seeds (module docstring)."""
    rec = open_recommender(str(source), save_index=False)
    label = dict(zip(library.ids, library.labels))
    copies = [(a, b) for a, b, _ in planted]
    audio = AudioFingerprints(prints)
    meta = {i: PlaylistEntry(i, 0.0, metadata=library.metadata[j], label=library.labels[j]) for j, i in enumerate(library.ids)}
    originals = sorted(set(library.ids) - {b for _, b, _ in planted})
    rng = np.random.default_rng(seed)
    seeds = [originals[i] for i in rng.choice(len(originals), size=n, replace=False)]
    methods: dict[str, dict[str, list[float]]] = {}

    def note(name: str, playlist: Playlist, s: str) -> None:
        row = methods.setdefault(name, {"same-soundtrack pairs": [], "from the seed's soundtrack": [], "rule breaks": [],
                                        "copies heard twice": [], "tracks": []})  # fmt: skip
        pairs, share = _coherence(playlist, label, s)
        heard = {s, *playlist.ids}
        row["same-soundtrack pairs"].append(pairs)
        row["from the seed's soundtrack"].append(share)
        row["rule breaks"].append(sum(len(v) for v in rule_violations(playlist).values()))
        row["copies heard twice"].append(sum(a in heard and b in heard for a, b in copies))
        row["tracks"].append(len(playlist))

    with_audio = PlaylistConfig(audio_duplicates=True)
    for k, s in enumerate(seeds):
        note("ours, default rules", make_playlist(rec, seeds=[s], tracks=tracks, random_seed=k), s)
        note("ours, + --dedupe-audio",
             make_playlist(rec, seeds=[s], tracks=tracks, random_seed=k, config=with_audio, fingerprints=audio), s)
        for b in BALANCES:
            flow = PlaylistConfig(balance=b, artist_gap=0, album_gap=0)
            note(f"ours, gaps off, balance {b}", make_playlist(rec, seeds=[s], tracks=tracks, config=flow, random_seed=k), s)
        others = [i for i in library.ids if i != s]
        note("random order", _as_playlist([others[j] for j in rng.choice(len(others), tracks, replace=False)], s, meta), s)
        top = [nb["id"] for nb in rec.recommend([s], k=tracks)[0]["neighbors"]]
        note("plain top-k (recommend)", _as_playlist(top, s, meta), s)
    return {name: {key: float(np.mean(v)) for key, v in row.items()} for name, row in methods.items()}


def _print(name: str, dup: dict[str, object], quality: dict[str, dict[str, float]], n: int, seconds: float) -> None:
    print(f"\n## {name}: duplicates ({sum(PLANTED.values())} planted pairs: {PLANTED}; "
          f"fingerprints of every track made in {seconds:.0f} s)")  # fmt: skip
    for test, r in dup.items():
        print(f"{test:26s} {json.dumps(r, ensure_ascii=False)}")
    print(f"\n## {name}: playlists ({n} seeds; rule breaks under the default rules)")
    print(f"{'method':34s} {'same-soundtrack pairs':>21s} {'from seed soundtrack':>20s} {'rule breaks':>11s} "
          f"{'copies twice':>12s} {'tracks':>6s}")  # fmt: skip
    for method, row in quality.items():
        pairs, share = row["same-soundtrack pairs"], row["from the seed's soundtrack"]
        print(f"{method:34s} {pairs:21.3f} {share:20.3f} {row['rule breaks']:11.2f} {row['copies heard twice']:12.2f} "
              f"{row['tracks']:6.1f}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--collection", type=Path, action="append", help="benchmarks/soundtracks.py layout (repeatable)")
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "specmusic-playlist-bench")
    ap.add_argument("--playlists", type=int, default=40)
    ap.add_argument("--tracks", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    balance_scores: dict[float, list[float]] = {b: [] for b in BALANCES}
    t0 = time.perf_counter()
    for data in args.collection or COLLECTIONS:
        work = args.work / data.name
        work.mkdir(parents=True, exist_ok=True)
        tracks, planted = prepare(data, work, args.seed)
        source, library = embed(tracks, work)
        prints, seconds = fingerprints(library.ids, work)
        dup = duplicates(library, planted, prints, PlaylistConfig().duplicate_cosine)
        quality = playlists(source, library, planted, n=args.playlists, tracks=args.tracks, seed=args.seed, prints=prints)
        _print(data.name, dup, quality, args.playlists, seconds)
        for b in BALANCES:
            balance_scores[b].append(quality[f"ours, gaps off, balance {b}"]["same-soundtrack pairs"])
    best = max(BALANCES, key=lambda b: (round(float(np.mean(balance_scores[b])), 3), b == 0.5))
    print(f"\n# the rule's default balance: {best} (mean same-soundtrack pairs, gaps off: "
          + ", ".join(f"{b}: {np.mean(v):.3f}" for b, v in balance_scores.items()) + ")")
    print(f"# {time.perf_counter() - t0:.0f} s; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} cores")


if __name__ == "__main__":
    main()
