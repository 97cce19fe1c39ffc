"""``specmusic describe`` from tracks to outputs: measure, draw the plots, build and write the JSON document.

:func:`describe_dataset` checks where it will write before any file is read, runs
:func:`~specmusic.describe.run.describe_tracks`, draws :mod:`~specmusic.describe.plots` and returns the
document of :func:`~specmusic.describe.document.description_record` (written to ``json_file`` too).
Each file's analysis is kept as it comes (:mod:`~specmusic.describe.journal`), so an interrupted
run, rerun, analyses only the rest.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from specmusic.data import FailedInput, Track
from specmusic.describe.analyze import DescribeConfig
from specmusic.describe.document import description_record
from specmusic.describe.journal import DescribeJournal, describe_journal_path
from specmusic.describe.run import describe_tracks
from specmusic.fileio import display_path, ensure_writable_dir, sweep_stale_temps, write_json_atomic

__all__ = ["describe_dataset"]


def describe_dataset(
    tracks: Sequence[Track],
    *,
    listing_failures: Sequence[FailedInput] = (),
    inputs: Sequence[str] = (),
    config: DescribeConfig | None = None,
    split_lists: Mapping[str, str | os.PathLike[str] | None] | None = None,
    json_file: str | os.PathLike[str] | None = None,
    plots_dir: str | os.PathLike[str] | None = None,
    jobs: int = 1,
    progress: bool | None = None,
    on_error: Callable[[str], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Describe ``tracks``: the JSON document, also written to ``json_file``, and the PNGs in ``plots_dir``.

    Parameters
    ----------
    tracks : from :func:`specmusic.data.gather_inputs`
    listing_failures : inputs that failed while listing: reported to ``on_error`` first, then in ``failed``
    inputs : what the document says was described (paths, folders, the manifest)
    config : thresholds (default :class:`~specmusic.describe.analyze.DescribeConfig`)
    split_lists : ``{"train": path, "valid": path, "test": path}`` (any may be missing or None)
    json_file : also write the document here (atomically); the plots' paths in it are relative to its folder
        (to the working directory without one)
    plots_dir : folder for the PNGs of :func:`specmusic.describe.plots.save_plots` (none when no clip was read)
    jobs : worker processes
    progress : progress bar on stderr (None: only on a terminal)
    on_error : called with each listing failure's and unreadable file's one-line message as it happens
    on_note : called with a ``note:`` line when files analysed by an interrupted run are taken from its journal

    Returns
    -------
    The document (``kind: specmusic-describe``), with ``base``: the folder its relative paths start from.

    Raises
    ------
    InputError
        ``json_file``'s folder or ``plots_dir`` cannot be written (checked before any file is read); a split
        list that does not exist or names a track twice.
    """
    emit = on_error or (lambda _line: None)
    for failure in listing_failures:
        emit(failure.message)
    json_path = None if json_file is None else Path(json_file)
    started = time.time()
    if json_path is not None:
        folder = json_path.parent if str(json_path.parent) else Path(".")
        ensure_writable_dir(folder, option="-o")
        sweep_stale_temps(folder, before=started, targets=[json_path.name])  # what a killed run left
    if plots_dir is not None:
        ensure_writable_dir(plots_dir, option="--plots")
        sweep_stale_temps(plots_dir, before=started)
    config = config or DescribeConfig()
    journal = DescribeJournal.open(describe_journal_path([t.path for t in tracks], json_path), config)
    if journal is not None and len(journal) and on_note is not None:
        on_note(f"note: resuming an interrupted run — {len(journal)} file(s) it analysed are kept "
                f"({display_path(journal.path)})")
    try:
        desc = describe_tracks(tracks, config=config, split_lists=split_lists, listing_failures=listing_failures,
                               jobs=jobs, progress=progress, on_error=emit, journal=journal)
        plot_paths: dict[str, str] = {}
        if plots_dir is not None and desc.tracks:
            from specmusic.describe.plots import save_plots

            base = json_path.resolve().parent if json_path is not None else Path.cwd()
            plot_paths = {k: os.path.relpath(p.resolve(), base) for k, p in save_plots(desc, plots_dir).items()}
        record = description_record(desc, inputs=list(inputs), plots=plot_paths)
        record["base"] = os.getcwd()  # the folder relative paths in "files" and "duplicates" start from
        if json_path is not None:
            write_json_atomic(json_path, record)
    except BaseException:
        if journal is not None:
            journal.close()  # kept: the rerun analyses only the rest
        raise
    if journal is not None:
        journal.finish()
    return record
