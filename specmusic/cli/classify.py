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
        "mtat-musicnn, …); default: the bundled tagger (jamendo-fcn, offline).",
    ),
    weights: str = typer.Option(
        None, "--weights", envvar="SPECMUSIC_WEIGHTS",
        help="A tagger that is not bundled: local copy of its best_model.pth (or a models/ tree) instead of "
        "downloading it.",
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
    (without --model: the default pretrained music tagger; see docs/pretrained.md). A long track is
    judged from 6 evenly spread windows (--windows; docs/collections.md).
    """
    import sys

    from specmusic.audio import AUDIO_EXTENSIONS
    from specmusic.data import discover_tracks
    from specmusic.fileio import display_path, json_line
    from specmusic.errors import InputError
    from specmusic.inference import load_model, parse_windows, predict_files, top_k

    with cli_errors():
        cluster = check_cluster(cluster, jobs)
        paths = expand_stdin(inputs)
        if not paths:
            raise InputError("no input — give audio files or folders, or '-' for paths on stdin")
        from specmusic.models.zoo.registry import DEFAULT_TAGGER
        from specmusic.models.resolve import resolve_model

        ref = resolve_model(str(model or DEFAULT_TAGGER), allow=("named", "file"))  # a tagger: bundled, or converted once
        loaded = load_model(ref.ensure_path(weights=weights, progress=progress), threads=1 if jobs > 1 or cluster else None)
        tracks, failures = discover_tracks(paths, labels_from_folders=False, extensions=AUDIO_EXTENSIONS | {".npz"})
        for f in failures:
            err(f"Error: {f.message}")
        if not tracks and not failures:
            raise InputError(
                "no audio files or .npz arrays found in the inputs — extensions read: "
                ".wav .flac .mp3 .ogg .opus .au .aiff .npz"
            )
        n_failed = len(failures)
        out = sys.stdout
        width = max([len(display_path(t.path)) for t in tracks] + [4])
        label_width = max(len(lab) for lab in loaded.labels)  # whole labels: no cut names
        if not json_lines and tracks:
            head = "  ".join(f"{'top' + str(i + 1):<{label_width + 5}}" for i in range(min(top, loaded.n_classes)))
            out.write(f"{'file':<{width}}  {head}".rstrip() + "\n")
        n_windows = parse_windows(windows)
        results = predict_files(
            loaded, [t.path for t in tracks], jobs=jobs, cluster=cluster, progress=progress, windows=n_windows
        )
        for result in results:
            name = display_path(result.path)
            if not result.ok:
                n_failed += 1
                err(f"Error: {result.error}")
                continue
            assert result.probabilities is not None
            for line in result.warnings:
                err(f"warning: {line}")
            best = top_k(loaded, result.probabilities, top)
            if json_lines:
                record = {
                    "path": result.path,  # as os.fsdecode gives it: json_line writes \udcNN for non-UTF-8 bytes
                    "label": best[0][0],
                    "top": [{"label": lab, "probability": round(p, 4)} for lab, p in best],
                    "probabilities": {lab: round(float(p), 4) for lab, p in zip(loaded.labels, result.probabilities)},
                    "duration": None if result.duration is None else round(result.duration, 3),
                    "windows": result.windows,  # windows the network saw (--windows)
                    "warnings": result.warnings,
                }
                out.write(json_line(record))
            else:
                cells = "  ".join(f"{lab:<{label_width}} {p:4.2f}" for lab, p in best)
                out.write(f"{name:<{width}}  {cells}".rstrip() + "\n")
            out.flush()
        total = len(tracks) + len(failures)
        if n_failed:
            err(f"classify: {total - n_failed} classified, {n_failed} failed")
            raise typer.Exit(1)
