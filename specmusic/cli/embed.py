"""``specmusic embed``: audio → one L2-normalised vector per track (a library for `recommend`)."""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from specmusic.cli._options import CLUSTER, JOBS, PROGRESS, SEED, WINDOWS, check_cluster, cli_errors, err, gather_tracks

if TYPE_CHECKING:
    from specmusic.embeddings import EmbeddingLibrary


class LibraryFormat(str, Enum):
    auto = "auto"
    npz = "npz"
    jsonl = "jsonl"


class Layer(str, Enum):
    embedding = "embedding"
    probabilities = "probabilities"


class Pooling(str, Enum):
    mean = "mean"
    meanstd = "meanstd"
    max = "max"


class Projection(str, Enum):
    pca = "pca"
    tsne = "tsne"
    umap = "umap"


def embed_cli(
    inputs: list[str] = typer.Argument(
        None, help="Audio files or folders (recursive); '-' reads paths from stdin, one a line."
    ),
    output: str = typer.Option(
        None, "--output", "-o",
        help="Library file (.npz or .jsonl), or a folder (ending in '/') for a sharded library written part by part; "
        "'-' or none: JSON Lines on stdout.",
    ),
    output_format: LibraryFormat = typer.Option(
        LibraryFormat.auto, "--format", help="Library format (auto: from the extension; stdout is jsonl)."
    ),
    model: str = typer.Option(
        None,
        "--model",
        "-m",
        help="model.onnx from `train`, a pretrained tagger name (msd-fcn…), several joined by '+' "
        "(jamendo-fcn+mtat-musicnn), or 'mfcc'; default: pons-msd-musicnn with --adapt (docs/similarity.md).",
    ),
    adapt: bool = typer.Option(
        None, "--adapt/--no-adapt",
        help="Keep each track's within-track variation so that search learns a similarity space from the "
        "library itself, without labels (one model; on by default for the default model, pons-msd-musicnn).",
    ),
    layer: Layer = typer.Option(
        None,
        "--layer",
        help="ONNX models: 'embedding' (pooled penultimate features) or 'probabilities' (class/tag scores).",
    ),
    pooling: Pooling = typer.Option(
        None,
        "--pooling",
        help="ONNX models: how window vectors become one — mean (default), meanstd (mean and spread), or max.",
    ),
    weights: str = typer.Option(
        None, "--weights", help="Pretrained tagger checkpoint (file, or folder of <dataset>/<arch>/best_model.pth)."
    ),
    manifest: Path = typer.Option(
        None, "--manifest", help="CSV or JSONL with path,label[,group] columns (paths relative to it)."
    ),
    labels: bool = typer.Option(True, "--labels/--no-labels", help="Take labels from parent folder names."),
    duration: float = typer.Option(None, "--duration", min=0.0, help="mfcc: read at most this many seconds."),
    windows: str = WINDOWS,
    map_png: Path = typer.Option(
        None, "--map", help="Also save a 2-D cluster map PNG coloured by label, its data beside it as .json."
    ),
    clusters: int = typer.Option(None, "--clusters", min=1, help="KMeans clusters (default: number of labels)."),
    projection: Projection = typer.Option(Projection.pca, "--projection", help="2-D projection of the map."),
    prune: bool = typer.Option(False, "--prune", help="Drop library entries that are not among the inputs."),
    force: bool = typer.Option(False, "--force", help="Embed every track again, even unchanged ones."),
    jobs: int = JOBS,
    cluster: str = CLUSTER,
    progress: bool = PROGRESS,
    seed: int = SEED,
) -> None:
    """Embed tracks into a library of vectors (incremental: unchanged files are not embedded again).

    The library goes to -o, or as JSON Lines to stdout (pipe it into `specmusic recommend -`); with
    --map, the cluster listing goes to stderr and the map's data (clusters, metrics, points) to a
    .json file beside the PNG. Progress is kept as it goes (in LIBRARY.partial.jsonl until the
    library is written): an interrupted run, rerun, embeds only what is missing. Silent, mis-scaled
    or too-short audio is embedded with a `warning:` line, kept in the library's `warnings`.

    Example: specmusic embed ~/music -o library.npz --map map.png

    Large collections: specmusic embed /shared/music -o /shared/library/ --cluster tcp://HOST:8786
    (docs/scaling.md).
    """
    from specmusic.embeddings import make_embedder
    from specmusic.errors import InputError
    from specmusic.inference import parse_windows

    with cli_errors():
        cluster = check_cluster(cluster, jobs)
        tracks, failures = gather_tracks(inputs, manifest, labels=labels)
        for f in failures:
            err(f"Error: {f.message}")
        if not tracks:
            raise InputError("no audio files found in the inputs — extensions read: .wav .flac .mp3 .ogg .opus .au .aiff")
        sharded = output not in (None, "-") and _sharded(output)
        fmt = "npz" if sharded else _library_format(output, output_format.value)
        embedder = make_embedder(
            model, duration=duration, weights=weights, progress=progress, layer=layer.value if layer else None,
            windows=parse_windows(windows), pooling=pooling.value if pooling else None, adapt=adapt,
        )
        run = dict(n_failed=len(failures), prune=prune, force=force, progress=progress, jobs=jobs, cluster=cluster)
        if sharded:
            ok = _embed_sharded(tracks, embedder, output, **run)  # type: ignore[arg-type]
            if map_png is not None:
                from specmusic.embeddings.shards import read_sharded

                library = read_sharded(output)
        else:
            library, ok = _embed_single(tracks, embedder, output, fmt, **run)  # type: ignore[arg-type]
        if map_png is not None:
            _save_map(library, map_png, k=clusters, projection=projection.value, seed=seed)
        if not ok:
            raise typer.Exit(1)


def _refuse_another_model(existing: EmbeddingLibrary, embedder, output: str, prune: bool, tracks: list) -> None:
    """Adding tracks to a library made by another model would drop its tracks that are not among the inputs:
    refuse, in one line (``--prune`` asks for just the inputs; ``--force`` never reads the library; when
    every track is among the inputs, all are embedded again with the new model and nothing is lost)."""
    from specmusic.embeddings.embedders import model_label, same_model
    from specmusic.errors import InputError
    from specmusic.fileio import display_path

    if prune or not len(existing) or same_model(existing.model, embedder.description):
        return
    if set(existing.ids) <= {t.path for t in tracks}:
        return
    name = model_label(existing.model)
    raise InputError(
        f"{display_path(output)} was made by another model ({name}) — pass -m {name} to add tracks to it, "
        "or --force to embed these tracks into it anew with this model (its other tracks are dropped)"
    )


def _embed_single(
    tracks: list, embedder, output: str | None, fmt: str, *, n_failed: int, prune: bool, force: bool,
    progress: bool | None, jobs: int, cluster: str | None,
) -> tuple[EmbeddingLibrary, bool]:  # fmt: skip
    """``embed -o lib.npz|lib.jsonl`` (progress in its journal) or to stdout; prints the summary.

    Returns the library and whether every track went in.
    """
    from specmusic.embeddings import embed_tracks, read_library
    from specmusic.embeddings.journal import EmbedJournal
    from specmusic.embeddings.library import JsonlLibraryStream
    from specmusic.fileio import display_path, ensure_writable_dir

    to_file = output not in (None, "-")
    existing = None
    if to_file and os.path.exists(output) and not force:  # type: ignore[arg-type]
        existing = read_library(output)  # type: ignore[arg-type]
        _refuse_another_model(existing, embedder, output, prune, tracks)  # type: ignore[arg-type]
    journal, stream = None, None
    if to_file:
        assert output is not None
        ensure_writable_dir(os.path.dirname(os.path.abspath(output)), option="-o")
        journal = EmbedJournal.open(output, embedder.description, fresh=force, on_note=err)
    else:
        stream = JsonlLibraryStream(sys.stdout, embedder.description)
    try:
        library, report = embed_tracks(
            tracks, embedder, existing=existing, resumed=journal.resumed if journal else None,
            keep_others=not prune, progress=progress, on_error=err, jobs=jobs, cluster=cluster,
            on_embedded=journal.add if journal else stream.add,  # type: ignore[union-attr]
        )  # fmt: skip
        if journal is not None:
            _write_library(library, output, fmt)  # type: ignore[arg-type]
            journal.finish()
        else:
            assert stream is not None
            stream.finish(library.model)
    except KeyboardInterrupt:
        if journal is not None and journal.kept:
            err(
                f"embed: interrupted — {journal.kept} embedded track(s) are kept in {display_path(journal.path)}; "
                "rerun the same command to embed only the rest"
            )
        raise
    finally:
        if journal is not None:
            journal.close()
    resumed = f", {len(report.resumed)} resumed" if report.resumed else ""
    flagged = f", {len(report.flagged)} flagged (see the warnings)" if report.flagged else ""
    err(
        f"embed: {len(report.embedded)} embedded, {len(report.reused)} unchanged{resumed}, "
        f"{len(report.failed) + n_failed} failed{flagged} → {len(library)} tracks × {library.dim} dims in "
        f"{'stdout' if not to_file else display_path(output)}"  # type: ignore[arg-type]
    )
    return library, not (report.failed or n_failed)


def _sharded(output: str) -> bool:
    from specmusic.embeddings.shards import is_sharded

    return is_sharded(output)


def _embed_sharded(
    tracks: list, embedder, output: str, *, n_failed: int, prune: bool, force: bool, progress: bool | None,
    jobs: int, cluster: str | None,
) -> bool:  # fmt: skip
    """``embed -o FOLDER/``: embed what the sharded library lacks, part by part (the library is never
    held in memory); prints the summary. Returns whether every track went in."""
    from specmusic.embeddings.incremental import embed_into_shards
    from specmusic.embeddings.shards import ShardedLibraryWriter
    from specmusic.fileio import display_path

    writer = ShardedLibraryWriter.open(output, embedder.description, fresh=force, on_note=err)
    try:
        report = embed_into_shards(
            tracks, embedder, writer, prune=prune, progress=progress, on_error=err, jobs=jobs, cluster=cluster
        )
        writer.finish()
    except KeyboardInterrupt:
        writer.close()
        err(
            f"embed: interrupted — {writer.kept} track(s) are kept in {display_path(output)}; "
            "rerun the same command to embed only the rest"
        )
        raise
    finally:
        writer.close()
    flagged = f", {len(report.flagged)} flagged (see the warnings)" if report.flagged else ""
    err(
        f"embed: {len(report.embedded)} embedded, {len(report.reused)} unchanged, "
        f"{len(report.failed) + n_failed} failed{flagged} → {writer.kept} tracks in {display_path(output)}"
    )
    return not (report.failed or n_failed)


def _library_format(output: str | None, fmt: str) -> str:
    """``npz`` or ``jsonl``: ``--format``, else from the extension; stdout is always JSON Lines."""
    from specmusic.errors import InputError

    to_stdout = output in (None, "-")
    if fmt == "auto":
        fmt = "jsonl" if to_stdout or not str(output).lower().endswith(".npz") else "npz"
    if to_stdout and fmt == "npz":
        raise InputError("an .npz library cannot go to stdout — give -o library.npz, or --format jsonl")
    return fmt


def _write_library(library: EmbeddingLibrary, output: str, fmt: str) -> None:
    from specmusic.embeddings import save_library, write_library_jsonl_file

    if fmt == "npz":
        save_library(library, output)
    else:
        write_library_jsonl_file(library, output)


def map_data_path(map_png: Path) -> Path:
    """Where ``embed --map`` writes the map's data: ``map.png`` → ``map.json``."""
    return map_png.with_suffix(".json") if map_png.suffix.lower() != ".json" else map_png.with_name(map_png.name + ".json")


def _save_map(library: EmbeddingLibrary, map_png: Path, *, k: int | None, projection: str, seed: int) -> None:
    """Cluster, save the PNG and its JSON data; the listing goes to stderr (stdout carries the library)."""
    from specmusic.cluster import cluster_embeddings, cluster_record, format_clusters, save_cluster_map
    from specmusic.embeddings import search_vectors
    from specmusic.fileio import write_json_atomic

    result = cluster_embeddings(
        search_vectors(library), labels=library.labels, ids=library.ids, k=k, projection=projection, seed=seed
    )
    save_cluster_map(result, map_png, labels=library.labels)
    data = map_data_path(map_png)
    write_json_atomic(data, cluster_record(result, ids=library.ids, labels=library.labels))
    for line in format_clusters(result):
        err(line)
    err(f"map: {map_png} (data: {data})")
