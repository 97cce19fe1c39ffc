"""``specmusic serve``: similar tracks, playlists and track search over HTTP (:mod:`specmusic.serve`).

Parses the options, says what to install when the ``serve`` extra is missing, and runs
:func:`specmusic.serve.server.serve_library` until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import typer

from specmusic.cli._options import cli_errors, err

LIBRARY = typer.Argument(..., help="Library (.npz or .jsonl from `embed`, or a sharded library/ folder).")
HOST = typer.Option(
    "127.0.0.1", "--host",
    help="Address to listen on. Default: loopback, this machine only; any other (0.0.0.0: every address) needs --token.",
)  # fmt: skip
TOKEN = typer.Option(
    None, "--token", envvar="SPECMUSIC_TOKEN", show_envvar=True,
    help="Bearer token every request must carry (Authorization: Bearer TOKEN), at least 16 characters; "
    "needed with a --host beyond loopback. $SPECMUSIC_TOKEN keeps it out of the process list.",
)  # fmt: skip


def serve_cli(
    library: str = LIBRARY,
    host: str = HOST,
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port to listen on (0: any free one, printed)."),
    token: str = TOKEN,
    poll: float = typer.Option(
        2.0, "--poll", min=0.05, help="Seconds between looks at the library for a change (a replaced file, a new part)."
    ),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log", help="One line a request on stderr."),
) -> None:
    """Serve similar tracks, playlists and track search from a library over HTTP, for players and plugins.

    GET /similar?track=ID&k=10, /playlist?seed=ID&minutes=60 (JSON, or M3U8 by Accept or
    format=m3u8), /tracks?q=WORDS, /health; OpenAPI docs at /docs. Answers ids, tags and scores,
    never files: a track that is not in the library is a 404, never read. The library is read
    again when it changes (a replaced .npz, a new part of a folder) without dropping a request.

    Example: specmusic serve library.npz --port 8765

    Then: curl 'http://127.0.0.1:8765/similar?track=rock/song.mp3&k=5' (docs/serve.md: mpd, plugins).
    """
    from specmusic.serve import SERVE_EXTRA, missing_serve_modules
    from specmusic.serve.server import serve_library

    missing = missing_serve_modules()
    if missing:
        err(f"Error: specmusic serve needs FastAPI and uvicorn ({' and '.join(missing)} not installed) — {SERVE_EXTRA}")
        raise typer.Exit(1)
    with cli_errors():
        serve_library(library, host=host, port=port, token=token, poll_seconds=poll, access_log=access_log, on_note=err)
