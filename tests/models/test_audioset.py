"""EfficientAT mn04_as in the zoo and in ``classify``: the registry entry, the bundled ONNX file and its
rebuild, the download path for an install without it, AudioSet's music classes, ``--labels``, and
the torch-free runtime path. (The port itself, and its parity with torch: tests/test_efficientat.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from specmusic.cli.app import app
from specmusic.errors import ConfigError, InputError, ModelError
from specmusic.fileio import CACHE_ENV, sha256_file
from specmusic.inference.labels import LABEL_SETS, select_labels
from specmusic.models.audioset import (
    CLASSES_FILE,
    MUSIC_FILE,
    audioset_labels,
    audioset_music_labels,
    music_labels_from_ontology,
    read_audioset_classes,
    read_label_list,
)
from specmusic.models.zoo import bundled, convert, rebuild, registry
from specmusic.models.zoo.bundled import BUNDLE_DIR, bundled_model, read_sums
from specmusic.models.zoo.cache import find_checkpoint
from specmusic.models.zoo.ensure import ensure_model
from tests.conftest import SHARED, chirp, needs_shared, write
from tests.inference.test_classify_cli import LABELS as TOY_LABELS
from tests.models.test_pretrained import _Response, bundle_copy, clean_env  # noqa: F401 — fixtures
from tests.cli.test_runtime import NO_TORCH_OFFLINE

ROOT = Path(__file__).resolve().parents[1]
NAME = "audioset-mn04"
WEIGHTS = SHARED / "weights" / "efficientat"
CHECKPOINT = WEIGHTS / "mn04_as_mAP_432.pt"
#: The bundled file as committed (``python -m specmusic.models.zoo --bundle audioset-mn04 --weights …``).
BUNDLED_SHA256 = "55942a3754ad813b143e139acf5609bfb534b9c9bb2bdcaa03b46dbd559e8c5f"
BUNDLED_SIZE = 3_971_635
MUSIC_INDICES = [28, 30, 31, *range(92, 93), *range(137, 283)]  # Choir, Chant, Mantra, Cowbell; Music..Scary music
needs_torch = pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(m) for m in ("torch", "onnx")), reason="needs torch and onnx"
)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny seeded clip (3 s chirp at 22.05 kHz): shorter than one 10 s window, repeated to fill it."""
    return write(tmp_path_factory.mktemp("audio") / "chirp.wav", chirp(3.0))


def classify(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["classify", *args, "--no-progress"])
    return result.exit_code, result.stdout, result.stderr


# -- the registry ----------------------------------------------------------------------------------
def test_the_registry_entry() -> None:
    network = registry.get_network(NAME)
    assert isinstance(network, registry.EfficientATModel) and network is registry.EFFICIENTAT_MODELS[NAME]
    assert network.family == "efficientat" and isinstance(convert.conversion_for(network), convert.EfficientATConversion)
    assert network.url == "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/mn04_as_mAP_432.pt"
    assert network.sha256 == "899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c"
    assert network.size == 4_066_513 and network.relpath == "efficientat/mn04_as_mAP_432.pt"
    assert network.labels == audioset_labels() and len(network.labels) == 527 == len(set(network.labels))
    assert network.labels[0] == "Speech" and network.labels[137] == "Music"
    assert NAME in registry.bundled_names() and registry.bundled_list(network) == "BUNDLED_EFFICIENTAT"
    assert network.onnx_name == f"{NAME}-899a8c621706-c{registry.EFFICIENTAT_CONVERTER_VERSION}.onnx"
    assert registry.DEFAULT_TAGGER in registry.BUNDLED_TAGGERS  # classify's default (docs/similarity.md) ships inside


@needs_shared
def test_the_registered_checkpoint_and_labels_are_the_shared_copies() -> None:
    network = registry.get_network(NAME)
    assert CHECKPOINT.stat().st_size == network.size and sha256_file(CHECKPOINT) == network.sha256
    assert CLASSES_FILE.read_bytes() == (WEIGHTS / "audioset_class_labels_indices.csv").read_bytes()


def test_a_weights_folder_is_searched_like_the_taggers_tree(clean_env: Path, tmp_path: Path) -> None:
    network = registry.get_network(NAME)
    with pytest.raises(ModelError, match="has no mn04_as_mAP_432.pt") as info:
        find_checkpoint(network, weights=tmp_path)
    assert "\n" not in str(info.value)
    wrong = tmp_path / "efficientat" / "mn04_as_mAP_432.pt"  # a tree's efficientat/ folder is searched too
    wrong.parent.mkdir()
    wrong.write_bytes(b"not the checkpoint")
    with pytest.raises(ModelError, match="sha256"):
        find_checkpoint(network, weights=tmp_path)


# -- the bundled file --------------------------------------------------------------------------------
def test_the_bundled_file_its_checksum_and_metadata(clean_env: Path) -> None:
    from specmusic.inference import load_model
    from specmusic.models.efficientat import EFFICIENTAT_FEATURES, INPUT_NORM

    path = BUNDLE_DIR / f"{NAME}.onnx"
    assert path.stat().st_size == BUNDLED_SIZE and sha256_file(path) == BUNDLED_SHA256 == read_sums(BUNDLE_DIR)[path.name]
    assert ensure_model(NAME, progress=False) == bundled_model(NAME) == path
    assert not clean_env.exists()  # nothing cached, nothing downloaded
    model = load_model(path)
    assert model.labels == list(audioset_labels()) and model.task == "multilabel"
    assert model.feature_config == EFFICIENTAT_FEATURES and model.input_norm == INPUT_NORM
    pretrained = model.meta["pretrained"]
    assert pretrained["name"] == NAME and pretrained["license"] == "MIT"
    assert pretrained["credit"] == registry.EFFICIENTAT_CREDIT and "Florian Schmid" in pretrained["credit"]
    assert pretrained["checkpoint_sha256"] == registry.get_network(NAME).sha256
    assert pretrained["url"] == registry.get_network(NAME).url
    licence = (BUNDLE_DIR / "LICENSE").read_text()
    assert "EfficientAT" in licence and licence.count("Copyright (c) 2022 Florian Schmid") == 1
    assert NAME in (BUNDLE_DIR / "README.md").read_text()


@needs_shared
@needs_torch
def test_the_maintainer_command_rebuilds_it_byte_for_byte(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "bundled"
    monkeypatch.setattr(bundled, "BUNDLE_DIR", out)
    assert rebuild.main(["--bundle", NAME, "--weights", str(CHECKPOINT)]) == 0
    assert (out / f"{NAME}.onnx").read_bytes() == (BUNDLE_DIR / f"{NAME}.onnx").read_bytes()
    assert read_sums(out) == {f"{NAME}.onnx": BUNDLED_SHA256}
    assert (out / "LICENSE").read_text() == (WEIGHTS / "LICENSE").read_text().strip() + "\n"
    assert BUNDLED_SHA256 in capsys.readouterr().out
    before = (out / "LICENSE").read_bytes()
    assert rebuild.main(["--bundle", NAME, "--weights", str(WEIGHTS)]) == 0  # the folder works too; licence once
    assert (out / "LICENSE").read_bytes() == before


def test_the_bundle_needs_the_licence_beside_the_checkpoint(tmp_path: Path) -> None:
    conversion = convert.EfficientATConversion()
    lonely = tmp_path / "mn04_as_mAP_432.pt"
    lonely.write_bytes(b"x")
    with pytest.raises(ModelError, match="no LICENSE of EfficientAT"):
        conversion.add_licence(lonely, tmp_path / "out")


def test_without_the_bundled_file_it_comes_by_download(clean_env: Path, bundle_copy: Path) -> None:
    """A source tree without its package data: the download path of every family, offline one line."""
    (bundle_copy / f"{NAME}.onnx").unlink()
    assert bundled_model(NAME) is None
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    with pytest.raises(ModelError) as info:
        ensure_model(NAME, progress=False)
    message = str(info.value)
    assert "cannot download" in message and registry.get_network(NAME).url in message
    assert "--weights" in message and "mn04_as_mAP_432.pt" in message and "\n" not in message


@needs_shared
@needs_torch
def test_the_download_path_converts_once_into_the_cache(
    clean_env: Path, bundle_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The release URL served from the local copy: downloaded, sha256-checked, converted to the bundled bytes."""
    (bundle_copy / f"{NAME}.onnx").unlink()
    network = registry.get_network(NAME)
    asked: list[str] = []

    def serve(request: object, *args: object, **kwargs: object) -> _Response:
        asked.append(getattr(request, "full_url", request))  # type: ignore[arg-type]
        return _Response(CHECKPOINT.read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    path = ensure_model(NAME, progress=False)
    assert asked == [network.url] and path == clean_env / "onnx" / network.onnx_name
    assert (clean_env / "weights" / network.relpath).read_bytes() == CHECKPOINT.read_bytes()
    assert sha256_file(path) == BUNDLED_SHA256  # the cache conversion writes the bundled bytes
    monkeypatch.setattr(convert, "convert_efficientat", lambda *a, **k: pytest.fail("converted twice"))
    assert ensure_model(NAME, progress=False) == path


# -- AudioSet's music classes ---------------------------------------------------------------------------
def test_the_music_list_is_the_ontologys_music_subtree() -> None:
    music = audioset_music_labels()
    labels = audioset_labels()
    assert len(music) == 150 == len(set(music))
    assert [labels.index(name) for name in music] == MUSIC_INDICES  # output order
    for name in ("Music", "Guitar", "Jazz", "Choir", "Violin, fiddle", "Happy music", "Video game music", "Cowbell"):
        assert name in music, name
    for name in ("Speech", "Dog", "Singing", "Silence", "Bird"):
        assert name not in music, name
    header = [line for line in MUSIC_FILE.read_text().splitlines() if line.startswith("#")]
    text = " ".join(header)
    assert "https://github.com/audioset/ontology" in text and "/m/04rlf" in text and "CC BY-SA 4.0" in text
    assert "sha256 9c685f4403eecc3ca9be37fd7285cf212feaaea6ff7229d3e7ca89e0d1f2d15d" in text
    assert "150 labels, indices 28, 30-31, 92, 137-282" in text


def test_the_derivation_follows_children_through_abstract_and_shared_nodes() -> None:
    ontology = [
        {"id": "/m/root", "name": "Music", "child_ids": ["/t/genre", "/m/bell"]},
        {"id": "/t/genre", "name": "Music genre", "child_ids": ["/m/jazz"], "restrictions": ["abstract"]},
        {"id": "/m/jazz", "name": "Jazz", "child_ids": []},
        {"id": "/m/bell", "name": "Bell", "child_ids": ["/m/cow"]},
        {"id": "/m/farm", "name": "Farm", "child_ids": ["/m/cow"]},
        {"id": "/m/cow", "name": "Cowbell", "child_ids": []},
        {"id": "/m/dog", "name": "Dog", "child_ids": []},
    ]
    classes = [("/m/dog", "Dog"), ("/m/cow", "Cowbell"), ("/m/root", "Music"), ("/m/jazz", "Jazz"), ("/m/farm", "Farm")]
    assert music_labels_from_ontology(ontology, classes, root="/m/root") == ["Cowbell", "Music", "Jazz"]
    with pytest.raises(InputError, match="no node"):
        music_labels_from_ontology(ontology, classes, root="/m/none")
    with pytest.raises(InputError, match="does not define"):
        music_labels_from_ontology([*ontology[:2]], classes, root="/m/root")
    assert len(read_audioset_classes(CLASSES_FILE)) == 527


def test_label_files(tmp_path: Path) -> None:
    f = tmp_path / "labels.txt"
    f.write_text("\ufeff# mine\nGuitar\n\n  Piano  \nGuitar\nViolin, fiddle\n", encoding="utf-8")
    assert read_label_list(f) == ("Guitar", "Piano", "Violin, fiddle")
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(InputError, match="no label"):
        read_label_list(tmp_path / "empty.txt")
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        read_label_list(tmp_path / "latin1.txt")


def test_select_labels() -> None:
    labels = list(audioset_labels())
    assert select_labels(labels, None, model_name="m").indices is None
    assert select_labels(labels, "all", model_name="m").names == labels
    music = select_labels(labels, "music", model_name="m")
    assert music.indices.tolist() == MUSIC_INDICES and music.names == list(audioset_music_labels())
    scores = np.linspace(0, 1, 527, dtype=np.float32)
    np.testing.assert_array_equal(music.pick(scores), scores[MUSIC_INDICES])  # nothing renormalised
    assert set(LABEL_SETS) == {"music"}
    with pytest.raises(ConfigError, match="jamendo-fcn has none of the 150 labels of --labels music"):
        select_labels(list(registry.JAMENDO_TAGS), "music", model_name="jamendo-fcn")
    with pytest.raises(ConfigError, match="no such label set or file — use one of all, music"):
        select_labels(labels, "musik", model_name="m")


# -- classify -m audioset-mn04 ------------------------------------------------------------------------
def test_classify_names_audioset_classes(clean_env: Path, clip: Path) -> None:
    code, out, err = classify(str(clip), "-m", NAME, "--json", "--top", "5")
    assert code == 0, err
    record = json.loads(out)
    assert len(record["top"]) == 5 and all(t["label"] in audioset_labels() for t in record["top"])
    assert list(record["probabilities"]) == list(audioset_labels())
    scores = [t["probability"] for t in record["top"]]
    assert scores == sorted(scores, reverse=True) and record["label"] == record["top"][0]["label"]
    assert "shorter than the model's 10.00 s window" in err  # 3 s: repeated to fill one window, said so
    code, out, err = classify(str(clip), "-m", NAME)
    header, row = out.splitlines()
    assert code == 0 and header.split() == ["file", "top1", "top2", "top3"] and row.split()[1] in {"Music", *audioset_labels()}
    assert not clean_env.exists()


def test_labels_music_keeps_only_music_classes(clean_env: Path, clip: Path) -> None:
    _, every, _ = classify(str(clip), "-m", NAME, "--json")
    code, out, err = classify(str(clip), "-m", NAME, "--json", "--top", "4", "--labels", "music")
    assert code == 0, err
    music, whole = json.loads(out), json.loads(every)
    assert list(music["probabilities"]) == list(audioset_music_labels())
    assert {"Music", "Guitar", "Jazz"} <= set(music["probabilities"])
    assert not {"Speech", "Dog"} & set(music["probabilities"])
    assert all(t["label"] in audioset_music_labels() for t in music["top"]) and len(music["top"]) == 4
    for label, p in music["probabilities"].items():  # scores as they are: sigmoid, not renormalised
        assert p == whole["probabilities"][label]
    best = max(music["probabilities"].items(), key=lambda kv: kv[1])
    assert music["label"] == best[0]
    code, out, _ = classify(str(clip), "-m", NAME, "--labels", "all", "--json")
    assert code == 0 and json.loads(out) == whole


def test_labels_from_a_file(clean_env: Path, clip: Path, tmp_path: Path) -> None:
    f = tmp_path / "instruments.txt"
    f.write_text("# three instruments\nGuitar\nPiano\n\nDrum\n")
    code, out, err = classify(str(clip), "-m", NAME, "--json", "--top", "5", "--labels", str(f))
    assert code == 0, err
    record = json.loads(out)
    assert list(record["probabilities"]) == ["Guitar", "Piano", "Drum"]  # the model's order
    assert len(record["top"]) == 3
    code, out, _ = classify(str(clip), "-m", NAME, "--top", "5", "--labels", str(f))
    assert code == 0 and out.splitlines()[0].split() == ["file", "top1", "top2", "top3"]


def test_labels_work_for_any_model(clean_env: Path, clip: Path, tmp_path: Path) -> None:
    from tests.inference.test_inference import export_tiny_classifier as _export

    toy = _export(tmp_path / "model.onnx", TOY_LABELS)
    f = tmp_path / "two.txt"
    f.write_text("treble\nbass\n")
    code, out, err = classify(str(clip), "-m", str(toy), "--json", "--labels", str(f))
    assert code == 0, err
    assert list(json.loads(out)["probabilities"]) == ["bass", "treble"]
    code, out, _ = classify(str(clip), "--json", "--labels", str(f))  # the default tagger lacks them
    assert code == 1 and out == ""


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("musik", "Error: --labels musik: no such label set or file — use one of all, music, or a text file"),
        ("music", "Error: jamendo-fcn has none of the 150 labels of --labels music (AudioSet classes) — use"),
        ("FILE", "Error: audioset-mn04 has no label 'guitar' of the 2 of --labels"),
    ],
)
def test_refusals_are_one_line(clean_env: Path, clip: Path, tmp_path: Path, labels: str, message: str) -> None:
    if labels == "FILE":
        labels = str(tmp_path / "typo.txt")
        Path(labels).write_text("guitar\nPiano\n")
    model = ["-m", NAME] if "audioset" in message or "musik" in message else []
    code, out, err = classify(str(clip), *model, "--labels", labels)
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), lines
    if "guitar" in message:
        assert "did you mean 'Guitar'?" in lines[0]


# -- the runtime path stays torch-free ---------------------------------------------------------------------
def test_classify_audioset_runs_offline_without_torch(tmp_path: Path) -> None:
    """As tests/test_runtime.py's sandbox (no torch, no onnx, no network, empty cache), on this source
    tree: the bundled model classifies, and the start-up path imports nothing it does not need."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_TORCH_OFFLINE)
    env = {k: v for k, v in os.environ.items() if k != "SPECMUSIC_WEIGHTS"}
    env.update(PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]), SPECMUSIC_CACHE=str(tmp_path / "empty-cache"),
               HOME=str(tmp_path / "home"))  # fmt: skip
    tiny = write(tmp_path / "tiny.wav", chirp(2.0))
    argv = ["specmusic", "classify", str(tiny), "-m", NAME, "--labels", "music", "--json", "--no-progress"]
    code = (f"import sys\nfrom specmusic.cli.app import main\nsys.argv = {argv!r}\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "sys.stderr.write(' '.join(sorted(sys.modules)))\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert set(record["probabilities"]) == set(audioset_music_labels())
    assert not (tmp_path / "empty-cache").exists()  # bundled: nothing downloaded or converted
    modules = done.stderr.split()
    heavy = {"torch", "onnx", "librosa", "scipy", "sklearn", "matplotlib", "pydantic", "numba", "rich"}
    assert not heavy & {m.split(".")[0] for m in modules}
    assert "specmusic.models.efficientat" not in modules  # the torch side of the port is not even read
    probe = "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is not None)"
    assert subprocess.run([sys.executable, "-c", probe], env=env, timeout=60).returncode == 0  # really no torch
