"""The ``specmusic`` Typer app: registers each subcommand module."""

from __future__ import annotations

import signal

import typer

from specmusic import __version__
from specmusic.cli._options import STATE
from specmusic.cli.spectro import spectro_cli
from specmusic.cli.nmf import nmf_app
from specmusic.cli.train import OptionalValueCommand, train_cli
from specmusic.cli.classify import classify_cli
from specmusic.cli.embed import embed_cli
from specmusic.cli.recommend import recommend_cli
from specmusic.cli.generate import generate_app

app = typer.Typer(
    name="specmusic",
    help="Music machine learning on spectrograms: files in, files out, chainable in shell pipelines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    # Plain Click help: option names never cut at 80 columns, no <bool> metavar on flags, and square
    # brackets (pip install 'specmusic[ann]') printed as written instead of read as rich markup.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version(value: bool) -> None:
    if value:
        print(f"specmusic {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Music machine learning on spectrograms: files in, files out, chainable in shell pipelines."""
    STATE.verbose = verbose


app.command("spectro")(spectro_cli)
app.add_typer(nmf_app, name="nmf")
app.command("train", cls=OptionalValueCommand)(train_cli)
app.command("classify")(classify_cli)
app.command("embed")(embed_cli)
app.command("recommend")(recommend_cli)
app.add_typer(generate_app, name="generate")


def main() -> None:
    """Console-script entry point."""
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `specmusic … | head` ends quietly
    app()
