"""``specmusic recommend``: the most similar tracks to a query, from an embedding library or a CSV."""

from __future__ import annotations

import sys
from enum import Enum
from typing import TYPE_CHECKING, Any

import typer

from specmusic.cli._options import cli_errors, err

if TYPE_CHECKING:
    from specmusic.embeddings import Recommender
    from specmusic.embeddings.sharded_recommend import ShardedRecommender
    from specmusic.index import IndexConfig


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


def _format_text(result: dict, explain: bool) -> list[str]:
    """A query's neighbours as text lines; paths shown with ``\\xNN`` for bytes that are not UTF-8."""
    from specmusic.embeddings.explain import explain_text
    from specmusic.fileio import display_path

    lines = [f"# {display_path(result['query'])}"]
    for n in result["neighbors"]:
        line = f"{n['rank']}\t{n['score']:.4f}\t{display_path(n['id'])}"
        if n.get("label"):
            line += f"\t{n['label']}"
        if explain and "explain" in n:
            line += "\t" + explain_text(n["explain"])
        lines.append(line)
    return lines


def recommend_cli(
    source: str = typer.Argument(
        ...,
        help="Library (.npz or .jsonl from `embed`, or a sharded library/ folder), a CSV of features, or '-' for "
        "JSON Lines on stdin.",
    ),
    query: list[str] = typer.Option(
        None, "--query", "-q", help="A library id (path; a unique tail is enough) or an audio file. Repeatable."
    ),
    queries: str = typer.Option(None, "--queries", help="File with one query a line; '-' reads stdin."),
    k: int = typer.Option(10, "--top", "-k", "--top-k", min=1, help="Neighbours per query."),
    as_json: bool = typer.Option(False, "--json", help="JSON Lines: one object per query with its neighbours."),
    group_key: str = typer.Option(
        None,
        "--group-key",
        help="Leave out neighbours sharing the query's group, label, dir (parent folder name, e.g. 'rock' "
        "for /music/rock/a.mp3) or CSV column.",
    ),
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
    backend: Backend = typer.Option(
        Backend.auto,
        "--index",
        help="Search: exact numpy, hnsw/faiss (pip install 'specmusic[ann]'), auto by size. A sharded library/: "
        "exact streams its parts; ivf|ivfpq use (building it first) its FAISS index, IVF-PQ for libraries "
        "larger than memory; auto uses that index when current.",
    ),
    ann_threshold: int = typer.Option(1_000_000, "--ann-threshold", help="auto: ANN above this many vectors."),
    nprobe: int = typer.Option(
        32, "--nprobe", min=1, help="faiss/ivf/ivfpq: inverted lists scanned per query (more: higher recall, slower)."
    ),
    save_index: bool = typer.Option(
        True,
        "--save-index/--no-save-index",
        help="Keep a built ANN index beside the library file (in a sharded library/) for next time.",
    ),
) -> None:
    """Recommend the tracks most similar to a query (cosine top-k), with scores.

    Each query is answered on its own: an unknown or unreadable one is reported (`Error:` on
    stderr, exit code 1) while the others are answered. A silent audio query is refused; other
    flagged audio (mis-scaled, shorter than the model's window) is answered with a `warning:`.

    A sharded library (a folder from `embed -o library/`) is searched part by part, exactly,
    unless --index ivf|ivfpq builds (once) and uses its FAISS index.

    Example: specmusic recommend library.npz --query rock/song.mp3 --top 10 --json
    """
    from specmusic.errors import InputError
    from specmusic.fileio import json_line
    from specmusic.index import IndexConfig

    with cli_errors():
        wanted = _gather_queries(query, queries, source)
        if not wanted:
            raise InputError("no query — give --query ID_OR_AUDIO (repeatable) or --queries FILE ('-': stdin)")
        fmt = _source_format(source, source_format.value)
        if backend.value == "ivfpq" and fmt != "sharded":
            raise InputError("--index ivfpq is for a sharded library (`embed -o library/`) — use --index faiss here")
        config = IndexConfig(
            backend="faiss" if backend.value in ("ivf", "ivfpq") else backend.value, ann_threshold=ann_threshold,
            faiss_nprobe=nprobe,  # a sharded library takes backend.value itself (ivf | ivfpq)
        )
        rec: Recommender | ShardedRecommender
        if fmt == "csv":
            rec = _table_recommender(source, id_column, columns, config)
        else:
            if id_column or columns:
                raise InputError("--id and --columns are for CSV sources — drop them or give a .csv")
            if fmt == "sharded":
                rec = _sharded_recommender(source, standardize, backend.value, save_index, nprobe)
            else:
                rec = _library_recommender(source, standardize, config, save_index)
            if explain and not rec.has_tags:
                err(
                    "note: this library keeps no tags (MFCC, or embedded before tags were kept) — --explain names "
                    "shared tags for libraries embedded with a tagger (the default) or a model.onnx"
                )
        embedder = _query_embedder(model, rec.model) if model else None
        failed: list[str] = []

        def report(line: str) -> None:
            failed.append(line)
            err(f"Error: {line}")

        results = rec.recommend(wanted, k=k, group_key=group_key, explain=explain, embedder=embedder, on_error=report)
        for result in results:
            for line in result["warnings"]:
                err(f"warning: {line}")
            if as_json:
                sys.stdout.write(json_line(result))
            else:
                sys.stdout.write("\n".join(_format_text(result, explain)) + "\n")
        sys.stdout.flush()
        _notes(results, k, as_json)
        if failed:
            raise typer.Exit(1)


def _notes(results: list[dict], k: int, as_json: bool) -> None:
    """Notes on stderr: queries with fewer than ``k`` neighbours, neighbours flagged when embedded."""
    from specmusic.fileio import display_path

    short = [r["query"] for r in results if len(r["neighbors"]) < k]
    if short:
        err(f"note: fewer than {k} eligible neighbours for {len(short)} query(ies), e.g. {display_path(short[0])}")
    flagged = list(dict.fromkeys(n["id"] for r in results for n in r["neighbors"] if n.get("warnings")))
    if flagged:
        where = "their `warnings`" if as_json else "--json"
        err(
            f"note: {len(flagged)} neighbour(s) were flagged when embedded (silent, mis-scaled or too short audio, "
            f"e.g. {display_path(flagged[0])}) — their scores may mean little; see {where}"
        )


def _gather_queries(query: list[str] | None, queries: str | None, source: str) -> list[str]:
    """``--query`` values, then the lines of ``--queries`` (a file, or ``-``: stdin)."""
    from specmusic.data import read_path_list
    from specmusic.errors import InputError
    from specmusic.fileio import display_path

    wanted = list(query or [])
    if queries is None:
        return wanted
    if queries == "-" and source == "-":
        raise InputError("stdin cannot carry both the library and --queries — put one of them in a file")
    if queries == "-":
        return wanted + read_path_list(sys.stdin)
    try:  # a byte that is not UTF-8 reads as os.fsdecode gives it, so it matches the library's ids
        with open(queries, encoding="utf-8", errors="surrogateescape") as f:
            return wanted + read_path_list(f)
    except OSError as exc:
        raise InputError(f"{display_path(queries)}: cannot read queries ({exc.strerror}) — check the path") from None


def _source_format(source: str, fmt: str) -> str:
    """``--format``, else from the extension: .csv/.tsv a table, .npz a library, anything else JSON Lines."""
    if fmt != "auto":
        return fmt
    lower = source.lower()
    if source == "-":
        return "jsonl"
    from specmusic.embeddings.shards import is_sharded

    if is_sharded(source):
        return "sharded"
    return "csv" if lower.endswith((".csv", ".tsv")) else "npz" if lower.endswith(".npz") else "jsonl"


def _table_recommender(source: str, id_column: str | None, columns: str | None, config: IndexConfig) -> Recommender:
    from specmusic.embeddings import Recommender, read_tabular

    cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    table = read_tabular(source, id_column=id_column, columns=cols)
    if table.skipped:
        hint = "" if id_column else f" (--id {table.skipped[0]} names rows by it)"
        err(
            f"note: left out id-like column(s) {', '.join(table.skipped)}{hint} — "
            "name them in --columns to use them as features"
        )
    if table.non_numeric:
        err(f"note: left out column(s) holding text: {', '.join(table.non_numeric)}")
    return Recommender.from_tabular(table, index_config=config, on_note=err)


def _sharded_recommender(
    source: str, standardize: bool | None, backend: str, save_index: bool, nprobe: int
) -> ShardedRecommender:
    """A sharded library: exact streaming, or its FAISS index (``ivf``/``ivfpq``; ``faiss`` means ``ivf``)."""
    from specmusic.embeddings.sharded_recommend import ShardedRecommender

    ann = {"auto": "auto", "exact": "exact", "faiss": "ivf", "ivf": "ivf", "ivfpq": "ivfpq"}.get(backend)
    if ann is None:
        err(
            f"note: --index {backend} needs the whole library in memory — a sharded library uses --index ivf|ivfpq; "
            "searching exactly"
        )
        ann = "exact"
    return ShardedRecommender(source, standardize=standardize, ann=ann, build=save_index, nprobe=nprobe, on_note=err)


def _query_embedder(model: str, library_model: dict) -> Any:
    """``--model`` for audio queries. A library of packed rows (adapt) maps queries through a space learnt
    from its own model's features: another model's would land in it unnoticed (same size), so refuse."""
    from specmusic.embeddings import make_embedder
    from specmusic.embeddings.adapt import adapt_groups
    from specmusic.embeddings.embedders import model_label, same_model
    from specmusic.errors import InputError

    if not adapt_groups(library_model):
        return make_embedder(model)
    from specmusic.models.resolve import resolve_model

    name = model_label(library_model)
    plain = resolve_model(model).kind in ("mfcc", "joined")
    embedder = None if plain else make_embedder(model, adapt=True)
    if embedder is None or not same_model(library_model, embedder.description):
        raise InputError(
            f"--model {model} is not the model that made the library ({name}, with --adapt) — leave out --model: "
            "queries are embedded with the library's own recipe"
        )
    return embedder


def _library_recommender(source: str, standardize: bool | None, config: IndexConfig, save_index: bool) -> Recommender:
    from specmusic.embeddings import Recommender, read_library

    return Recommender.from_library(
        read_library(source),
        standardize=standardize,
        index_config=config,
        on_note=err,
        index_cache=source if source != "-" and save_index else None,
    )
