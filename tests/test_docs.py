"""Every command documents itself; shell completions match the app; the package runs as a module."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from specmusic.cli.app import app
from specmusic.cli.completion import FILE_NAMES, SHELLS, completion_script

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _commands() -> list[list[str]]:
    root = typer.main.get_command(app)
    out: list[list[str]] = []

    def visit(cmd, path: list[str]) -> None:
        if hasattr(cmd, "list_commands"):
            ctx = cmd.context_class(cmd)
            for name in cmd.list_commands(ctx):
                out.append([*path, name])
                visit(cmd.get_command(ctx, name), [*path, name])

    visit(root, [])
    return out


def test_top_level_help_lists_commands() -> None:
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for path in _commands():
        if len(path) == 1:
            assert path[0] in res.stdout


@pytest.mark.parametrize("path", _commands(), ids=lambda p: " ".join(p))
def test_every_command_has_help_with_summary_and_example(path: list[str]) -> None:
    res = runner.invoke(app, [*path, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.stdout
    assert "Example" in res.stdout or len(path) > 1 or "Commands" in res.stdout


@pytest.mark.parametrize("shell", SHELLS)
def test_completions_match_the_app(shell: str) -> None:
    committed = (ROOT / "completions" / FILE_NAMES[shell]).read_text(encoding="utf-8")
    assert committed == completion_script(shell), (
        f"completions/{FILE_NAMES[shell]} is out of date — run: python -m specmusic.cli.completion --write completions/"
    )


@pytest.mark.parametrize("shell", SHELLS)
def test_completion_scripts_parse(shell: str) -> None:
    exe = shutil.which(shell)
    if exe is None:
        pytest.skip(f"{shell} is not installed here")
    res = subprocess.run([exe, "-n", str(ROOT / "completions" / FILE_NAMES[shell])], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_bash_completion_offers_subcommands_and_choices() -> None:
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    script = ROOT / "completions" / FILE_NAMES["bash"]
    probe = (
        f"source {script}; COMP_WORDS=(specmusic spec); COMP_CWORD=1; _specmusic; echo \"${{COMPREPLY[@]}}\"; "
        "COMP_WORDS=(specmusic spectro --kind ''); COMP_CWORD=3; _specmusic; echo \"${COMPREPLY[@]}\""
    )
    lines = subprocess.run(["bash", "-c", probe], capture_output=True, text=True).stdout.splitlines()
    assert lines[0] == "spectro"
    assert lines[1].split() == ["mel", "stft", "cqt", "chroma", "mfcc"]


def test_python_dash_m_and_version() -> None:
    res = subprocess.run([sys.executable, "-m", "specmusic", "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith("specmusic ")


def test_help_is_plain_text_that_keeps_names_and_brackets() -> None:
    """Option names are never cut at 80 columns, flags carry no <bool> metavar, [extras] survive."""
    res = CliRunner(env={"COLUMNS": "80"}).invoke(app, ["recommend", "--help"])
    assert res.exit_code == 0
    assert "specmusic[ann]" in res.stdout
    assert "<bool>" not in res.stdout
    assert "--save-index / --no-save-index" in res.stdout
    for path in _commands():
        text = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"}).stdout
        assert "<bool>" not in text, path
        assert "╭" not in text, path  # no boxes that cut long option names


def test_short_flags_mean_one_thing_across_commands() -> None:
    """The README's short-flag table: each short flag has one long name in every command."""
    root = typer.main.get_command(app)
    seen: dict[str, set[str]] = {}

    def visit(cmd) -> None:
        for param in getattr(cmd, "params", []):
            shorts = [o for o in param.opts + param.secondary_opts if len(o) == 2]
            longs = [o for o in param.opts if o.startswith("--")]
            for s in shorts:
                seen.setdefault(s, set()).add(longs[0] if longs else "")
        if hasattr(cmd, "list_commands"):
            ctx = cmd.context_class(cmd)
            for name in cmd.list_commands(ctx):
                visit(cmd.get_command(ctx, name))

    visit(root)
    clashes = {s: names for s, names in seen.items() if len(names) > 1}
    assert not clashes, clashes
    table = (ROOT / "README.md").read_text(encoding="utf-8")
    for short, names in seen.items():
        assert f"`{short}`" in table and f"`{next(iter(names))}`" in table, (short, names)


def test_readme_activates_the_venv_before_bare_specmusic_examples() -> None:
    """After the quick start, `specmusic …` examples work: the README says to activate .venv first."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    activate = next(i for i, line in enumerate(lines) if line.startswith("source .venv/bin/activate"))
    first_bare = next(i for i, line in enumerate(lines) if line.startswith("specmusic "))
    assert activate < first_bare
