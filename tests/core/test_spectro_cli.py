"""`specmusic spectro` end to end through CliRunner."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from specmusic.cli.app import app
from specmusic.features import FeatureConfig, compute_features
from specmusic.audio import load_audio
from specmusic import specfile
from specmusic.specfile import (
    SPEC_FORMAT_VERSION,
    current_meta,
    load_spectrogram,
    npz_meta,
    read_spectro_manifest,
    save_spectrogram,
)
from tests.conftest import tone, write

runner = CliRunner()


def run(*args: str, input: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def manifest(out: Path) -> list[dict]:
    return read_spectro_manifest(out)


def test_folder_mirrors_tree_with_labels_and_manifest(genre_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "specs"
    res = run("spectro", genre_tree, "-o", out)
    assert res.exit_code == 0, res.stderr
    assert res.stdout == ""  # stdout carries data only; the summary is on stderr
    assert "12 written" in res.stderr
    records = manifest(out)
    assert len(records) == 12
    rec = next(r for r in records if r["path"] == "low/low.00001.npz")
    assert rec["label"] == "low" and rec["group"] == "low/low.00001"
    assert rec["shape"] == [128, 1 + int(1.5 * 22050) // 512]
    assert rec["config_hash"] == FeatureConfig().digest() and rec["sample_rate"] == 22050
    assert rec["duration"] == pytest.approx(1.5)
    spec, cfg = load_spectrogram(out / rec["path"])
    y, _ = load_audio(genre_tree / "low" / "low.00001.wav")
    np.testing.assert_allclose(spec, compute_features(y, cfg), atol=1e-4)
    assert not (out / "errors.jsonl").exists()


def test_rerun_skips_and_resumes_after_interruption(genre_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "specs"
    assert run("spectro", genre_tree, "-o", out).exit_code == 0
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*.npz")}
    # Simulate an interrupted run: one array and the manifest never got written.
    victim = out / "mid" / "mid.00003.npz"
    victim.unlink()
    (out / "manifest.jsonl").unlink()
    res = run("spectro", genre_tree, "-o", out)
    assert res.exit_code == 0
    assert "1 written, 11 up to date" in res.stderr
    assert victim.exists() and len(manifest(out)) == 12
    assert all(p.stat().st_mtime_ns == t for p, t in stamp.items() if p != victim)
    # Another config recomputes everything.
    res = run("spectro", genre_tree, "-o", out, "--n-mels", "64")
    assert "12 written" in res.stderr
    assert {tuple(r["shape"])[0] for r in manifest(out)} == {64}
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temp files left


@pytest.mark.parametrize(("kind", "rows"), [("stft", 1025), ("cqt", 84), ("chroma", 12), ("mfcc", 20)])
def test_kinds(chirp_mono: Path, tmp_path: Path, kind: str, rows: int) -> None:
    out = tmp_path / kind
    res = run("spectro", chirp_mono, "--kind", kind, "-o", out)
    assert res.exit_code == 0, res.stderr
    spec, cfg = load_spectrogram(out / "chirp_mono.npz")
    assert cfg.kind == kind and spec.shape == (rows, 1 + 44100 // 512)
    assert np.isfinite(spec).all()


def test_png_pictures(chirp_mono: Path, tmp_path: Path) -> None:
    out = tmp_path / "pics"
    assert run("spectro", chirp_mono, "--png", "-o", out).exit_code == 0
    png = out / "chirp_mono.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    h, w = matplotlib.image.imread(png).shape[:2]
    assert w > 400 and h > 200


def test_paths_on_stdin_and_jobs(genre_tree: Path, tmp_path: Path) -> None:
    paths = sorted(str(p) for p in genre_tree.rglob("*.wav"))
    out = tmp_path / "specs"
    res = run("spectro", "-", "-o", out, "--jobs", "2", input="\n".join(paths) + "\n")
    assert res.exit_code == 0, res.stderr
    records = manifest(out)
    assert len(records) == 12 and {r["label"] for r in records} == {"low", "mid", "high"}


def test_manifest_input_with_groups(genre_tree: Path, tmp_path: Path) -> None:
    m = tmp_path / "tracks.csv"
    rows = ["path,label,group"] + [
        f"{p.relative_to(tmp_path)},{p.parent.name},artist{i % 2}" for i, p in enumerate(sorted(genre_tree.rglob("*.wav")))
    ]
    m.write_text("\n".join(rows) + "\n")
    out = tmp_path / "specs"
    assert run("spectro", "--manifest", m, "-o", out).exit_code == 0
    records = manifest(out)
    assert len(records) == 12 and {r["group"] for r in records} == {"artist0", "artist1"}
    assert records[0]["path"].startswith("genres/")


def test_batch_with_bad_files_keeps_good_ones(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    names = ["chirp_mono", "chirp_stereo", "chirp_44k", "silence", "empty", "zero_length", "short",
             "not_audio", "truncated_mp3", "non_utf8_name"]
    paths = [request.getfixturevalue(n) for n in names]
    out = tmp_path / "out"
    res = runner.invoke(app, ["spectro", *map(str, paths), str(tmp_path / "missing.ogg"), "-o", str(out)])
    assert res.exit_code == 1
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    failed = {Path(e["source"]).name for e in errors if e["severity"] == "error"}
    assert failed == {"empty.wav", "zero_length.wav", "short.wav", "notes.wav", "truncated.mp3", "missing.ogg"}
    warned = {Path(e["source"]).name for e in errors if e["severity"] == "warning"}
    assert warned == {"silence.wav"}
    done = {r["path"] for r in manifest(out)}
    assert done == {"chirp_mono.npz", "chirp_stereo.npz", "chirp_44k.npz", "silence.npz",
                    os.fsdecode(b"caf\xe9-song.npz")}
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    for e in errors:  # every problem got its own one-line message on stderr
        assert any(e["error"].split(":")[-1].strip()[:30] in line for line in lines)
    assert "6 failed" in res.stderr


def test_no_input_is_a_usage_error(tmp_path: Path) -> None:
    res = run("spectro", "-o", tmp_path / "x")
    assert res.exit_code == 1
    assert res.stderr.startswith("Error: no input")


def test_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    res = run("spectro", tmp_path / "empty", "-o", tmp_path / "x")
    assert res.exit_code == 1 and "no audio files found" in res.stderr


def test_same_output_name_collides_cleanly(tmp_path: Path, chirp_mono: Path) -> None:
    other = tmp_path / "chirp_mono.flac"
    other.write_bytes(b"")  # name collides with chirp_mono.wav → chirp_mono.npz
    res = run("spectro", chirp_mono, other, "-o", tmp_path / "x")
    assert res.exit_code == 1 and "same output name" in res.stderr
    assert (tmp_path / "x" / "chirp_mono.npz").exists()


# -- the .npz format: one writer, one reader ---------------------------------------------------------------
FIELDS = {"format_version", "config", "config_hash", "duration", "offset", "max_duration", "source_size",
          "source_mtime", "warning"}


def test_save_spectrogram_writes_every_field_the_readers_read(tmp_path: Path) -> None:
    config = FeatureConfig(n_mels=16, fmax=8000.0)
    spec = np.linspace(-80.0, 0.0, 16 * 7, dtype=np.float32).reshape(16, 7)
    path = tmp_path / "track.npz"
    written = save_spectrogram(path, spec, config=config, duration=1.25, offset=0.5, max_duration=2.0,
                               source_size=1234, source_mtime=1_700_000_000.25, warning="quiet: peak -60 dBFS")
    got, got_config = load_spectrogram(path)
    np.testing.assert_array_equal(got, spec)
    assert got.dtype == np.float32 and got_config == config
    meta = npz_meta(path)
    assert meta == written and set(meta) == FIELDS | {"shape"}
    assert meta["shape"] == [16, 7] and meta["format_version"] == SPEC_FORMAT_VERSION
    assert json.loads(meta["config"]) == config.to_dict() and meta["config_hash"] == config.digest()
    assert (meta["duration"], meta["offset"], meta["max_duration"]) == (1.25, 0.5, 2.0)
    assert (meta["source_size"], meta["source_mtime"]) == (1234, 1_700_000_000.25)
    assert meta["warning"] == "quiet: peak -60 dBFS"
    for name in FIELDS | {"spec"}:  # the module's docstring documents every field it writes
        assert re.search(rf"^ +{name} ", specfile.__doc__, re.MULTILINE), name


def test_an_array_is_current_only_for_its_settings_window_and_source(tmp_path: Path) -> None:
    config = FeatureConfig(n_mels=16)
    path = tmp_path / "track.npz"
    meta = save_spectrogram(path, np.zeros((16, 3), np.float32), config=config, duration=1.0, source_size=10,
                            source_mtime=5.0)
    assert meta["max_duration"] == -1.0 and meta["offset"] == 0.0 and meta["warning"] == ""
    source = SimpleNamespace(st_size=10, st_mtime=5.0)
    assert current_meta(path, config=config, source=source) == npz_meta(path)
    assert current_meta(path, config=FeatureConfig(n_mels=32), source=source) is None
    assert current_meta(path, config=config, source=SimpleNamespace(st_size=11, st_mtime=5.0)) is None
    assert current_meta(path, config=config, source=SimpleNamespace(st_size=10, st_mtime=6.0)) is None
    assert current_meta(path, config=config, source=source, offset=1.0) is None
    assert current_meta(path, config=config, source=source, max_duration=3.0) is None
    assert current_meta(tmp_path / "missing.npz", config=config, source=source) is None


# -- symlinks: each real folder once, and what was skipped is said -------------------------------
def test_a_symlink_loop_is_listed_once_and_reported(tmp_path: Path) -> None:
    root = tmp_path / "music"
    write(root / "rock" / "a.wav", tone(200.0, 1.0))
    (root / "rock" / "again").symlink_to(root, target_is_directory=True)
    (root / "x").symlink_to(root / "y")
    (root / "y").symlink_to(root / "x")
    res = run("spectro", root, "-o", tmp_path / "specs")
    assert res.exit_code == 0, res.stderr
    assert len(list((tmp_path / "specs").rglob("*.npz"))) == 1
    skipped = [line for line in res.stderr.splitlines() if "skipped" in line]
    assert any("again" in line for line in skipped) and any("/x" in line or "/y" in line for line in skipped)


# -- a second run into the same folder keeps the first run's records ----------------------------
def test_two_runs_into_one_folder_keep_each_others_errors(tmp_path: Path) -> None:
    out = tmp_path / "specs"
    good, not_audio = write(tmp_path / "good.wav", tone(330.0, 2.0)), tmp_path / "not_audio.wav"  # as in the corpus
    not_audio.write_text("this is a text file, not audio\n")
    assert run("spectro", good, not_audio, "-o", out).exit_code == 1
    other = tmp_path / "other"
    write(other / "second.wav", tone(300.0, 1.0))
    assert run("spectro", other / "second.wav", "-o", out).exit_code == 0
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [Path(e["source"]).name for e in errors] == ["not_audio.wav"]
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 2
