#!/usr/bin/env python3
"""Cold start of ``specmusic classify song.mp3`` (default tagger, or ``--model NAME``): before/after, and where the time goes.

Fresh processes, one 30 s MP3 (44.1 kHz stereo, generated), no ``--model``:

* ``after``  — as shipped: the bundled ONNX tagger (sha256-checked), options converted without pydantic
  (:mod:`specmusic.cli._coerce`).
* ``before`` — the path this replaced, rebuilt in the same tree: the tagger found in the per-user cache
  (the cache-converted file is byte-identical to the bundled one), options converted by typer's pydantic
  adapters. The first-ever run of ``before`` also downloaded and converted the checkpoint with torch
  (seconds); that one-time cost is not counted here.
* ``after, with teardown`` — as ``after`` with ``SPECMUSIC_FULL_EXIT=1``: the interpreter frees every
  module's objects before the process ends, as it did before the console script learned to skip that
  (``before`` runs with it too).
* ``--version`` — the interpreter and the CLI alone, a floor.
* the import floor — a fresh ``python -c 'import numpy, soundfile, soxr, onnxruntime'``: what any
  onnxruntime classifier of audio files must import. ``after / import floor`` is the ratio of medians.

Runs alternate between the variants so that load from other processes hits all of them alike; each
line gives the median and the fastest of ``--runs`` wall times and the median CPU time (user + sys,
all threads). The package is byte-compiled first, as ``pip install`` does. Then one more process
times the phases of the ``after`` path in-process, and ``python -X importtime`` splits the imports by
top-level package.

With ``--model NAME`` (a bundled network, e.g. ``audioset-mn04``) the command is ``specmusic
classify -m NAME song.EXT`` and the ``before`` variant is left out (it rebuilds the default tagger's
old path); ``--format wav`` writes the clip as 16-bit WAV instead of MP3; ``--clip FILE`` classifies a real
file instead.

Example (``--python``: another environment's interpreter, e.g. a runtime install without torch)::

    .venv/bin/python benchmarks/cold_start.py --runs 9
    .venv/bin/python benchmarks/cold_start.py --python /tmp/rt/bin/python
    .venv/bin/python benchmarks/cold_start.py --model audioset-mn04 --format wav --runs 15
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
PYTHON = str(BIN / "python") if (BIN / "python").exists() else sys.executable

BEFORE = """
import sys
import specmusic.cli._coerce as coerce
coerce.install = lambda: False  # typer's own pydantic conversion, as before
import specmusic.models.zoo.registry as registry
registry.BUNDLED_TAGGERS = ()  # the tagger comes from the cache, as before
from specmusic.cli.app import main
sys.argv = ["specmusic", *sys.argv[1:]]
main()
"""

PHASES = """
import resource, sys, time
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
marks = [("", time.perf_counter(), time.process_time(), faults())]
def mark(name):
    marks.append((name, time.perf_counter(), time.process_time(), faults()))
import specmusic.cli.app
mark("import the CLI (typer, specmusic)")
import numpy, onnxruntime, soundfile, soxr
from specmusic.inference import load_model, predict_track, track_features
mark("import numpy, onnxruntime, soundfile, soxr")
from specmusic.models.zoo import ensure_model
path = ensure_model(sys.argv[2], progress=False)
mark("find the bundled model, sha256")
model = load_model(path)
mark("onnxruntime session")
spec, _ = track_features(model, sys.argv[1])
mark("decode, resample, log-mel")
predict_track(model, spec)
mark(f"network (chunks of {model.chunk_frames} frames)")
predict_track(model, spec)
mark("the network again, warm (not part of the command)")
for (_, t0, c0, f0), (name, t1, c1, f1) in zip(marks, marks[1:]):
    print(f"{name}\t{1000 * (t1 - t0):.0f}\t{1000 * (c1 - c0):.0f}\t{f1 - f0}")
"""


def make_clip(path: Path, seconds: float = 30.0, sr: int = 44100) -> Path:
    """A 30 s 44.1 kHz stereo clip; MP3 or 16-bit WAV by ``path``'s extension."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * 220 * (1 + 0.5 * np.sin(0.2 * t)) * t) + 0.05 * rng.standard_normal(t.size)
    stereo = np.stack([y, 0.8 * y], axis=1).astype(np.float32)
    if path.suffix == ".wav":
        sf.write(path, stereo, sr, subtype="PCM_16")
    else:
        sf.write(path, stereo, sr, format="MP3")
    return path


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + sys of the child) of one run, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def import_breakdown(argv: list[str], env: dict[str, str], runs: int) -> list[tuple[str, float]]:
    """Median self time (ms) of the imports of ``argv`` grouped by top-level package."""
    groups = {"numpy": "numpy", "onnxruntime": "onnxruntime", "typer": "typer", "specmusic": "specmusic",
              "soundfile": "soundfile, soxr, cffi", "soxr": "soundfile, soxr, cffi", "_cffi_backend": "soundfile, soxr, cffi",
              "pydantic": "pydantic", "pydantic_core": "pydantic", "annotated_types": "pydantic",
              "typing_inspection": "pydantic"}  # fmt: skip
    totals: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        done = subprocess.run([PYTHON, "-X", "importtime", *argv], env=env, capture_output=True, text=True)
        sums: dict[str, float] = defaultdict(float)
        for line in done.stderr.splitlines():
            m = re.match(r"import time:\s+(\d+) \|\s+\d+ \| +(\S+)", line)
            if m:
                sums[groups.get(m[2].split(".")[0], "standard library and others")] += int(m[1]) / 1000
        for name in set(groups.values()) | {"standard library and others"}:
            totals[name].append(sums.get(name, 0.0))
    rows = [(name, statistics.median(v)) for name, v in totals.items()]
    return sorted(rows, key=lambda r: -r[1])


IMPORT_FLOOR = "import floor: numpy, soundfile, soxr, onnxruntime"


def main() -> None:
    global PYTHON
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="fresh processes per variant (default 9)")
    parser.add_argument("--python", default=PYTHON, help="interpreter of the environment to time (default: .venv's)")
    parser.add_argument("--model", help="a bundled network to classify with (-m NAME; default: the default tagger)")
    parser.add_argument("--format", choices=("mp3", "wav"), default="mp3", help="the clip's format (default mp3)")
    parser.add_argument("--clip", type=Path, help="a real audio file to classify instead of the generated clip")
    args = parser.parse_args()
    PYTHON = args.python

    from specmusic.fileio import sha256_file
    from specmusic.models import zoo

    package = subprocess.run([PYTHON, "-c", "import specmusic, os; print(os.path.dirname(specmusic.__file__))"],
                             check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run([PYTHON, "-m", "compileall", "-q", package], check=True, capture_output=True)  # as pip does
    with tempfile.TemporaryDirectory() as tmp:
        clip = args.clip.resolve() if args.clip else make_clip(Path(tmp) / f"song.{args.format}")
        model_name = args.model or zoo.DEFAULT_TAGGER
        chosen = ["-m", model_name] if args.model else []
        cache = Path(tmp) / "cache"
        # the "before" cache: what the first run used to convert, byte for byte the bundled file
        tagger = zoo.TAGGERS[zoo.DEFAULT_TAGGER]
        cached = cache / "onnx" / tagger.onnx_name
        cached.parent.mkdir(parents=True)
        shutil.copyfile(zoo.bundled_model(tagger.name), cached)
        cached.with_name(cached.name + ".sha256").write_text(f"{sha256_file(cached)}  {cached.name}\n")
        env = {k: v for k, v in os.environ.items() if k != zoo.WEIGHTS_ENV}
        env["SPECMUSIC_CACHE"] = str(cache)
        after_name = f"after: bundled {model_name}, light options"
        before_name = "before: cached tagger, pydantic options"
        teardown_name = "after, with the interpreter's teardown (SPECMUSIC_FULL_EXIT=1)"
        full_exit = {**env, "SPECMUSIC_FULL_EXIT": "1"}
        variants = {
            "specmusic --version (floor)": ([PYTHON, "-m", "specmusic", "--version"], env),
            IMPORT_FLOOR: ([PYTHON, "-c", "import numpy, soundfile, soxr, onnxruntime"], env),
            before_name: ([PYTHON, "-c", BEFORE, "classify", str(clip)], full_exit),
            teardown_name: ([PYTHON, "-m", "specmusic", "classify", *chosen, str(clip)], full_exit),
            after_name: ([PYTHON, "-m", "specmusic", "classify", *chosen, str(clip)], env),
        }
        if args.model:
            del variants[before_name]
        for argv, run_env in variants.values():  # warm the page cache
            timed(argv, run_env)
        load_before = os.getloadavg()[0]
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        for _ in range(args.runs):
            for name, (argv, run_env) in variants.items():
                results[name].append(timed(argv, run_env))
        load_after = os.getloadavg()[0]

        what = str(clip) if args.clip else f"one 30 s {args.format.upper()}"
        print(f"# cold start, {what}, {args.runs} fresh processes each, interleaved; "
              f"{os.cpu_count()} CPUs, load average {load_before:.2f} before, {load_after:.2f} after")  # fmt: skip
        print("| variant | median wall s | fastest s | median CPU s |\n|---|---:|---:|---:|")
        for name, rows in results.items():
            walls, cpus = [w for w, _ in rows], [c for _, c in rows]
            print(f"| {name} | {statistics.median(walls):.3f} | {min(walls):.3f} | {statistics.median(cpus):.3f} |")
        after = statistics.median(w for w, _ in results[after_name])
        floor = statistics.median(w for w, _ in results[IMPORT_FLOOR])
        print(f"\nafter / import floor: {after / floor:.2f} (median of {args.runs} interleaved pairs; goal <= 1.5)")
        torn = statistics.median(w for w, _ in results[teardown_name])
        print(f"\nthe interpreter's teardown, skipped: {1000 * (torn - after):.0f} ms (median with it minus without)")
        if before_name in results:
            before = statistics.median(w for w, _ in results[before_name])
            print(f"\nafter / before: {after / before:.2f} ({before - after:+.3f} s)")

        phases: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for _ in range(max(3, args.runs // 2)):
            done = subprocess.run([PYTHON, "-c", PHASES, str(clip), model_name], env=env, capture_output=True, text=True, check=True)
            for line in done.stdout.splitlines():
                name, wall, cpu, faults = line.split("\t")
                phases[name].append((float(wall), float(cpu), float(faults)))
        print("\n# phases of the 'after' path in one process (after the interpreter starts), median ms; page faults "
              "(minor: fresh memory the kernel maps in)")
        print("| phase | wall ms | CPU ms | page faults |\n|---|---:|---:|---:|")
        for name, rows in phases.items():
            print(f"| {name} | {statistics.median(r[0] for r in rows):.0f} | {statistics.median(r[1] for r in rows):.0f} | "
                  f"{statistics.median(r[2] for r in rows):,.0f} |")

        print("\n# imports by package, python -X importtime (self times summed), median ms")
        print("| package | before | after |\n|---|---:|---:|")
        runs = max(3, args.runs // 3)
        b = {} if args.model else dict(import_breakdown(["-c", BEFORE, "classify", str(clip)], env, runs))
        a = import_breakdown(["-m", "specmusic", "classify", *chosen, str(clip)], env, runs)
        for name, ms in a:
            print(f"| {name} | {b.get(name, 0.0):.0f} | {ms:.0f} |")
        print(f"| total | {sum(b.values()):.0f} | {sum(ms for _, ms in a):.0f} |")


if __name__ == "__main__":
    main()
