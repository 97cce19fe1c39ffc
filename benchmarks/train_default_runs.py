"""The runs of ``benchmarks/train_default.py``: its candidates, one measured ``specmusic train`` process each,
and a scheduler that runs them two (``--parallel``) at a time.

Every run is a fresh ``specmusic train`` process on one collection with its split lists
(``splits/{train,valid,test}_filtered.txt``), ``--seed S --threads 1 --no-progress``, writing into
``OUT/<collection>/<candidate>/seed<S>/`` and reading or filling the feature cache
``OUT/<collection>/<candidate>/cache/`` that the seeds of one candidate share. Seed 0 starts with an
empty cache, so its time is a first run's (features included); the other seeds wait for it and read the
cache. ``bench.json`` beside ``metrics.json`` records what the process cost, read with ``os.wait4``: wall
seconds, CPU seconds (user + system, children included), peak resident memory, and the load average
before and after. A run with a ``bench.json`` of exit code 0 is not run again.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CANDIDATES", "COLLECTIONS", "Candidate", "Job", "load_record", "run_job", "run_jobs"]

COLLECTIONS = ("soundtracks", "other-games", "third-games")


@dataclass(frozen=True)
class Candidate:
    """One way ``train DATA`` could work by default: its extra arguments and the lane it prefers."""

    key: str
    label: str
    args: str  # extra ``specmusic train`` arguments; ``{weights}`` = the shared weights folder
    lane: str = "main"  # the worker that prefers it (the fine-tune has one to itself)


CANDIDATES: dict[str, Candidate] = {c.key: c for c in (
    Candidate("scratch", "scratch CNN (`--arch cnn`)", "--arch cnn"),  # what `train DATA` ran until this rule
    Candidate("probe-mn04", "linear head on audioset-mn04", "--head linear"),
    Candidate("probe-pons", "linear head on pons-msd-musicnn", "--head linear --backbone pons-msd-musicnn"),
    Candidate("musicnn-lp", "MusiCNN (MTAT) linear probe",
              "--arch musicnn --pretrained mtat --linear-probe "
              "--weights {weights}/sota-music-tagging/mtat/musicnn/best_model.pth"),
    Candidate("finetune-mn04", "audioset-mn04 fine-tuned, 3 epochs (1 frozen)",
              "--arch audioset-mn04 --pretrained --epochs 3 --freeze-epochs 1 "
              "--weights {weights}/efficientat/mn04_as_mAP_432.pt", lane="finetune"),
)}


@dataclass(frozen=True)
class Job:
    """One candidate, on one collection, with one seed."""

    candidate: str
    collection: str
    seed: int

    def folder(self, out: Path) -> Path:
        return out / self.collection / self.candidate / f"seed{self.seed}"

    def cache(self, out: Path) -> Path:
        return out / self.collection / self.candidate / "cache"

    def first(self) -> Job:
        """The run that fills the cache this one reads (seed 0)."""
        return Job(self.candidate, self.collection, 0)


def command(job: Job, *, data_root: Path, out: Path, weights: Path) -> list[str]:
    """The ``specmusic train`` command line of ``job``."""
    data = data_root / job.collection
    lists = {k: data / "splits" / f"{k}_filtered.txt" for k in ("train", "valid", "test")}
    extra = CANDIDATES[job.candidate].args.format(weights=weights)
    return [sys.executable, "-m", "specmusic", "train", str(data), "-o", str(job.folder(out)),
            "--split-file", str(lists["train"]), "--valid-file", str(lists["valid"]), "--test-file", str(lists["test"]),
            "--cache-dir", str(job.cache(out)), "--seed", str(job.seed), "--threads", "1", "--no-progress",
            *shlex.split(extra)]


def load_record(job: Job, out: Path) -> dict[str, Any] | None:
    """The finished run's ``bench.json`` joined with its ``metrics.json``; None when it has not succeeded."""
    folder = job.folder(out)
    try:
        bench = json.loads((folder / "bench.json").read_text())
        if bench.get("returncode") != 0:
            return None
        return {**bench, "metrics": json.loads((folder / "metrics.json").read_text())}
    except (OSError, ValueError):
        return None


def run_job(job: Job, *, data_root: Path, out: Path, weights: Path) -> dict[str, Any] | None:
    """Run ``job`` in a fresh process and record its cost; seed 0 starts from an empty feature cache."""
    folder = job.folder(out)
    shutil.rmtree(folder, ignore_errors=True)
    if job.seed == 0:
        shutil.rmtree(job.cache(out), ignore_errors=True)  # a first run computes its features
    folder.mkdir(parents=True)
    cmd = command(job, data_root=data_root, out=out, weights=weights)
    load_before = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    t0 = time.perf_counter()
    with open(folder / "train.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, cwd=Path(__file__).resolve().parents[1])
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    bench = {"candidate": job.candidate, "collection": job.collection, "seed": job.seed, "command": shlex.join(cmd),
             "returncode": proc.returncode, "started": started, "wall_s": round(wall, 1),
             "cpu_s": round(usage.ru_utime + usage.ru_stime, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
             "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
             "fresh_cache": job.seed == 0}
    tmp = folder / "bench.json.part"
    tmp.write_text(json.dumps(bench, indent=1))
    tmp.replace(folder / "bench.json")
    record = load_record(job, out)
    if record is None:
        tail = "".join((folder / "train.log").read_text(errors="replace").splitlines(True)[-5:])
        print(f"{job.collection} {job.candidate} seed {job.seed}: FAILED (exit {proc.returncode}):\n{tail}",
              file=sys.stderr, flush=True)
        return None
    test = record["metrics"]["test"]
    print(f"{job.collection} {job.candidate} seed {job.seed}: test acc {test['accuracy']:.3f}, macro-F1 "
          f"{test['macro_f1']:.3f}; {wall / 60:.1f} min wall, {bench['cpu_s'] / 60:.1f} min CPU, "
          f"{bench['peak_rss_mb']:.0f} MB; load {load_before:.1f} -> {bench['load_after']:.1f}", file=sys.stderr,
          flush=True)
    return record


def run_jobs(jobs: list[Job], *, parallel: int, data_root: Path, out: Path, weights: Path,
             stop_at: float | None = None) -> None:
    """Run ``jobs`` (in their order) on ``parallel`` workers; worker 0 prefers the main lane, worker 1 the
    fine-tune lane, and each takes any other ready job when its lane has none. A seed > 0 waits for seed 0
    of its candidate and collection (which fills the cache); one whose seed 0 failed is dropped. No job
    starts after ``stop_at`` (``time.time()``)."""
    lanes = ["main", "finetune"] + ["main"] * max(0, parallel - 2)
    pending, running, failed = list(jobs), set(), set()
    done = {j.first() for j in jobs if load_record(j.first(), out) is not None}  # seed 0 runs of earlier invocations
    cond = threading.Condition()

    def ready(job: Job) -> bool:
        return job.seed == 0 or job.first() in done

    def take(lane: str) -> Job | None:
        pending[:] = [j for j in pending if j.first() not in failed]
        mine = [j for j in pending if CANDIDATES[j.candidate].lane == lane and ready(j)]
        ready_jobs = mine or [j for j in pending if ready(j)]
        if ready_jobs:
            pending.remove(ready_jobs[0])
            running.add(ready_jobs[0])
            return ready_jobs[0]
        return None

    def worker(lane: str) -> None:
        while True:
            with cond:
                if stop_at is not None and time.time() > stop_at:
                    pending.clear()
                job = take(lane)
                while job is None and pending and running:
                    cond.wait()
                    job = take(lane)
                if job is None:
                    cond.notify_all()
                    return
            ok = run_job(job, data_root=data_root, out=out, weights=weights) is not None
            with cond:
                running.discard(job)
                (done if ok else failed).add(job)
                cond.notify_all()

    threads = [threading.Thread(target=worker, args=(lane,)) for lane in lanes[:max(1, parallel)]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
