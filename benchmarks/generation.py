#!/usr/bin/env python3
"""``specmusic generate`` on the soundtrack benchmark: FAD against baselines, conditional accuracy, inversion.

1. Trains the generator with ``specmusic generate train DATA -o RUN --minutes M`` exactly as a user would
   (skipped when RUN already holds a finished run, unless ``--retrain``), timing it and recording the
   load average. Training uses DATA/splits/train_filtered.txt only.
2. Reference set: one 6 s window (at 3 s) of each held-out clip (DATA/splits/test_filtered.txt), at most
   ``--per-label`` clips per label.
3. Sets compared with the reference, each of the same size and label mix:
   generated  — ``sample_spectrograms`` per label (seeded), inverted with ``mel_to_audio``
   (a) noise  — white noise shaped to the average real mel spectrum of the training clips
   (b) shuffled — another window (at 18 s) of the same held-out clips, mel frames shuffled in time,
       then inverted like the generated ones
   (c) inverted — that other window's mel, inverted unchanged (the ceiling of the pipeline)
   (d) real    — that other window's audio, not inverted (the floor of the distance)
4. Fréchet distance (FAD formula) between embedding sets of two pretrained taggers (VGGish cannot be
   downloaded here): jamendo-fcn (``specmusic classify``'s default; one pooled vector per clip, the
   6 s clip wrapped to its 29 s chunk) and mtat-musicnn (one vector per 3 s chunk).
5. Conditional accuracy: the ``specmusic train`` classifier on the generated clips of each label,
   beside its accuracy on the real (d) and inverted (c) windows of the same labels.
6. Spectral convergence of the inversion on the real windows; fast vs plain Griffin-Lim on the true
   STFT magnitude of a few of them.
7. Writes ten listening WAVs with the CLI (one per label + one unconditional) into RUN/listen/.

Example::

    nice -n 10 .venv/bin/python benchmarks/generation.py --minutes 25
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPECMUSIC = [str(ROOT / ".venv" / "bin" / "specmusic")] if (ROOT / ".venv" / "bin" / "specmusic").exists() else [
    sys.executable, "-m", "specmusic"]
SECONDS = 6.0


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# -- workers (one thread each) -----------------------------------------------------------------
def _init_worker() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass


def _invert_job(job: tuple[str, np.ndarray, dict, int]) -> tuple[str, float]:
    """Invert one dB mel to ``path``; returns (path, spectral convergence dB)."""
    from specmusic.audio import save_audio
    from specmusic.features import FeatureConfig
    from specmusic.inversion import mel_to_audio

    path, mel_db, fc_dict, seed = job
    fc = FeatureConfig.from_dict(fc_dict)
    y, sc = mel_to_audio(mel_db, config=fc, seed=seed)
    save_audio(path, y, fc.sample_rate)
    return path, sc


def _gl_compare_job(job: tuple[np.ndarray, int]) -> tuple[float, float]:
    from specmusic.inversion import griffin_lim
    from specmusic.stft import stft

    y, seed = job
    mag = np.abs(stft(y))
    return griffin_lim(mag, momentum=0.99, seed=seed)[1], griffin_lim(mag, momentum=0.0, seed=seed)[1]


# -- statistics ------------------------------------------------------------------------------
def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of ``a`` and ``b`` (the FAD formula)."""
    from scipy import linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(s1 @ s2, disp=False)
    covmean = covmean.real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def embed_set(model, paths: list[str], *, pooled: bool) -> np.ndarray:
    from specmusic.features import chunk_features
    from specmusic.inference import embed_track, run_chunks, track_features

    if pooled:
        return np.stack([embed_track(model, p) for p in paths])
    rows = []
    for p in paths:
        spec, _ = track_features(model, p)
        rows.append(run_chunks(model, chunk_features(spec, model.chunk_frames, model.chunk_hop_frames), embedding=True))
    return np.concatenate(rows)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "benchmarks/data/soundtracks")
    ap.add_argument("--run", type=Path, default=ROOT / "benchmarks/data/runs/generate")
    ap.add_argument("--minutes", type=float, default=25.0, help="training budget when (re)training")
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--classifier", type=Path, default=ROOT / "benchmarks/data/runs/train_genre/default/model.onnx")
    ap.add_argument("--weights", default=str(ROOT.parent / "shared/weights/sota-music-tagging"))
    ap.add_argument("--per-label", type=int, default=10)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--guidance", type=float, default=2.0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-listen", action="store_true", help="skip the ten listening WAVs")
    return ap.parse_args()


@dataclass
class Sets:
    """The compared sets: WAV paths and labels per set, the mels still to invert, Griffin-Lim inputs."""

    paths: dict[str, list[str]] = field(
        default_factory=lambda: {k: [] for k in ("reference", "generated", "noise", "shuffled", "inverted", "real")})
    labels: dict[str, list[str]] = field(default_factory=dict)
    jobs: list[tuple[str, np.ndarray, dict, int]] = field(default_factory=list)
    gl_inputs: list[tuple[np.ndarray, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.labels = {k: [] for k in self.paths}

    def add(self, kind: str, path: str, label: str) -> None:
        self.paths[kind].append(path)
        self.labels[kind].append(label)


def train_if_needed(args: argparse.Namespace, results: dict) -> None:
    """Step 1: ``specmusic generate train`` as a user runs it, unless RUN holds a finished run."""
    meta_path = args.run / "config.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if args.retrain or not meta.get("training"):
        cmd = [*SPECMUSIC, "generate", "train", str(args.data), "-o", str(args.run), "--minutes", str(args.minutes),
               "--seed", str(args.seed), "--threads", "1"]
        say(f"$ {' '.join(cmd)}   (load {load()})")
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        results["train_wall_s"] = round(time.perf_counter() - t0, 1)
        results["load_after_train"] = load()
        meta = json.loads(meta_path.read_text())
    results["training"] = meta["training"]


def held_out_clips(args: argparse.Namespace, labels: list[str], rng: np.random.Generator) -> list:
    """Step 2: at most ``--per-label`` clips per label of DATA/splits/test_filtered.txt."""
    from specmusic.data import discover_tracks, read_split_list, track_key

    tracks, _ = discover_tracks([str(args.data)])
    test_keys = read_split_list(args.data / "splits" / "test_filtered.txt")
    test = sorted((t for t in tracks if track_key(t.relpath) in test_keys), key=lambda t: t.relpath)
    chosen: list = []
    for lab in labels:
        of_label = [t for t in test if t.label == lab]
        idx = rng.permutation(len(of_label))[: args.per_label]
        chosen += [of_label[i] for i in sorted(idx)]
    say(f"held-out clips: {len(chosen)} ({', '.join(f'{l} {sum(t.label == l for t in chosen)}' for l in labels)})")
    return chosen


def add_real_sets(sets: Sets, chosen: list, gen, bench: Path, seed: int, rng: np.random.Generator) -> None:
    """The reference window and (b) shuffled, (c) inverted, (d) real from another window of each clip."""
    from specmusic.audio import load_audio, loudness_normalize, save_audio
    from specmusic.features import compute_features
    from specmusic.generation import denormalize_db, normalize_db

    fc, cfg = gen.config.feature_config, gen.config
    n_samples = int(round(SECONDS * fc.sample_rate))
    for i, t in enumerate(chosen):
        y_ref, _ = load_audio(t.path, sr=fc.sample_rate, offset=3.0, duration=SECONDS)
        y_b, _ = load_audio(t.path, sr=fc.sample_rate, offset=18.0, duration=SECONDS)
        stem = Path(t.relpath).stem
        for kind, y in (("reference", y_ref), ("real", y_b)):
            p = str(bench / kind / f"{stem}.wav")
            save_audio(p, loudness_normalize(y[:n_samples]), fc.sample_rate)
            sets.add(kind, p, t.label)
        mel = denormalize_db(normalize_db(compute_features(y_b[:n_samples], fc), db_range=cfg.db_range), db_range=cfg.db_range)
        shuffled = mel[:, rng.permutation(mel.shape[1])]
        for kind, m in (("inverted", mel), ("shuffled", shuffled)):
            p = str(bench / kind / f"{stem}.wav")
            sets.jobs.append((p, m, fc.to_dict(), seed + i))
            sets.add(kind, p, t.label)
        if i < 12:
            sets.gl_inputs.append((y_b[:n_samples].astype(np.float64), seed + i))


def add_noise_set(sets: Sets, chosen: list, gen, run: Path, bench: Path) -> None:
    """(a) noise shaped to the average mel power of the training clips."""
    from specmusic.audio import loudness_normalize, save_audio
    from specmusic.generation import denormalize_db
    from specmusic.inversion import mel_to_linear
    from specmusic.stft import istft, stft

    fc, cfg = gen.config.feature_config, gen.config
    n_samples = int(round(SECONDS * fc.sample_rate))
    with np.load(run / "features.npz", allow_pickle=False) as z:
        train_db = denormalize_db(z["specs"], db_range=cfg.db_range)
    mean_power = (10.0 ** (train_db / 10.0)).mean(axis=1)
    shape = np.sqrt(mel_to_linear(mean_power[:, None], config=fc))[:, 0]
    for i, t in enumerate(chosen):
        noise = np.random.default_rng(10_000 + i).standard_normal(n_samples)
        y = istft(stft(noise) * shape[:, None], length=n_samples)
        p = str(bench / "noise" / f"noise_{i:03d}.wav")
        save_audio(p, loudness_normalize(y), fc.sample_rate)
        sets.add("noise", p, t.label)


def add_generated_set(sets: Sets, chosen: list, gen, args: argparse.Namespace, bench: Path) -> float:
    """Generated: as many per label as the reference has; returns the sampling time in seconds."""
    from specmusic.generation import denormalize_db, sample_spectrograms

    fc, cfg = gen.config.feature_config, gen.config
    t0 = time.perf_counter()
    for li, lab in enumerate(gen.labels):
        k = sum(t.label == lab for t in chosen)
        if not k:
            continue
        specs = sample_spectrograms(gen, n=k, label=lab, seconds=SECONDS, steps=args.steps, guidance=args.guidance,
                                    seed=args.seed + 1000 * li)
        for j, x in enumerate(specs):
            p = str(bench / "generated" / f"{lab}_{j:03d}.wav")
            sets.jobs.append((p, denormalize_db(x, db_range=cfg.db_range), fc.to_dict(), args.seed + 5000 + 100 * li + j))
            sets.add("generated", p, lab)
    return round(time.perf_counter() - t0, 1)


def invert_all(sets: Sets, n_jobs: int, results: dict) -> None:
    """Step 6: invert every mel in worker processes; spectral convergence, fast vs plain Griffin-Lim."""
    t0 = time.perf_counter()
    sc: dict[str, float] = {}
    with ProcessPoolExecutor(n_jobs, initializer=_init_worker) as pool:
        for path, value in pool.map(_invert_job, sets.jobs, chunksize=4):
            sc[path] = value
        gl_cmp = list(pool.map(_gl_compare_job, sets.gl_inputs))
    results["inversion_s"] = round(time.perf_counter() - t0, 1)
    results["spectral_convergence_db"] = {
        kind: {"mean": round(float(np.mean([sc[p] for p in sets.paths[kind]])), 2),
               "std": round(float(np.std([sc[p] for p in sets.paths[kind]])), 2)}
        for kind in ("inverted", "shuffled", "generated")
    }
    results["griffin_lim_on_true_stft_db"] = {
        "fast_momentum_0.99": round(float(np.mean([a for a, _ in gl_cmp])), 2),
        "plain": round(float(np.mean([b for _, b in gl_cmp])), 2),
        "n_clips": len(gl_cmp),
    }


def frechet_distances(sets: Sets, weights: str) -> dict[str, dict[str, float]]:
    """Step 4: each set's Fréchet distance to the reference, in two taggers' embeddings."""
    from specmusic.inference import load_model
    from specmusic.models.zoo import ensure_model

    fad: dict[str, dict[str, float]] = {}
    for tagger, pooled in (("jamendo-fcn", True), ("mtat-musicnn", False)):
        model = load_model(ensure_model(tagger, weights=weights, progress=True))
        emb = {k: embed_set(model, v, pooled=pooled) for k, v in sets.paths.items()}
        fad[tagger] = {k: round(frechet(emb[k], emb["reference"]), 4) for k in sets.paths if k != "reference"}
        fad[tagger]["n_vectors_per_set"] = int(len(emb["reference"]))
        fad[tagger]["dim"] = int(emb["reference"].shape[1])
        say(f"{tagger}: {fad[tagger]}")
    return fad


def conditional_accuracy(sets: Sets, classifier: Path) -> dict[str, dict[str, float]]:
    """Step 5: the trained classifier's accuracy per label on the generated, inverted and real sets."""
    from specmusic.inference import load_model, predict_track

    clf = load_model(classifier)
    acc: dict[str, dict[str, float]] = {}
    for kind in ("generated", "inverted", "real"):
        per: dict[str, list[bool]] = {}
        for p, lab in zip(sets.paths[kind], sets.labels[kind]):
            probs = predict_track(clf, p)
            per.setdefault(lab, []).append(clf.labels[int(np.argmax(probs))] == lab)
        acc[kind] = {lab: round(float(np.mean(v)), 3) for lab, v in per.items()}
        acc[kind]["mean_over_labels"] = round(float(np.mean([np.mean(v) for v in per.values()])), 3)
    return acc


def write_listening_wavs(run: Path, labels: list[str]) -> list[str]:
    """Step 7: ten listening WAVs via the CLI (one per label, then one unconditional)."""
    listen = run / "listen"
    for lab in [*labels, None][:10]:
        cmd = [*SPECMUSIC, "generate", "sample", str(run), "-n", "1", "--seconds", "6", "--seed", "7", "-o", str(listen)]
        cmd += ["--label", lab] if lab else []
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return sorted(str(p.relative_to(ROOT)) for p in listen.glob("*.wav"))


def main() -> int:
    args = parse_args()

    import torch

    torch.set_num_threads(1)
    from specmusic.generation import load_generator

    run, bench = args.run, args.run / "bench"
    results: dict = {"load_before": load()}
    train_if_needed(args, results)
    gen = load_generator(run, threads=1)
    bench.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(args.seed)
    chosen = held_out_clips(args, gen.labels, rng)
    sets = Sets()
    add_real_sets(sets, chosen, gen, bench, args.seed, rng)
    add_noise_set(sets, chosen, gen, run, bench)
    results["sampling_s"] = add_generated_set(sets, chosen, gen, args, bench)
    say(f"sampled {len(sets.paths['generated'])} × {SECONDS:g} s in {results['sampling_s']} s; inverting "
        f"{len(sets.jobs)} mels with {args.jobs} workers (load {load()})")
    invert_all(sets, args.jobs, results)
    results["frechet"] = frechet_distances(sets, args.weights)
    results["classifier_accuracy"] = conditional_accuracy(sets, args.classifier)
    results["n_per_set"] = len(chosen)
    results["load_after"] = load()
    if not args.no_listen:
        results["listen"] = write_listening_wavs(run, gen.labels)

    (bench / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print_table(results, gen.labels)
    return 0


def print_table(r: dict, labels: list[str]) -> None:
    fj, fm = r["frechet"]["jamendo-fcn"], r["frechet"]["mtat-musicnn"]
    print(f"| set ({r['n_per_set']} clips × {SECONDS:g} s) | FD jamendo-fcn (pooled) | FD mtat-musicnn (3 s chunks) |")
    print("|---|---:|---:|")
    names = {"generated": "generated (flow-matching U-Net)", "noise": "(a) noise, average real spectrum",
             "shuffled": "(b) real, frames shuffled, inverted", "inverted": "(c) real, inverted (ceiling)",
             "real": "(d) real, other window, not inverted"}
    for k, name in names.items():
        print(f"| {name} | {fj[k]:.3f} | {fm[k]:.3f} |")
    print()
    acc = r["classifier_accuracy"]
    print("| label | generated | real inverted (c) | real (d) |")
    print("|---|---:|---:|---:|")
    for lab in [*labels, "mean_over_labels"]:
        print(f"| {lab} | {acc['generated'].get(lab, float('nan')):.2f} | {acc['inverted'].get(lab, float('nan')):.2f} "
              f"| {acc['real'].get(lab, float('nan')):.2f} |")
    print()
    s = r["spectral_convergence_db"]
    g = r["griffin_lim_on_true_stft_db"]
    print(f"spectral convergence (mel → NNLS → fast GL, 64 it): real {s['inverted']['mean']} ± {s['inverted']['std']} dB, "
          f"generated {s['generated']['mean']} ± {s['generated']['std']} dB")
    print(f"GL on true |STFT| ({g['n_clips']} clips): fast {g['fast_momentum_0.99']} dB vs plain {g['plain']} dB")
    t = r["training"]
    print(f"training: {t['steps']} steps, {t['epochs']} epochs, {t['seconds'] / 60:.1f} min, loss {t['first_loss']} → "
          f"{t['final_loss']}; sampling {r['sampling_s']} s, inversion {r['inversion_s']} s; "
          f"load {r['load_before']} → {r['load_after']}")


if __name__ == "__main__":
    sys.exit(main())
