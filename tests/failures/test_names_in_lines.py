"""A file name holding a newline (or another control character) never splits a line of text output: classify's
table, a ``warning:`` line, describe's table and a batch's ``Error:`` line each name it as ``\\n`` on one line
(:func:`specmusic.fileio.display_path`, the one function every message shows a path through)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from specmusic.embeddings.search.queries import as_os_text
from specmusic.fileio import display_path, printable_path
from tests.conftest import tone, write
from tests.failures.test_failures import run

NEWLINE = "a\nb.wav"
SHOWN = "a\\nb.wav"


@pytest.fixture(scope="module")
def songs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``a<newline>b.wav``, an exact copy of it (a duplicate pair for describe) and a silent ``si<newline>lence.wav``."""
    root = tmp_path_factory.mktemp("lines") / "songs"
    write(root / NEWLINE, tone(330.0, 2.0))
    write(root / "copy.wav", tone(330.0, 2.0))
    write(root / "si\nlence.wav", np.zeros(2 * 22050, dtype=np.float32))
    return root


def test_display_path_is_the_one_function() -> None:
    assert display_path is printable_path
    assert display_path(os.fsdecode(b"x/caf\xe9\r\n\t\x01.wav")) == "x/caf\\xe9\\r\\n\\t\\x01.wav"
    assert display_path(b"caf\xe9.wav") == "caf\\xe9.wav" and display_path(Path("a\u2028b")) == "a\\u2028b"
    name = os.fsdecode(b"t\xe9\n\t\x01.wav")
    assert as_os_text(display_path(name)) == name  # a name copied from text output finds its file again


def test_classify_table_and_warning_stay_one_line(songs: Path, model: Path) -> None:
    res = run("classify", songs, "-m", model)
    assert res.exit_code == 0, res.stderr
    rows = res.stdout.splitlines()
    assert len(rows) == 4 and rows[0].startswith("file")  # a header and one row per file
    assert [r for r in rows if SHOWN in r] and [r for r in rows if "si\\nlence.wav" in r]
    assert not [r for r in rows if r.startswith(("b.wav", "lence.wav"))]
    warnings = [line for line in res.stderr.splitlines() if "digital silence" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: ") and "si\\nlence.wav" in warnings[0]


def test_describe_table_stays_one_line(songs: Path) -> None:
    res = run("describe", songs)
    assert res.exit_code == 0, res.stderr
    pairs = [line for line in res.stdout.splitlines() if line.strip().startswith("exact ")]
    assert len(pairs) == 1 and SHOWN in pairs[0] and "copy.wav" in pairs[0], res.stdout
    assert not [line for line in res.stdout.splitlines() if line.startswith(("b.wav", "lence.wav"))]


def test_a_batch_error_line_stays_one_line(songs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected exception in one file's task: batch.py's ``internal error`` line names it on one line."""
    opened = sf.SoundFile.__init__

    def explode(self, file, *args, **kwargs) -> None:  # noqa: ANN001
        opened(self, file, *args, **kwargs)
        if os.path.basename(os.fsdecode(file)) == NEWLINE:
            self.close()
            raise ZeroDivisionError("the decoder divided by zero")

    monkeypatch.setattr(sf.SoundFile, "__init__", explode)
    res = run("spectro", songs, "-o", tmp_path / "specs", "-j", "1", "--no-progress")
    assert res.exit_code == 1, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and SHOWN in errors[0] and "internal error (ZeroDivisionError" in errors[0], res.stderr
    assert not [line for line in res.stderr.splitlines() if line.startswith("b.wav")]
