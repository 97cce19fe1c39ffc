"""``specmusic recommend``: the most similar tracks to a query, from an embedding library or a CSV."""

from __future__ import annotations

import json
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


def _format_text(result: dict, explain: bool) -> list[str]:
    lines = [f"# {result['query']}"]
    for n in result["neighbors"]:
        line = f"{n['rank']}\t{n['score']:.4f}\t{n['id']}"
        if n.get("label"):
            line += f"\t{n['label']}"
        if explain and "explain" in n:
            info = n["explain"]
            parts = list(info.get("shared", []))
            if "closest_columns" in info:
                parts.append(
                    "closest: "
                    + ", ".join(
                        f"{c['column']} ({c['query']}≈{c['match']})" if c["query"] is not None else f"{c['column']}"
                        for c in info["closest_columns"]
                    )
                )
            if "top_dimensions" in info:
                parts.append("top dims: " + ", ".join(f"{d['dim']} ({d['share']:.0%})" for d in info["top_dimensions"]))
            line += "\t" + "; ".join(parts)
        lines.append(line)
    return lines


def recommend_cli(
    source: str = typer.Argument(
        ..., help="Library (.npz or .jsonl from `embed`), a CSV of features, or '-' for JSON Lines on stdin."
    ),
    query: list[str] = typer.Option(
        None, "--query", "-q", help="A library id (path; a unique tail is enough) or an audio file. Repeatable."
    ),
    queries: str = typer.Option(None, "--queries", help="File with one query a line; '-' reads stdin."),
    k: int = typer.Option(10, "-k", "--top-k", min=1, help="Neighbours per query."),
    as_json: bool = typer.Option(False, "--json", help="JSON Lines: one object per query with its neighbours."),
    group_key: str = typer.Option(
        None,
        "--group-key",
        help="Leave out neighbours sharing the query's group|label|dir (parent folder) or CSV column.",
    ),
    explain: bool = typer.Option(False, "--explain", help="Say what each match shares with its query."),
    id_column: str = typer.Option(None, "--id", help="CSV: column naming each row (default: row number)."),
    columns: str = typer.Option(None, "--columns", help="CSV: comma-separated numeric columns (default: all numeric)."),
    source_format: SourceFormat = typer.Option(
        SourceFormat.auto, "--format", help="Format of SOURCE (auto: from the extension; '-' is jsonl unless csv)."
    ),
    model: str = typer.Option(
        None, "--model", help="Embed audio queries with this model.onnx or 'mfcc' (default: the library's model)."
    ),
    standardize: bool = typer.Option(
        None, "--standardize/--no-standardize", help="Z-score each dimension first (default: CSV and MFCC yes)."
    ),
    backend: Backend = typer.Option(
        Backend.auto, "--index", help="Search: exact numpy, hnsw/faiss (pip install 'specmusic[ann]'), auto by size."
    ),
    ann_threshold: int = typer.Option(1_000_000, "--ann-threshold", help="auto: ANN above this many vectors."),
    save_index: bool = typer.Option(
        True, "--save-index/--no-save-index", help="Keep a built ANN index beside the library file for next time."
    ),
) -> None:
    """Recommend the tracks most similar to a query (cosine top-k), with scores.

    Example: specmusic recommend library.npz --query rock/song.mp3 -k 10 --json
    """
    from specmusic.embeddings import Recommender, make_embedder, read_library, read_tabular
    from specmusic.errors import InputError
    from specmusic.index import IndexConfig

    with cli_errors():
        wanted = list(query or [])
        if queries is not None:
            if queries == "-" and source == "-":
                raise InputError("stdin cannot carry both the library and --queries — put one of them in a file")
            from specmusic.data import read_path_list

            if queries == "-":
                wanted += read_path_list(sys.stdin)
            else:
                try:
                    with open(queries, encoding="utf-8") as f:
                        wanted += read_path_list(f)
                except OSError as exc:
                    raise InputError(f"{queries}: cannot read queries ({exc.strerror}) — check the path") from None
        if not wanted:
            raise InputError("no query — give --query ID_OR_AUDIO (repeatable) or --queries FILE ('-': stdin)")
        fmt = source_format.value
        if fmt == "auto":
            lower = source.lower()
            fmt = "jsonl" if source == "-" else "csv" if lower.endswith((".csv", ".tsv")) else "npz" if lower.endswith(".npz") else "jsonl"
        config = IndexConfig(backend=backend.value, ann_threshold=ann_threshold)
        if fmt == "csv":
            cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
            table = read_tabular(source, id_column=id_column, columns=cols)
            rec = Recommender.from_tabular(table, index_config=config, on_note=err)
        else:
            if id_column or columns:
                raise InputError("--id and --columns are for CSV sources — drop them or give a .csv")
            library = read_library(source)
            rec = Recommender.from_library(
                library,
                standardize=standardize,
                index_config=config,
                on_note=err,
                index_cache=source if source != "-" and save_index else None,
            )
        embedder = make_embedder(model) if model else None
        results = rec.recommend(wanted, k=k, group_key=group_key, explain=explain, embedder=embedder)
        for result in results:
            if as_json:
                sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
            else:
                sys.stdout.write("\n".join(_format_text(result, explain)) + "\n")
        short = [r["query"] for r in results if len(r["neighbors"]) < k]
        if short:
            err(f"note: fewer than {k} eligible neighbours for {len(short)} query(ies), e.g. {short[0]}")
