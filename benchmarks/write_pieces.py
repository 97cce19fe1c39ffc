"""The ``.npz`` write of one spectrogram: ``np.savez`` on a plain file against a :class:`PiecewiseWriter`.

``spectro`` writes one ``.npz`` per clip (a 128 × 1292 float32 log-mel of 30 s, 660 KB, and nine small
fields, as :func:`specmusic.specfile.save_spectrogram` does). numpy hands a zip member's array to the file
in one ``write`` of up to 16 MiB; :class:`specmusic.fileio.PiecewiseWriter` passes it on in 64 KiB pieces.

1. The whole command: ``specmusic spectro CLIPS -o TMP --jobs N`` in a fresh process, as shipped and with
   ``open_binary_writer`` put back to a plain ``open(path, "wb")``, alternating, ``--repeats`` each (clips:
   ``--clips`` folder, default the first 40 WAVs of ``benchmarks/data/wav-clips-44k``, else generated).
2. The write alone, in this process: both ways alternating file by file into one folder (``--folder``s; default
   a temporary folder beside the checkout and one in the system's temporary folder), ``--files`` each, wall
   and calling-thread CPU time; then one raw ``write`` of the same bytes in one piece and in 64 KiB pieces.
   The files are byte-identical (checked).

    python benchmarks/write_pieces.py [--clips DIR] [--repeats 5] [--jobs 1] [--files 300] [--folder DIR ...]
"""

from __future__ import annotations

import argparse
import hashlib
import io
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
sys.path.insert(0, str(ROOT))

from specmusic.fileio import WRITE_PIECE, open_binary_writer  # noqa: E402


def spectrogram_fields() -> dict[str, np.ndarray]:
    """What ``save_spectrogram`` writes for a 30 s clip: the array and nine small fields."""
    rng = np.random.default_rng(0)
    spec = (rng.standard_normal((128, 1292)) * 20 - 40).astype(np.float32)
    meta = {"format_version": 2, "config": '{"kind": "mel", "n_mels": 128}' * 8, "config_hash": "0" * 64,
            "duration": 30.0, "offset": 0.0, "max_duration": -1.0, "source_size": 5292044,
            "source_mtime": 1.7e9, "warning": ""}  # fmt: skip
    return {"spec": spec, **{k: np.asarray(v) for k, v in meta.items()}}


def timed(write, path: Path) -> tuple[float, float]:  # noqa: ANN001
    t, c = time.perf_counter(), time.thread_time()
    write(path)
    return time.perf_counter() - t, time.thread_time() - c


PLAIN = """
import sys
import specmusic.fileio as fileio
fileio.open_binary_writer = lambda path: open(path, "wb")  # as before: one write() per numpy chunk
from specmusic.cli.app import main
sys.argv = ["specmusic", *sys.argv[1:]]
main()
"""


def clip_folder(folder: Path | None, tmp: Path) -> Path:
    """``folder``, else the first 40 WAVs of the benchmark's clip set, else 40 generated 30 s clips."""
    if folder is not None:
        return folder
    found = sorted((ROOT / "benchmarks" / "data" / "wav-clips-44k").rglob("*.wav"))[:40]
    out = tmp / "clips"
    out.mkdir()
    if found:
        for i, p in enumerate(found):
            shutil.copyfile(p, out / f"{i:02d}-{p.name}")
        return out
    import soundfile as sf

    rng = np.random.default_rng(0)
    for i in range(40):
        sf.write(out / f"{i:02d}.wav", (0.1 * rng.standard_normal((30 * 44100, 2))).astype(np.float32), 44100,
                 subtype="PCM_16")  # fmt: skip
    return out


def whole_command(clips: Path, jobs: int, repeats: int, tmp: Path) -> None:
    """``spectro`` on ``clips``, as shipped and with plain writes, alternating; medians."""
    n = sum(1 for p in clips.rglob("*") if p.is_file())
    variants = {"as shipped (PiecewiseWriter)": [sys.executable, "-m", "specmusic"],
                "plain open(path, 'wb')": [sys.executable, "-c", PLAIN]}  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in variants}
    load = os.getloadavg()[0]
    for r in range(repeats + 1):  # the first round warms the page cache and is not counted
        for name, argv in variants.items():
            out = tmp / "out"  # removed after each run: every run writes into a new folder
            t = time.perf_counter()
            subprocess.run([*argv, "spectro", str(clips), "-o", str(out), "--jobs", str(jobs)], check=True,
                           capture_output=True)  # fmt: skip
            if r:
                times[name].append(time.perf_counter() - t)
            shutil.rmtree(out)
    print(f"# spectro on {n} clips ({clips}), --jobs {jobs}, fresh process, {repeats} alternating runs each; "
          f"load average {load:.2f} before, {os.getloadavg()[0]:.2f} after")
    print("| variant | median s | clips/s |\n|---|---:|---:|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts):.3f} | {n / statistics.median(ts):.1f} |")
    a, b = (statistics.median(ts) for ts in times.values())
    print(f"\nplain ÷ as shipped = {b / a:.3f}× ({1000 * (b - a) / n:+.2f} ms a clip)\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=Path, help="folder of audio for the whole command")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--files", type=int, default=300, help="files written each way (default 300)")
    ap.add_argument("--folder", type=Path, action="append", help="where the write-alone folders go (repeatable)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=ROOT.parent) as tmp:
        whole_command(clip_folder(args.clips, Path(tmp)), args.jobs, args.repeats, Path(tmp))
    for folder in args.folder or [ROOT.parent, Path(tempfile.gettempdir())]:
        write_alone(folder, args.files)


def write_alone(folder: Path, files: int) -> None:
    """Both ways of writing the ``.npz`` (and the raw bytes), alternating, ``files`` each, in ``folder``."""
    fields = spectrogram_fields()
    raw = fields["spec"].tobytes()

    def plain_npz(p: Path) -> None:
        with open(p, "wb") as f:
            np.savez(f, **fields)

    def piecewise_npz(p: Path) -> None:
        with open_binary_writer(p) as f:
            np.savez(f, **fields)

    def plain_raw(p: Path) -> None:
        with open(p, "wb") as f:
            f.write(raw)

    def piecewise_raw(p: Path) -> None:
        with io.FileIO(p, "w") as f:
            view = memoryview(raw)
            for s in range(0, len(view), WRITE_PIECE):
                f.write(view[s : s + WRITE_PIECE])

    ways = {"np.savez, plain file": plain_npz, "np.savez, PiecewiseWriter": piecewise_npz,
            "one write() of the 662 KB array": plain_raw, "the same in 64 KiB write()s": piecewise_raw}  # fmt: skip
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
        for i in range(files):
            for j, (name, write) in enumerate(ways.items()):
                times[name].append(timed(write, Path(tmp) / f"{j}-{i}.bin"))
        digests = {hashlib.sha256((Path(tmp) / f"{j}-0.bin").read_bytes()).hexdigest() for j in (0, 1)}
        fs = os.statvfs(tmp)
    print(f"# the write alone: {files} files each way, alternating, in {folder} (filesystem block {fs.f_bsize} B); "
          f"load average {load:.2f} before, {os.getloadavg()[0]:.2f} after; {os.cpu_count()} CPUs")
    print("| write | median wall ms | median CPU ms | mean wall ms |\n|---|---:|---:|---:|")
    for name, rows in times.items():
        walls = [w * 1e3 for w, _ in rows]
        print(f"| {name} | {statistics.median(walls):.3f} | {statistics.median(c * 1e3 for _, c in rows):.3f} | "
              f"{statistics.fmean(walls):.3f} |")
    a, b = (statistics.median(w for w, _ in times[n]) for n in list(ways)[:2])
    print(f"\nnp.savez: plain ÷ PiecewiseWriter = {a / b:.2f}× (median wall); identical bytes: {len(digests) == 1}\n")


if __name__ == "__main__":
    main()
