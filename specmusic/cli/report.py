"""``specmusic report``: a static HTML page of any specmusic output, to look at and listen to."""

from __future__ import annotations

from pathlib import Path

import typer

from specmusic.cli._options import cli_errors, err


def report_cli(
    path: Path = typer.Argument(
        ...,
        help="A spectro folder, a train run, an embed library or map .json, recommend --json output, an nmf "
        "folder, a generate sample folder, or describe --json output.",
    ),
    output: Path = typer.Option(
        None, "--output", "-o", help="The page to write (default: PATH/report.html for a folder; recs.jsonl → recs.html beside a file)."
    ),
    limit: int = typer.Option(
        100, "--limit", min=1, help="Items per page (tracks, clips, queries…); more go to REPORT-2.html, …"
    ),
    embed_audio: bool = typer.Option(
        False, "--embed-audio", help="One self-contained file: the first --excerpt seconds of each clip (Ogg Vorbis) and the pictures embedded.",
    ),
    excerpt: float = typer.Option(10.0, "--excerpt", min=0.5, help="Seconds of each clip --embed-audio embeds."),
    title: str = typer.Option(None, "--title", help="Page title (default: the kind and the name of PATH)."),
) -> None:
    """Write an HTML report of a specmusic output: pictures, metrics and a player for every clip.

    The page works offline from file:// (no network, no CDN): CSS and JavaScript inline, pictures
    in REPORT_files/ beside it, audio linked relative to it (keep the page with the outputs) or
    embedded as excerpts with --embed-audio. Prints the pages written, one a line.

    Example: specmusic report runs/cnn -o runs/cnn/report.html
    """
    from specmusic.fileio import display_path
    from specmusic.outputs import check_not_an_input
    from specmusic.report import build_report

    with cli_errors():
        check_not_an_input(output, [path])
        result = build_report(path, output, limit=limit, embed_audio=embed_audio, excerpt_seconds=excerpt, title=title)
        for page in result.pages:
            print(display_path(page))
        more = f" on {len(result.pages)} pages" if len(result.pages) > 1 else ""
        err(f"report: {result.kind}, {result.items} {'item' if result.items == 1 else 'items'}{more} → "
            f"{display_path(result.pages[0])}")
