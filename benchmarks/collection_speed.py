#!/usr/bin/env python3
"""``embed`` and ``classify`` of a folder of full-length songs, against decoding the same files.

The issue ("the default model on real collections", part 3): on full-length songs ``embed`` and
``classify`` should take less wall time than decoding and resampling the same files in one
process, and stay within 600 MB peak RSS even on a 1-hour file.

The collection is ``--tracks`` (24) full-length 44.1 kHz Ogg Vorbis tracks (at least
``--min-seconds`` 120 s each) from the Debian game-music packages of ``benchmarks/soundtracks.py``,
taken round-robin over the packages. The .deb files and unpacked trees are reused from
``benchmarks/data/cache/`` (``apt-get download`` + ``dpkg-deb -x`` when missing); the tracks are
hard-linked into ``benchmarks/data/collection/songs/`` so both commands read one folder.

Printed side by side, each a fresh process timed from the outside (wall, user+sys CPU of the process
tree, and its peak RSS: the sum over the tree, sampled every 10 ms):

* decode + resample only: every file decoded whole with soundfile and resampled to 16 kHz with
  soxr HQ (what ``librosa.load(sr=16000)`` does), one process — the baseline;
* ``specmusic embed SONGS -o LIB.npz --force`` and ``specmusic classify SONGS --jobs 2 --json``,
  with ``--windows all`` (every chunk, as before) and with the defaults;
* both commands on one synthetic 1-hour 44.1 kHz stereo WAV (``--hour-seconds``; written in
  blocks, never held in memory), for peak RSS;
* with ``--before-rev REV`` (e.g. the commit before the change), the same commands run from that
  revision's code (``git archive``), for the "before" figures.

``--quality`` adds what the choices change, in-process on the same songs: for 1, 2, 4, 5, 6, 8, 16 (32, 64)
windows, the agreement of each track's top-5 tags, top tag and embedding with every-window
analysis, and the time taken; and for int8 quantisations of the default tagger
(``onnxruntime.quantization``: dynamic, and static QDQ calibrated on other tracks), their speed and
the same agreement with the float model.

The default tagger must be convertible: pass ``--weights`` (or set ``SPECMUSIC_WEIGHTS``) to a
local copy of the checkpoints, e.g. ``../shared/weights/sota-music-tagging``.

Example::

    .venv/bin/python benchmarks/collection_speed.py --quality
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
DATA = BENCH / "data" / "collection"
BIN = ROOT / ".venv" / "bin"
PYTHON = str(BIN / "python") if (BIN / "python").exists() else sys.executable
SHARED_WEIGHTS = ROOT.parent / "shared" / "weights" / "sota-music-tagging"
PAGE = os.sysconf("SC_PAGE_SIZE")

DECODE_ONLY = r"""
import sys
import soundfile as sf, soxr
sr = int(sys.argv[1])
for path in sys.argv[2:]:
    y, native = sf.read(path, dtype="float32", always_2d=True)
    soxr.resample(y.mean(axis=1), native, sr, quality="HQ")
"""


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- measuring a process tree -----------------------------------------------------------------
def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except OSError:
            pass
    return out


def _rss(pids: list[int]) -> int:
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            pass
    return total


def measure(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
            stdout: int | None = subprocess.DEVNULL) -> dict:
    """Run ``cmd``; wall seconds, CPU seconds (user+sys, whole tree) and peak tree RSS in MB."""
    peak = [0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, env=env, cwd=cwd)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss(_tree(proc.pid)))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    err = proc.stderr.read() if proc.stderr else b""  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)  # the child's own rusage: its tree's CPU and largest RSS
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err.decode(errors='replace')[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return {"wall": wall, "cpu": cpu, "rss": peak[0] / 2**20, "largest": usage.ru_maxrss / 1024}


# -- data -------------------------------------------------------------------------------------
def collect_songs(n: int, min_seconds: float, cache: Path) -> list[Path]:
    """``n`` full-length 44.1 kHz Ogg Vorbis tracks, round-robin over the game-music packages."""
    sys.path.insert(0, str(BENCH))
    import soundfile as sf
    import soundtracks as st  # benchmarks/soundtracks.py: cached apt-get download + dpkg-deb -x

    per_package: list[list[Path]] = []
    for sound in st.KNOWN_SOUNDTRACKS:
        deb = st.fetch_deb(sound.package, cache / "debs")
        package = st.unpack_deb(sound.package, deb, cache / "unpacked")
        report = st.find_tracks(sound, package, min_seconds)
        ogg = [t.path for t in report.tracks if t.path.suffix.lower() == ".ogg" and t.samplerate == 44100
               and sf.info(str(t.path)).format == "OGG" and sf.info(str(t.path)).subtype == "VORBIS"]
        if ogg:
            per_package.append(ogg)
    songs: list[Path] = []
    while len(songs) < n and any(per_package):
        for tracks in per_package:
            if tracks and len(songs) < n:
                songs.append(tracks.pop(0))
    if len(songs) < n:
        sys.exit(f"only {len(songs)} full-length Ogg tracks found (wanted {n}) — lower --tracks or --min-seconds")
    return songs


def link_songs(songs: list[Path], folder: Path) -> list[Path]:
    """Hard links (or copies) of ``songs`` in one folder, named NN-<package>-<file>."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    out = []
    for i, src in enumerate(songs):
        dest = folder / f"{i:02d}-{src.name}"
        src = src.resolve()  # a package's relative symlink, linked as such, would dangle here
        try:
            os.link(src, dest)
        except OSError:
            shutil.copy2(src, dest)
        out.append(dest)
    return out


def write_hour(path: Path, seconds: int) -> Path:
    """A synthetic 44.1 kHz stereo 16-bit WAV of ``seconds`` (music-like: gliding tones, beats, noise), in blocks."""
    import soundfile as sf

    if path.exists() and sf.info(str(path)).frames == seconds * 44100:
        return path
    sr, rng = 44100, np.random.default_rng(0)
    tmp = path.with_suffix(".partial.wav")
    with sf.SoundFile(str(tmp), "w", samplerate=sr, channels=2, subtype="PCM_16") as f:
        for b in range(0, seconds, 10):
            t = np.arange(b * sr, (b + 10) * sr) / sr
            f0 = 110.0 * 2 ** (((b // 10) % 24) / 12)
            beat = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * 2 * t))
            y = 0.25 * np.sin(2 * np.pi * f0 * t) * beat + 0.1 * np.sin(2 * np.pi * 3 * f0 * t)
            y += 0.05 * rng.standard_normal(len(t))
            f.write(np.stack([y, np.roll(y, 11)], axis=1).astype(np.float32))
    os.replace(tmp, path)
    return path


def before_tree(rev: str, dest: Path) -> Path:
    """The ``specmusic`` package of revision ``rev`` (``git archive``), to run the "before" code."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "specmusic"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


# -- in-process quality checks ----------------------------------------------------------------
def _top(p: np.ndarray, k: int) -> set[int]:
    return set(np.argsort(-p, kind="stable")[:k].tolist())


def agreement(ref: list[tuple[np.ndarray, np.ndarray]], got: list[tuple[np.ndarray, np.ndarray]]) -> str:
    top5 = np.mean([len(_top(a[1], 5) & _top(b[1], 5)) / 5 for a, b in zip(ref, got)])
    top1 = np.mean([_top(a[1], 1) == _top(b[1], 1) for a, b in zip(ref, got)])
    dp = np.array([np.abs(a[1] - b[1]).max() for a, b in zip(ref, got)])
    cos = np.array([float(a[0] @ b[0]) for a, b in zip(ref, got)])
    return (f"top-5 {100 * top5:5.1f}%  top-1 {100 * top1:5.1f}%  max|Δp| {dp.max():.3f} (mean {dp.mean():.3f})  "
            f"cos {cos.mean():.4f} (min {cos.min():.4f})")


def quality(model_path: Path, songs: list[Path], calibration: list[Path], others: list[Path]) -> None:
    from specmusic import inference

    for path in others:
        sweep(inference.load_model(path), songs)
    model = inference.load_model(model_path)
    sweep(model, songs)
    int8(model_path, model, songs, calibration)


def sweep(model, songs: list[Path]) -> None:
    from specmusic import inference

    name = model.meta.get("pretrained", {}).get("name") or Path(model.path).name
    print(f"\n== windows per track: agreement with every window ({name}, in-process, these songs) ==")
    ref, n_all = [], 0
    t0 = time.perf_counter()
    for s in songs:
        a = inference.analyse_track(model, s, windows=None, outputs=("logits", "embedding"))
        ref.append((a.embedding, a.probabilities))
        n_all += a.windows
    t_all = time.perf_counter() - t0
    print(f"{'windows':>8} {'analysed':>9} {'seconds':>8}  agreement with all windows")
    print(f"{'all':>8} {n_all:>9} {t_all:>8.2f}  (reference)")
    for n in (1, 2, 4, 5, 6, 8, 16, 32, 64):
        got, used = [], 0
        t0 = time.perf_counter()
        for s in songs:
            a = inference.analyse_track(model, s, windows=n, outputs=("logits", "embedding"))
            got.append((a.embedding, a.probabilities))
            used += a.windows
        print(f"{n:>8} {used:>9} {time.perf_counter() - t0:>8.2f}  {agreement(ref, got)}", flush=True)
        if used == n_all:
            break


def int8(model_path: Path, model, songs: list[Path], calibration: list[Path]) -> None:
    from specmusic import inference

    print("\n== int8 quantisation of the model (default windows; agreement with the float model) ==")
    tmp = Path(tempfile.mkdtemp(prefix="collection_int8."))
    try:
        variants = {"float32": model_path}
        variants.update(quantise(model_path, tmp, model, calibration))
        base = None
        for name, path in variants.items():
            m = inference.load_model(path)
            speed = window_speed(path, model.chunk_frames, model.feature_config.n_rows)
            got = [inference.embed_and_predict_track(m, s) for s in songs]
            size = path.stat().st_size / 2**20
            if base is None:
                base = got
                print(f"{name:>14}: {size:5.2f} MB  {speed}  (reference)")
            else:
                print(f"{name:>14}: {size:5.2f} MB  {speed}  {agreement(base, got)}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def window_speed(path: Path, frames: int, rows: int) -> str:
    """Milliseconds per window on 1 and 2 onnxruntime threads (one window a call, best of 3 over 8 windows)."""
    from specmusic import inference

    x = (np.random.default_rng(0).standard_normal((8, 1, rows, frames)) * 15 - 40).astype(np.float32)
    out = []
    for threads in (1, 2):
        m = inference.load_model(path, threads=threads)
        m.session.run(["logits"], {"spec": x[:1]})
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            for i in range(len(x)):
                m.session.run(["logits", "embedding"], {"spec": x[i : i + 1]})
            best = min(best, (time.perf_counter() - t0) / len(x))
        out.append(f"{1000 * best:5.1f}")
    return f"ms/window (1|2 threads) {out[0]}|{out[1]}"


def quantise(model_path: Path, tmp: Path, model, calibration: list[Path]) -> dict[str, Path]:
    """int8 variants: dynamic (weights int8, activations quantised on the fly) and static QDQ."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from specmusic import inference

    pre = tmp / "pre.onnx"
    quant_pre_process(str(model_path), str(pre), skip_symbolic_shape=True)
    meta = {p.key: p.value for p in onnx.load(str(model_path)).metadata_props}

    def with_meta(path: Path) -> Path:
        proto = onnx.load(str(path))
        del proto.metadata_props[:]
        for k, v in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.save(proto, str(path))
        return path

    out = {}
    dyn = tmp / "dynamic.onnx"
    quantize_dynamic(str(pre), str(dyn), weight_type=QuantType.QInt8)
    out["int8 dynamic"] = with_meta(dyn)

    windows = []
    for s in calibration:
        spec, _ = inference.track_features(model, s)
        for start in inference.select_windows(spec.shape[1], model.chunk_frames, model.chunk_hop_frames, 4):
            windows.append(spec[None, None, :, start : start + model.chunk_frames].astype(np.float32))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(windows)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"spec": x}

    static = tmp / "static.onnx"
    quantize_static(str(pre), str(static), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    out["int8 static"] = with_meta(static)
    return out


# -- main -------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=24, help="full-length songs in the collection (at least 20)")
    ap.add_argument("--min-seconds", type=float, default=120.0, help="shortest song")
    ap.add_argument("--cache", type=Path, default=BENCH / "data" / "cache", help="cached .deb files and trees")
    ap.add_argument("--hour-seconds", type=int, default=3600, help="length of the synthetic long WAV (0: skip it)")
    ap.add_argument("--weights", default=None, help="the taggers' checkpoints (default: $SPECMUSIC_WEIGHTS or ../shared)")
    ap.add_argument("--before-rev", default=None, help="also run this git revision's code (the 'before' figures)")
    ap.add_argument("--also-windows", type=int, nargs="*", default=[], help="extra --windows N rows (songs only)")
    ap.add_argument("--tagger-only", action="store_true", help="skip the rows of embed's default model")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each command; the fastest is shown")
    ap.add_argument("--sweep-models", nargs="*", default=[], help="--quality: other taggers' window sweeps too")
    ap.add_argument("--quality", action="store_true", help="window-count and int8 agreement (in-process)")
    ap.add_argument("--skip-timing", action="store_true", help="only the --quality part")
    args = ap.parse_args()

    env = dict(os.environ)
    weights = args.weights or env.get("SPECMUSIC_WEIGHTS") or (str(SHARED_WEIGHTS) if SHARED_WEIGHTS.is_dir() else None)
    if weights:
        env["SPECMUSIC_WEIGHTS"] = weights
        os.environ["SPECMUSIC_WEIGHTS"] = weights
    from specmusic.models.zoo import DEFAULT_TAGGER, ensure_model

    model_path = ensure_model(DEFAULT_TAGGER, weights=weights, progress=True)  # converted once, before timing
    try:  # embed's default model may join several taggers: convert them all before timing
        from specmusic.embeddings.embedders import DEFAULT_EMBEDDING
    except ImportError:
        DEFAULT_EMBEDDING = (DEFAULT_TAGGER,)
    for name in DEFAULT_EMBEDDING:
        ensure_model(name, weights=weights, progress=True)
    songs = collect_songs(args.tracks + 4, args.min_seconds, args.cache)
    songs, calibration = songs[: args.tracks], songs[args.tracks :]
    folder = DATA / "songs"
    links = link_songs(songs, folder)

    import soundfile as sf

    minutes = sum(sf.info(str(p)).duration for p in links) / 60
    print(f"collection: {len(links)} songs, {minutes:.1f} min of 44.1 kHz Ogg Vorbis in {folder}")
    print(f"model: {DEFAULT_TAGGER} ({model_path.name}); {os.cpu_count()} cores; load average before: {load()}",
          flush=True)

    if not args.skip_timing:
        run_timing(args, env, links, folder, minutes)
    if args.quality:
        others = [ensure_model(name, weights=weights) for name in args.sweep_models]
        quality(model_path, links, calibration, others)
    print(f"\nload average after: {load()}")


def run_timing(args: argparse.Namespace, env: dict[str, str], links: list[Path], folder: Path, minutes: float) -> None:
    from specmusic.models.zoo import DEFAULT_TAGGER

    tmp = Path(tempfile.mkdtemp(prefix="collection_speed."))
    counter = [0]

    def row(name: str, cmd: list[str], n: int, *, e: dict[str, str] = env, cwd: Path | None = None) -> None:
        runs = [measure(cmd, env=e, cwd=cwd) for _ in range(max(1, args.repeat))]
        result = min(runs, key=lambda r: r["wall"])  # the run least disturbed by other load
        result["rss"] = max(r["rss"] for r in runs)
        result["largest"] = max(r["largest"] for r in runs)
        print(f"{name:<50} {result['wall']:7.2f} {n / result['wall']:8.2f} {result['cpu']:7.1f} {result['rss']:8.0f} "
              f"{result['largest']:8.0f}", flush=True)

    def embed(target: Path, *extra: str) -> list[str]:
        counter[0] += 1
        return [PYTHON, "-m", "specmusic", "embed", str(target), "-o", str(tmp / f"lib{counter[0]}.npz"), "--force",
                "--no-progress", *extra]

    def classify(target: Path, *extra: str) -> list[str]:
        return [PYTHON, "-m", "specmusic", "classify", str(target), "--json", "--no-progress", *extra]

    head = f"{'wall s':>7} {'songs/s':>8} {'CPU s':>7} {'peak MB':>8} {'1 proc':>8}"
    tagger = ["--model", DEFAULT_TAGGER]
    try:
        n = len(links)
        measure([PYTHON, "-c", DECODE_ONLY, "16000", *map(str, links)])  # warm the page cache (not counted)
        print(f"\n{'run (' + str(n) + ' songs, ' + format(minutes, '.0f') + ' min)':<50} {head}")
        row("decode + resample only (1 process)", [PYTHON, "-c", DECODE_ONLY, "16000", *map(str, links)], n)
        old = None
        if args.before_rev:  # run from the old tree: `python -m specmusic` finds the package in the cwd first
            old = before_tree(args.before_rev, tmp / "before")
            row(f"[{args.before_rev}] embed (its default: {DEFAULT_TAGGER})", embed(folder), n, cwd=old)
            row(f"[{args.before_rev}] classify --jobs 2", classify(folder, "--jobs", "2"), n, cwd=old)
        row(f"embed --model {DEFAULT_TAGGER} --windows all", embed(folder, *tagger, "--windows", "all"), n)
        for w in args.also_windows:
            row(f"embed --model {DEFAULT_TAGGER} --windows {w}", embed(folder, *tagger, "--windows", str(w)), n)
        row(f"embed --model {DEFAULT_TAGGER}", embed(folder, *tagger), n)
        if not args.tagger_only:
            row("embed --windows all (default model)", embed(folder, "--windows", "all"), n)
            row("embed (default model and windows)", embed(folder), n)
        row("classify --jobs 2 --windows all", classify(folder, "--jobs", "2", "--windows", "all"), n)
        for w in args.also_windows:
            row(f"classify --jobs 2 --windows {w}", classify(folder, "--jobs", "2", "--windows", str(w)), n)
        row("classify --jobs 2", classify(folder, "--jobs", "2"), n)
        if args.hour_seconds:
            hour = write_hour(DATA / "hour.wav", args.hour_seconds)
            print(f"\n{'one ' + format(args.hour_seconds / 60, 'g') + '-min 44.1 kHz stereo WAV':<50} {head}")
            if old is not None:
                row(f"[{args.before_rev}] embed", embed(hour), 1, cwd=old)
                row(f"[{args.before_rev}] classify", classify(hour), 1, cwd=old)
            row(f"embed --model {DEFAULT_TAGGER} --windows all", embed(hour, *tagger, "--windows", "all"), 1)
            row(f"embed --model {DEFAULT_TAGGER}", embed(hour, *tagger), 1)
            if not args.tagger_only:
                row("embed --windows all (default model)", embed(hour, "--windows", "all"), 1)
                row("embed (default model and windows)", embed(hour), 1)
            row("classify --windows all", classify(hour, "--windows", "all"), 1)
            row("classify", classify(hour), 1)
        print(f"load average after timing: {load()}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
