"""Bad input and faults against every command: one clean error, nothing lost, nothing partial, no confident garbage.

A generated corpus (:func:`corpus`) of broken and odd audio, arrays, models and output locations is run
through the commands. Each failure must give exit code 1, exactly one ``Error:`` line naming the file
and no traceback; in a batch every good file is still processed and written; an output is either
complete or absent; audio no model can judge (silence, a blip, a mis-scaled file) is flagged, not
answered with confidence. The interrupt tests at the end send real signals to real processes.
A regression of one command's own behaviour goes beside that command's tests (tests/README.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from specmusic.cli.app import app
from tests.conftest import chirp, tone, write
from tests.failures.procs import alive, signal_mid_run, spawn, wait_for
from tests.inference.test_inference import FC, export_tiny_classifier

ERROR_INPUTS = ["not_audio", "empty", "zero_length", "truncated_mp3", "truncated_ogg", "nan", "missing"]
ODD_INPUTS = ["silence", "blip", "loud"]


def corpus(root: Path) -> dict[str, Path]:
    """Every input of the corpus, written under ``root`` (``missing`` is a path that does not exist)."""
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {"good": write(root / "good.wav", tone(330.0, 2.0))}
    (root / "not_audio.wav").write_text("this is a text file, not audio\n")
    (root / "empty.wav").write_bytes(b"")
    files["not_audio"], files["empty"] = root / "not_audio.wav", root / "empty.wav"
    files["zero_length"] = write(root / "zero_length.wav", np.zeros(0, dtype=np.float32))
    for fmt, ext in (("MP3", "mp3"), ("OGG", "ogg")):
        full = write(root / f"full.{ext}", chirp(6.0), format=fmt)
        data = full.read_bytes()
        (root / f"truncated_{ext}.{ext}").write_bytes(data[: len(data) // 3])
        files[f"truncated_{ext}"] = root / f"truncated_{ext}.{ext}"
        full.unlink()
    y = tone(220.0, 2.0)
    y[5000:5100] = np.nan
    files["nan"] = write(root / "nan.wav", y, subtype="FLOAT")
    files["missing"] = root / "missing.wav"
    files["silence"] = write(root / "silence.wav", np.zeros(2 * 22050, dtype=np.float32))
    files["blip"] = write(root / "blip.wav", tone(440.0, 0.1))
    files["loud"] = write(root / "loud.wav", tone(440.0, 2.0) * 2.5e6, subtype="FLOAT")
    folder = root / "a_folder"
    write(folder / "inside.wav", tone(500.0, 1.0))
    files["folder"] = folder
    return files


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_classifier(tmp_path_factory.mktemp("model") / "model.onnx", ["low", "mid", "high"])


def run(*args: object) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def error_lines(result) -> list[str]:  # noqa: ANN001
    return [line for line in result.stderr.splitlines() if line.startswith("Error:")]


def assert_clean_failure(result, name: str | None = None) -> str:  # noqa: ANN001
    """Exit 1, exactly one ``Error:`` line (naming ``name``), no traceback; returns the line."""
    assert result.exit_code == 1, (result.exit_code, result.stderr, result.exception)
    assert "Traceback" not in result.stderr and not isinstance(result.exception, (AssertionError, AttributeError))
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    if name is not None:
        assert name in lines[0], lines[0]
    return lines[0]


def no_partial_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.startswith(".") or p.suffix in (".tmp", ".part")]


# -- batches: the good file is still done, the bad one named once -----------------------------
@pytest.mark.parametrize("bad", ERROR_INPUTS)
def test_spectro_batch(files: dict[str, Path], bad: str, tmp_path: Path) -> None:
    out = tmp_path / "specs"
    res = run("spectro", files["good"], files[bad], "-o", out)
    assert_clean_failure(res, files[bad].name)
    assert (out / "good.npz").exists() and no_partial_files(out)
    assert [json.loads(line)["source"].endswith("good.wav") for line in open(out / "manifest.jsonl")] == [True]


@pytest.mark.parametrize("bad", ERROR_INPUTS)
def test_classify_batch(files: dict[str, Path], model: Path, bad: str) -> None:
    res = run("classify", files["good"], files[bad], "-m", model, "--json")
    assert_clean_failure(res, files[bad].name)
    records = [json.loads(line) for line in res.stdout.splitlines()]
    assert [Path(r["path"]).name for r in records] == ["good.wav"]


@pytest.mark.parametrize("bad", ERROR_INPUTS)
def test_embed_batch(files: dict[str, Path], model: Path, bad: str, tmp_path: Path) -> None:
    library = tmp_path / "lib.jsonl"
    res = run("embed", files["good"], files[bad], "-m", model, "-o", library)
    assert_clean_failure(res, files[bad].name)
    ids = [r["id"] for r in map(json.loads, library.read_text().splitlines()) if "id" in r]  # after the header
    assert len(ids) == 1 and ids[0].endswith("good.wav")
    assert no_partial_files(tmp_path)


# -- audio no model can judge is flagged, not answered with confidence ------------------------
@pytest.mark.parametrize("odd", ODD_INPUTS)
def test_classify_flags_untrustworthy_audio(files: dict[str, Path], model: Path, odd: str) -> None:
    res = run("classify", files[odd], "-m", model, "--json")
    assert res.exit_code == 0, res.stderr
    assert any(line.startswith("warning:") and files[odd].name in line for line in res.stderr.splitlines())
    (record,) = [json.loads(line) for line in res.stdout.splitlines()]
    assert record["warnings"] and files[odd].name in record["warnings"][0]


@pytest.mark.parametrize("odd", ODD_INPUTS)
def test_embed_flags_untrustworthy_audio(files: dict[str, Path], model: Path, odd: str) -> None:
    res = run("embed", files[odd], "-m", model, "--format", "jsonl")
    assert res.exit_code == 0, res.stderr
    assert any(line.startswith("warning:") and files[odd].name in line for line in res.stderr.splitlines())
    (record,) = [r for r in map(json.loads, res.stdout.splitlines()) if "id" in r]
    assert record["warnings"]


def test_clean_audio_has_no_warnings(files: dict[str, Path], model: Path) -> None:
    res = run("classify", files["good"], "-m", model, "--json")
    assert res.exit_code == 0 and "warning" not in res.stderr
    assert json.loads(res.stdout)["warnings"] == []


def test_a_silent_query_gets_no_confident_neighbours(files: dict[str, Path], model: Path, tmp_path: Path) -> None:
    library = tmp_path / "lib.npz"
    tracks = tmp_path / "tracks"
    for i, f in enumerate((110.0, 220.0, 440.0)):
        write(tracks / f"t{i}.wav", tone(f, 2.0, seed=i))
    assert run("embed", tracks, "-m", model, "-o", library).exit_code == 0
    res = run("recommend", library, "-q", files["silence"], "-q", "t1.wav", "-m", model, "--json")
    assert res.exit_code == 1 or "warning" in res.stderr
    assert files["silence"].name in res.stderr
    assert [json.loads(line)["query"] for line in res.stdout.splitlines()] == ["t1.wav"]  # the other one answered


def test_a_flagged_library_entry_is_flagged_in_recommend(files: dict[str, Path], model: Path, tmp_path: Path) -> None:
    library = tmp_path / "lib.npz"
    tracks = [write(tmp_path / f"t{i}.wav", tone(f, 2.0, seed=i)) for i, f in enumerate((110.0, 220.0))]
    assert run("embed", *tracks, files["loud"], "-m", model, "-o", library).exit_code == 0
    res = run("recommend", library, "-q", tracks[0], "-k", "2", "--json")
    assert res.exit_code == 0, res.stderr
    flagged = {Path(n["id"]).name: n.get("warnings") for n in json.loads(res.stdout)["neighbors"]}
    assert flagged["loud.wav"] and "loud.wav" in flagged["loud.wav"][0] and not flagged["t1.wav"]
    assert "flagged when embedded" in res.stderr
    res = run("recommend", library, "-q", files["loud"], "-k", "1", "--json")  # answered, with its warning
    assert res.exit_code == 0 and json.loads(res.stdout)["warnings"] and "warning:" in res.stderr


# -- file names that are not UTF-8: one form in JSON, one in text, both map back to the file ---
def test_a_non_utf8_file_name_maps_back_to_the_file(non_utf8_name: Path, model: Path, tmp_path: Path) -> None:
    raw = os.fsencode(non_utf8_name)
    res = run("classify", non_utf8_name, "-m", model, "--json")
    assert res.exit_code == 0, res.stderr
    assert os.fsencode(json.loads(res.stdout)["path"]) == raw and "\\udce9" in res.stdout
    others = [write(tmp_path / "others" / f"t{i}.wav", tone(f, 1.0, seed=i)) for i, f in enumerate((200.0, 900.0))]
    emb = run("embed", non_utf8_name, *others, "-m", model, "--format", "jsonl")
    assert emb.exit_code == 0, emb.stderr
    assert raw in [os.fsencode(r["id"]) for r in map(json.loads, emb.stdout.splitlines()) if "id" in r]
    library = tmp_path / "lib.npz"
    assert run("embed", non_utf8_name, *others, "-m", model, "-o", library).exit_code == 0
    res = run("recommend", library, "-q", others[0], "-k", "2", "--json")
    assert res.exit_code == 0, res.stderr
    assert raw in [os.fsencode(n["id"]) for n in json.loads(res.stdout)["neighbors"]]
    text = run("recommend", library, "-q", others[0], "-k", "2")
    assert text.exit_code == 0 and "caf\\xe9-song.wav" in text.stdout
    for query in (str(non_utf8_name), "caf\\xe9-song.wav", "caf\\udce9-song.wav"):  # as the OS gives it, or escaped
        res = run("recommend", library, "-q", query, "-k", "2", "--json")
        assert res.exit_code == 0, (query, res.stderr)
        assert raw not in [os.fsencode(n["id"]) for n in json.loads(res.stdout)["neighbors"]]  # itself left out


# -- one file in, one file out: nothing written on failure ------------------------------------
@pytest.mark.parametrize("bad", [*ERROR_INPUTS, "folder", "silence"])
def test_nmf_on_bad_audio(files: dict[str, Path], bad: str, tmp_path: Path) -> None:
    out = tmp_path / "parts"
    res = run("nmf", files[bad], "-c", "2", "-i", "5", "-o", out)
    line = assert_clean_failure(res, files[bad].name)
    assert "pass the folder" not in line
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("bad", [*ERROR_INPUTS, "folder"])
def test_mosaic_on_bad_audio(files: dict[str, Path], bad: str, tmp_path: Path) -> None:
    out = tmp_path / "mosaic.wav"
    res = run("nmf", "mosaic", "-s", files["good"], "-t", files[bad], "-i", "3", "-o", out)
    assert_clean_failure(res, files[bad].name)
    assert not out.exists()


@pytest.mark.parametrize("command", [
    ["nmf", "mosaic", "-s", "{good}", "-t", "{good}", "-i", "3", "-o", "{tmp}/out.xyz"],
    ["generate", "invert", "{array}", "-o", "{tmp}/out.xyz"],
    ["generate", "invert", "{tmp}/no-such-array.npy", "-o", "{tmp}/out.xyz"],  # the name is checked first
])
def test_unknown_output_extension_is_refused_before_the_work(files, command, tmp_path: Path, work) -> None:  # noqa: ANN001
    array = tmp_path / "mel.npy"
    np.save(array, np.full((32, 40), -30.0, dtype=np.float32))
    args = [a.format(good=files["good"], tmp=tmp_path, array=array) for a in command]
    res = run(*args)
    line = assert_clean_failure(res, "out.xyz")
    assert ".wav" in line and ".flac" in line  # the formats it takes
    assert work == []  # refused before any of the work
    assert not (tmp_path / "out.xyz").exists()


def test_mosaic_and_invert_write_the_format_the_name_asks_for(files: dict[str, Path], tmp_path: Path) -> None:
    array = tmp_path / "mel.npy"
    np.save(array, np.full((32, 40), -30.0, dtype=np.float32))
    res = run("generate", "invert", array, "--gl-iter", "2", "-o", tmp_path / "inv.flac")
    assert res.exit_code == 0, res.stderr
    res = run("nmf", "mosaic", "-s", files["good"], "-t", files["good"], "-i", "2", "--no-plots",
              "-o", tmp_path / "wesnoth-1.16-music.ogg")
    assert res.exit_code == 0, res.stderr
    assert sf.info(str(tmp_path / "inv.flac")).format == "FLAC"
    assert sf.info(str(tmp_path / "wesnoth-1.16-music.ogg")).format == "OGG"


# -- an output folder that cannot be written: one line, for every command ---------------------
def _blocked(tmp_path: Path) -> Path:
    blocker = tmp_path / "a_file"
    blocker.write_text("a file where a folder should be\n")
    return blocker / "out"


@pytest.mark.parametrize("command", [
    ["spectro", "{good}", "-o", "{out}"],
    ["spectro", "{good}", "--png", "-o", "{out}"],
    ["embed", "{good}", "-m", "{model}", "-o", "{out}/lib.npz"],
    ["nmf", "{good}", "-c", "2", "-i", "5", "-o", "{out}"],
    ["nmf", "mosaic", "-s", "{good}", "-t", "{good}", "-i", "3", "-o", "{out}/m.wav"],
    ["train", "{tree}", "--epochs", "1", "-o", "{out}"],
    ["generate", "train", "{tree}", "--epochs", "1", "-o", "{out}"],
    ["generate", "invert", "{array}", "-o", "{out}/x.wav"],
    ["generate", "sample", "{array}", "-o", "{out}"],
])
def test_unwritable_output(files, model, genre_tree, command, tmp_path: Path) -> None:  # noqa: ANN001
    array = tmp_path / "mel.npy"
    np.save(array, np.full((32, 40), -30.0, dtype=np.float32))
    out = _blocked(tmp_path)
    args = [a.format(good=files["good"], out=out, model=model, tree=genre_tree, array=array) for a in command]
    line = assert_clean_failure(run(*args))
    assert "a_file" in line and "make the file readable" not in line


# -- models with lying metadata -----------------------------------------------------------------
def _with_meta(src: Path, dest: Path, **changes: object) -> Path:
    import onnx

    proto = onnx.load(str(src))
    entry = next(p for p in proto.metadata_props if p.key == "specmusic")
    meta = json.loads(entry.value)
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".")
            meta[outer][inner] = value
        else:
            meta[key] = value
    entry.value = json.dumps(meta)
    onnx.save(proto, str(dest))
    return dest


@pytest.mark.parametrize("changes", [
    {"format_version": "x"},
    {"input_norm": {"mean": 0.0, "std": "abc"}},
    {"labels": ["only", "two"]},
    {"feature_config.n_mels": FC.n_mels * 2},
    {"chunk_frames": 10 ** 9},
], ids=["version", "std", "labels", "n_mels", "chunk"])
def test_classify_refuses_lying_metadata(files: dict[str, Path], model: Path, changes: dict, tmp_path: Path) -> None:
    bad = _with_meta(model, tmp_path / "liar.onnx", **changes)
    res = run("classify", files["good"], "-m", bad)
    assert_clean_failure(res, "liar.onnx")
    assert res.stdout == ""


def test_npz_that_needs_pickle_is_refused_in_plain_words(tmp_path: Path, model: Path) -> None:
    path = tmp_path / "objects.npz"
    np.savez(path, spec=np.array([{"a": 1}], dtype=object))
    line = assert_clean_failure(run("classify", path, "-m", model), "objects.npz")
    assert "allow_pickle" not in line


# -- real signals (each sent while the run is frozen, so it lands mid-run on any machine) --------------
@pytest.fixture
def many(tmp_path: Path) -> Path:
    root = tmp_path / "many"
    for i in range(40):  # enough work (~5 s with pictures) that a signal lands mid-run
        write(root / f"t{i:02d}.wav", tone(100.0 + 30 * i, 2.0, seed=i))
    return root


def test_spectro_png_interrupted_then_rerun_completes_every_picture(many: Path, tmp_path: Path) -> None:
    out = tmp_path / "specs"
    proc = spawn("spectro", many, "--png", "--jobs", "2", "-o", out, logs=tmp_path / "logs")
    arrays = lambda: len(list(out.glob("t*.npz")))  # noqa: E731
    workers = signal_mid_run(proc, signal.SIGINT, lambda: arrays() >= 3, unfinished=lambda: arrays() <= 35)
    rc, _, err = proc.wait()
    assert rc == 130, (rc, err)
    assert workers and not any(alive(pid) for pid in workers)  # workers stopped with the parent, before it exited
    res = run("spectro", many, "--png", "-o", out)
    assert res.exit_code == 0, res.stderr
    assert len(list(out.glob("*.npz"))) == len(list(out.glob("*.png"))) == 40
    assert no_partial_files(out)


def test_workers_die_with_a_killed_parent(many: Path, tmp_path: Path) -> None:
    out = tmp_path / "specs"
    proc = spawn("spectro", many, "--png", "--jobs", "2", "-o", out, logs=tmp_path / "logs")
    arrays = lambda: len(list(out.glob("t*.npz")))  # noqa: E731
    children = signal_mid_run(proc, signal.SIGKILL, lambda: arrays() >= 2, unfinished=lambda: arrays() <= 35)
    proc.wait()
    assert children, "expected worker processes"
    wait_for(lambda: not any(alive(pid) for pid in children), what="the workers to die with their parent")


def test_embed_interrupted_keeps_what_it_finished(model: Path, tmp_path: Path) -> None:
    """Ctrl-C mid-run: exit 130, the finished tracks are kept (the journal), the rerun embeds only the rest."""
    import re

    root, n = tmp_path / "long", 48
    for i in range(n):
        write(root / f"t{i:02d}.wav", tone(100.0 + 9 * i, 10.0, seed=i))
    library = tmp_path / "lib.npz"
    journal = tmp_path / "lib.npz.partial.jsonl"

    def records() -> int:  # complete lines after the header
        return max(0, journal.read_bytes().count(b"\n") - 1) if journal.exists() else 0

    proc = spawn("embed", root, "-m", model, "-o", library, logs=tmp_path / "logs")
    signal_mid_run(proc, signal.SIGINT, lambda: records() >= 3, unfinished=lambda: records() <= n - 5)
    rc, _, err = proc.wait()
    assert rc == 130, err
    assert "completed outputs are kept" in err and "lib.npz.partial.jsonl" in err
    kept = records()
    assert 3 <= kept < n, f"interrupted after {kept} of {n} tracks"
    assert not library.exists()  # the library is written once, whole, at the end
    res = run("embed", root, "-m", model, "-o", library)
    assert res.exit_code == 0, res.stderr
    counts = re.search(r"embed: (\d+) embedded, (\d+) unchanged, (\d+) resumed", res.stderr)
    assert counts, res.stderr
    assert [int(c) for c in counts.groups()] == [n - kept, 0, kept]
    with np.load(library, allow_pickle=False) as z:
        assert sorted(Path(i).name for i in z["ids"]) == [f"t{i:02d}.wav" for i in range(n)]
    assert not journal.exists()
    again = run("embed", root, "-m", model, "-o", library)
    assert f"0 embedded, {n} unchanged" in again.stderr


def test_a_killed_embed_resumes_from_its_journal(model: Path, tmp_path: Path) -> None:
    """A journal torn mid-line (a killed process) keeps its whole records; one from another model is discarded."""
    tracks = tmp_path / "tracks"
    for i in range(4):
        write(tracks / f"t{i}.wav", tone(200.0 + 50 * i, 1.0, seed=i))
    library = tmp_path / "lib.npz"
    journal = tmp_path / "lib.npz.partial.jsonl"
    assert run("embed", tracks, "-m", model, "--format", "jsonl", "-o", tmp_path / "full.jsonl").exit_code == 0
    lines = (tmp_path / "full.jsonl").read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:3]) + lines[3][:40])  # header, 2 records, a torn third
    res = run("embed", tracks, "-m", model, "-o", library)
    assert res.exit_code == 0, res.stderr
    assert "2 embedded, 0 unchanged, 2 resumed" in res.stderr and not journal.exists()
    assert len(np.load(library)["ids"]) == 4
    other = tmp_path / "other.npz"
    (tmp_path / "other.npz.partial.jsonl").write_text('{"format_version": 1, "model": {"kind": "mfcc"}}\n' + lines[1])
    res = run("embed", tracks, "-m", model, "-o", other)
    assert res.exit_code == 0 and "another model" in res.stderr and "4 embedded, 0 unchanged, 0 failed" in res.stderr
    (tmp_path / "third.npz.partial.jsonl").write_text("".join(lines[:3]))
    res = run("embed", tracks, "-m", model, "-o", tmp_path / "third.npz", "--force")
    assert res.exit_code == 0 and "4 embedded, 0 unchanged, 0 failed" in res.stderr


TINY_GEN = ["--n-mels", "16", "--patch-frames", "16", "--base", "8", "--batch-size", "4", "--threads", "1",
            "--no-progress"]


def test_generate_train_interrupted_saves_a_checkpoint_and_resumes(dotted_tree: Path, tmp_path: Path) -> None:
    import torch

    gen = tmp_path / "gen"
    proc = spawn("generate", "train", dotted_tree, "-o", gen, "--minutes", "10", *TINY_GEN, logs=tmp_path / "logs")
    signal_mid_run(proc, signal.SIGINT, lambda: (gen / "checkpoint.pt").exists(), unfinished=lambda: True)
    rc, _, err = proc.wait()
    assert rc == 130, err
    assert "Traceback" not in err and "interrupted at step" in err
    step = torch.load(gen / "checkpoint.pt", map_location="cpu", weights_only=True)["step"]
    assert step > 0 and json.loads((gen / "config.json").read_text())["step"] == step
    assert (gen / "model.onnx").is_file()  # the interrupted run can be sampled without torch
    assert no_partial_files(gen)
    res = run("generate", "train", dotted_tree, "-o", gen, "--minutes", "0.005", *TINY_GEN)
    assert res.exit_code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["resumed_from"] == step and summary["steps"] > step


def test_sf_reads_what_the_corpus_wrote(files: dict[str, Path]) -> None:
    """The corpus itself is what it claims: the good file decodes, the truncated Ogg is shorter."""
    assert sf.info(str(files["good"])).duration == pytest.approx(2.0, abs=0.01)
    assert sf.info(str(files["truncated_ogg"])).duration < 6.0


def test_no_stray_library_chatter_on_stderr(files: dict[str, Path], tmp_path: Path) -> None:
    """libmpg123 writes to fd 2 from C and librosa warns per octave on short clips: neither reaches the user."""
    blip = write(tmp_path / "blip.wav", tone(440.0, 0.6))
    for args in ([files["truncated_mp3"], files["good"]], ["--kind", "cqt", blip]):
        proc = subprocess.run([sys.executable, "-m", "specmusic", "spectro", *map(str, args), "-o", str(tmp_path / "o")],
                              capture_output=True, text=True, timeout=600)
        noise = [line for line in proc.stderr.splitlines()
                 if not line.startswith(("Error:", "warning:", "spectro:")) and line.strip()]
        assert not noise, proc.stderr
