#!/usr/bin/env python3
"""What ``--cluster`` costs against ``--jobs``, and whether the client's memory stays flat.

Issue 13 (part A): on the same real files, ``embed --cluster local:2`` should take at most 10 %
more wall time than ``embed --jobs 2`` (same for ``classify``); and the client's memory should not
grow with the number of tracks (≥ 20,000 tiny synthetic files).

1. **Overhead**, on the full-length songs of ``benchmarks/data/collection/songs`` (made by
   ``benchmarks/collection_speed.py``; 24 songs, 44.1 kHz Ogg Vorbis, 2–6 min): each command a fresh
   process, timed from the outside (wall; user+sys CPU of the whole process tree; peak RSS summed
   over the tree), the default model (jamendo-fcn + mtat-musicnn for ``embed``, jamendo-fcn for
   ``classify``), ``--repeat`` runs each, best wall kept:

   * ``embed SONGS -o LIB.npz --force --jobs 2``   vs  ``… --cluster local:2``
   * ``classify SONGS --json --jobs 2``            vs  ``… --cluster local:2``

   The cluster's wall time includes starting the LocalCluster (2 worker processes importing
   specmusic and loading the models), as a user's run would.

2. **Short clips** (issue 25), ``--clips wav`` or ``--clips ogg``: the soundtrack benchmark's 30 s
   clips (``benchmarks/data/soundtracks/*/*.ogg``, 44.1/48 kHz stereo Ogg Vorbis; or the same as
   44.1 kHz 16-bit WAV, ``benchmarks/wav_clips.py``, converted once), given on stdin:
   ``embed - -o LIB.npz --force --jobs 2`` against ``… --cluster local:2`` (default models),
   interleaved, ``--repeat`` runs each, best wall kept; it prints the ratio of the walls (the goal:
   ≤ 1.10) and the load average before, between and after. Where each clip was one Dask task (~32 ms
   of CPU apiece between client, scheduler and worker), the cluster took 1.27× ``--jobs 2``'s wall;
   short files now travel several to a task (``specmusic.distributed.TASK_AUDIO_SECONDS``).
   ``--limit N`` runs on the first N clips only (a quick check that the benchmark runs).

3. **Client memory**, on ``--tiny`` (20,000) synthetic files of 0.2 s (16 kHz mono WAV, written once
   under ``benchmarks/data/tiny/``, gitignored), ``embed - -m mfcc -o LIB/ --cluster local:2
   --progress`` (a sharded library: nothing grows with the library in the client). The client
   process's own RSS (not its worker processes) is sampled every 20 ms next to the progress bar's
   count and printed at 1,000, 5,000, 10,000, 15,000 and 20,000 finished tracks; and the same for a
   run of ``--tiny/4`` tracks, to separate what grows with the track list from what a run needs.
   Both with ``--cluster local:2`` (the LocalCluster's scheduler runs inside the client process, so
   its per-task bookkeeping counts) and with ``--cluster tcp://…`` to a LocalCluster in another
   process (the client alone, as with a real scheduler).
   "CPU ms/track" is the CPU time of the ``embed`` process tree per track: with ``tcp`` that is the
   client alone (what one client core can feed: 1000 / it tracks per second).
   ``--model mfcc`` keeps the run within a few minutes: the client does the same work whatever the
   model (it never loads it), so its memory does not depend on it.

Example::

    nice -n 10 .venv/bin/python benchmarks/cluster_overhead.py
    nice -n 10 .venv/bin/python benchmarks/cluster_overhead.py --skip-overhead --tiny 20000
    .venv/bin/python benchmarks/cluster_overhead.py --skip-overhead --skip-memory --clips wav --repeat 3
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data"
SONGS = DATA / "collection" / "songs"
TINY = DATA / "tiny"
BIN = ROOT / ".venv" / "bin"
# The repository's own venv; else this interpreter's specmusic (with PYTHONPATH: a worktree's code).
SPECMUSIC = [str(BIN / "specmusic")] if (BIN / "specmusic").exists() else [sys.executable, "-m", "specmusic"]


# The process-tree helpers are collection_speed.py's (the same /proc walk and RSS sum).
from collection_speed import _rss, _tree, load  # noqa: E402


def measure(cmd: list[str], *, stdin: bytes | None = None, progress_marks: tuple[int, ...] = ()) -> dict:
    """Run ``cmd``: wall s, CPU s (tree), peak tree RSS MB, and the client's own RSS MB at each of
    ``progress_marks`` finished tracks (read from the tqdm bar on stderr)."""
    peak, client_at, count = [0], {}, [0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin is not None else None,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    done = threading.Event()
    if stdin is not None:
        threading.Thread(target=lambda: (proc.stdin.write(stdin), proc.stdin.close()), daemon=True).start()  # type: ignore[union-attr]
    err: list[bytes] = []

    def read_err() -> None:
        tail = b""
        for chunk in iter(lambda: proc.stderr.read1(4096), b""):  # type: ignore[union-attr]
            err.append(chunk)
            tail = (tail + chunk)[-200:]
            found = re.findall(rb"\| *(\d+)/\d+ ", tail)
            if found:
                count[0] = int(found[-1])

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss(_tree(proc.pid)))
            own = _rss([proc.pid]) / 2**20
            for mark in progress_marks:
                if mark not in client_at and count[0] >= mark:
                    client_at[mark] = own
            time.sleep(0.02)

    reader = threading.Thread(target=read_err, daemon=True)
    sampler = threading.Thread(target=sample, daemon=True)
    reader.start()
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    reader.join(timeout=5)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"failed ({code}): {' '.join(cmd)}\n{b''.join(err).decode(errors='replace')[-2000:]}")
    summary = [ln for ln in b"".join(err).decode(errors="replace").replace("\r", "\n").splitlines() if ln.startswith(("embed:", "classify:"))]
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": peak[0] / 2**20,
            "client": client_at, "summary": summary[-1] if summary else ""}  # fmt: skip


def soundtrack_songs() -> Path:
    """Every full-length song (an .ogg/.mp3/.flac over 1 MB) of the unpacked Debian soundtracks, linked
    into one folder (``benchmarks/data/collection/all-songs``; made by benchmarks/soundtracks.py's cache)."""
    unpacked = DATA / "cache" / "unpacked"
    out = DATA / "collection" / "all-songs"
    out.mkdir(parents=True, exist_ok=True)
    found = sorted(p for ext in ("*.ogg", "*.mp3", "*.flac") for p in unpacked.rglob(ext) if p.stat().st_size > 2**20)
    for i, p in enumerate(found):
        link = out / f"{i:04d}-{p.name}"
        if not link.exists():
            link.symlink_to(p.resolve())
    return out


def best_runs(runs: dict[str, list[str]], repeat: int, *, stdin: bytes | None = None,
              after_each: Callable[[], None] | None = None) -> dict[str, dict]:
    """:func:`measure` each of ``runs`` ``repeat`` times, interleaved (load changes hit them alike); the fastest
    run of each (by wall). ``after_each`` is called after every run."""
    best: dict[str, dict] = {}
    for _ in range(repeat):
        for name, cmd in runs.items():
            r = measure(cmd, stdin=stdin)
            if after_each is not None:
                after_each()
            if name not in best or r["wall"] < best[name]["wall"]:
                best[name] = r
    return best


def overhead(repeat: int, songs_dir: Path = SONGS) -> None:
    songs = sorted(str(p) for p in songs_dir.iterdir() if p.is_file())
    if not songs:
        print(f"no songs in {songs_dir} — run benchmarks/collection_speed.py first (it collects them)")
        return
    print(f"\n## --jobs 2 against --cluster local:2: {len(songs)} songs in {songs_dir.relative_to(ROOT)}")
    print(f"load average before: {load()}  ({os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory() as tmp:
        lib = os.path.join(tmp, "lib.npz")
        runs = {
            "embed --jobs 2": [*SPECMUSIC, "embed", str(songs_dir), "-o", lib, "--force", "--jobs", "2"],
            "embed --cluster local:2": [*SPECMUSIC, "embed", str(songs_dir), "-o", lib, "--force", "--cluster", "local:2"],
            "classify --jobs 2": [*SPECMUSIC, "classify", str(songs_dir), "--json", "--jobs", "2"],
            "classify --cluster local:2": [*SPECMUSIC, "classify", str(songs_dir), "--json", "--cluster", "local:2"],
        }
        best = best_runs(runs, repeat)
        print("| run | wall s | songs/s | CPU s | peak MB (tree) |")
        print("|---|---:|---:|---:|---:|")
        for name, r in best.items():
            print(f"| `{name}` | {r['wall']:.2f} | {len(songs) / r['wall']:.2f} | {r['cpu']:.1f} | {r['rss']:.0f} |")
        for cmd in ("embed", "classify"):
            jobs, dask = best[f"{cmd} --jobs 2"]["wall"], best[f"{cmd} --cluster local:2"]["wall"]
            print(f"{cmd}: cluster overhead {100 * (dask - jobs) / jobs:+.1f} % wall (target ≤ 10 %); "
                  f"{dask - jobs:+.2f} s, of which starting the cluster is a fixed part")
        cpu_song = best["embed --jobs 2"]["cpu"] / len(songs)
        print(f"embed (default model, 6 windows): {cpu_song:.2f} CPU s per song → {1 / cpu_song:.2f} songs/s per core")
    print(f"load average after: {load()}")


def short_clips(kind: str, limit: int | None) -> list[str]:
    """The soundtrack clips: the .ogg files, or the same as WAV (converted once by benchmarks/wav_clips.py)."""
    if kind == "wav":
        from wav_clips import wav_clips

        paths = wav_clips()
    else:
        paths = sorted((DATA / "soundtracks").glob("*/*.ogg"))
        if not paths:
            sys.exit(f"no clips under {DATA / 'soundtracks'} — build them with benchmarks/soundtracks.py")
    return [str(p) for p in paths[:limit]]


def clips_overhead(paths: list[str], repeat: int) -> None:
    """``embed --jobs 2`` against ``embed --cluster local:2`` on short clips given on stdin; the ratio of the walls."""
    stdin = "\n".join(paths).encode() + b"\n"
    kind = os.path.splitext(paths[0])[1]
    print(f"\n## short clips: embed --jobs 2 against --cluster local:2 on {len(paths)} {kind} clips of 30 s")
    loads = [load()]
    with tempfile.TemporaryDirectory() as tmp:
        lib = os.path.join(tmp, "lib.npz")
        runs = {
            "embed --jobs 2": [*SPECMUSIC, "embed", "-", "-o", lib, "--force", "--jobs", "2"],
            "embed --cluster local:2": [*SPECMUSIC, "embed", "-", "-o", lib, "--force", "--cluster", "local:2"],
        }
        best = best_runs(runs, repeat, stdin=stdin, after_each=lambda: loads.append(load()))
    print("| run | wall s | clips/s | CPU s | CPU ms/clip | peak MB (tree) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in best.items():
        print(f"| `{name}` | {r['wall']:.2f} | {len(paths) / r['wall']:.1f} | {r['cpu']:.1f} | "
              f"{1000 * r['cpu'] / len(paths):.0f} | {r['rss']:.0f} |")  # fmt: skip
        print(f"  ({r['summary']})")
    jobs, dask = best["embed --jobs 2"]["wall"], best["embed --cluster local:2"]["wall"]
    print(f"cluster / jobs: {dask / jobs:.3f}× wall (goal ≤ 1.10×); {dask - jobs:+.2f} s, "
          f"{1000 * (best['embed --cluster local:2']['cpu'] - best['embed --jobs 2']['cpu']) / len(paths):+.1f} CPU ms/clip")
    print(f"load average (1, 5, 15 min) before, after each run: {' → '.join(loads)}  ({os.cpu_count()} cores)")


def make_tiny(n: int) -> list[str]:
    """``n`` 0.2 s 16 kHz WAV files under benchmarks/data/tiny/ (written once), 1,000 per folder."""
    import numpy as np
    import soundfile as sf

    paths = []
    rng = np.random.default_rng(0)
    t = np.arange(3200) / 16000
    for i in range(n):
        path = TINY / f"{i // 1000:03d}" / f"t{i:06d}.wav"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            y = 0.3 * np.sin(2 * np.pi * (100 + i % 2000) * t) + 0.01 * rng.standard_normal(len(t))
            sf.write(path, y.astype(np.float32), 16000, subtype="PCM_16")
        paths.append(str(path))
    return paths


SCHEDULER = r"""
import logging, sys, time
import distributed
cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None, silence_logs=logging.ERROR)
print(cluster.scheduler_address, flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
cluster.close()
"""


def client_memory(n: int, where: str) -> None:
    """Client RSS over ``n`` tiny files, on ``local:2`` (the scheduler lives in the client process)
    or ``tcp`` (a LocalCluster in another process, reached as tcp://127.0.0.1:PORT: the client alone)."""
    paths = make_tiny(n)
    helper = None
    if where == "tcp":
        helper = subprocess.Popen([sys.executable, "-c", SCHEDULER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        where = helper.stdout.readline().strip()  # type: ignore[union-attr]
    print(f"\n## client memory: embed - -m mfcc -o LIB/ --cluster {where} over tiny files (0.2 s each)")
    print(f"load average before: {load()}")
    marks = tuple(m for m in (1000, 5000, 10000, 15000, 20000, 40000) if m <= n) + ((n,) if n not in (1000, 5000, 10000, 15000, 20000, 40000) else ())
    print("| tracks in the run | " + " | ".join(f"RSS at {m:,}" for m in marks) + " | wall s | tracks/s | CPU ms/track | peak MB (tree) |")
    print("|---:|" + "---:|" * (len(marks) + 4))
    for size in (max(1, n // 4), n):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [*SPECMUSIC, "embed", "-", "-m", "mfcc", "-o", os.path.join(tmp, "lib") + "/",
                   "--cluster", where, "--progress"]  # fmt: skip
            r = measure(cmd, stdin="\n".join(paths[:size]).encode() + b"\n", progress_marks=marks)
        cells = " | ".join(f"{r['client'][m]:.0f} MB" if m in r["client"] else "" for m in marks)
        print(f"| {size:,} | {cells} | {r['wall']:.1f} | {size / r['wall']:.0f} | {1000 * r['cpu'] / size:.2f} | {r['rss']:.0f} |")
        print(f"  ({r['summary']})")
    if helper is not None:
        helper.stdin.close()  # type: ignore[union-attr]
        helper.wait(timeout=60)
    print(f"load average after: {load()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=1, help="runs of each overhead command (best wall kept)")
    ap.add_argument("--tiny", type=int, default=20000, help="tiny files for the client-memory run")
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--all-songs", action="store_true",
                    help="overhead on every full-length song of the unpacked soundtracks (~156) instead of the 24")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--clips", choices=["wav", "ogg"], help="also: embed on the soundtrack benchmark's 30 s clips")
    ap.add_argument("--limit", type=int, help="the first N clips only (--clips; a quick check that it runs)")
    ap.add_argument("--memory-on", choices=["local:2", "tcp", "both"], default="both",
                    help="client-memory run on a LocalCluster inside the client, on one in another process, or both")
    args = ap.parse_args()
    print(f"# cluster overhead — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores")
    if not args.skip_overhead:
        overhead(args.repeat, soundtrack_songs() if args.all_songs else SONGS)
    if args.clips:
        clips_overhead(short_clips(args.clips, args.limit), args.repeat)
    if not args.skip_memory:
        for where in (["local:2", "tcp"] if args.memory_on == "both" else [args.memory_on]):
            client_memory(args.tiny, where)


if __name__ == "__main__":
    main()
