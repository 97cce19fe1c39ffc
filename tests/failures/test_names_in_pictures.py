"""Names that are not UTF-8 (or hold ``$``, a newline) are drawn, never a crash: every picture, every report page.

matplotlib raises ``TypeError`` from ``FT2Font.set_text`` at draw time on the lone surrogates Python
keeps for bytes that are not UTF-8; :func:`specmusic.plotting.drawable_text` writes them ``\\xNN``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from specmusic.fileio import printable_path, printable_text
from specmusic.plotting import drawable_text, pyplot, save_figure_atomic
from tests.conftest import tone, write
from tests.training.test_train_cli import FAST
from tests.failures.test_failures import TINY_GEN, run

LATIN1 = os.fsdecode(b"m\xe9d")  # a Latin-1 folder name: not valid UTF-8


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three labels x 3 clips; one label and every clip named with a byte that is not UTF-8, one with ``$``."""
    root = tmp_path_factory.mktemp("names") / "data"
    for li, (label, f) in enumerate((("low", 110.0), (LATIN1, 440.0), ("a$b", 1760.0))):
        for i in range(3):
            write(root / label / os.fsdecode(b"t\xe9%d.wav" % i), tone(f * (1 + 0.03 * i), 1.5, seed=10 * li + i))
    return root


def test_drawable_text_escapes_what_matplotlib_cannot_draw() -> None:
    assert drawable_text(os.fsdecode(b"caf\xe9.wav")) == "caf\\xe9.wav"
    assert drawable_text("a\nb\tc") == "a\\nb\\tc"
    assert drawable_text("cost $5 or $6") == "cost \\$5 or \\$6"
    for text in ("caf\udce9", "a\nb", "x$y$", "plain"):
        assert drawable_text(drawable_text(text)) == drawable_text(text)  # idempotent
    assert printable_path(os.fsdecode(b"caf\xe9\n.wav")) == "caf\\xe9\\n.wav"
    assert printable_text("line\u2028sep\x7f") == "line\\u2028sep\\x7f"


def test_a_figure_with_raw_names_is_still_saved(tmp_path: Path) -> None:
    """save_figure_atomic passes every text through drawable_text: a caller that forgot is not a crash."""
    fig, ax = pyplot().subplots()
    ax.plot([0, 1], [0, 1], label=LATIN1)
    ax.set_title(f"{LATIN1} $x")
    ax.set_xticks([0, 1], [LATIN1, "ok"])
    ax.legend()
    save_figure_atomic(fig, tmp_path / "raw.png")
    assert (tmp_path / "raw.png").stat().st_size > 0


def test_spectro_png_draws_every_name(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "specs"
    res = run("spectro", tree, "-o", out, "--png", "--no-progress")
    assert res.exit_code == 0, res.stderr
    arrays = sorted(out.rglob("*.npz"))
    assert len(arrays) == 9 and all(a.with_suffix(".png").is_file() for a in arrays)
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 9  # no orphan array without its row


def test_describe_plots_and_json(tree: Path, tmp_path: Path) -> None:
    res = run("describe", tree, "--plots", tmp_path / "plots", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["clips"] == 9
    assert len(list((tmp_path / "plots").glob("*.png"))) == 4


def test_train_draws_the_confusion_matrix(tree: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    res = run("train", tree, "-o", run_dir, *FAST)
    assert res.exit_code == 0, res.stderr
    assert (run_dir / "confusion.png").is_file() and (run_dir / "training_curve.png").is_file()
    page = run("report", run_dir, "-o", tmp_path / "run.html")
    assert page.exit_code == 0, page.stderr
    assert "m\\xe9d" in (tmp_path / "run.html").read_text(encoding="utf-8")


def test_generate_train_and_sample_draw_their_pictures(tree: Path, tmp_path: Path) -> None:
    gen = tmp_path / "gen"
    res = run("generate", "train", tree, "-o", gen, "--epochs", "1", *TINY_GEN)
    assert res.exit_code == 0, res.stderr
    assert (gen / "samples.png").is_file() and (gen / "loss.png").is_file()
    assert "labels (a$b, low, m\\xe9d)" in res.stderr and "\\udc" not in res.stderr  # the labels as text shows them
    out = tmp_path / "samples"
    res = run("generate", "sample", gen, "-n", "1", "-l", LATIN1, "--seconds", "1", "-o", out, "--steps", "2")
    assert res.exit_code == 0, res.stderr
    assert len(list(out.glob("*.png"))) == 1 and "\\udc" not in res.stderr
    page = run("report", out, "-o", tmp_path / "samples.html")
    assert page.exit_code == 0, page.stderr


def test_report_pages_of_non_utf8_names(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "specs"
    assert run("spectro", tree, "-o", out, "--no-progress").exit_code == 0
    page = run("report", out, "-o", tmp_path / "specs.html")
    assert page.exit_code == 0, page.stderr
    html = (tmp_path / "specs.html").read_text(encoding="utf-8")
    assert "t\\xe90.npz" in html and "\udce9" not in html


def test_embed_map_draws_non_utf8_labels(tree: Path, model: Path, tmp_path: Path) -> None:
    res = run("embed", tree, "-m", model, "-o", tmp_path / "lib.jsonl", "--map", tmp_path / "map.png")
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "map.png").is_file()
    assert "Warning" not in res.stderr  # scikit-learn's ConvergenceWarning / numpy's RuntimeWarning stay inside


def test_nmf_pictures_of_a_non_utf8_file(tmp_path: Path) -> None:
    song = write(tmp_path / os.fsdecode(b"s\xe9$ng.wav"), np.concatenate([tone(220.0, 1.0), tone(330.0, 1.0)]))
    res = run("nmf", song, "-c", "2", "-i", "5", "-o", tmp_path / "parts")
    assert res.exit_code == 0, res.stderr
    assert {p.name for p in (tmp_path / "parts").glob("*.png")} >= {"W.png", "H.png", "loss.png"}
