"""Clips per second of `specmusic spectro` against the librosa ways, in one run.

    python benchmarks/spectro_speed.py                      # ../shared/data/cc-music
    python benchmarks/spectro_speed.py ~/music --repeats 3 --jobs 2

Measured, each over every audio file in the folder:
  specmusic   `specmusic spectro DIR -o TMP --jobs N` (mel defaults) as a fresh process each repeat:
              start-up, decoding, resampling, features and atomic writes all count.
  (a) librosa librosa.load(sr=22050) + librosa.feature.melspectrogram, in a warm process
              (imports and numba compilation done before the clock starts): the baseline's best case.
  (b) notebook librosa.load + melspectrogram + power_to_db + a matplotlib figure (librosa.display.specshow)
              saved as PNG per clip, the way the original project's notebook did it; also warm.
Prints clips/s, audio seconds per second and the ratios specmusic/(a) and specmusic/(b).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cc-music"
AUDIO = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".au"}


def find_audio(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO)


def time_specmusic(folder: Path, jobs: int) -> float:
    exe = Path(sys.executable).with_name("specmusic")
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        subprocess.run(
            [str(exe), "spectro", str(folder), "-o", out, "--jobs", str(jobs), "--no-progress"],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        return time.perf_counter() - t0


def time_librosa(files: list[Path]) -> float:
    import librosa

    t0 = time.perf_counter()
    for f in files:
        y, sr = librosa.load(f, sr=22050)
        librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=512, n_mels=128)
    return time.perf_counter() - t0


def time_notebook(files: list[Path]) -> float:
    import librosa
    import librosa.display
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        for i, f in enumerate(files):
            y, sr = librosa.load(f, sr=22050)
            S = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=512, n_mels=128)
            S_db = librosa.power_to_db(S, ref=np.max)
            fig = plt.figure(figsize=(10, 4))
            librosa.display.specshow(S_db, sr=sr, x_axis="time", y_axis="mel")
            plt.colorbar(format="%+2.0f dB")
            plt.title(f.stem)
            plt.tight_layout()
            fig.savefig(os.path.join(out, f"{i}.png"))
            plt.close(fig)
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per method (median reported)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    if not args.folder.is_dir():
        sys.exit(f"Error: {args.folder} is not a folder — give a folder of audio (default ../shared/data/cc-music)")
    files = find_audio(args.folder)
    if not files:
        sys.exit(f"Error: no audio in {args.folder}")
    import soundfile as sf

    seconds = sum(sf.info(f).duration for f in files)
    print(f"{len(files)} clips, {seconds:.0f} s of audio in {args.folder}; load {os.getloadavg()[0]:.2f}", file=sys.stderr)

    # Warm the baselines: imports, numba JIT, first-call caches (not counted).
    time_librosa(files[:1])
    time_notebook(files[:1])
    time_specmusic(args.folder, args.jobs)

    results = {"specmusic": [], "librosa": [], "notebook": []}
    for r in range(args.repeats):
        results["specmusic"].append(time_specmusic(args.folder, args.jobs))
        results["librosa"].append(time_librosa(files))
        results["notebook"].append(time_notebook(files))
        print(f"repeat {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in results.items()), file=sys.stderr)

    med = {k: statistics.median(v) for k, v in results.items()}
    labels = {
        "specmusic": f"specmusic spectro --jobs {args.jobs} (cold process)",
        "librosa": "(a) librosa.load + melspectrogram (warm)",
        "notebook": "(b) notebook: + power_to_db + specshow PNG (warm)",
    }
    print(f"{'method':<48} {'wall s':>8} {'clips/s':>8} {'audio s/s':>10}")
    for k in ("specmusic", "librosa", "notebook"):
        print(f"{labels[k]:<48} {med[k]:>8.2f} {len(files) / med[k]:>8.2f} {seconds / med[k]:>10.0f}")
    print(f"speed-up vs (a) librosa:  {med['librosa'] / med['specmusic']:.1f}x  (goal >= 2x)")
    print(f"speed-up vs (b) notebook: {med['notebook'] / med['specmusic']:.1f}x  (goal >= 10x)")
    print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
