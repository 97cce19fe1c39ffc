"""Batch audio → spectrogram arrays (+ pictures), resumable and safe to interrupt.

Each track becomes ``OUT/<relpath>.npz`` in the format of :mod:`specmusic.specfile`;
``OUT/manifest.jsonl`` lists one record per array; ``OUT/errors.jsonl`` lists what failed (or
warned) in the last run. Arrays are written to a temporary name and renamed, so an interrupted
run leaves only complete arrays; rerunning skips them. Temporary files that a killed process left
(SIGKILL: no handler runs) are swept from OUT when the next run starts, and when a run ends (a
worker killed mid-write: :func:`specmusic.fileio.sweep_stale_temps`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from specmusic.audio import PeakMeter, signal_warnings, stream_audio
from specmusic.data import FailedInput, Track
from specmusic.errors import AudioError, SpecmusicError
from specmusic.features import FeatureConfig, compute_features_stream
from specmusic.fileio import display_path, ensure_writable_dir, folder_lock, sweep_stale_temps, write_jsonl_atomic
from specmusic.batch import open_executor, require_visible, run_tasks
from specmusic.outputs import full_disk_stop, is_disk_full, mirror_path
from specmusic.specfile import (
    ERRORS_NAME,
    MANIFEST_NAME,
    current_meta,
    load_spectrogram,
    read_spectro_manifest,
    save_spectrogram,
)

__all__ = ["SpectroReport", "output_path", "run_spectro"]



@dataclass
class SpectroReport:
    """What a run did."""

    written: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    manifest: Path | None = None

    @property
    def ok(self) -> bool:
        """True when nothing failed (warnings allowed)."""
        return not self.failed


def output_path(out_dir: Path, track: Track, suffix: str = ".npz") -> Path:
    """Where a track's array goes: its relpath under ``out_dir`` with ``suffix``."""
    return mirror_path(out_dir, track.relpath, suffix=suffix)  # never outside out_dir


# -- one track ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Job:
    track: Track
    out: Path
    config: FeatureConfig
    offset: float
    duration: float | None
    min_duration: float
    png: bool
    force: bool


def _record(job: _Job, meta: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    return {
        "path": str(job.out.relative_to(out_dir).as_posix()),
        "source": os.path.abspath(job.track.path),
        "label": job.track.label,
        "group": job.track.group_id,
        "duration": round(float(meta["duration"]), 4),
        "sample_rate": job.config.sample_rate,
        "shape": list(meta["shape"]),
        "kind": job.config.kind,
        "config_hash": job.config.digest(),
    }


def _process(job: _Job, out_dir: Path) -> tuple[str, dict[str, Any], str | None]:
    """Compute (or skip) one track. Returns (status, record, warning)."""
    st = os.stat(job.track.path)
    if not job.force and job.out.exists():
        meta = current_meta(job.out, config=job.config, source=st, offset=job.offset, max_duration=job.duration)
        if meta is not None:
            if job.png and not job.out.with_suffix(".png").exists():  # interrupted between array and picture
                spec, _ = load_spectrogram(job.out)
                _save_png(job, spec)
                return "written", _record(job, meta, out_dir), meta.get("warning") or None
            return "skipped", _record(job, meta, out_dir), meta.get("warning") or None

    meter = PeakMeter(
        stream_audio(job.track.path, sr=job.config.sample_rate, mono=True, offset=job.offset, duration=job.duration)
    )
    spec, n = compute_features_stream(meter, job.config)
    seconds = n / job.config.sample_rate
    name = display_path(job.track.path)
    if n == 0:
        raise AudioError(f"{name}: contains no audio samples — check the file (or the --offset)")
    if seconds < job.min_duration:
        raise AudioError(
            f"{name}: only {seconds:.2f} s of audio, shorter than --min-duration {job.min_duration:g} s — "
            "pass --min-duration 0 to keep it"
        )
    warning = "; ".join(signal_warnings(name, peak=meter.peak, seconds=seconds))
    meta = save_spectrogram(job.out, spec, config=job.config, duration=seconds, offset=job.offset,
                            max_duration=job.duration, source_size=st.st_size, source_mtime=st.st_mtime,
                            warning=warning)
    if job.png:  # after the array: a rerun sees the missing picture and draws it from the array
        _save_png(job, spec)
    return "written", _record(job, meta, out_dir), warning or None


def _save_png(job: _Job, spec: np.ndarray) -> None:
    from specmusic.plotting import save_spectrogram_png

    save_spectrogram_png(job.out.with_suffix(".png"), spec, job.config, title=os.path.basename(job.track.relpath))


def _safe_process(job: _Job, out_dir: Path) -> tuple[str, dict[str, Any], str | None]:
    """Run :func:`_process`, turning expected failures into an ``("failed", …)`` result."""
    try:
        require_visible(job.track.path)
        return _process(job, out_dir)
    except SpecmusicError as exc:
        return "failed", {"source": job.track.path, "error": str(exc)}, None
    except FileNotFoundError:
        msg = f"{display_path(job.track.path)}: no such file — check the path"
        return "failed", {"source": job.track.path, "error": msg}, None
    except PermissionError as exc:
        if exc.filename is not None and os.path.abspath(exc.filename) != os.path.abspath(job.track.path):
            raise  # cannot write the output: not this track's fault, the whole run stops with one line
        msg = f"{display_path(job.track.path)}: permission denied — make the file readable"
        return "failed", {"source": job.track.path, "error": msg}, None
    except MemoryError:
        msg = f"{display_path(job.track.path)}: out of memory — use --duration to analyse a part"
        return "failed", {"source": job.track.path, "error": msg}, None


# -- batch ----------------------------------------------------------------------------------
def run_spectro(
    tracks: Sequence[Track],
    out_dir: str | os.PathLike[str],
    *,
    config: FeatureConfig | None = None,
    offset: float = 0.0,
    duration: float | None = None,
    min_duration: float = 0.5,
    png: bool = False,
    force: bool = False,
    jobs: int = 1,
    cluster: str | None = None,
    failures: Sequence[FailedInput] = (),
    progress: bool | None = None,
    on_error: Callable[[str], None] | None = None,
) -> SpectroReport:
    """Compute spectrograms for ``tracks`` into ``out_dir``.

    Parameters
    ----------
    tracks : from :func:`specmusic.data.discover_tracks` or :func:`specmusic.data.read_manifest`
    out_dir : output folder (created)
    config : feature settings (default: 128-band log-mel at 22050 Hz)
    offset, duration : analyse only this window of each file (seconds)
    min_duration : shorter tracks are reported as failures
    png : also save a picture beside each array
    force : recompute even when an up-to-date array exists
    jobs : worker processes
    cluster : run on Dask instead: ``local[:N]`` | ``tcp://HOST:PORT`` (:mod:`specmusic.distributed`);
        workers write the arrays themselves, so OUT must be on a filesystem they share with this machine
    failures : inputs that already failed while listing; they are reported with the rest
    progress : show a progress bar on stderr (None: only on a terminal)
    on_error : called with each error/warning line as it happens (the CLI prints them)

    Returns
    -------
    SpectroReport
    """
    from tqdm import tqdm

    config = config or FeatureConfig()
    out = ensure_writable_dir(out_dir, option="-o")
    sweep_stale_temps(out, before=time.time(), recursive=True)  # what a killed run left
    report = SpectroReport()
    emit = on_error or (lambda line: None)
    for f in failures:
        report.failed.append({"source": f.path, "error": f.message})
        emit(f.message)

    jobs_list = _plan_jobs(tracks, out, report, emit, config=config, offset=offset, duration=duration,
                           min_duration=min_duration, png=png, force=force)
    bar = tqdm(total=len(jobs_list), desc="spectro", unit="track", file=sys.stderr,
               disable=None if progress is None else not progress, dynamic_ncols=True)

    def collect(result: tuple[str, dict[str, Any], str | None]) -> None:
        status, record, warning = result
        if cluster and status != "failed" and not (out / record["path"]).is_file():  # written where we cannot see it
            status, record = "failed", {"source": record["source"], "error": (
                f"{display_path(record['source'])}: its array was written on a worker but is not in "
                f"{display_path(out)} here — -o must be on a filesystem every worker shares, at the same path")}
        if status == "failed":
            report.failed.append(record)
            emit(record["error"])
        else:
            (report.written if status == "written" else report.skipped).append(record)
            if warning:
                report.warnings.append({"source": record["source"], "warning": warning})
                emit("warning: " + warning)
        bar.update(1)

    try:

        def size(job: _Job) -> int:
            try:
                return os.stat(job.track.path).st_size
            except OSError:
                return 0

        with open_executor(jobs=jobs, cluster=cluster, n_items=len(jobs_list)) as executor:
            # In parallel, longest first, so one long track does not finish alone at the end.
            ordered = jobs_list if executor is None else sorted(jobs_list, key=size, reverse=True)
            for _, result in run_tasks(
                executor, _safe_process, ordered, args=(out,),
                on_failure=lambda job, error: ("failed", {"source": job.track.path, "error": error}, None),
            ):  # fmt: skip
                collect(result)
    except OSError as exc:  # a full disk stops the run: one line naming the file, a row for each track not finished
        if not is_disk_full(exc):
            raise
        done = {os.path.abspath(r["source"]) for r in report.written + report.skipped + report.failed}
        left = [j.track.path for j in jobs_list if os.path.abspath(j.track.path) not in done]
        rows, error = full_disk_stop(exc, left, listed_in=out / ERRORS_NAME)
        report.failed += rows
        raise error from None
    finally:
        bar.close()
        if report.written or report.skipped or report.failed or (out / MANIFEST_NAME).exists():
            _write_run_files(out, report)  # also on Ctrl-C: what finished is recorded
        sweep_stale_temps(out, before=time.time(), recursive=True)  # a worker killed mid-write (its lock died with it)
    return report


def _plan_jobs(
    tracks: Sequence[Track], out: Path, report: SpectroReport, emit: Callable[[str], None], *, config: FeatureConfig,
    offset: float, duration: float | None, min_duration: float, png: bool, force: bool,
) -> list[_Job]:
    """One job per track; a track whose array would overwrite another's is reported as failed instead."""
    jobs_list: list[_Job] = []
    seen: dict[Path, str] = {}
    for t in tracks:
        dest = output_path(out, t)
        if dest in seen:
            msg = (
                f"{display_path(t.path)}: same output name as {display_path(seen[dest])} "
                f"({display_path(dest.relative_to(out))}) — rename one or process them separately"
            )
            report.failed.append({"source": t.path, "error": msg})
            emit(msg)
            continue
        seen[dest] = t.path
        jobs_list.append(_Job(t, dest, config, offset, duration, min_duration, png, force))
    return jobs_list


def _write_run_files(out: Path, report: SpectroReport) -> None:
    """Merge this run's records into the manifest and its errors into the errors file.

    Under a lock on the folder, so two runs into one folder keep each other's records: a row of
    either file is replaced only for a source this run processed.
    """
    done = report.written + report.skipped
    this_run = {r["path"] for r in done}
    sources = {os.path.abspath(r["source"]) for r in done + report.failed}
    rows = [{"severity": "error", **r} for r in report.failed] + [
        {"severity": "warning", "source": w["source"], "error": w["warning"]} for w in report.warnings
    ]
    manifest, errors = out / MANIFEST_NAME, out / ERRORS_NAME
    with folder_lock(out):
        kept = [
            r for r in read_spectro_manifest(out) if r.get("path") not in this_run and (out / r["path"]).exists()
        ]
        write_jsonl_atomic(manifest, sorted(kept + done, key=lambda r: r["path"]))
        rows = [r for r in _read_errors(errors) if os.path.abspath(str(r.get("source"))) not in sources] + rows
        if rows:
            write_jsonl_atomic(errors, rows)
        else:
            errors.unlink(missing_ok=True)
    report.manifest = manifest


def _read_errors(path: Path) -> list[dict[str, Any]]:
    rows = []
    with contextlib.suppress(FileNotFoundError), open(path, encoding="utf-8") as f:
        for line in f:
            with contextlib.suppress(json.JSONDecodeError):
                if line.strip():
                    rows.append(json.loads(line))
    return rows
