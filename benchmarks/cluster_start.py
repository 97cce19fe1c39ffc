"""What starting the cluster while the inputs are listed could save: the command's own work before it asks
for the cluster, against the cluster's start, in one run of each command.

Each command runs in a fresh process with ``specmusic.distributed.cluster_client`` wrapped to note three
times: when the command asks for the cluster (everything before it: interpreter, imports, listing and
checking the inputs, the model's description), when the ``LocalCluster`` and its client are ready, and
when the command ends. Started in a thread at the first line instead, the cluster could overlap at most the
first of these (on the same cores, which that work also uses).

    python benchmarks/cluster_start.py [FOLDER] [--workers 2] [--repeat 3]

FOLDER defaults to the 30 s WAV clips of ``benchmarks/wav_clips.py`` (``benchmarks/data/wav-clips-44k``).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WRAPPED = """
import contextlib, sys, time
T0 = time.perf_counter()
import specmusic.distributed as distributed

_original = distributed.cluster_client


@contextlib.contextmanager
def timed(spec):
    asked = time.perf_counter()
    with _original(spec) as client:
        sys.stderr.write(f"TIMES before={asked - T0:.4f} start={time.perf_counter() - asked:.4f}\\n")
        yield client
    sys.stderr.write(f"TIMES total={time.perf_counter() - T0:.4f}\\n")


if __name__ == "__main__":  # the cluster's worker processes are spawned: they must not run the command
    distributed.cluster_client = timed
    from specmusic.cli.app import main

    sys.argv = ["specmusic", *sys.argv[1:]]
    main()
"""


def run(args: list[str]) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", WRAPPED, *args], capture_output=True, text=True, check=True)
    return {k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", " ".join(
        line for line in done.stderr.splitlines() if line.startswith("TIMES")))}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", nargs="?", type=Path, default=ROOT / "benchmarks" / "data" / "wav-clips-44k")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n = sum(1 for p in args.folder.rglob("*") if p.suffix.lower() in (".wav", ".ogg", ".flac", ".mp3"))
    load = os.getloadavg()[0]
    cluster = f"local:{args.workers}"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, cmd in (("spectro", ["spectro", str(args.folder), "-o", f"{tmp}/specs", "--force"]),
                          ("embed", ["embed", str(args.folder), "-o", f"{tmp}/lib.npz", "--force"])):  # fmt: skip
            times = [run([*cmd, "--cluster", cluster, "--no-progress"]) for _ in range(args.repeat)]
            rows.append((name, {k: statistics.median(t[k] for t in times) for k in ("before", "start", "total")}))
    print(f"# {n} files in {args.folder}, --cluster {cluster}, medians of {args.repeat} fresh processes; "
          f"{os.cpu_count()} CPUs, load average {load:.2f} before, {os.getloadavg()[0]:.2f} after")
    print("| command | before asking for the cluster, s | cluster start, s | whole command, s | "
          "most an early start could save |\n|---|---:|---:|---:|---:|")
    for name, t in rows:
        saving = min(t["before"], t["start"])
        print(f"| {name} | {t['before']:.3f} | {t['start']:.3f} | {t['total']:.2f} | {saving:.3f} s "
              f"({saving / t['total']:.1%}) |")


if __name__ == "__main__":
    main()
