"""Embedding libraries as they come back (issue 22, items 11 and 14): a JSON Lines library with a
byte-order mark or a line nested thousands deep, an ``index.json`` with one, and a sharded library
whose part was damaged — ``embed`` and ``recommend`` must agree about it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from specmusic.cli.app import app
from specmusic.embeddings import read_library
from specmusic.embeddings.store.shard_catalog import read_index
from specmusic.embeddings.store.shard_writer import ShardedLibraryWriter
from tests.conftest import tone, write
from tests.failures.test_failures import assert_clean_failure, run


@pytest.fixture
def music(tmp_path: Path) -> Path:
    for i in range(6):
        write(tmp_path / "music" / f"t{i}.wav", tone(150.0 * (i + 1), 1.0, seed=i))
    return tmp_path / "music"


def test_a_jsonl_library_with_a_byte_order_mark(music: Path, tmp_path: Path) -> None:
    """Was "not JSON" on line 1."""
    library = tmp_path / "lib.jsonl"
    assert run("embed", music, "-m", "mfcc", "-o", library).exit_code == 0
    library.write_bytes(b"\xef\xbb\xbf" + library.read_bytes())
    assert len(read_library(library)) == 6
    res = run("recommend", library, "-q", music / "t0.wav", "-m", "mfcc", "-k", "2")
    assert res.exit_code == 0, res.stderr


def test_a_latin1_byte_in_a_jsonl_library_is_named(music: Path, tmp_path: Path) -> None:
    library = tmp_path / "lib.jsonl"
    assert run("embed", music, "-m", "mfcc", "-o", library).exit_code == 0
    lines = library.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b"t1.wav", b"t1\xe9.wav")
    library.write_bytes(b"".join(lines))
    line = assert_clean_failure(run("recommend", library, "-q", music / "t0.wav", "-m", "mfcc"), "lib.jsonl:3")
    assert "not UTF-8" in line


@pytest.mark.parametrize("where", ["file", "stdin"])
def test_a_deeply_nested_library_line_is_one_error(where: str, tmp_path: Path) -> None:
    """Was a RecursionError traceback."""
    text = '{"id": "a", "vector": [1, 2]}\n' + '{"id": "b", "vector": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    library = tmp_path / "lib.jsonl"
    library.write_text(text)
    if where == "file":
        res = run("recommend", library, "-q", "a")
    else:
        res = CliRunner().invoke(app, ["recommend", "-", "-q", "a"], input=text)
    line = assert_clean_failure(res, "lib.jsonl:2" if where == "file" else "<stdin>:2")
    assert "nested too deeply" in line


def test_an_index_json_with_a_byte_order_mark_is_read(music: Path, tmp_path: Path) -> None:
    library = tmp_path / "lib"
    assert run("embed", music, "-m", "mfcc", "-o", f"{library}/").exit_code == 0
    index = library / "index.json"
    index.write_bytes(b"\xef\xbb\xbf" + index.read_bytes())
    assert len(read_library(library)) == 6


def _damage(part: Path) -> None:
    data = bytearray(part.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = b"\0" * 8
    part.write_bytes(bytes(data))


def test_embed_and_recommend_agree_about_a_damaged_part(music: Path, tmp_path: Path) -> None:
    """embed said "18 unchanged", exit 0, over a part recommend refused. Now embed names the part, sets it
    aside and embeds its tracks again; recommend then answers."""
    library = tmp_path / "lib"
    assert run("embed", music, "-m", "mfcc", "-o", f"{library}/").exit_code == 0
    part = library / "part-00000.npz"
    _damage(part)
    line = assert_clean_failure(run("recommend", library, "-q", music / "t0.wav", "-m", "mfcc"), "part-00000.npz")
    assert "damaged" in line
    res = run("embed", music, "-m", "mfcc", "-o", f"{library}/")
    assert res.exit_code == 0, res.stderr
    (warning,) = [w for w in res.stderr.splitlines() if w.startswith("warning:")]
    assert "part-00000.npz: damaged" in warning and "part-00000.npz.damaged" in warning and "6 track(s)" in warning
    assert "6 embedded, 0 unchanged" in res.stderr
    assert (library / "part-00000.npz.damaged").is_file()
    rec = run("recommend", library, "-q", music / "t0.wav", "-m", "mfcc", "-k", "2")
    assert rec.exit_code == 0, rec.stderr
    assert len(read_library(library)) == 6


def test_a_damaged_part_among_others_keeps_the_tombstones_in_place(music: Path, tmp_path: Path) -> None:
    """Three parts, an id removed after the first (a tombstone); the middle part damaged: the tombstone
    still drops the first part's row, and only the damaged part's tracks are embedded again."""
    library = tmp_path / "lib"
    songs = sorted(music.iterdir())
    for batch in (songs[:2], songs[2:4], songs[4:]):
        assert run("embed", *batch, "-m", "mfcc", "-o", f"{library}/").exit_code == 0
    index = read_index(library)
    assert [p["tracks"] for p in index["parts"]] == [2, 2, 2]
    model = read_library(library).model
    w = ShardedLibraryWriter.open(library, model)
    gone = w.catalog.ids[0]  # a track of the first part
    w.remove([gone])
    w.finish()
    assert read_index(library)["removed"] == {gone: 3}
    _damage(library / "part-00001.npz")
    res = run("embed", *songs[2:4], "-m", "mfcc", "-o", f"{library}/")
    assert res.exit_code == 0, res.stderr
    assert "2 embedded, 0 unchanged" in res.stderr
    assert read_index(library)["removed"] == {gone: 2}  # the parts after the damaged one moved down
    ids = read_library(library).ids
    assert len(ids) == 5 and gone not in ids
    assert json.loads((library / "index.json").read_text())["parts"][-1]["tracks"] == 2
