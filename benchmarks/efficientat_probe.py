"""EfficientAT mn04_as in specmusic: the window length, the speed, and what it hears in the sample music.

Run (the checkpoint and labels from ../shared/weights/efficientat; torch and onnx for the conversion)::

    .venv/bin/python benchmarks/efficientat_probe.py [--weights DIR] [--data DIR] [--repeats 20]

Window length (rule stated before measuring): the network was trained on AudioSet's 10 s clips, so
10 s is the default unless a shorter window gives, on BOTH collections (cc-music: 8 CC excerpts;
gtzan-sample: 10 GTZAN clips of 30 s), the same track outputs as 10 s windows: the same 5 best
classes (at least 4.5 of 5 shared on average), ``Music`` within 0.02, and track embeddings at cosine
0.995 or more. A window of its own length analyses no more audio per second than a longer one
(the network is convolutional, its cost grows with the frames), so a shorter window would only pay
for tracks longer than ``--windows`` × its length. Each track is cut into windows as
:mod:`specmusic.inference` cuts it (every chunk, no overlap; the last one ends at the track's end;
a short track repeated to fill one), fed to the torch network from the numpy front end, and its
window probabilities and embeddings are pooled as ``analyse_track`` pools them. ``whole`` is one
pass over the whole clip (no windows) for comparison.

Speed (one core: onnxruntime with 1 intra-op thread): the ONNX network over a 30 s clip (three
10 s windows, one per call, as ``classify`` runs them), the numpy front end over the same 30 s
(pre-emphasis, STFT, Kaldi mel, log), and ``analyse_track`` on the clip's 32 kHz WAV (decoding
included), median of ``--repeats``. Then the 5 best AudioSet classes of each cc-music clip through
``load_model`` + ``analyse_track`` (the default 6 windows), and the ONNX file's size and sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from specmusic.audio import load_audio, save_audio
from specmusic.features import chunk_features, compute_features
from specmusic.inference import analyse_track, load_model
from specmusic.models.efficientat import (
    EFFICIENTAT_FEATURES,
    INPUT_NORM,
    convert_efficientat,
    load_efficientat,
    read_audioset_labels,
)

SHARED = ROOT.parent / "shared"
CANDIDATES = (10.0, 5.0, 3.0, 2.0)  # seconds per window; 10 s first (the reference)
SR = EFFICIENTAT_FEATURES.sample_rate


def collections(data: Path) -> dict[str, list[Path]]:
    """The two collections: cc-music's .ogg excerpts and gtzan-sample's one .au clip per genre."""
    return {
        "cc-music": sorted((data / "cc-music").glob("*.ogg")),
        "gtzan-sample": sorted((data / "gtzan-sample").glob("*/*.au")),
    }


def pooled(net: object, spec: np.ndarray, seconds: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Track probabilities and L2-normalised embedding from windows of ``seconds`` (None: the whole clip)."""
    import torch

    mean, std = INPUT_NORM
    if seconds is None:
        chunks = spec[None, None]
    else:
        frames = EFFICIENTAT_FEATURES.n_frames(round(seconds * SR))
        chunks = chunk_features(spec, frames, frames)
    with torch.no_grad():
        logits, emb = net(torch.from_numpy((chunks - mean) / std).float())  # type: ignore[operator]
    probs = torch.sigmoid(logits).mean(0).numpy()
    e = emb.mean(0).numpy()
    return probs, e / np.linalg.norm(e)


def window_table(net: object, sets: dict[str, list[Path]], labels: list[str]) -> dict[str, dict[str, float]]:
    """Per collection and window length: top-5 shared with 10 s, |ΔMusic|, embedding cosine (means)."""
    music = labels.index("Music")
    rows: dict[str, dict[str, float]] = {}
    for name, paths in sets.items():
        stats: dict[str, list[tuple[float, float, float]]] = {}
        for path in paths:
            y, _ = load_audio(path, sr=SR)
            spec = compute_features(y, EFFICIENTAT_FEATURES)
            ref_p, ref_e = pooled(net, spec, CANDIDATES[0])
            ref_top = set(np.argsort(-ref_p)[:5].tolist())
            for seconds in (*CANDIDATES[1:], None):
                p, e = pooled(net, spec, seconds)
                shared = len(ref_top & set(np.argsort(-p)[:5].tolist()))
                key = "whole" if seconds is None else f"{seconds:g} s"
                stats.setdefault(key, []).append((shared, abs(p[music] - ref_p[music]), float(e @ ref_e)))
        for key, values in stats.items():
            a = np.array(values)
            rows[f"{name} {key}"] = {"top5": a[:, 0].mean(), "dmusic": a[:, 1].max(), "cos_min": a[:, 2].min(),
                                     "cos_mean": a[:, 2].mean()}  # fmt: skip
    return rows


def median_seconds(fn: object, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def speed(model_path: Path, clip: Path, repeats: int, scratch: Path) -> dict[str, float]:
    """Seconds (median) of the ONNX network over 30 s, the front end over 30 s, and analyse_track."""
    model = load_model(model_path, threads=1)
    y, _ = load_audio(clip, sr=SR, duration=30.0)
    wav = scratch / "clip32k.wav"
    save_audio(wav, y, SR)
    spec = compute_features(y, EFFICIENTAT_FEATURES)
    chunks = chunk_features(spec, model.chunk_frames, model.chunk_hop_frames)
    x = ((chunks - INPUT_NORM[0]) / INPUT_NORM[1]).astype(np.float32)

    def network() -> None:
        for window in x:
            model.session.run(["logits", "embedding"], {"spec": window[None]})

    return {
        "windows": float(len(x)),
        "network_30s": median_seconds(network, repeats),
        "frontend_30s": median_seconds(lambda: compute_features(y, EFFICIENTAT_FEATURES), repeats),
        "analyse_track_30s": median_seconds(
            lambda: analyse_track(model, wav, outputs=("logits", "embedding")), max(3, repeats // 4)
        ),
    }


def top_classes(model_path: Path, paths: list[Path], k: int = 5) -> list[tuple[str, list[tuple[str, float]]]]:
    model = load_model(model_path, threads=1)
    out = []
    for path in paths:
        probs = analyse_track(model, path).probabilities
        assert probs is not None
        order = np.argsort(-probs)[:k]
        out.append((path.stem, [(model.labels[i], float(probs[i])) for i in order]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=SHARED / "weights" / "efficientat")
    parser.add_argument("--data", type=Path, default=SHARED / "data")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    checkpoint = args.weights / "mn04_as_mAP_432.pt"
    labels = read_audioset_labels(args.weights / "audioset_class_labels_indices.csv")
    sets = collections(args.data)
    net = load_efficientat(checkpoint)
    print("window length vs 10 s windows (top5: classes shared, of 5, mean; dmusic: max |ΔMusic|; "
          "cosine of track embeddings: min, mean)")  # fmt: skip
    for key, row in window_table(net, sets, labels).items():
        print(f"  {key:<22} top5 {row['top5']:.2f}  dmusic {row['dmusic']:.3f}  "
              f"cos {row['cos_min']:.4f} / {row['cos_mean']:.4f}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="specmusic-efficientat-") as tmp:
        scratch = Path(tmp)
        model_path = convert_efficientat(checkpoint, scratch / "audioset-mn04.onnx")
        data = model_path.read_bytes()
        print(f"ONNX: {len(data):,} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
        clip = sets["gtzan-sample"][0]
        figures = speed(model_path, clip, args.repeats, scratch)
        print(f"speed on one core ({clip.name}, {figures['windows']:.0f} windows of 10 s): network "
              f"{1000 * figures['network_30s']:.1f} ms / 30 s; front end {1000 * figures['frontend_30s']:.1f} ms / "
              f"30 s; analyse_track {1000 * figures['analyse_track_30s']:.1f} ms")  # fmt: skip
        print("top-5 AudioSet classes (analyse_track, default windows):")
        for name, top in top_classes(model_path, sets["cc-music"] + sets["gtzan-sample"]):
            print(f"  {name[:48]:<48} " + "; ".join(f"{label} {p:.2f}" for label, p in top))
    print(f"(cores available: {len(os.sched_getaffinity(0))}; torch network for the window table)")


if __name__ == "__main__":
    main()
