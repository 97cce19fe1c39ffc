"""``specmusic classify``: audio → labels with an ONNX model (onnxruntime + numpy; no torch, no librosa)."""

from __future__ import annotations

from pathlib import Path

import typer

from specmusic.cli._options import CLUSTER, JOBS, PROGRESS, WINDOWS, check_cluster, cli_errors, err, expand_stdin


def classify_cli(
    inputs: list[str] = typer.Argument(
        None, help="Audio files, .npz spectro arrays or folders (recursive); '-' reads paths from stdin."
    ),
    model: Path = typer.Option(
        None, "--model", "-m",
        help="A specmusic model.onnx (e.g. RUN/model.onnx from train) or a pretrained tagger name (msd-fcn, "
        "mtat-musicnn, audioset-mn04: 527 AudioSet classes, …); default: the bundled tagger (jamendo-fcn, offline).",
    ),
    weights: str = typer.Option(
        None, "--weights", envvar="SPECMUSIC_WEIGHTS",
        help="A tagger that is not bundled: local copy of its checkpoint (best_model.pth or a models/ tree; "
        "mn04_as_mAP_432.pt) instead of downloading it.",
    ),
    labels: str = typer.Option(
        "all", "--labels", metavar="SET|FILE",
        help="Labels to report: all; music (AudioSet's music classes: instruments, genres, moods; for "
        "audioset-mn04); or a text file with one label a line. Scores are not renormalised.",
    ),
    top: int = typer.Option(3, "--top", "-k", min=1, help="Labels shown per file."),
    json_lines: bool = typer.Option(False, "--json", help="JSON Lines on stdout, one object per file."),
    windows: str = WINDOWS,
    jobs: int = JOBS,
    cluster: str = CLUSTER,
    progress: bool = PROGRESS,
) -> None:
    """Classify audio files with a trained model: a top-k table, or JSON Lines with --json.

    Example: specmusic classify song.wav --model runs/cnn/model.onnx
    (without --model: the default pretrained music tagger; see docs/pretrained.md; AudioSet's music
    classes: -m audioset-mn04 --labels music). A long track is judged from 6 evenly spread windows
    (--windows; docs/collections.md).
    """
    import sys

    from specmusic.errors import InputError
    from specmusic.fileio import json_line
    from specmusic.inference import open_classifier
    from specmusic.windowing import parse_windows

    with cli_errors():
        cluster = check_cluster(cluster, jobs)
        paths = expand_stdin(inputs)
        if not paths:
            raise InputError("no input — give audio files or folders, or '-' for paths on stdin")
        run = open_classifier(paths, model=model, weights=weights, labels=labels, jobs=jobs, cluster=cluster,
                              progress=progress)  # fmt: skip
        for message in run.failures:
            err(f"Error: {message}")
        n_failed = len(run.failures)
        out = sys.stdout
        header = None if json_lines else run.header(top)
        if header is not None:
            out.write(header + "\n")
        for track in run.classify(top=top, windows=parse_windows(windows)):
            if not track.ok:
                n_failed += 1
                err(f"Error: {track.result.error}")
                continue
            for line in track.result.warnings:
                err(f"warning: {line}")
            out.write(json_line(track.record) if json_lines else f"{track.row}\n")
            out.flush()
        total = len(run.paths) + len(run.failures)
        if n_failed:
            err(f"classify: {total - n_failed} classified, {n_failed} failed")
            raise typer.Exit(1)
