"""``specmusic embed``: audio → one L2-normalised vector per track (a library for `recommend`).

Parses the options, then :func:`specmusic.embeddings.embed_library` does the run (and
:func:`specmusic.embeddings.save_library_map` the ``--map``); this module prints what they return.
"""

from __future__ import annotations

import functools
from enum import Enum
from pathlib import Path

import typer

from specmusic.cli._options import CLUSTER, JOBS, PROGRESS, SEED, WINDOWS, check_cluster, cli_errors, err, gather_tracks


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


OUTPUT = typer.Option(
    None, "--output", "-o",
    help="Library file (.npz or .jsonl), or a folder (ending in '/') for a sharded library written part by part; "
    "'-' or none: JSON Lines on stdout.",
)
MODEL = typer.Option(
    None,
    "--model",
    "-m",
    help="model.onnx from `train`, a pretrained tagger name (msd-fcn…), several joined by '+' "
    "(jamendo-fcn+mtat-musicnn), or 'mfcc'; default: audioset-mn04+pons-msd-musicnn with --adapt (docs/similarity.md).",
)
ADAPT = typer.Option(
    None, "--adapt/--no-adapt",
    help="Keep each track's within-track variation so that search learns a similarity space from the "
    "library itself, without labels (one model or several joined: a space per model; on by default for the default recipe).",
)
LAYER = typer.Option(
    None,
    "--layer",
    help="ONNX models: 'embedding' (pooled penultimate features) or 'probabilities' (class/tag scores).",
)
POOLING = typer.Option(
    None,
    "--pooling",
    help="ONNX models: how window vectors become one — mean (default), meanstd (mean and spread), or max.",
)


def embed_cli(
    inputs: list[str] = typer.Argument(
        None, help="Audio files or folders (recursive); '-' reads paths from stdin, one a line."
    ),
    output: str = OUTPUT,
    output_format: LibraryFormat = typer.Option(
        LibraryFormat.auto, "--format", help="Library format (auto: from the extension; stdout is jsonl)."
    ),
    model: str = MODEL,
    adapt: bool = ADAPT,
    layer: Layer = LAYER,
    pooling: Pooling = POOLING,
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
    from specmusic.embeddings import embed_library, make_embedder, save_library_map
    from specmusic.windowing import parse_windows

    with cli_errors():
        cluster = check_cluster(cluster, jobs)
        tracks, failures = gather_tracks(inputs, manifest, labels=labels)
        for f in failures:
            err(f"Error: {f.message}")
        embedder = functools.partial(  # made by embed_library once the inputs and -o are checked
            make_embedder, model, duration=duration, weights=weights, progress=progress,
            layer=layer.value if layer else None, windows=parse_windows(windows),
            pooling=pooling.value if pooling else None, adapt=adapt,
        )  # fmt: skip
        outcome = embed_library(
            tracks, embedder=embedder, output=output, output_format=output_format.value, prune=prune, force=force,
            progress=progress, jobs=jobs, cluster=cluster, listing_failures=len(failures), on_note=err, on_error=err,
        )  # fmt: skip
        err(outcome.summary())
        if map_png is not None:
            library = outcome.load_library()
            for line in save_library_map(library, map_png, k=clusters, projection=projection.value, seed=seed):
                err(line)
        if not outcome.ok:
            raise typer.Exit(1)
