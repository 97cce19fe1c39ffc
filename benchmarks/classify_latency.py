#!/usr/bin/env python3
"""Cold ``specmusic classify one_30s.mp3`` vs the same classification in a librosa + torch script.

Both sides start a fresh Python process per run (what a user waits for), load the same trained
network (ONNX for specmusic; the checkpoint's weights in torch for the baseline), compute the same
log-mel features (numpy in specmusic, ``librosa.feature.melspectrogram`` in the baseline), cut the
same chunks and average the chunk probabilities. Runs alternate between the two sides, so load from
other processes hits both alike; the median of ``--runs`` (5) is reported with the ratio, plus
folder throughput in clips/s with ``--jobs 1`` and ``--jobs 2``.

The model is ``--run``'s (default: the run left by ``benchmarks/train_genre.py``); without one, a
small model of the default architecture is trained for one epoch on generated audio (latency does
not depend on how well the weights were trained).

Example::

    .venv/bin/python benchmarks/classify_latency.py
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
SPECMUSIC = str(BIN / "specmusic")
PYTHON = str(BIN / "python") if (BIN / "python").exists() else sys.executable

BASELINE = r'''
import json, sys
import librosa, numpy as np, torch
from specmusic.models.cnn import CNNConfig, SpecCNN

audio, ckpt_path = sys.argv[1], sys.argv[2]
ckpt = torch.load(ckpt_path, weights_only=True)
cfg = ckpt["config"]
fc = cfg["feature_config"]
net = SpecCNN(CNNConfig.from_dict(cfg["cnn"]))
net.load_state_dict(ckpt["best_state"] or ckpt["model"])
net.eval()
y, sr = librosa.load(audio, sr=fc["sample_rate"], mono=True)
S = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=fc["n_fft"], hop_length=fc["hop_length"], n_mels=fc["n_mels"],
                                   fmin=fc["fmin"], fmax=fc["fmax"], pad_mode="constant")
S = librosa.power_to_db(S, top_db=fc["top_db"]).astype(np.float32)
chunk, hop = cfg["chunk_frames"], cfg["chunk_hop_frames"]
if S.shape[1] < chunk:
    S = np.tile(S, (1, -(-chunk // S.shape[1])))[:, :chunk]
starts = list(range(0, S.shape[1] - chunk + 1, hop))
if starts[-1] + chunk < S.shape[1]:
    starts.append(S.shape[1] - chunk)
x = torch.from_numpy(np.stack([S[None, :, s:s + chunk] for s in starts]))
x = (x - cfg["input_norm"]["mean"]) / cfg["input_norm"]["std"]
with torch.no_grad():
    p = torch.softmax(net(x)[0], dim=1).mean(0).numpy()
order = np.argsort(-p)[:3]
print(audio, *(f"{cfg['labels'][i]} {p[i]:.2f}" for i in order))
'''


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


CPU: list[float] = []  # user+sys seconds of the last timed child: less sensitive to other load than wall time


def timed(cmd: list[str]) -> tuple[float, str]:
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr}")
    return wall, proc.stdout


def make_clip(dest: Path, source: Path | None) -> Path:
    """A 30 s MP3: the first 30 s of ``source`` (or of a generated signal)."""
    import soundfile as sf

    from specmusic.audio import load_audio

    if source is not None:
        y, sr = load_audio(source, sr=44100, duration=30.0)
        reps = int(np.ceil(30 * sr / len(y)))
        y = np.tile(y, reps)[: 30 * sr]
    else:
        sr = 44100
        t = np.arange(30 * sr) / sr
        y = (0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.1 * np.sin(t)))).astype(np.float32)
    sf.write(dest, y, sr, format="MP3")
    return dest


def find_source() -> Path | None:
    candidates = sorted((ROOT / "benchmarks" / "data" / "soundtracks").glob("*/*.ogg"))
    if not candidates:
        candidates = sorted((ROOT.parent / "shared" / "data" / "cc-music").glob("*.ogg"))
    return candidates[0] if candidates else None


def ensure_run(run: Path | None, tmp: Path) -> Path:
    if run is not None and (run / "model.onnx").exists():
        return run
    default = ROOT / "benchmarks" / "data" / "runs" / "train_genre" / "default"
    if run is None and (default / "model.onnx").exists():
        return default
    print("no trained run found: training a 1-epoch model of the default architecture on generated audio",
          file=sys.stderr)
    sys.path.insert(0, str(ROOT))
    from tests.conftest import tone, write

    for li, f in enumerate((110.0, 440.0, 1760.0)):
        for i in range(4):
            write(tmp / "data" / f"class{li}" / f"{i}.wav", tone(f * (1 + 0.03 * i), 6.0, seed=10 * li + i))
    out = tmp / "run"
    subprocess.run([SPECMUSIC, "train", str(tmp / "data"), "-o", str(out), "--epochs", "1"], check=True,
                   stdout=subprocess.DEVNULL)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=None, help="a train run folder (model.onnx + checkpoint.pt)")
    ap.add_argument("--audio", type=Path, default=None, help="source of the 30 s clip (default: a benchmark clip)")
    ap.add_argument("--runs", type=int, default=5, help="fresh processes per side")
    ap.add_argument("--folder-clips", type=int, default=24, help="clips in the throughput folder")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="classify_latency."))
    try:
        run = ensure_run(args.run, tmp)
        model, ckpt = run / "model.onnx", run / "checkpoint.pt"
        clip = make_clip(tmp / "one_30s.mp3", args.audio or find_source())
        script = tmp / "librosa_torch_classify.py"
        script.write_text(BASELINE)
        ours_cmd = [SPECMUSIC, "classify", str(clip), "--model", str(model)]
        base_cmd = [PYTHON, str(script), str(clip), str(ckpt)]
        print(f"model: {model}\nclip: 30 s MP3 from {args.audio or find_source() or 'a generated tone'}")
        print(f"load average before: {load()} on {os.cpu_count()} cores", flush=True)
        timed(ours_cmd)  # warm the page cache for both sides (not counted)
        timed(base_cmd)
        ours, base, ours_cpu, base_cpu = [], [], [], []
        for _ in range(args.runs):
            w, out_ours = timed(ours_cmd)
            ours.append(w)
            ours_cpu.append(CPU[-1])
            w, out_base = timed(base_cmd)
            base.append(w)
            base_cpu.append(CPU[-1])
        top_ours = out_ours.strip().splitlines()[-1].split()[1]
        top_base = out_base.strip().split()[1]
        m_ours, m_base = statistics.median(ours), statistics.median(base)
        print(f"{'cold classify of one 30 s MP3':<40} {'median s':>9} {'CPU s':>7}  wall of each run")
        print(f"{'specmusic classify (onnxruntime+numpy)':<40} {m_ours:>9.3f} {statistics.median(ours_cpu):>7.3f}  "
              f"{' '.join(f'{v:.2f}' for v in ours)}")
        print(f"{'librosa + torch script':<40} {m_base:>9.3f} {statistics.median(base_cpu):>7.3f}  "
              f"{' '.join(f'{v:.2f}' for v in base)}")
        print(f"speed-up: {m_base / m_ours:.1f}x (goal >= 5x); specmusic {m_ours:.2f} s (goal <= 0.5 s); "
              f"top label specmusic={top_ours} librosa+torch={top_base}")
        print(f"load average after latency runs: {load()}", flush=True)

        folder = tmp / "folder"
        folder.mkdir()
        for i in range(args.folder_clips):
            shutil.copy(clip, folder / f"clip{i:03d}.mp3")
        for jobs in (1, 2):
            w, out = timed([SPECMUSIC, "classify", str(folder), "--model", str(model), "--json", "--jobs", str(jobs)])
            n = len(out.splitlines())
            print(f"folder throughput --jobs {jobs}: {n} clips of 30 s in {w:.2f} s = {n / w:.1f} clips/s "
                  "(including start-up)")
        print(f"load average after: {load()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
