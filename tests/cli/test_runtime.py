"""The runtime install (``pip install specmusic``: no torch, no onnx) on a fresh, offline machine.

Each test runs the real command in a fresh process whose ``sitecustomize`` makes torch and onnx
unimportable (as on a machine without the ``train`` extra) and every socket connection fail, with an
empty cache and no ``SPECMUSIC_WEIGHTS``: the bundled default tagger must carry ``classify`` and
``embed``, a generator's ``model.onnx`` must carry ``generate sample``; training commands must stop with one
line saying what to install. Also: the start-up path
of ``classify`` imports nothing it does not need, and the light option conversion
(:mod:`specmusic.cli._coerce`) gives typer's values and typer's errors for every parameter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from specmusic.models.zoo.registry import BUNDLED_TAGGERS, DEFAULT_TAGGER, TAGGERS
from tests.conftest import chirp, tone, write

NO_TORCH = '''\
import importlib.machinery

_path_finder_find_spec = importlib.machinery.PathFinder.find_spec.__func__


def _find_spec(cls, name, path=None, target=None):  # torch and onnx are "not installed": found nowhere
    if name.partition(".")[0] in ("torch", "onnx"):
        return None
    return _path_finder_find_spec(cls, name, path, target)


importlib.machinery.PathFinder.find_spec = classmethod(_find_spec)
'''
NO_TORCH_OFFLINE = NO_TORCH + '''
import socket


def _offline(*args, **kwargs):
    raise OSError(101, "network is unreachable (blocked by the test)")


socket.socket.connect = _offline
socket.socket.connect_ex = _offline
socket.create_connection = _offline
'''
TRAIN_EXTRA = "pip install 'specmusic[train]'"


@pytest.fixture
def runtime(tmp_path: Path):  # noqa: ANN201
    """Run ``python -m specmusic ARGS`` without torch/onnx/network, empty cache, no weights variable."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_TORCH_OFFLINE)
    env = {k: v for k, v in os.environ.items() if k not in ("SPECMUSIC_WEIGHTS", "PYTHONPATH")}
    env.update(PYTHONPATH=str(site), SPECMUSIC_CACHE=str(tmp_path / "empty-cache"), HOME=str(tmp_path / "home"))

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "specmusic", *args], env=env, input=stdin, capture_output=True,
                              text=True, timeout=300, cwd=tmp_path)  # fmt: skip

    run.cache = tmp_path / "empty-cache"  # type: ignore[attr-defined]
    return run


def test_the_sandbox_really_has_no_torch_and_no_network(runtime) -> None:  # noqa: ANN001
    code = "import torch"
    site_env = runtime("--version")
    assert site_env.returncode == 0 and site_env.stdout.startswith("specmusic ")
    env = {**os.environ, "PYTHONPATH": str(runtime.cache.parent / "site")}
    for snippet in (code, "import onnx", "import urllib.request as u; u.urlopen('http://example.org', timeout=5)"):
        done = subprocess.run([sys.executable, "-c", snippet], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0, snippet


def test_classify_and_embed_run_offline_without_torch_or_weights(runtime, tmp_path: Path) -> None:  # noqa: ANN001
    tiny = write(tmp_path / "tiny.wav", chirp(2.0))
    done = runtime("classify", str(tiny), "--json", "--no-progress")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["path"] == str(tiny) and set(record["probabilities"]) == set(TAGGERS[DEFAULT_TAGGER].labels)

    done = runtime("embed", str(tiny), "--no-progress")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    rows = [r for r in lines if "vector" in r]
    assert len(rows) == 1, lines
    vector = np.asarray(rows[0]["vector"], dtype=np.float64)
    assert vector.ndim == 1 and np.isclose(np.linalg.norm(vector), 1.0, atol=1e-4)
    assert not runtime.cache.exists()  # nothing downloaded or converted


def test_bad_input_without_torch_keeps_one_line_errors(runtime, tmp_path: Path) -> None:  # noqa: ANN001
    notes = tmp_path / "notes.wav"
    notes.write_text("this is a text file, not audio\n")
    for args in (["classify", str(notes)], ["classify", str(tmp_path / "missing.wav")], ["embed", str(notes)]):
        done = runtime(*args, "--no-progress")
        assert done.returncode == 1, (args, done.stderr)
        errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and "Traceback" not in done.stderr, (args, done.stderr)
    done = runtime("classify", str(notes), "--top", "zero")
    assert done.returncode == 2 and "Invalid value for '--top'" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (["train", "{data}", "-o", "{out}"], "specmusic train"),
        (["train", "{data}", "-o", "{out}", "--arch", "musicnn", "--pretrained", "mtat"], "specmusic train"),
        (["generate", "train", "{data}", "-o", "{out}", "--minutes", "1"], "specmusic generate train"),
    ],
)
def test_training_without_torch_is_one_line_saying_what_to_install(
    runtime, tmp_path: Path, args: list[str], command: str  # noqa: ANN001
) -> None:
    data = tmp_path / "data"
    for label, f in (("low", 220.0), ("high", 880.0)):
        for i in range(2):
            write(data / label / f"{label}{i}.wav", tone(f * (1 + 0.05 * i), 1.0))
    done = runtime(*(a.format(data=data, out=tmp_path / "out") for a in args))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"Error: {command} needs PyTorch — {TRAIN_EXTRA}"]
    assert done.stdout == "" and not (tmp_path / "out").exists()  # stopped before any work


def test_a_tagger_that_is_not_bundled_needs_the_train_extra(runtime, tmp_path: Path) -> None:  # noqa: ANN001
    other = next(name for name in TAGGERS if name not in BUNDLED_TAGGERS)
    done = runtime("embed", str(write(tmp_path / "a.wav", chirp(1.0))), "--model", other, "--no-progress")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: the {other} tagger is not bundled")
    assert TRAIN_EXTRA in lines[0] and DEFAULT_TAGGER in lines[0]


def test_a_missing_torch_deep_in_a_command_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # noqa: ANN001
    """Any torch import that fails inside a command (e.g. a generator that still needs torch) is caught."""
    import typer

    from specmusic.cli._options import STATE, cli_errors

    monkeypatch.setattr(STATE, "verbose", False)
    with pytest.raises(typer.Exit) as info, cli_errors():
        raise ModuleNotFoundError("No module named 'torch'", name="torch")
    assert info.value.exit_code == 1
    assert capsys.readouterr().err == f"Error: this command needs PyTorch (torch is not installed) — {TRAIN_EXTRA}\n"
    with pytest.raises(ModuleNotFoundError), cli_errors():  # any other missing module is a bug: traceback
        raise ModuleNotFoundError("No module named 'foo'", name="foo")


# -- start-up path ---------------------------------------------------------------------------------
def test_classify_start_up_imports_only_what_it_needs(tmp_path: Path) -> None:
    """No torch, onnx, librosa, scipy, sklearn, matplotlib — and no pydantic (typer's validation, 0.1 s)."""
    tiny = write(tmp_path / "tiny.wav", chirp(1.0))
    code = (
        "import sys\n"
        "from specmusic.cli.app import main\n"
        f"sys.argv = ['specmusic', 'classify', {str(tiny)!r}, '--json', '--top', '2', '--jobs', '1']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "sys.stderr.write(' '.join(sorted(sys.modules)))\n"
    )
    env = {**os.environ, "SPECMUSIC_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    modules = set(done.stderr.split())
    heavy = {"torch", "onnx", "librosa", "scipy", "sklearn", "matplotlib", "pydantic", "numba", "rich"}
    assert not heavy & {m.split(".")[0] for m in modules}, heavy & modules
    other_commands = {m for m in modules if m.startswith("specmusic.cli.")} - {
        "specmusic.cli.app", "specmusic.cli.classify", "specmusic.cli._options", "specmusic.cli._coerce"}  # fmt: skip
    assert not other_commands  # the console script builds the app with the one command it runs
    assert json.loads(done.stdout)["label"] in TAGGERS[DEFAULT_TAGGER].labels


# -- the light option conversion gives typer's values and errors ----------------------------------------
RAW_VALUES: list[Any] = [None, "3", "0", "-2", "+7", "1.5", "-0.25", "1e3", " 4", "1_000", "abc", "", "mel", "cqt",
                         "auto", "npz", "pca", "true", "-", "x.onnx", "/nonexistent/dir/x.npz", ("a", "b"), 3, 2.5]  # fmt: skip


def _outcome(runtime_param: Any, param: Any, ctx: Any, value: Any) -> tuple[str, Any]:
    try:
        got = runtime_param.coerce(value, param=param, ctx=ctx)
    except Exception as exc:  # noqa: BLE001 — compared by type and message
        return "error", (type(exc).__name__, getattr(exc, "message", str(exc)))
    return "value", (type(got).__name__, got)


def _all_params() -> list[tuple[str, Any, Any]]:
    import typer

    from specmusic.cli.app import app

    root = typer.main.get_command(app)
    found = []

    def walk(command: Any, ctx: Any) -> None:
        for param in command.params:
            if hasattr(param, "type_descriptor"):
                found.append((f"{ctx.command_path} {param.name}", param, ctx))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, type(ctx)(sub, info_name=name, parent=ctx))

    walk(root, typer._click.Context(root, info_name="specmusic"))
    return found


def test_the_light_option_conversion_matches_typer_for_every_parameter(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from typer._coercion import build_runtime_param

    from specmusic.cli._coerce import light_runtime_param

    monkeypatch.chdir(tmp_path)
    params = _all_params()
    assert len(params) > 100  # every option of every command
    light_count = 0
    for where, param, ctx in params:
        light = light_runtime_param(param.type_descriptor)
        if light is None:
            continue
        light_count += 1
        full = build_runtime_param(param.type_descriptor)
        for value in RAW_VALUES:
            if (param.multiple or param.nargs == -1) != isinstance(value, tuple) and value is not None:
                continue  # typer hands a multi-value parameter a tuple, any other a single value
            assert _outcome(light, param, ctx, value) == _outcome(full, param, ctx, value), (where, value)
    assert light_count > 0.9 * len(params)


def test_the_other_runtime_commands_run_without_torch(runtime, tmp_path: Path) -> None:  # noqa: ANN001
    """spectro (--png, cqt: matplotlib, librosa), nmf, embed --map (scikit-learn), recommend, generate invert."""
    music = tmp_path / "music"
    for label, f in (("low", 220.0), ("high", 880.0)):
        for i in range(2):
            write(music / label / f"{label}{i}.wav", tone(f * (1 + 0.05 * i), 1.5, seed=i))
    steps = [
        ["spectro", str(music), "--kind", "cqt", "--png", "-o", str(tmp_path / "specs")],
        ["nmf", str(music / "low" / "low0.wav"), "-c", "2", "-i", "20", "-o", str(tmp_path / "parts")],
        ["embed", str(music), "-o", str(tmp_path / "lib.npz"), "--map", str(tmp_path / "map.png")],
        ["recommend", str(tmp_path / "lib.npz"), "-q", str(music / "low" / "low0.wav"), "-k", "2", "--json"],
    ]
    for args in steps:
        done = runtime(*args, "--no-progress") if args[0] in ("spectro", "embed") else runtime(*args)
        assert done.returncode == 0, (args, done.stderr)
    assert list((tmp_path / "specs").rglob("*.png")) and (tmp_path / "map.png").is_file()
    done = runtime("spectro", str(music / "low" / "low0.wav"), "-o", str(tmp_path / "mel"), "--no-progress")
    assert done.returncode == 0, done.stderr
    done = runtime("generate", "invert", str(next((tmp_path / "mel").rglob("*.npz"))), "-o", str(tmp_path / "back.wav"))
    assert done.returncode == 0 and (tmp_path / "back.wav").is_file(), done.stderr


TINY_GEN = ["--n-mels", "16", "--patch-frames", "16", "--base", "8", "--batch-size", "4", "--threads", "1",
            "--no-progress"]


@pytest.fixture(scope="module")
def tiny_generator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``generate train`` folder of a tiny U-Net, trained here (with torch) for the runtime to sample."""
    from typer.testing import CliRunner

    from specmusic.cli.app import app

    data = tmp_path_factory.mktemp("generator") / "data"
    for label, f in (("low", 220.0), ("high", 880.0)):
        for i in range(2):
            write(data / label / f"{label}{i}.wav", tone(f * (1 + 0.05 * i), 1.0, seed=i))
    out = data.parent / "gen"
    done = CliRunner().invoke(app, ["generate", "train", str(data), "-o", str(out), "--epochs", "2", *TINY_GEN])
    assert done.exit_code == 0, done.stderr
    return out


def test_generate_sample_runs_without_torch(runtime, tiny_generator: Path, tmp_path: Path) -> None:  # noqa: ANN001
    """model.onnx on onnxruntime: the samples torch draws from the checkpoint, with the same seed."""
    from specmusic.generation import denormalize_db, load_generator, sample_spectrograms

    out = tmp_path / "out"
    done = runtime("generate", "sample", str(tiny_generator), "-n", "2", "-l", "high", "--seconds", "0.5",
                   "--steps", "2", "--gl-iter", "2", "--seed", "7", "-o", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["index"] for r in rows] == [0, 1] and all(Path(r["path"]).is_file() for r in rows)
    with_torch = sample_spectrograms(load_generator(tiny_generator, backend="torch"), n=2, label="high",
                                     seconds=0.5, steps=2, seed=7)
    for i in range(2):
        np.testing.assert_allclose(np.load(out / f"high_7_{i:03d}.npy"), denormalize_db(with_torch[i]), atol=4e-3)  # dB


def test_generate_sample_of_a_folder_without_model_onnx_says_what_to_do(
    runtime, tiny_generator: Path, tmp_path: Path  # noqa: ANN001
) -> None:
    import shutil

    old = tmp_path / "old"
    shutil.copytree(tiny_generator, old)
    (old / "model.onnx").unlink()  # as trained by a specmusic that wrote none
    done = runtime("generate", "sample", str(old), "-n", "1", "-o", str(tmp_path / "o"), "--no-progress")
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "no model.onnx" in lines[0], done.stderr
    assert "specmusic generate train" in lines[0] and TRAIN_EXTRA in lines[0]
    assert not (old / "model.onnx").exists()


def test_the_one_command_app_is_the_whole_app_for_that_command() -> None:
    """``main()`` builds only the command it runs: same help, options and defaults as the whole app."""
    import typer

    from specmusic.cli.app import COMMANDS, app, build_app

    def describe(command: Any, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
        ctx = typer._click.Context(command, info_name=" ".join(("specmusic", *path)))
        out = {path: (command.get_help(ctx), [(p.name, p.opts, p.secondary_opts, p.default, p.required)
                                              for p in command.params], type(command).__name__)}
        for name, sub in getattr(command, "commands", {}).items():
            out.update(describe(sub, (*path, name)))
        return out

    whole = describe(typer.main.get_command(app))
    for name in COMMANDS:
        alone = describe(typer.main.get_command(build_app(only=name)))
        mine = {path: desc for path, desc in alone.items() if path}
        assert mine == {path: desc for path, desc in whole.items() if path[:1] == (name,)}, name
