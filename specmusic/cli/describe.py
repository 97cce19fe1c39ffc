"""``specmusic describe``: what is in a labelled audio dataset — per-label table, duplicates, leakage, plots."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from specmusic.cli._options import JOBS, PROGRESS, cli_errors, err, gather_tracks


def describe_cli(
    inputs: list[str] = typer.Argument(
        None, help="Audio files or folders (recursive; label = first sub-folder); '-' reads paths from stdin."
    ),
    manifest: Path = typer.Option(
        None, "--manifest", help="CSV or JSONL with path,label[,group] columns (paths relative to it)."
    ),
    labels: bool = typer.Option(True, "--labels/--no-labels", help="Take labels from folder names."),
    split_file: Path = typer.Option(None, "--split-file", help="GTZAN-style list of training tracks (as train)."),
    valid_file: Path = typer.Option(None, "--valid-file", help="List of validation tracks (as train)."),
    test_file: Path = typer.Option(None, "--test-file", help="List of test tracks (as train)."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON document on stdout instead of the table."),
    output: str = typer.Option(
        None, "--output", "-o", help="Also write the JSON document to this file ('-': stdout, as --json)."
    ),
    plots: Path = typer.Option(
        None, "--plots", help="Folder for PNGs: clips per label, durations, loudness, mean spectrogram per label."
    ),
    min_similarity: float = typer.Option(
        0.75, "--min-similarity", min=0.5, max=1.0,
        help="Near duplicates: least fingerprint bit agreement (0.5 = unrelated audio, 1 = same samples).",
    ),
    min_overlap: float = typer.Option(
        3.0, "--min-overlap", min=0.1, help="Near duplicates: least shared audio in seconds."
    ),
    imbalance_ratio: float = typer.Option(
        0.5, "--imbalance-ratio", min=0.01, max=1.0,
        help="Warn for a label with fewer clips than this x the median label (or more than the median / this).",
    ),
    silence_db: float = typer.Option(
        -90.0, "--silence-db", help="A 100 ms stretch whose peak stays below this (dBFS) is digital silence."
    ),
    clip_level: float = typer.Option(
        0.999, "--clip-level", min=0.0, help="Magnitude (full scale 1) at which 3+ samples in a row count as clipping."
    ),
    jobs: int = JOBS,
    progress: bool = PROGRESS,
) -> None:
    """Describe a dataset: per-label clips, durations, formats, loudness; duplicates and split leakage.

    A table on stdout (the JSON instead with --json); -o FILE.json also writes the JSON to a file, --plots
    DIR the PNGs. Unreadable files are listed and the exit code is 1, the rest still described. Duplicates are found by a fingerprint that
    survives gain, MP3/Ogg re-encoding, resampling and a different start (docs/describe.md).

    Example: specmusic describe ~/gtzan --split-file train.txt --test-file test.txt --plots plots -o gtzan.json
    """
    from dataclasses import replace

    from specmusic.describe import DescribeConfig, FingerprintConfig, describe_dataset, format_table
    from specmusic.outputs import check_not_an_input, check_output_extension

    with cli_errors():
        check_output_extension(output, extensions=(".json",), what="describe writes a JSON document")
        tracks, failures = gather_tracks(inputs, manifest, labels=labels, require_audio=True)
        json_file = None if output in (None, "-") else Path(output)
        check_not_an_input(json_file, [*(t.path for t in tracks), manifest, split_file, valid_file, test_file])
        config = DescribeConfig(
            clip_level=clip_level, silence_db=silence_db, imbalance_ratio=imbalance_ratio,
            fingerprint=replace(FingerprintConfig(), min_similarity=min_similarity, min_overlap=min_overlap),
        )
        record = describe_dataset(
            tracks, listing_failures=failures, inputs=[*(inputs or []), *([str(manifest)] if manifest else [])],
            config=config, split_lists={"train": split_file, "valid": valid_file, "test": test_file},
            json_file=json_file, plots_dir=plots, jobs=jobs, progress=progress,
            on_error=lambda line: err(f"Error: {line}"), on_note=err,
        )
        if as_json or output == "-":
            sys.stdout.write(json.dumps(record, indent=2) + "\n")
        else:
            sys.stdout.write(format_table(record) + "\n")
        sys.stdout.flush()
        dups = record["duplicates"]
        err(f"describe: {record['clips']} clips described, {len(record['failed'])} unreadable, {len(dups)} duplicate "
            f"pair(s), {sum(d['leakage'] for d in dups)} across splits"
            + (f"; JSON in {json_file}" if json_file is not None else "")
            + (f"; plots in {plots}" if record["plots"] else ""))
        if record["failed"]:
            raise typer.Exit(1)
