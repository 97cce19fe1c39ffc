"""``specmusic playlist``: a mix from an embedding library, as a playlist file players read.

Parses the options, opens the library (:func:`specmusic.embeddings.open_recommender`), lets
:func:`specmusic.playlists.make_playlist` choose the tracks and :func:`specmusic.playlists.write_playlist`
write them (M3U8, XSPF or JSON Lines; a file, or stdout).
"""

from __future__ import annotations

import os
from enum import Enum

import typer

from specmusic.cli._options import cli_errors, err
from specmusic.cli.recommend import WHERE, YEAR


class PlaylistFormat(str, Enum):
    auto = "auto"
    m3u8 = "m3u8"
    xspf = "xspf"
    jsonl = "jsonl"


LIBRARY = typer.Argument(..., help="Library (.npz or .jsonl from `embed`, or a sharded library/ folder).")
SEEDS = typer.Option(
    None, "--seed", metavar="TRACK",
    help="Start near this track: a library path (a unique tail is enough) or an audio file, embedded now. Repeatable.",
)  # fmt: skip
OUTPUT = typer.Option(
    None, "--output", "-o",
    help="Playlist file: .m3u8 (or .m3u), .xspf or .jsonl; '-' or none: stdout (absolute paths; --format, default m3u8).",
)  # fmt: skip


def playlist_cli(
    library: str = LIBRARY,
    seeds: list[str] = SEEDS,
    start: str = typer.Option(None, "--from", metavar="TRACK", help="A journey: start at this track…"),
    end: str = typer.Option(None, "--to", metavar="TRACK", help="…and end at this one (both in the playlist)."),
    extend: str = typer.Option(
        None, "--extend", metavar="PLAYLIST", help="Continue this playlist (.m3u8, .xspf or .jsonl): only the new tracks are written."
    ),
    tracks: int = typer.Option(None, "--tracks", min=1, help="Tracks wanted (default 20; a journey 12, its ends included)."),
    minutes: float = typer.Option(None, "--minutes", min=0.1, help="Or a length in minutes (seed and extend playlists)."),
    output: str = OUTPUT,
    output_format: PlaylistFormat = typer.Option(
        PlaylistFormat.auto, "--format", help="Playlist format (auto: from the -o extension; stdout: m3u8)."
    ),
    absolute: bool = typer.Option(False, "--absolute", help="Absolute paths (default: relative to the playlist's folder)."),
    balance: float = typer.Option(
        0.25, "--balance", min=0.0, max=1.0,
        help="0: each track close to the last one only; 1: close to the seeds (a journey: to its way) only.",
    ),
    artist_gap: int = typer.Option(3, "--artist-gap", min=0, help="No artist twice within this many tracks (0: off)."),
    album_gap: int = typer.Option(5, "--album-gap", min=0, help="No album twice within this many tracks (0: off)."),
    variety: int = typer.Option(3, "--variety", min=1, help="Draw each track from this many best (1: always the best)."),
    seed_random: int = typer.Option(0, "--seed-random", help="Random seed of that draw: one seed, one playlist."),
    dedupe_audio: bool = typer.Option(
        False, "--dedupe-audio",
        help="Also compare audio fingerprints: finds other edits of one recording (a cut intro), decoding each track taken.",
    ),
    where: list[str] = WHERE,
    year: str = YEAR,
) -> None:
    """Make a playlist from a library: near seed tracks, from one track to another, or more of a playlist.

    Each next track is close to the last one and stays near the seeds (--balance); seeds are not
    repeated, no artist comes back within --artist-gap tracks nor album within --album-gap, and the
    same recording under two paths plays once. Writes extended M3U8 (paths relative to the playlist,
    so the folder can move), XSPF, or JSON Lines with the scores.

    Example: specmusic playlist library.npz --seed a.mp3 --seed b.flac --minutes 60 -o mix.m3u8

    Also: specmusic playlist library.npz --from a.mp3 --to b.mp3 --tracks 12 -o journey.m3u8;
    specmusic playlist library.npz --extend old.m3u8 --tracks 20 -o more.m3u8 (docs/playlists.md).
    """
    from specmusic.embeddings import open_recommender, parse_filter
    from specmusic.fileio import display_path
    from specmusic.outputs import check_not_an_input
    from specmusic.playlists import PlaylistConfig, make_playlist, read_playlist, write_playlist

    with cli_errors():
        config = PlaylistConfig(
            balance=balance, artist_gap=artist_gap, album_gap=album_gap, variety=variety, audio_duplicates=dedupe_audio
        )
        condition = parse_filter(where, year=year)
        check_not_an_input(output, [library, extend])  # -o old.m3u8 --extend old.m3u8 would lose it
        old = read_playlist(extend) if extend else []
        rec = open_recommender(library, on_note=err)
        playlist = make_playlist(
            rec, seeds=seeds or [], extend=old, start=start, end=end, tracks=tracks, minutes=minutes, config=config,
            where=condition, random_seed=seed_random, on_note=err,
        )  # fmt: skip
        kind = write_playlist(playlist, output, fmt=output_format.value, absolute=absolute)
        missing = [e.id for e in playlist.entries if not os.path.exists(e.id)]
        if missing:
            err(f"note: {len(missing)} entr(ies) are not files from here, e.g. {display_path(missing[0])} — the library's relative paths "
                "are read from where `embed` ran; run there, or embed with absolute paths")  # fmt: skip
        where_to = output if output not in (None, "-") else "stdout"
        err(f"playlist: {len(playlist)} tracks, {playlist.duration / 60:.1f} min ({kind}) → {where_to}")
