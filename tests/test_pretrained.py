"""Pretrained tagger registry, cache, download/sha256 checks, conversion, classify without --model."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from specmusic.models import pretrained
from specmusic.cli.app import app
from specmusic.errors import ModelError
from specmusic.fileio import CACHE_ENV, cache_dir
from specmusic.models.pretrained import (
    DEFAULT_TAGGER,
    TAGGERS,
    WEIGHTS_ENV,
    PretrainedTagger,
    download_checkpoint,
    ensure_default_model,
    ensure_model,
    find_checkpoint,
)
from tests.conftest import SHARED, chirp, needs_shared, write

WEIGHTS = SHARED / "weights" / "sota-music-tagging"
CC = SHARED / "data" / "cc-music"
CLASSICAL = {"classical", "classic", "orchestral", "strings", "violin", "cello", "harpsichord", "choral", "opera"}
ROCK = {"rock", "hard rock", "classic rock", "alternative rock", "indie rock", "progressive rock", "poprock", "metal"}
ELECTRONIC = {
    "electronic", "electronica", "electro", "techno", "dance", "house", "trance", "drummachine", "synthesizer",
    "synth", "beat", "beats",
}  # fmt: skip


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache under tmp_path, no $SPECMUSIC_WEIGHTS, and a network that is down."""
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    return cache


class _Response(io.BytesIO):
    headers: dict[str, str] = {}


def _fake_tagger(payload: bytes, arch: str = "musicnn") -> PretrainedTagger:
    return PretrainedTagger("mtat", arch, sha256=hashlib.sha256(payload).hexdigest(), size=len(payload))


def _random_checkpoint(path: Path, arch: str = "musicnn") -> bytes:
    import torch

    from specmusic.models.taggers import build_tagger

    torch.manual_seed(0)
    torch.save(build_tagger(arch).state_dict(), path)
    return path.read_bytes()


# -- registry ---------------------------------------------------------------------------------
def test_registry_has_the_eight_checkpoints() -> None:
    assert len(TAGGERS) == 8 and DEFAULT_TAGGER in TAGGERS
    for name, tagger in TAGGERS.items():
        assert name == f"{tagger.dataset}-{tagger.arch}"
        assert tagger.url == (
            f"https://github.com/minzwon/sota-music-tagging-models/raw/master/models/{tagger.dataset}/{tagger.arch}"
            "/best_model.pth"
        )
        assert len(tagger.labels) == 50 == len(set(tagger.labels))
        assert len(tagger.sha256) == 64


@needs_shared
def test_tag_lists_match_the_published_split_files() -> None:
    mtat = np.load(WEIGHTS / "split/mtat/tags.npy", allow_pickle=False)
    assert tuple(str(t) for t in mtat) == pretrained.MTAT_TAGS
    msd = (WEIGHTS / "split/msd/50tagList.txt").read_text().split("\n")
    assert tuple(t.strip() for t in msd if t.strip()) == pretrained.MSD_TAGS


def test_jamendo_order_is_the_label_binarizer_order() -> None:
    """The authors' TAGS list (training/data_loader/jamendo_loader.py) went through LabelBinarizer,
    whose columns are the sorted class names; JAMENDO_TAGS is that order without the prefixes."""
    authors = (
        "genre---downtempo genre---ambient genre---rock instrument---synthesizer genre---atmospheric genre---indie "
        "instrument---electricpiano genre---newage instrument---strings instrument---drums instrument---drummachine "
        "genre---techno instrument---guitar genre---alternative genre---easylistening genre---instrumentalpop "
        "genre---chillout genre---metal mood/theme---happy genre---lounge genre---reggae genre---popfolk "
        "genre---orchestral instrument---acousticguitar genre---poprock instrument---piano genre---trance "
        "genre---dance instrument---electricguitar genre---soundtrack genre---house genre---hiphop genre---classical "
        "mood/theme---energetic genre---electronic genre---world genre---experimental instrument---violin "
        "genre---folk mood/theme---emotional instrument---voice instrument---keyboard genre---pop instrument---bass "
        "instrument---computer mood/theme---film genre---triphop genre---jazz genre---funk mood/theme---relaxing"
    ).split()
    assert tuple(t.split("---")[1] for t in sorted(authors)) == pretrained.JAMENDO_TAGS


@needs_shared
@pytest.mark.parametrize("name", sorted(TAGGERS))
def test_registered_sha256_is_that_of_the_shared_copy(name: str) -> None:
    tagger = TAGGERS[name]
    path = WEIGHTS / tagger.relpath
    assert path.stat().st_size == tagger.size
    assert pretrained.sha256_file(path) == tagger.sha256


def test_cache_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "specmusic"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "specmusic"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


# -- local copies and sha256 ------------------------------------------------------------------
def test_local_file_with_wrong_sha256_is_a_clear_error(clean_env: Path, tmp_path: Path) -> None:
    bad = tmp_path / "best_model.pth"
    bad.write_bytes(b"not the checkpoint")
    with pytest.raises(ModelError, match="sha256") as info:
        find_checkpoint(TAGGERS[DEFAULT_TAGGER], weights=bad)
    message = str(info.value)
    assert "\n" not in message and " — " in message and "--weights" in message


def test_weights_folder_without_the_checkpoint(clean_env: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="has no jamendo/fcn/best_model.pth"):
        find_checkpoint(TAGGERS["jamendo-fcn"], weights=tmp_path)
    with pytest.raises(ModelError, match="does not exist"):
        find_checkpoint(TAGGERS["jamendo-fcn"], weights=tmp_path / "nope")


def test_weights_tree_from_env(clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = b"checkpoint bytes"
    tagger = _fake_tagger(payload)
    target = tmp_path / "tree" / "models" / tagger.relpath  # a clone's models/ folder is accepted too
    target.parent.mkdir(parents=True)
    target.write_bytes(payload)
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "tree"))
    assert find_checkpoint(tagger) == target


# -- download -----------------------------------------------------------------------------------
def test_download_verifies_and_renames(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = os.urandom(200_000)
    tagger = _fake_tagger(payload)
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: _Response(payload))
    dest = clean_env / "weights" / tagger.relpath
    assert download_checkpoint(tagger, dest, progress=False) == dest
    assert dest.read_bytes() == payload
    assert [p.name for p in dest.parent.iterdir()] == ["best_model.pth"]  # no temp file left
    assert find_checkpoint(tagger) == dest  # found in the cache next time


def test_download_with_wrong_sha256_keeps_nothing(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tagger = _fake_tagger(b"the real thing")
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: _Response(b"a tampered file"))
    dest = clean_env / "weights" / tagger.relpath
    with pytest.raises(ModelError, match="sha256 .* expected") as info:
        download_checkpoint(tagger, dest, progress=False)
    assert "\n" not in str(info.value)
    assert not dest.exists() and not list(dest.parent.iterdir())


def test_offline_without_local_copy_says_how_to_supply_it(clean_env: Path) -> None:
    with pytest.raises(ModelError) as info:
        ensure_default_model(progress=False)
    message = str(info.value)
    assert "cannot download" in message and "network is unreachable" in message
    assert "--weights" in message and WEIGHTS_ENV in message and TAGGERS[DEFAULT_TAGGER].url in message
    assert "\n" not in message


# -- conversion and the cache -----------------------------------------------------------------
def test_ensure_model_converts_once_then_reuses(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from specmusic.inference import load_model, predict_track

    ckpt = tmp_path / "best_model.pth"
    tagger = _fake_tagger(_random_checkpoint(ckpt))
    monkeypatch.setitem(TAGGERS, "mtat-musicnn", tagger)
    path = ensure_model("mtat-musicnn", weights=ckpt, progress=False)
    assert path.parent == clean_env / "onnx" and path.name.startswith(f"mtat-musicnn-{tagger.sha256[:12]}")

    model = load_model(path)
    meta = model.meta
    assert meta["task"] == "multilabel" and meta["labels"] == list(pretrained.MTAT_TAGS)
    assert meta["chunk_frames"] == 188 and meta["input_norm"] is None and meta["outputs"] == "logits"
    assert meta["feature_config"]["sample_rate"] == 16000 and meta["feature_config"]["mel_scale"] == "htk"
    assert meta["pretrained"]["license"] == "MIT"
    probs = predict_track(model, write(tmp_path / "a.wav", chirp(2.0, sr=16000), sr=16000))
    assert probs.shape == (50,) and np.all((probs > 0) & (probs < 1))

    def no_conversion(*args: object, **kwargs: object) -> None:
        raise AssertionError("converted twice")

    monkeypatch.setattr(pretrained, "convert_tagger", no_conversion)
    assert ensure_model("mtat-musicnn", weights=tmp_path / "gone.pth", progress=False) == path  # cache hit first


def test_a_corrupt_cached_tagger_is_rebuilt_from_the_checkpoint(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from specmusic.inference import load_model

    ckpt = tmp_path / "best_model.pth"
    tagger = _fake_tagger(_random_checkpoint(ckpt))
    monkeypatch.setitem(TAGGERS, "mtat-musicnn", tagger)
    path = ensure_model("mtat-musicnn", weights=ckpt, progress=False)
    sidecar = path.with_name(path.name + ".sha256")
    assert sidecar.read_text().split()[0] == pretrained.sha256_file(path)  # recorded when converted
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # a cache file cut short (disk full, a killed copy)
    capsys.readouterr()
    assert ensure_model("mtat-musicnn", weights=ckpt, progress=False) == path
    note = capsys.readouterr().err
    assert "corrupt" in note and "rebuilding" in note and "specmusic train" not in note
    assert pretrained.sha256_file(path) == sidecar.read_text().split()[0]
    load_model(path)  # the rebuilt model loads

    path.write_bytes(b"\0" * len(good))  # corrupt again, and this time the checkpoint is gone (offline)
    with pytest.raises(ModelError) as info:
        ensure_model("mtat-musicnn", weights=None, progress=False)
    message = str(info.value)
    assert "corrupt" in message and "--weights" in message and "\n" not in message
    assert "specmusic train" not in message
    assert not path.exists()  # never trusted again


def test_a_tagger_cached_without_a_checksum_is_checked_once(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A cache written by an older specmusic has no .sha256: the model is loaded once to check it."""
    ckpt = tmp_path / "best_model.pth"
    tagger = _fake_tagger(_random_checkpoint(ckpt))
    monkeypatch.setitem(TAGGERS, "mtat-musicnn", tagger)
    path = ensure_model("mtat-musicnn", weights=ckpt, progress=False)
    sidecar = path.with_name(path.name + ".sha256")
    sidecar.unlink()
    assert ensure_model("mtat-musicnn", weights=ckpt, progress=False) == path
    assert sidecar.is_file() and "corrupt" not in capsys.readouterr().err  # intact: recorded, not rebuilt
    sidecar.unlink()
    path.write_bytes(b"not an onnx model")
    assert ensure_model("mtat-musicnn", weights=ckpt, progress=False) == path
    assert "does not load" in capsys.readouterr().err and sidecar.is_file()


# -- classify without --model ---------------------------------------------------------------------
def test_classify_offline_without_weights_is_one_line_error(clean_env: Path, chirp_mono: Path) -> None:
    result = CliRunner().invoke(app, ["classify", str(chirp_mono), "--no-progress"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot download") and "--weights" in lines[0]
    assert result.stdout == ""


@pytest.fixture(scope="module")
def default_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding the converted default tagger (converted from ../shared once per module)."""
    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(cache)
    try:
        ensure_default_model(weights=str(WEIGHTS), progress=False)
    finally:
        if old is None:
            del os.environ[CACHE_ENV]
        else:
            os.environ[CACHE_ENV] = old
    return cache


@needs_shared
def test_classify_without_model_prints_top_tags(
    default_cache: Path, monkeypatch: pytest.MonkeyPatch, chirp_mono: Path
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(default_cache))
    monkeypatch.setenv(WEIGHTS_ENV, str(WEIGHTS))
    result = CliRunner().invoke(app, ["classify", str(chirp_mono), "--top", "5", "--json", "--no-progress"])
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout.strip())
    labels = TAGGERS[DEFAULT_TAGGER].labels
    assert len(record["top"]) == 5 and all(t["label"] in labels for t in record["top"])
    assert set(record["probabilities"]) == set(labels)
    scores = [t["probability"] for t in record["top"]]
    assert scores == sorted(scores, reverse=True)


def test_the_registry_lives_under_models_and_imports_no_torch() -> None:
    """classify without --model imports specmusic.models.pretrained: it must stay torch-free."""
    code = (
        "import sys\n"
        "from specmusic.models.pretrained import DEFAULT_TAGGER, TAGGERS, ensure_default_model\n"
        "import specmusic.cli.classify, specmusic.embeddings\n"
        "heavy = [n for n in ('torch', 'onnx') if n in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not (Path(pretrained.__file__).parent.parent / "pretrained.py").exists()


@needs_shared
def test_cached_default_model_runs_torch_free(default_cache: Path, tmp_path: Path) -> None:
    audio = write(tmp_path / "song.wav", chirp(3.0))
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from specmusic.cli.app import app\n"
        f"r = CliRunner().invoke(app, ['classify', {str(audio)!r}, '--no-progress'])\n"
        "assert r.exit_code == 0, r.stderr\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print(r.stdout)\n"
    )
    env = {**os.environ, CACHE_ENV: str(default_cache), WEIGHTS_ENV: str(tmp_path / "not-needed")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "song.wav" in done.stdout


@needs_shared
@pytest.mark.parametrize(
    ("prefix", "above", "below"),
    [
        ("Hungarian_Dance", CLASSICAL, ROCK),
        ("Kevin_MacLeod_-_P_I_Tchaikovsky", CLASSICAL, ROCK),
        ("admiralbob77_-_Choice_-_Drum-bass", ELECTRONIC, CLASSICAL),
    ],
)
def test_default_tagger_sanity_on_real_music(default_cache: Path, prefix: str, above: set, below: set) -> None:
    from specmusic.features import compute_features_file
    from specmusic.inference import load_model, predict_track

    path = next(CC.glob(f"{prefix}*.ogg"))
    model = load_model(default_cache / "onnx" / TAGGERS[DEFAULT_TAGGER].onnx_name)
    spec, _ = compute_features_file(path, model.feature_config, duration=60.0)
    probs = dict(zip((label.lower() for label in model.labels), predict_track(model, spec)))
    best_above = max(p for tag, p in probs.items() if tag in above)
    best_below = max(p for tag, p in probs.items() if tag in below)
    assert best_above > best_below
