"""``specmusic embed``: audio → one L2-normalised vector per track (a library for `recommend`)."""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path

import typer

from specmusic.cli._options import PROGRESS, SEED, cli_errors, err, expand_stdin


class LibraryFormat(str, Enum):
    auto = "auto"
    npz = "npz"
    jsonl = "jsonl"


class Layer(str, Enum):
    embedding = "embedding"
    probabilities = "probabilities"


class Projection(str, Enum):
    pca = "pca"
    tsne = "tsne"
    umap = "umap"


def embed_cli(
    inputs: list[str] = typer.Argument(
        None, help="Audio files or folders (recursive); '-' reads paths from stdin, one a line."
    ),
    output: str = typer.Option(
        None, "--output", "-o", help="Library file (.npz or .jsonl); '-' or none: JSON Lines on stdout."
    ),
    output_format: LibraryFormat = typer.Option(
        LibraryFormat.auto, "--format", help="Library format (auto: from the extension; stdout is jsonl)."
    ),
    model: str = typer.Option(
        None,
        "--model",
        "-m",
        help="model.onnx from `train`, a pretrained tagger name (msd-fcn…), or 'mfcc'; default: the pretrained tagger.",
    ),
    layer: Layer = typer.Option(
        None,
        "--layer",
        help="ONNX models: 'embedding' (pooled penultimate features) or 'probabilities' (class/tag scores).",
    ),
    weights: str = typer.Option(
        None, "--weights", help="Pretrained tagger checkpoint (file, or folder of <dataset>/<arch>/best_model.pth)."
    ),
    manifest: Path = typer.Option(
        None, "--manifest", help="CSV or JSONL with path,label[,group] columns (paths relative to it)."
    ),
    labels: bool = typer.Option(True, "--labels/--no-labels", help="Take labels from parent folder names."),
    duration: float = typer.Option(None, "--duration", min=0.0, help="mfcc: read at most this many seconds."),
    map_png: Path = typer.Option(None, "--map", help="Also save a 2-D cluster map PNG coloured by label."),
    clusters: int = typer.Option(None, "--clusters", min=1, help="KMeans clusters (default: number of labels)."),
    projection: Projection = typer.Option(Projection.pca, "--projection", help="2-D projection of the map."),
    prune: bool = typer.Option(False, "--prune", help="Drop library entries that are not among the inputs."),
    force: bool = typer.Option(False, "--force", help="Embed every track again, even unchanged ones."),
    progress: bool = PROGRESS,
    seed: int = SEED,
) -> None:
    """Embed tracks into a library of vectors (incremental: unchanged files are not embedded again).

    Example: specmusic embed ~/music -o library.npz --map map.png
    """
    from specmusic.data import discover_tracks, read_manifest
    from specmusic.embeddings import (
        embed_tracks,
        make_embedder,
        read_library,
        save_library,
        search_vectors,
        write_library_jsonl,
        write_library_jsonl_file,
    )
    from specmusic.errors import InputError

    with cli_errors():
        paths = expand_stdin(inputs)
        if not paths and manifest is None:
            raise InputError("no input — give audio files or folders, '-' for paths on stdin, or --manifest")
        tracks, failures = discover_tracks(paths, labels_from_folders=labels) if paths else ([], [])
        if manifest is not None:
            tracks += read_manifest(manifest)
        for f in failures:
            err(f"Error: {f.message}")
        if not tracks:
            raise InputError("no audio files found in the inputs — extensions read: .wav .flac .mp3 .ogg .opus .au .aiff")
        to_stdout = output in (None, "-")
        fmt = output_format.value
        if fmt == "auto":
            fmt = "jsonl" if to_stdout or not output.lower().endswith(".npz") else "npz"
        if to_stdout and fmt == "npz":
            raise InputError("an .npz library cannot go to stdout — give -o library.npz, or --format jsonl")
        if to_stdout and map_png is not None and output is None:
            library_out = False  # `embed DIR --map map.png`: the cluster listing is the data
        else:
            library_out = True
        existing = None
        if not to_stdout and os.path.exists(output) and not force:
            existing = read_library(output)
        embedder = make_embedder(
            model, duration=duration, weights=weights, progress=progress, layer=layer.value if layer else None
        )
        library, report = embed_tracks(
            tracks, embedder, existing=existing, keep_others=not prune, progress=progress, on_error=err
        )
        if library_out:
            if to_stdout:
                write_library_jsonl(library, sys.stdout)
                sys.stdout.flush()
            elif fmt == "npz":
                save_library(library, output)
            else:
                write_library_jsonl_file(library, output)
        where = "stdout" if to_stdout else output
        err(
            f"embed: {len(report.embedded)} embedded, {len(report.reused)} unchanged, {len(report.failed) + len(failures)} "
            f"failed → {len(library)} tracks × {library.dim} dims" + (f" in {where}" if library_out else "")
        )
        if map_png is not None:
            from specmusic.cluster import cluster_embeddings, format_clusters, save_cluster_map

            result = cluster_embeddings(
                search_vectors(library), labels=library.labels, ids=library.ids, k=clusters, projection=projection.value, seed=seed
            )
            save_cluster_map(result, map_png, labels=library.labels)
            say = err if (library_out and to_stdout) else (lambda line: sys.stdout.write(line + "\n"))
            for line in format_clusters(result):
                say(line)
            err(f"map: {map_png}")
        if report.failed or failures:
            raise typer.Exit(1)
