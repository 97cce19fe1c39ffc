"""``specmusic report``: kind detection, each kind's page, relative links, escaping, paging, embedded audio.

Every kind's output is made once for the module by the real commands on tiny generated audio
(:func:`make_outputs`, also used by the browser tests and ``benchmarks/report_screenshots.py``).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote_to_bytes

import pytest
import soundfile as sf
from typer.testing import CliRunner

from specmusic.cli.app import app
from specmusic.errors import InputError
from specmusic.report import KINDS, build_report, detect_kind
from specmusic.report.listings import script_json
from tests.conftest import tone, write

ODD = "it's <b>&\"odd\" #1.wav"  # quotes, markup, an ampersand, a hash and spaces
NON_UTF8 = os.fsdecode(b"caf\xe9 song.wav")  # a Latin-1 byte: not valid UTF-8
TINY_GEN = ["--n-mels", "16", "--patch-frames", "16", "--base", "8", "--batch-size", "4", "--threads", "1",
            "--no-progress"]


def invoke_ok(*args: object) -> str:
    """Run a command in-process; it must succeed. Returns its stdout (also used by benchmarks/report_screenshots.py)."""
    result = CliRunner().invoke(app, [os.fspath(a) if isinstance(a, Path) else str(a) for a in args])
    assert result.exit_code == 0, (args, result.stderr)
    return result.stdout


def make_genres(root: Path) -> Path:
    """3 labels × 4 tones of 1.5 s, plus two oddly named tracks in ``mid``."""
    for li, (label, f) in enumerate((("low", 110.0), ("mid", 440.0), ("high", 1760.0))):
        for i in range(4):
            write(root / label / f"{label}.{i:05d}.wav", tone(f * (1 + 0.03 * i), 1.5, seed=10 * li + i))
    write(root / "mid" / ODD, tone(450.0, 1.5, seed=50))
    write(root / "mid" / NON_UTF8, tone(455.0, 1.5, seed=51))
    return root


def make_describe_json(genres: Path, out: Path) -> Path:
    """``describe --json`` output: from the command when it exists, else written here from its schema."""
    from specmusic.cli.app import COMMANDS

    if "describe" in COMMANDS:
        invoke_ok("describe", genres, "--plots", out.parent / "describe_plots", "-o", out)
        return out
    files = sorted(p for p in genres.rglob("*.wav"))
    record = {
        "kind": "specmusic-describe", "version": 1, "inputs": [str(genres)], "clips": len(files), "failed": [],
        "labels": {p.parent.name: {"clips": 1, "groups": 1, "duration": {"total": 1.5, "min": 1.5, "median": 1.5,
                                                                          "max": 1.5},
                                   "loudness_lufs": {"min": -20.0, "median": -20.0, "max": -20.0},
                                   "clipping_clips": 0, "silent_clips": 0} for p in files},
        "files": [{"path": str(p), "label": p.parent.name, "group": p.stem, "split": None, "duration": 1.5,
                   "sample_rate": 22050, "channels": 1, "format": "wav", "lufs": -20.0, "peak_dbfs": -6.0,
                   "clipping_share": 0.0, "silence_share": 0.0} for p in files],
        "formats": {"wav": len(files)}, "sample_rates": {"22050": len(files)}, "channels": {"1": len(files)},
        "duplicates": [], "warnings": [], "plots": {},
    }
    out.write_text(json.dumps(record))
    return out


def make_outputs(root: Path, genres: Path | None = None, *, epochs: int = 2, chunk_seconds: float = 0.5,
                 flip: bool = True) -> dict[str, Path]:
    """Every kind of output ``report`` reads, written by the real commands into ``root`` (from the tones of
    :func:`make_genres`, or ``genres``); ``flip`` makes one test prediction wrong when none is."""
    genres = genres or make_genres(root / "genres")
    out = {"spectro": root / "spec", "train": root / "run", "embed": root / "lib.npz", "recommend": root / "recs.jsonl",
           "nmf": root / "parts", "generate": root / "samples", "describe": root / "describe.json"}
    invoke_ok("spectro", genres, "-o", out["spectro"])
    invoke_ok("train", genres, "-o", out["train"], "--epochs", epochs, "--chunk-seconds", chunk_seconds, "--threads", "1",
            "--no-progress")
    invoke_ok("embed", genres, "--model", "mfcc", "-o", out["embed"], "--map", root / "map.png")
    tracks = sorted((p for p in genres.rglob("*.wav")), key=lambda p: os.fsencode(p))
    odd = [p for p in tracks if p.name in (ODD, NON_UTF8)] or [tracks[0], tracks[len(tracks) // 2]]
    out["recommend"].write_bytes(os.fsencode(invoke_ok("recommend", out["embed"], *[a for p in odd for a in ("-q", p)],
                                                     "-k", "3", "--json")))
    invoke_ok("nmf", tracks[0], "-c", "2", "-o", out["nmf"], "--iterations", "40")
    invoke_ok("generate", "train", genres, "-o", root / "gen", "--epochs", "2", *TINY_GEN)
    invoke_ok("generate", "sample", root / "gen", "-n", "2", "--seconds", "1", "--steps", "4", "-o", out["generate"])
    make_describe_json(genres, out["describe"])
    # A report must show misclassified clips; a 2-epoch run may have none, so one test prediction is made wrong.
    if not flip:
        return out
    metrics_path = out["train"] / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    split = "test" if "test" in metrics else "valid"
    first = metrics[split]["predictions"][0]
    if first["correct"]:
        first["predicted"] = next(lab for lab in metrics["labels"] if lab != first["label"])
        first["correct"] = False
    metrics_path.write_text(json.dumps(metrics))
    return out


class _Media(HTMLParser):
    """``src`` of every ``<img>`` and ``<audio>`` of a page, and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.audio: list[str] = []
        self.circles = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images.append(a["src"] or "")
        elif tag == "audio" and a.get("src"):
            self.audio.append(a["src"] or "")
        elif tag == "circle":
            self.circles += 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: Path) -> _Media:
    parser = _Media()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def text_of(page: Path) -> str:
    """The page's text, whitespace collapsed."""
    return " ".join(" ".join(parse(page).text).split())


def local_file(page: Path, src: str) -> Path:
    """The file a relative URL in ``page`` points at (bytes unquoted, as a browser reads file:// URLs)."""
    return page.parent / os.fsdecode(unquote_to_bytes(src))


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_outputs(tmp_path_factory.mktemp("outputs"))


@pytest.fixture(scope="module")
def pages(outputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each kind's report, written into a folder apart from the outputs (links go up and across)."""
    folder = tmp_path_factory.mktemp("reports") / "site"
    return {kind: build_report(path, folder / f"{kind}.html").pages[0] for kind, path in outputs.items()}


def test_detect_kind_of_every_output_and_its_files(outputs: dict[str, Path]) -> None:
    for kind, path in outputs.items():
        assert detect_kind(path) == kind
    assert detect_kind(outputs["train"] / "metrics.json") == "train"
    assert detect_kind(outputs["nmf"] / "nmf.npz") == "nmf"
    assert detect_kind(outputs["embed"].with_name("map.json")) == "embed"


def test_unknown_path_is_one_line_naming_every_kind(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello\n")
    for path in (tmp_path, tmp_path / "notes.txt"):
        with pytest.raises(InputError) as info:
            detect_kind(path)
        message = str(info.value)
        assert "\n" not in message and all(kind in message for kind in KINDS)
    result = CliRunner().invoke(app, ["report", str(tmp_path / "missing")])
    assert result.exit_code == 1 and result.stdout == ""
    assert [line for line in result.stderr.splitlines() if line.startswith("Error:")] == [
        f"Error: {tmp_path / 'missing'}: no such file or folder — check the path"]


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_link_of_every_kind_resolves(pages: dict[str, Path], outputs: dict[str, Path], kind: str) -> None:
    media = parse(pages[kind])
    wrong = sum(not p["correct"] for p in json.loads((outputs["train"] / "metrics.json").read_text())["test"]["predictions"])
    expected_audio = {"spectro": 14, "train": wrong, "embed": 14, "recommend": 2 * 4, "nmf": 4, "generate": 2,
                      "describe": 14}[kind]
    assert len(media.audio) == expected_audio
    for src in media.images + media.audio:
        assert not src.startswith(("/", "file:", "http")), src  # relative, so the folder can move as one
        assert local_file(pages[kind], src).is_file(), src
    if kind in ("spectro", "train", "generate"):
        assert len(media.images) == {"spectro": 14, "train": wrong + 2, "generate": 2}[kind]  # a spectrogram per item


def test_odd_names_are_escaped_shown_and_linked(pages: dict[str, Path], outputs: dict[str, Path]) -> None:
    html = pages["spectro"].read_text(encoding="utf-8")
    assert "<b>&" not in html and "it&#39;s &lt;b&gt;&amp;&#34;odd&#34; #1" in html
    assert r"caf\xe9 song" in html  # a byte that is not UTF-8, shown as \xNN
    media = parse(pages["spectro"])
    odd = [src for src in media.audio if "%23" in src]  # '#' quoted: it would start a URL fragment
    assert len(odd) == 1 and local_file(pages["spectro"], odd[0]).name == ODD
    latin = [src for src in media.audio if "%E9" in src]
    assert len(latin) == 1 and os.fsencode(local_file(pages["spectro"], latin[0]).name) == b"caf\xe9 song.wav"


def test_train_page_has_metrics_confusion_curves_and_the_misclassified(pages: dict[str, Path],
                                                                      outputs: dict[str, Path]) -> None:
    metrics = json.loads((outputs["train"] / "metrics.json").read_text())
    wrong = [p for p in metrics["test"]["predictions"] if not p["correct"]]
    text = text_of(pages["train"])
    assert "Per-class precision, recall and F1" in text and "Confusion matrix" in text
    assert f"Misclassified test clips ({len(wrong)})" in text
    for p in wrong:
        assert f"true {p['label']}" in text and f"predicted {p['predicted']}" in text
    images = parse(pages["train"]).images
    assert any(src.endswith("confusion.png") for src in images) and any(src.endswith("training_curve.png") for src in images)


def test_embed_map_has_a_point_per_track_and_safe_data(pages: dict[str, Path]) -> None:
    html = pages["embed"].read_text(encoding="utf-8")
    assert parse(pages["embed"]).circles == 14
    data = json.loads(re.search(r'id="map-data">(.*?)</script>', html, re.DOTALL).group(1))
    assert len(data) == 14 and {t["l"] for t in data} == {"low", "mid", "high"}
    assert any(t["n"].endswith(ODD) for t in data)
    assert "</script>" not in script_json(["</script><b>"]) and json.loads(script_json(["</script>"])) == ["</script>"]


def test_recommend_page_plays_each_query_and_its_neighbours(pages: dict[str, Path]) -> None:
    text = text_of(pages["recommend"])
    assert "2 queries" in text and text.count("rank score track") == 2


def test_pages_of_limit_items_link_to_each_other_and_stale_pages_go(outputs: dict[str, Path], tmp_path: Path) -> None:
    result = build_report(outputs["spectro"], tmp_path / "r.html", limit=5)
    assert [p.name for p in result.pages] == ["r.html", "r-2.html", "r-3.html"] and result.items == 14
    for page, count in zip(result.pages, (5, 5, 4)):
        media = parse(page)
        assert len(media.audio) == count
        html = page.read_text(encoding="utf-8")
        assert all(f'href="{p.name}"' in html for p in result.pages if p != page)
    assert "Labels" in text_of(result.pages[0])
    assert "Labels" not in text_of(result.pages[1])  # the summary is on the first page only
    thumbs = set((tmp_path / "r_files").iterdir())
    assert len(thumbs) == 14
    (tmp_path / "r_files" / "0123456789abcdef.png").write_bytes(b"stale")
    again = build_report(outputs["spectro"], tmp_path / "r.html")
    assert [p.name for p in again.pages] == ["r.html"]
    assert not (tmp_path / "r-2.html").exists() and set((tmp_path / "r_files").iterdir()) == thumbs
    own = tmp_path / "r-2026.html"  # named like a page, but the user's: never deleted
    own.write_text("<p>mine</p>")
    build_report(outputs["spectro"], tmp_path / "r.html")
    assert own.read_text() == "<p>mine</p>"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_embed_audio_makes_ogg_excerpts(outputs: dict[str, Path], tmp_path: Path) -> None:
    page = build_report(outputs["generate"], tmp_path / "s.html", embed_audio=True, excerpt_seconds=0.5).pages[0]
    sources = parse(page).audio
    assert len(sources) == 2
    for src in sources:
        assert src.startswith("data:audio/ogg;base64,")
        info = sf.info(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert info.format == "OGG" and 0.4 < info.duration <= 0.55
    images = parse(page).images  # one self-contained file: the pictures are in it too
    assert len(images) == 2 and all(src.startswith("data:image/png;base64,") for src in images)
    assert [p.name for p in tmp_path.iterdir()] == ["s.html"]


def test_cli_prints_the_pages_and_default_output_sits_beside_the_input(outputs: dict[str, Path],
                                                                       tmp_path: Path) -> None:
    copy = tmp_path / "parts"
    shutil.copytree(outputs["nmf"], copy)
    result = CliRunner().invoke(app, ["report", str(copy), "--limit", "2", "--title", "Two <parts>"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [str(copy / "report.html"), str(copy / "report-2.html")]
    assert result.stderr.startswith("report: nmf, 4 items on 2 pages")
    assert "<title>Two &lt;parts&gt; (1/2)</title>" in (copy / "report.html").read_text(encoding="utf-8")
    bad = CliRunner().invoke(app, ["report", str(copy), "--limit", "0"])
    assert bad.exit_code == 2


def test_describe_page_reads_a_json_missing_optional_fields(tmp_path: Path) -> None:
    clip = write(tmp_path / "a & b.wav", tone(220.0, 0.5))
    au = write(tmp_path / "c.au", tone(330.0, 0.5), format="AU", subtype="PCM_16")  # no browser plays .au
    record = {"kind": "specmusic-describe", "version": 1, "inputs": [str(tmp_path)], "clips": 1,
              "failed": [{"path": "bad.mp3", "error": "cannot decode <x>"}],
              "labels": {"(none)": {"clips": 1}}, "files": [{"path": clip.name, "duration": 0.5}, {"path": au.name}],
              "duplicates": [{"a": clip.name, "b": clip.name, "kind": "exact", "similarity": 1.0, "leakage": True}],
              "warnings": ["1 pair across splits"], "plots": {"missing": "nowhere.png"}}
    (tmp_path / "d.json").write_text(json.dumps(record))
    page = build_report(tmp_path / "d.json").pages[0]
    assert page == tmp_path / "d.html"
    media = parse(page)
    assert len(media.audio) == 4 and media.images == []  # a relative path is found beside the JSON
    assert [s[:22] for s in media.audio if not s.endswith(".wav")] == ["data:audio/ogg;base64,"]  # .au: embedded
    html = page.read_text(encoding="utf-8")
    assert "cannot decode &lt;x&gt;" in html and "a &amp; b.wav" in html and "leakage" in html


def test_describe_page_finds_audio_from_where_describe_ran_and_shows_only_png_plots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    write(data / "x" / "a.wav", tone(220.0, 0.5))
    write(data / "y" / "b.wav", tone(330.0, 0.5))
    secret = tmp_path / "secret.txt"
    secret.write_text("not a picture")
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["describe", "data", "-o", "reports/d.json"])  # paths relative to tmp_path
    assert r.exit_code == 0, r.output
    record = json.loads((tmp_path / "reports" / "d.json").read_text())
    record["plots"] = {"evil": str(secret)}
    (tmp_path / "reports" / "d.json").write_text(json.dumps(record))
    monkeypatch.chdir(data)  # report run from elsewhere: the JSON's "base" finds the audio
    page = build_report(tmp_path / "reports" / "d.json", tmp_path / "out" / "d.html").pages[0]
    media = parse(page)
    assert len(media.audio) == 2 and media.images == []
    assert "secret" not in page.read_text(encoding="utf-8")


def test_nmf_without_pictures_draws_w_and_h_from_the_arrays(outputs: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "parts"
    shutil.copytree(outputs["nmf"], copy)
    for name in ("W.png", "H.png", "loss.png"):
        (copy / name).unlink()
    page = build_report(copy / "nmf.npz", tmp_path / "n.html").pages[0]
    images = parse(page).images
    assert len(images) == 2 and all(src.startswith("n_files/") for src in images)
    assert all(local_file(page, src).read_bytes()[:4] == b"\x89PNG" for src in images)


def test_spectro_errors_are_listed_and_a_long_list_is_capped(outputs: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "spec"
    shutil.copytree(outputs["spectro"], copy)
    rows = [{"severity": "error", "source": f"/music/bad{i}.mp3", "error": f"bad{i}.mp3: cannot decode <{i}>"}
            for i in range(3)]
    (copy / "errors.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    page = build_report(copy, limit=2).pages[0]
    text = text_of(page)
    assert "bad0.mp3: cannot decode <0>" in text and "bad1.mp3" in text and "bad2.mp3" not in text
    assert "and 1 more in errors.jsonl" in text


def test_a_big_map_draws_an_even_sample(outputs: dict[str, Path], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("specmusic.report.listings.MAP_POINTS", 5)
    page = build_report(outputs["embed"].with_name("map.json"), tmp_path / "m.html").pages[0]
    assert parse(page).circles == 5 and "5 of 14 tracks drawn" in text_of(page)
    assert len(parse(page).audio) == 14  # every track is still listed with its player
