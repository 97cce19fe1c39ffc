"""Pretrained tagger registry, cache, download/sha256 checks, conversion, classify without --model."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from specmusic.cli.app import app
from specmusic.errors import ModelError
from specmusic.fileio import CACHE_ENV, cache_dir, sha256_file
from specmusic.models.tags import MSD_TAGS, MTAT_TAGS
from specmusic.models.zoo import bundled, convert, rebuild, registry
from specmusic.models.zoo.bundled import BUNDLE_DIR, bundled_model
from specmusic.models.zoo.cache import WEIGHTS_ENV, download_checkpoint, find_checkpoint
from specmusic.models.zoo.ensure import ensure_default_model, ensure_model
from specmusic.models.zoo.registry import BUNDLED_TAGGERS, DEFAULT_TAGGER, TAGGERS, PretrainedTagger
from tests.conftest import SHARED, chirp, needs_shared, write
from tests.cli.test_runtime import NO_TORCH

WEIGHTS = SHARED / "weights" / "sota-music-tagging"
PACKAGE_BUNDLE = BUNDLE_DIR
NOT_BUNDLED = next(name for name in ("msd-fcn", *TAGGERS) if name not in BUNDLED_TAGGERS)
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


# A tagger that is not bundled (msd-musicnn has no published checkpoint; these tests make their own).
def _fake_tagger(payload: bytes, arch: str = "musicnn") -> PretrainedTagger:
    return PretrainedTagger("msd", arch, sha256=hashlib.sha256(payload).hexdigest(), size=len(payload))


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
    assert tuple(str(t) for t in mtat) == MTAT_TAGS
    msd = (WEIGHTS / "split/msd/50tagList.txt").read_text().split("\n")
    assert tuple(t.strip() for t in msd if t.strip()) == MSD_TAGS


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
    assert tuple(t.split("---")[1] for t in sorted(authors)) == registry.JAMENDO_TAGS


@needs_shared
@pytest.mark.parametrize("name", sorted(TAGGERS))
def test_registered_sha256_is_that_of_the_shared_copy(name: str) -> None:
    tagger = TAGGERS[name]
    path = WEIGHTS / tagger.relpath
    assert path.stat().st_size == tagger.size
    assert sha256_file(path) == tagger.sha256


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
    """A tagger that is not bundled still comes by download (or --weights); offline, one line says how."""
    with pytest.raises(ModelError) as info:
        ensure_model(NOT_BUNDLED, progress=False)
    message = str(info.value)
    assert "cannot download" in message and "network is unreachable" in message
    assert "--weights" in message and WEIGHTS_ENV in message and TAGGERS[NOT_BUNDLED].url in message
    assert "\n" not in message


# -- conversion and the cache -----------------------------------------------------------------
def test_ensure_model_converts_once_then_reuses(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from specmusic.inference import load_model, predict_track

    ckpt = tmp_path / "best_model.pth"
    tagger = _fake_tagger(_random_checkpoint(ckpt))
    monkeypatch.setitem(TAGGERS, "msd-musicnn", tagger)
    path = ensure_model("msd-musicnn", weights=ckpt, progress=False)
    assert path.parent == clean_env / "onnx" and path.name.startswith(f"msd-musicnn-{tagger.sha256[:12]}")

    model = load_model(path)
    meta = model.meta
    assert meta["task"] == "multilabel" and meta["labels"] == list(MSD_TAGS)
    assert meta["chunk_frames"] == 188 and meta["input_norm"] is None and meta["outputs"] == "logits"
    assert meta["feature_config"]["sample_rate"] == 16000 and meta["feature_config"]["mel_scale"] == "htk"
    assert meta["pretrained"]["license"] == "MIT"
    probs = predict_track(model, write(tmp_path / "a.wav", chirp(2.0, sr=16000), sr=16000))
    assert probs.shape == (50,) and np.all((probs > 0) & (probs < 1))

    def no_conversion(*args: object, **kwargs: object) -> None:
        raise AssertionError("converted twice")

    monkeypatch.setattr(convert, "convert_tagger", no_conversion)
    assert ensure_model("msd-musicnn", weights=tmp_path / "gone.pth", progress=False) == path  # cache hit first


def test_a_corrupt_cached_tagger_is_rebuilt_from_the_checkpoint(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from specmusic.inference import load_model

    ckpt = tmp_path / "best_model.pth"
    tagger = _fake_tagger(_random_checkpoint(ckpt))
    monkeypatch.setitem(TAGGERS, "msd-musicnn", tagger)
    path = ensure_model("msd-musicnn", weights=ckpt, progress=False)
    sidecar = path.with_name(path.name + ".sha256")
    assert sidecar.read_text().split()[0] == sha256_file(path)  # recorded when converted
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # a cache file cut short (disk full, a killed copy)
    capsys.readouterr()
    assert ensure_model("msd-musicnn", weights=ckpt, progress=False) == path
    note = capsys.readouterr().err
    assert "corrupt" in note and "rebuilding" in note and "specmusic train" not in note
    assert sha256_file(path) == sidecar.read_text().split()[0]
    load_model(path)  # the rebuilt model loads

    path.write_bytes(b"\0" * len(good))  # corrupt again, and this time the checkpoint is gone (offline)
    with pytest.raises(ModelError) as info:
        ensure_model("msd-musicnn", weights=None, progress=False)
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
    monkeypatch.setitem(TAGGERS, "msd-musicnn", tagger)
    path = ensure_model("msd-musicnn", weights=ckpt, progress=False)
    sidecar = path.with_name(path.name + ".sha256")
    sidecar.unlink()
    assert ensure_model("msd-musicnn", weights=ckpt, progress=False) == path
    assert sidecar.is_file() and "corrupt" not in capsys.readouterr().err  # intact: recorded, not rebuilt
    sidecar.unlink()
    path.write_bytes(b"not an onnx model")
    assert ensure_model("msd-musicnn", weights=ckpt, progress=False) == path
    assert "does not load" in capsys.readouterr().err and sidecar.is_file()


# -- the bundled default model -----------------------------------------------------------------
def test_the_bundled_models_are_in_the_package_with_their_sha256_and_licence() -> None:
    """Every name in BUNDLED_TAGGERS (the one list) has its ONNX file and SHA256SUMS line, nothing else."""
    assert DEFAULT_TAGGER in BUNDLED_TAGGERS and set(BUNDLED_TAGGERS) <= set(TAGGERS)
    sums = dict(line.split()[::-1] for line in (BUNDLE_DIR / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == {f"{name}.onnx" for name in BUNDLED_TAGGERS + registry.BUNDLED_PONS + registry.BUNDLED_EFFICIENTAT}
    assert {p.name for p in BUNDLE_DIR.glob("*.onnx")} == set(sums)
    for name, digest in sums.items():
        assert sha256_file(BUNDLE_DIR / name) == digest
    licence = (BUNDLE_DIR / "LICENSE").read_text()
    assert "MIT License" in licence and "Music Technology Group" in licence and "Minz Won" in licence
    if registry.BUNDLED_PONS:  # Pons' models: the musicnn wheel's ISC licence is appended
        assert "ISC" in licence
    if registry.BUNDLED_EFFICIENTAT:  # EfficientAT's MIT licence is appended
        assert licence.count("Copyright (c) 2022 Florian Schmid") == 1


def test_the_default_tagger_is_bundled_offline_and_caches_nothing(clean_env: Path, tmp_path: Path) -> None:
    path = ensure_default_model(weights=str(tmp_path / "not-needed"), progress=False)  # --weights is not read
    assert path == BUNDLE_DIR / f"{DEFAULT_TAGGER}.onnx" and bundled_model(DEFAULT_TAGGER) == path
    assert not clean_env.exists()  # no cache copy, no download
    from specmusic.inference import load_model

    meta = load_model(path).meta
    assert meta["labels"] == list(TAGGERS[DEFAULT_TAGGER].labels) and meta["pretrained"]["license"] == "MIT"
    assert "Minz Won" in meta["pretrained"]["credit"] and meta["pretrained"]["sha256"] == TAGGERS[DEFAULT_TAGGER].sha256


@pytest.fixture
def bundle_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the bundled folder that a test may damage, used in place of the package's."""
    folder = tmp_path / "bundled"
    shutil.copytree(BUNDLE_DIR, folder)
    monkeypatch.setattr(bundled, "BUNDLE_DIR", folder)
    monkeypatch.setattr(bundled, "_VERIFIED", {})
    return folder


def test_a_damaged_bundled_model_is_one_line_error(clean_env: Path, bundle_copy: Path, chirp_mono: Path) -> None:
    model = bundle_copy / f"{DEFAULT_TAGGER}.onnx"
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 2])  # cut short: a broken install
    result = CliRunner().invoke(app, ["classify", str(chirp_mono), "--no-progress"])
    assert result.exit_code == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: the bundled {DEFAULT_TAGGER} tagger") and "damaged" in lines[0]
    assert "pip install --force-reinstall specmusic" in lines[0]
    (bundle_copy / "SHA256SUMS").write_text("")  # no record at all: not trusted either
    with pytest.raises(ModelError, match="no entry in SHA256SUMS"):
        bundled_model(DEFAULT_TAGGER)


def test_without_the_bundled_file_the_download_path_is_used(clean_env: Path, bundle_copy: Path) -> None:
    (bundle_copy / f"{DEFAULT_TAGGER}.onnx").unlink()  # e.g. a source tree without its package data
    assert bundled_model(DEFAULT_TAGGER) is None
    with pytest.raises(ModelError, match="cannot download"):
        ensure_default_model(progress=False)


def test_only_listed_taggers_are_bundled(tmp_path: Path) -> None:
    from specmusic.errors import ConfigError

    assert bundled_model(NOT_BUNDLED) is None
    with pytest.raises(ConfigError, match="not in BUNDLED_TAGGERS"):
        rebuild.bundle_network(NOT_BUNDLED, weights=tmp_path, folder=tmp_path / "out")


@needs_shared
def test_the_maintainer_command_rebuilds_the_bundled_file_byte_for_byte(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """``python -m specmusic.models.zoo --bundle --weights DIR`` writes exactly the committed file
    (so it is also what the cache conversion writes: libraries embedded with either match)."""
    out = tmp_path / "bundled"
    monkeypatch.setattr(bundled, "BUNDLE_DIR", out)
    assert rebuild.main(["--bundle", *BUNDLED_TAGGERS, "--weights", str(WEIGHTS)]) == 0  # Pons': test_musicnn.py
    for name in BUNDLED_TAGGERS:
        assert (out / f"{name}.onnx").read_bytes() == (PACKAGE_BUNDLE / f"{name}.onnx").read_bytes()
    committed = (PACKAGE_BUNDLE / "SHA256SUMS").read_text().splitlines()
    others = registry.BUNDLED_PONS + registry.BUNDLED_EFFICIENTAT  # test_musicnn.py, test_audioset.py
    assert (out / "SHA256SUMS").read_text().splitlines() == [x for x in committed if not x.endswith(tuple(f"{n}.onnx" for n in others))]
    assert (out / "LICENSE").read_bytes() == (WEIGHTS / "LICENSE").read_bytes()
    assert sorted(p.name for p in out.iterdir()) == sorted(["LICENSE", "SHA256SUMS", *(f"{n}.onnx" for n in BUNDLED_TAGGERS)])
    assert str(out) in capsys.readouterr().out
    assert rebuild.main(["--bundle", NOT_BUNDLED, "--weights", str(WEIGHTS)]) == 1


# -- classify without --model ---------------------------------------------------------------------
def test_classify_offline_without_weights_uses_the_bundled_tagger(clean_env: Path, chirp_mono: Path) -> None:
    result = CliRunner().invoke(app, ["classify", str(chirp_mono), "--top", "5", "--json", "--no-progress"])
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout.strip())
    labels = TAGGERS[DEFAULT_TAGGER].labels
    assert len(record["top"]) == 5 and all(t["label"] in labels for t in record["top"])
    assert set(record["probabilities"]) == set(labels)
    scores = [t["probability"] for t in record["top"]]
    assert scores == sorted(scores, reverse=True)
    assert not clean_env.exists()


def test_a_tagger_that_is_not_bundled_offline_is_one_line_error(clean_env: Path, chirp_mono: Path) -> None:
    result = CliRunner().invoke(app, ["embed", str(chirp_mono), "--model", NOT_BUNDLED, "--no-progress"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot download") and "--weights" in lines[0]
    assert result.stdout == ""


def test_the_registry_lives_under_models_and_imports_no_torch() -> None:
    """classify without --model imports specmusic.models.zoo: it must stay torch-free."""
    code = (
        "import sys\n"
        "from specmusic.models.zoo import DEFAULT_TAGGER, TAGGERS, ensure_default_model\n"
        "import specmusic.cli.classify, specmusic.embeddings\n"
        "ensure_default_model(progress=False)\n"
        "heavy = [n for n in ('torch', 'onnx') if n in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not (Path(registry.__file__).parents[2] / "pretrained.py").exists()


@needs_shared
def test_a_cached_tagger_that_is_not_bundled_runs_torch_free(tmp_path: Path) -> None:
    """The download path for the other taggers: converted once (torch), then used without torch."""
    cache = tmp_path / "cache"
    env = {**os.environ, CACHE_ENV: str(cache)}
    env.pop(WEIGHTS_ENV, None)
    code = f"from specmusic.models.zoo import ensure_model; ensure_model({NOT_BUNDLED!r}, weights={str(WEIGHTS)!r})"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    audio = write(tmp_path / "song.wav", chirp(3.0))
    code = NO_TORCH + (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from specmusic.cli.app import app\n"
        f"r = CliRunner().invoke(app, ['embed', {str(audio)!r}, '--model', {NOT_BUNDLED!r}, '--no-progress'])\n"
        "assert r.exit_code == 0, r.stderr\n"
        "assert 'torch' not in sys.modules\n"
        "print(r.stdout)\n"
    )
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
def test_default_tagger_sanity_on_real_music(prefix: str, above: set, below: set) -> None:
    from specmusic.features import compute_features_file
    from specmusic.inference import load_model, predict_track

    path = next(CC.glob(f"{prefix}*.ogg"))
    model = load_model(ensure_default_model(progress=False))
    spec, _ = compute_features_file(path, model.feature_config, duration=60.0)
    probs = dict(zip((label.lower() for label in model.labels), predict_track(model, spec)))
    best_above = max(p for tag, p in probs.items() if tag in above)
    best_below = max(p for tag, p in probs.items() if tag in below)
    assert best_above > best_below


def test_every_default_model_ships_inside_the_package() -> None:
    """classify's and embed's defaults must run offline on the first run: all of them are bundled."""
    from specmusic.embeddings.embedders import DEFAULT_EMBEDDING
    from specmusic.models.zoo.bundled import BUNDLE_DIR
    from specmusic.models.zoo.registry import DEFAULT_TAGGER, bundled_names

    assert {DEFAULT_TAGGER, *DEFAULT_EMBEDDING} <= set(bundled_names())  # audioset-mn04: once the zoo bundles it
    assert all((BUNDLE_DIR / f"{name}.onnx").is_file() for name in bundled_names())


# -- the registry: one place for every family ----------------------------------------------------------
def test_the_registry_lists_every_bundled_file_in_sha256sums() -> None:
    """``bundled_names()`` (every family's list) is exactly the ONNX files that SHA256SUMS records."""
    from specmusic.models.zoo.bundled import read_sums

    names = registry.bundled_names()
    assert len(set(names)) == len(names) and set(names) <= set(registry.network_names())
    assert set(read_sums(BUNDLE_DIR)) == {f"{name}.onnx" for name in names}
    for name in names:
        assert bundled_model(name) == BUNDLE_DIR / f"{name}.onnx"


def test_every_network_has_one_name_a_converter_and_its_own_cache_file() -> None:
    from specmusic.errors import ConfigError
    from specmusic.models.resolve import known_names

    names = registry.network_names()
    assert names == (*TAGGERS, *registry.PONS_MODELS, *registry.EFFICIENTAT_MODELS) == known_names()
    assert len(set(names)) == len(names)
    networks = [registry.get_network(name) for name in names]
    assert [n.name for n in networks] == list(names)
    assert all(n.family in convert.CONVERSIONS and len(n.labels) == len(set(n.labels)) > 0 for n in networks)
    assert len({n.onnx_name for n in networks}) == len(names)
    assert registry.bundled_list(registry.get_network("pons-msd-musicnn")) == "BUNDLED_PONS"
    with pytest.raises(ConfigError, match="unknown pretrained tagger 'nope'"):
        registry.get_network("nope")


def test_the_maintainer_command_runs_as_a_module() -> None:
    done = subprocess.run([sys.executable, "-m", "specmusic.models.zoo", "--help"], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0 and "--bundle" in done.stdout and "--musicnn-wheel" in done.stdout, done.stderr
