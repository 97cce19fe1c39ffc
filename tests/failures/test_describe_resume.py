"""``describe`` interrupted keeps what it analysed (its journal), and the rerun analyses only the rest: the
promise of its Ctrl-C message, true now. The journal is invalidated file by file (size, mtime) and as a whole
when a setting of the analysis changes."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import specmusic.describe.run as describe_run
from specmusic.cli.app import app
from specmusic.data import discover_tracks
from specmusic.describe import DescribeConfig, describe_dataset
from tests.conftest import tone, write
from tests.failures.procs import signal_mid_run, spawn

N = 12


@pytest.fixture
def songs(tmp_path: Path) -> Path:
    root = tmp_path / "songs"
    for i in range(N):
        write(root / ("rock" if i % 2 else "jazz") / f"t{i:02d}.wav", tone(110.0 * (1 + 0.1 * i), 3.0, seed=i))
    return root


class Analyses(list):
    """The files analysed (not taken from a journal); after ``stop_after`` of them, Ctrl-C."""

    stop_after = -1


@pytest.fixture
def analysed(monkeypatch: pytest.MonkeyPatch) -> Analyses:
    seen = Analyses()
    analyse = describe_run.safe_analyse_file

    def counting(path: str, config: DescribeConfig):  # noqa: ANN202
        if len(seen) == seen.stop_after:
            raise KeyboardInterrupt
        seen.append(Path(path).name)
        return analyse(path, config)

    monkeypatch.setattr(describe_run, "safe_analyse_file", counting)
    return seen


def _describe(songs: Path, doc: Path, **config: float) -> dict:
    tracks, _ = discover_tracks([str(songs)])
    record = describe_dataset(tracks, json_file=doc, config=DescribeConfig(**config))
    record.pop("base")
    return record


def _interrupt_after(k: int, songs: Path, doc: Path, analysed: Analyses, **config: float) -> None:
    analysed.stop_after = k
    with pytest.raises(KeyboardInterrupt):
        _describe(songs, doc, **config)
    analysed.stop_after = -1
    analysed.clear()


def test_the_rerun_analyses_only_the_rest_and_says_the_same(songs: Path, tmp_path: Path, analysed: Analyses) -> None:
    fresh = _describe(songs, tmp_path / "fresh.json")
    analysed.clear()
    doc = tmp_path / "doc.json"
    _interrupt_after(5, songs, doc, analysed)
    assert Path(f"{doc}.partial.jsonl").is_file() and not doc.exists()
    resumed = _describe(songs, doc)
    assert len(analysed) == N - 5  # the 5 in the journal were not analysed again
    assert not Path(f"{doc}.partial.jsonl").exists()
    assert resumed == fresh  # the same document, numbers, duplicates and pictures included


def test_the_command_says_what_it_resumes(songs: Path, tmp_path: Path, analysed: Analyses) -> None:
    """``specmusic describe`` prints the resume note (describe_dataset's ``on_note``) on stderr."""
    doc = tmp_path / "doc.json"
    _interrupt_after(5, songs, doc, analysed)
    res = CliRunner().invoke(app, ["describe", str(songs), "-o", str(doc)])
    assert res.exit_code == 0, res.stderr
    assert len(analysed) == N - 5
    assert "note: resuming an interrupted run — 5 file(s) it analysed are kept" in res.stderr
    assert "resuming" not in res.stdout


def test_a_changed_file_is_analysed_again(songs: Path, tmp_path: Path, analysed: Analyses) -> None:
    doc = tmp_path / "doc.json"
    _interrupt_after(5, songs, doc, analysed)
    journaled = sorted(json.loads(line)["path"] for line in open(f"{doc}.partial.jsonl").readlines()[1:])
    changed = Path(journaled[0])
    write(changed, tone(999.0, 4.0))  # another size and mtime
    record = _describe(songs, doc)
    assert len(analysed) == N - 5 + 1 and changed.name in analysed
    (row,) = [f for f in record["files"] if f["path"].endswith(changed.name)]
    assert row["duration"] == pytest.approx(4.0)


def test_other_analysis_settings_start_over_but_other_thresholds_do_not(songs: Path, tmp_path: Path,
                                                                       analysed: Analyses) -> None:
    doc = tmp_path / "doc.json"
    _interrupt_after(5, songs, doc, analysed)
    _describe(songs, doc, imbalance_ratio=0.3)  # judges the numbers, changes none: the journal counts
    assert len(analysed) == N - 5
    analysed.clear()
    _interrupt_after(5, songs, doc, analysed)
    _describe(songs, doc, silence_db=-60.0)  # changes what is measured: everything again
    assert len(analysed) == N


def test_without_an_output_file_the_journal_is_in_the_cache(songs: Path, tmp_path: Path, analysed: Analyses,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECMUSIC_CACHE", str(tmp_path / "cache"))
    tracks, _ = discover_tracks([str(songs)])
    analysed.stop_after = 4
    with pytest.raises(KeyboardInterrupt):
        describe_dataset(tracks)
    analysed.stop_after = -1
    analysed.clear()
    (journal,) = (tmp_path / "cache" / "describe").glob("*.partial.jsonl")
    notes: list[str] = []
    describe_dataset(tracks, on_note=notes.append)
    assert len(analysed) == N - 4 and not journal.exists()
    assert notes and "4 file(s) it analysed are kept" in notes[0]


def test_describe_interrupted_by_ctrl_c_then_rerun_resumes(songs: Path, tmp_path: Path) -> None:
    """The real thing: SIGINT to ``describe -o``; the rerun takes the journal's analyses (proved by a file whose
    samples changed behind describe's back — same size, same mtime: its journaled analysis is what is reported)."""
    doc, journal = tmp_path / "doc.json", tmp_path / "doc.json.partial.jsonl"

    def kept() -> int:
        return max(0, journal.read_bytes().count(b"\n") - 1) if journal.exists() else 0

    run = spawn("describe", songs, "-o", doc, logs=tmp_path / "logs")
    signal_mid_run(run, signal.SIGINT, lambda: kept() >= 3, unfinished=lambda: kept() <= N - 3)
    rc, _, stderr = run.wait()
    assert rc == 130 and "completed outputs are kept; rerun the same command to resume" in stderr, (rc, stderr)
    first = json.loads(journal.read_text().splitlines()[1])
    swapped = Path(first["path"])
    st = swapped.stat()
    write(swapped, 0.1 * tone(500.0, 3.0))  # quieter audio, same length: same size
    os.utime(swapped, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert swapped.stat().st_size == st.st_size
    res = CliRunner().invoke(app, ["describe", str(songs), "--json", "-o", str(doc)])
    assert res.exit_code == 0, res.stderr
    record = json.loads(doc.read_text())
    assert record["clips"] == N and not journal.exists()
    (row,) = [f for f in record["files"] if Path(f["path"]).name == swapped.name]
    assert row["lufs"] == pytest.approx(first["lufs"], abs=0.01)  # the journal's, not the quieter file's
    assert np.isfinite(row["lufs"])
