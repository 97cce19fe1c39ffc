"""Manifests and split lists as people really have them (issue 22, items 11 and 12).

A Latin-1 CSV, Excel's UTF-8 CSV with a byte-order mark, a JSON Lines manifest with one, a row
repeated, a file given two labels, a line nested thousands deep; split lists naming files the data
does not hold.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from specmusic.data import apply_split_lists, discover_tracks, read_manifest, read_split_list
from specmusic.errors import InputError
from tests.conftest import tone, write
from tests.failures.test_failures import assert_clean_failure, run

FAST_TRAIN = ["--epochs", "1", "--chunk-seconds", "0.5", "--threads", "1", "--no-progress"]
BOM = b"\xef\xbb\xbf"


def warnings_of(result) -> list[str]:  # noqa: ANN001
    return [line for line in result.stderr.splitlines() if line.startswith("warning:")]


@pytest.fixture
def songs(tmp_path: Path) -> Path:
    for name in ("a", "b", "c"):
        write(tmp_path / f"{name}.wav", tone(220.0 + 110 * ord(name), 1.0))
    return tmp_path


# -- encodings ------------------------------------------------------------------------------------
def test_a_latin1_csv_is_named_in_one_line(songs: Path) -> None:
    """Was a UnicodeDecodeError traceback."""
    manifest = songs / "m.csv"
    manifest.write_bytes("path,label\na.wav,rock\nb.wav,caf\xe9\n".encode("latin-1"))
    line = assert_clean_failure(run("spectro", "--manifest", manifest, "-o", songs / "out"), "m.csv:3")
    assert "not UTF-8" in line and "0xe9" in line and "'é' in Latin-1" in line and "save the file as UTF-8" in line
    assert not (songs / "out").exists() or not list((songs / "out").glob("*.npz"))


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_byte_order_mark_is_no_error(songs: Path, suffix: str) -> None:
    """Excel's CSV UTF-8 starts with a BOM: it was refused as having no ``path`` column."""
    manifest = songs / f"m{suffix}"
    text = "path,label\na.wav,rock\nb.wav,jazz\n" if suffix == ".csv" else \
        '{"path": "a.wav", "label": "rock"}\n{"path": "b.wav", "label": "jazz"}\n'
    manifest.write_bytes(BOM + text.replace("\n", "\r\n").encode("utf-8"))
    assert [(t.relpath, t.label) for t in read_manifest(manifest)] == [("a.wav", "rock"), ("b.wav", "jazz")]
    res = run("spectro", "--manifest", manifest, "-o", songs / "out")
    assert res.exit_code == 0 and not warnings_of(res), res.stderr
    assert sorted(p.name for p in (songs / "out").glob("*.npz")) == ["a.npz", "b.npz"]


def test_a_split_list_with_a_byte_order_mark(tmp_path: Path) -> None:
    (tmp_path / "test.txt").write_bytes(BOM + b"blues/blues.00029.wav\r\nrock/rock.00001.au\n")
    assert read_split_list(tmp_path / "test.txt") == {"blues/blues.00029", "rock/rock.00001"}


def test_a_deeply_nested_manifest_line_is_one_error(songs: Path) -> None:
    manifest = songs / "m.jsonl"
    manifest.write_text('{"path": "a.wav"}\n' + "[" * 100_000 + "]" * 100_000 + "\n")
    line = assert_clean_failure(run("spectro", "--manifest", manifest, "-o", songs / "out"), "m.jsonl:2")
    assert "nested too deeply" in line


# -- duplicates -----------------------------------------------------------------------------------
def test_an_identical_duplicate_row_is_read_once_with_a_warning(songs: Path) -> None:
    """Was refused as clashing with itself (the same output name)."""
    manifest = songs / "m.csv"
    manifest.write_text("path,label\na.wav,rock\nb.wav,jazz\na.wav,rock\n./a.wav,rock\n")
    res = run("spectro", "--manifest", manifest, "-o", songs / "out")
    assert res.exit_code == 0, res.stderr
    (warning,) = warnings_of(res)
    assert "2 row(s) repeat an earlier one" in warning and "line 4 (as 2), 5 (as 2)" in warning
    assert sorted(p.name for p in (songs / "out").glob("*.npz")) == ["a.npz", "b.npz"]


@pytest.mark.parametrize(
    ("rows", "what"),
    [("a.wav,rock,\na.wav,jazz,\n", "label ('rock' there, 'jazz' here)"),
     ("a.wav,rock,g1\n./a.wav,rock,g2\n", "group ('g1' there, 'g2' here)")],
)  # fmt: skip
def test_a_file_with_two_labels_is_refused_naming_both_lines(songs: Path, rows: str, what: str) -> None:
    manifest = songs / "m.csv"
    manifest.write_text("path,label,group\nb.wav,pop,\n" + rows)
    line = assert_clean_failure(run("describe", "--manifest", manifest), "m.csv:4")
    assert "also on line 3" in line and what in line
    with pytest.raises(InputError, match="also on line 3"):
        read_manifest(manifest)


def test_jsonl_duplicates_too(songs: Path) -> None:
    manifest = songs / "m.jsonl"
    manifest.write_text('{"path": "a.wav", "label": "x"}\n\n{"path": "a.wav", "label": "y"}\n')
    with pytest.raises(InputError, match=r"m.jsonl:3: .*also on line 1"):
        read_manifest(manifest)


# -- split lists that name files the data does not hold ------------------------------------------
def _lists(tmp_path: Path, **lists: str) -> dict[str, Path]:
    out = {}
    for name, text in lists.items():
        out[name] = tmp_path / f"{name}.txt"
        out[name].write_text(text)
    return out


def test_missing_list_entries_are_named(genre_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tracks, _ = discover_tracks([genre_tree])
    lists = _lists(tmp_path, test="low/low.00001.wav\nmid/mid.00001.wav\nhigh/high.00001.wav\nhigh/high.00099.wav\n")
    warned: list[str] = []
    monkeypatch.setattr("specmusic.data._warn", warned.append)
    splits = apply_split_lists(tracks, lists)
    assert len(splits["test"]) == 3
    assert warned == [f"{lists['test']}: 1 of its 4 entries name no track among the inputs and are left out of the "
                      "test split: high/high.00099"]


def test_train_refuses_a_test_list_that_lost_most_of_its_files(genre_tree: Path, tmp_path: Path) -> None:
    """Was "test accuracy 1.000 on 1 tracks": four of five listed files did not exist."""
    lists = _lists(tmp_path, test="low/low.00001.wav\nlow/low.00009.wav\nmid/mid.00009.wav\nhigh/high.00009.wav\n"
                                  "high/high.00008.wav\n")
    res = run("train", genre_tree, "-o", tmp_path / "run", "--test-file", lists["test"], *FAST_TRAIN)
    line = assert_clean_failure(res, "test.txt")
    assert "4 of its 5 entries name no track" in line and "high/high.00008, high/high.00009, low/low.00009, …" in line
    assert "would hold only 1" in line
    assert not (tmp_path / "run" / "model.onnx").exists()


def test_train_names_the_few_missing_entries_and_trains(genre_tree: Path, tmp_path: Path) -> None:
    lists = _lists(tmp_path, test="low/low.00001.wav\nmid/mid.00001.wav\nhigh/high.00001.wav\nhigh/high.00099.wav\n")
    res = run("train", genre_tree, "-o", tmp_path / "run", "--test-file", lists["test"], *FAST_TRAIN)
    assert res.exit_code == 0, res.stderr
    assert any("1 of its 4 entries" in w and "high/high.00099" in w for w in warnings_of(res))
    assert "on 3 tracks" in res.stderr


def test_generate_train_list_that_names_nothing_here(genre_tree: Path, tmp_path: Path) -> None:
    lists = _lists(tmp_path, train="rock/rock.00001.wav\nrock/rock.00002.wav\nlow/low.00000.wav\n")
    res = run("generate", "train", genre_tree, "-o", tmp_path / "gen", "--train-list", lists["train"], "--epochs", "1",
              "--n-mels", "16", "--patch-frames", "16", "--base", "8", "--threads", "1", "--no-progress")
    line = assert_clean_failure(res, "train.txt")
    assert "2 of its 3 entries name no track" in line
