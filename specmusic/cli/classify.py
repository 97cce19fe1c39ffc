"""``specmusic classify``: audio → labels with an ONNX model (onnxruntime + numpy; no torch, no librosa)."""

from __future__ import annotations

from pathlib import Path

import typer

from specmusic.cli._options import JOBS, PROGRESS, cli_errors, err, expand_stdin


def classify_cli(
    inputs: list[str] = typer.Argument(
        None, help="Audio files, .npz spectro arrays or folders (recursive); '-' reads paths from stdin."
    ),
    model: Path = typer.Option(
        None, "--model", "-m", help="A specmusic model.onnx (e.g. RUN/model.onnx from train); default: pretrained tagger."
    ),
    weights: str = typer.Option(
        None, "--weights", envvar="SPECMUSIC_WEIGHTS",
        help="Local copy of the default tagger's best_model.pth (or its models/ tree) instead of downloading it.",
    ),
    top: int = typer.Option(3, "--top", "-k", min=1, help="Labels shown per file."),
    json_lines: bool = typer.Option(False, "--json", help="JSON Lines on stdout, one object per file."),
    jobs: int = JOBS,
    progress: bool = PROGRESS,
) -> None:
    """Classify audio files with a trained model: a top-k table, or JSON Lines with --json.

    Example: specmusic classify song.wav --model runs/cnn/model.onnx
    (without --model: the default pretrained music tagger; see docs/pretrained.md)
    """
    import sys

    from specmusic.audio import AUDIO_EXTENSIONS
    from specmusic.data import discover_tracks
    from specmusic.fileio import display_path, json_line
    from specmusic.errors import InputError
    from specmusic.inference import load_model, predict_files, top_k

    with cli_errors():
        paths = expand_stdin(inputs)
        if not paths:
            raise InputError("no input — give audio files or folders, or '-' for paths on stdin")
        if model is None:  # the default pretrained tagger: downloaded and converted once, then cached
            from specmusic.models.pretrained import ensure_default_model

            model = ensure_default_model(weights=weights, progress=progress)
        loaded = load_model(model, threads=1 if jobs > 1 else None)
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
        for result in predict_files(loaded, [t.path for t in tracks], jobs=jobs, progress=progress):
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
