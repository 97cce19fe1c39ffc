"""The runtime install (``pip install specmusic``, no torch) beside the install with training, in one run.

    .venv/bin/python benchmarks/install_size.py                 # both, into fresh temporary venvs
    .venv/bin/python benchmarks/install_size.py --only runtime

Each variant gets a fresh venv (``python3 -m venv``) and a non-editable ``pip install`` of this
clone (``.`` and ``.[train]``), timed from the outside; then the venv's size on disk (every file
under it, as ``du -sb`` counts), its largest packages, and whether ``import torch`` works there.
Pip's wheel cache is left as the machine has it, so the times mostly measure unpacking where
wheels are cached (say so beside the figures).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"runtime": ".", "runtime + train": ".[train]"}


def size_of(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def largest(site: Path, n: int = 5) -> list[tuple[str, int]]:
    sizes = [(d.name, size_of(d)) for d in site.iterdir() if d.is_dir() and not d.name.endswith((".dist-info", "__pycache__"))]
    return sorted(sizes, key=lambda t: -t[1])[:n]


def measure(name: str, spec: str, work: Path) -> dict:
    venv = work / name.replace(" ", "").replace("+", "-")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = venv / "bin" / "pip"
    t0 = time.perf_counter()
    subprocess.run([str(pip), "install", "-q", spec], cwd=ROOT, check=True)
    seconds = time.perf_counter() - t0
    py = venv / "bin" / "python"
    torch = subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode == 0
    site = next((venv / "lib").glob("python*/site-packages"))
    return {"name": name, "spec": spec, "seconds": seconds, "bytes": size_of(venv), "torch": torch,
            "largest": largest(site)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=list(VARIANTS), default=None)
    args = ap.parse_args()
    with open("/proc/loadavg") as f:
        print(f"# loadavg before: {f.read().strip()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="specmusic-install-") as tmp:
        for name, spec in VARIANTS.items():
            if args.only in (None, name):
                rows.append(measure(name, spec, Path(tmp)))
                print(f"# {name}: done in {rows[-1]['seconds']:.0f} s", file=sys.stderr, flush=True)
    print(f"\n{'install':<16} {'pip install':<16} {'venv size':>10} {'time':>7}  torch importable")
    for r in rows:
        print(f"{r['name']:<16} {r['spec']:<16} {r['bytes'] / 1e6:>7.0f} MB {r['seconds']:>6.0f} s  {'yes' if r['torch'] else 'no'}")
    for r in rows:
        print(f"# {r['name']}, largest packages: " + ", ".join(f"{n} {b / 1e6:.0f} MB" for n, b in r["largest"]))
    with open("/proc/loadavg") as f:
        print(f"# loadavg after: {f.read().strip()}", flush=True)


if __name__ == "__main__":
    main()
