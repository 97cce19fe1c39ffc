"""``specmusic recommend``: the most similar tracks to a query, from an embedding library or a CSV.

Parses the options, then :func:`specmusic.embeddings.open_recommender` opens the source (a library
file, stdin, a CSV or a sharded folder) as a :class:`specmusic.embeddings.Recommender`, whose answers
this module prints (:func:`specmusic.embeddings.result_lines`, or JSON Lines).
"""

from __future__ import annotations

import sys
from enum import Enum

import typer

from specmusic.cli._options import cli_errors, err


class SourceFormat(str, Enum):
    auto = "auto"
    npz = "npz"
    jsonl = "jsonl"
    csv = "csv"


class Backend(str, Enum):
    auto = "auto"
    exact = "exact"
    hnsw = "hnsw"
    faiss = "faiss"
    ivf = "ivf"
    ivfpq = "ivfpq"


SOURCE = typer.Argument(
    ...,
    help="Library (.npz or .jsonl from `embed`, or a sharded library/ folder), a CSV of features, or '-' for "
    "JSON Lines on stdin.",
)
GROUP_KEY = typer.Option(
    None,
    "--group-key",
    help="Leave out neighbours sharing the query's group, label, dir (parent folder name, e.g. 'rock' "
    "for /music/rock/a.mp3), artist, album (from the tags) or CSV column.",
)
#: ``--where`` / ``--filter`` and ``--year``, as ``specmusic playlist`` takes them too.
WHERE = typer.Option(
    None, "--where", "--filter", metavar="FIELD=VALUE",
    help="Only tracks whose tags meet this (repeatable, all must hold): genre=jazz, 'artist!=X', "
    "'title~live', 'year=1990..1999', 'duration<300'; also label, group, dir.",
)
YEAR = typer.Option(None, "--year", metavar="YYYY|A..B", help="Only tracks of these years (as --where year=A..B).")
BACKEND = typer.Option(
    Backend.auto,
    "--index",
    help="Search: exact numpy, hnsw/faiss (pip install 'specmusic[ann]'), auto by size. A sharded library/: "
    "exact streams its parts; ivf|ivfpq use (building it first) its FAISS index, IVF-PQ for libraries "
    "larger than memory; auto uses that index when current.",
)
SAVE_INDEX = typer.Option(
    True,
    "--save-index/--no-save-index",
    help="Keep a built ANN index beside the library file (in a sharded library/) for next time.",
)


def recommend_cli(
    source: str = SOURCE,
    query: list[str] = typer.Option(
        None, "--query", "-q", help="A library id (path; a unique tail is enough) or an audio file. Repeatable."
    ),
    queries: str = typer.Option(None, "--queries", help="File with one query a line; '-' reads stdin."),
    k: int = typer.Option(10, "--top", "-k", "--top-k", min=1, help="Neighbours per query."),
    as_json: bool = typer.Option(False, "--json", help="JSON Lines: one object per query with its neighbours."),
    group_key: str = GROUP_KEY,
    explain: bool = typer.Option(
        False, "--explain", help="Say what each match shares: label, folder, top tags; CSV: the closest columns."
    ),
    id_column: str = typer.Option(None, "--id", help="CSV: column naming each row (default: row number)."),
    columns: str = typer.Option(
        None, "--columns", help="CSV: comma-separated numeric columns (default: all numeric but id-like ones)."
    ),
    source_format: SourceFormat = typer.Option(
        SourceFormat.auto, "--format", help="Format of SOURCE (auto: from the extension; '-' is jsonl unless csv)."
    ),
    model: str = typer.Option(
        None, "--model", "-m", help="Embed audio queries with this model.onnx or 'mfcc' (default: the library's model)."
    ),
    standardize: bool = typer.Option(
        None, "--standardize/--no-standardize", help="Z-score each dimension first (default: CSV and MFCC yes)."
    ),
    backend: Backend = BACKEND,
    ann_threshold: int = typer.Option(1_000_000, "--ann-threshold", help="auto: ANN above this many vectors."),
    nprobe: int = typer.Option(
        32, "--nprobe", min=1, help="faiss/ivf/ivfpq: inverted lists scanned per query (more: higher recall, slower)."
    ),
    save_index: bool = SAVE_INDEX,
    where: list[str] = WHERE,
    year: str = YEAR,
) -> None:
    """Recommend the tracks most similar to a query (cosine top-k), with scores.

    Each query is answered on its own: an unknown or unreadable one is reported (`Error:` on
    stderr, exit code 1) while the others are answered. A silent audio query is refused; other
    flagged audio (mis-scaled, shorter than the model's window) is answered with a `warning:`.

    A sharded library (a folder from `embed -o library/`) is searched part by part, exactly,
    unless --index ivf|ivfpq builds (once) and uses its FAISS index. Results show `Artist — Title`
    where the tracks' tags give them; --where/--year keep only the tracks whose tags match.

    Example: specmusic recommend library.npz --query rock/song.mp3 --top 10 --json
    """
    from specmusic.embeddings import (
        open_recommender,
        parse_filter,
        query_embedder,
        read_queries,
        result_lines,
        result_notes,
    )
    from specmusic.fileio import json_line

    with cli_errors():
        condition = parse_filter(where, year=year)
        wanted = read_queries(query, queries, source=source)
        rec = open_recommender(
            source, source_format=source_format.value, standardize=standardize, backend=backend.value,
            ann_threshold=ann_threshold, nprobe=nprobe, save_index=save_index, id_column=id_column, columns=columns,
            explain=explain, on_note=err,
        )  # fmt: skip
        embedder = query_embedder(model, library=rec.model) if model else None
        failed: list[str] = []

        def report(line: str) -> None:
            failed.append(line)
            err(f"Error: {line}")

        results = rec.recommend(
            wanted, k=k, group_key=group_key, explain=explain, embedder=embedder, on_error=report, where=condition
        )
        for result in results:
            for line in result["warnings"]:
                err(f"warning: {line}")
            sys.stdout.write(json_line(result) if as_json else "\n".join(result_lines(result, explain=explain)) + "\n")
        sys.stdout.flush()
        for line in result_notes(results, k=k, as_json=as_json):
            err(line)
        if failed:
            raise typer.Exit(1)
