"""Batch classification: many files through one model, in input order, on workers or a Dask cluster,
a file that fails reported and the rest carried on (:func:`predict_files`); and what ``specmusic
classify`` prints of it (:func:`open_classifier`, :class:`Classifier`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from specmusic.errors import InputError, SpecmusicError
from specmusic.fileio import display_path
from specmusic.inference.analysis import analyse_track
from specmusic.inference.labels import LabelSelection, select_labels
from specmusic.inference.model import Model, load_model
from specmusic.models.resolve import resolve_model
from specmusic.windowing import DEFAULT_WINDOWS

__all__ = ["ClassifiedTrack", "Classifier", "TrackResult", "open_classifier", "predict_files", "top_k", "top_labels"]


@dataclass(frozen=True)
class TrackResult:
    """What :func:`predict_files` yields per input: probabilities, or the error that stopped it."""

    path: str
    probabilities: np.ndarray | None = None
    duration: float | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)  # silence, mis-scaled samples, shorter than a window
    windows: int | None = None  # windows (chunks) the network saw

    @property
    def ok(self) -> bool:
        """True when the track was classified."""
        return self.error is None


def _classify_one(path: str, model: Model | str, windows: int | None = DEFAULT_WINDOWS) -> TrackResult:
    """One file's result (a failure in ``error``); ``model`` as a path is loaded once per worker process."""
    try:
        if isinstance(model, str):
            from specmusic.batch import require_visible, worker_cached

            require_visible(path)
            model = worker_cached(("classify", model), lambda: load_model(model, threads=1))  # type: ignore[arg-type]
        notes: list[str] = []
        result = analyse_track(model, path, windows=windows, warnings=notes)  # type: ignore[arg-type]
        return TrackResult(path, result.probabilities, result.duration, warnings=notes, windows=result.windows)
    except SpecmusicError as exc:
        return TrackResult(path, error=str(exc))
    except MemoryError:
        return TrackResult(path, error=f"{display_path(path)}: out of memory — split the file")
    except OSError as exc:
        return TrackResult(path, error=f"{display_path(path)}: cannot read ({exc.strerror or exc}) — check the file")


def predict_files(
    model: Model,
    paths: Sequence[str],
    *,
    jobs: int = 1,
    cluster: str | None = None,
    progress: bool | None = None,
    windows: int | None = DEFAULT_WINDOWS,
) -> Iterator[TrackResult]:
    """Classify many files, in input order; a file that fails yields a result with ``error``.

    Parameters
    ----------
    model : from :func:`~specmusic.inference.load_model` (workers reload it from ``model.path``)
    paths : audio files or ``.npz`` spectro arrays
    jobs : worker processes (each runs onnxruntime and decodes on one thread)
    cluster : run on Dask instead (``local[:N]`` | ``tcp://HOST:PORT``; :mod:`specmusic.distributed`)
    progress : progress bar on stderr (None: only on a terminal)
    windows : evenly spread windows analysed per track at most (None: every chunk)

    Yields
    ------
    TrackResult
    """
    from specmusic.batch import open_executor, run_tasks

    show = sys.stderr.isatty() if progress is None else progress
    bar: Any = None
    if show:  # no bar: skip importing tqdm (cold start matters here)
        from tqdm import tqdm

        bar = tqdm(total=len(paths), desc="classify", unit="track", file=sys.stderr, dynamic_ncols=True)
    try:
        with open_executor(jobs=jobs, cluster=cluster, n_items=len(paths)) as executor:
            target: Model | str = model if executor is None else model.path
            for _, result in run_tasks(
                executor, _classify_one, paths, args=(target, windows), ordered=True,
                on_failure=lambda path, error: TrackResult(path, error=error),
            ):  # fmt: skip
                if bar is not None:
                    bar.update(1)
                yield result
    finally:
        if bar is not None:
            bar.close()


def top_k(model: Model, probabilities: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` most probable labels with their probabilities, best first."""
    return top_labels(model.labels, probabilities, k)


def top_labels(labels: Sequence[str], probabilities: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` most probable of ``labels`` (one score each [shape=(len(labels),)]) with their scores,
    best first (ties: in label order)."""
    order = np.argsort(-probabilities, kind="stable")[: max(1, k)]
    return [(labels[i], float(probabilities[i])) for i in order]


# -- what `specmusic classify` prints ------------------------------------------------------------------
@dataclass(frozen=True)
class ClassifiedTrack:
    """One input's outcome, ready to print: its JSON Lines record and its table row, or its error.

    Attributes
    ----------
    result : what :func:`predict_files` gave
    record : the JSON object of ``--json`` (path, best label, top k, the probability of every
        reported label, duration, windows, warnings); None when the track failed
    row : its line of the table (no newline); None when the track failed
    """

    result: TrackResult
    record: dict[str, Any] | None = None
    row: str | None = None

    @property
    def ok(self) -> bool:
        """True when the track was classified."""
        return self.result.ok


@dataclass(frozen=True)
class Classifier:
    """A model and the tracks found in the inputs of one ``classify`` run (:func:`open_classifier`).

    Attributes
    ----------
    model : the loaded model
    paths : the audio files and ``.npz`` arrays found, in input order
    failures : one error message for each input that could not be searched or read as a track
    jobs, cluster, progress : how :meth:`classify` runs (as :func:`predict_files`)
    labels : the labels reported (``--labels``; default: every label of the model)
    """

    model: Model
    paths: list[str]
    failures: list[str]
    jobs: int = 1
    cluster: str | None = None
    progress: bool | None = None
    labels: LabelSelection | None = None

    @property
    def _kept(self) -> LabelSelection:
        return self.labels if self.labels is not None else LabelSelection(None, list(self.model.labels))

    @property
    def _widths(self) -> tuple[int, int]:
        """Widths of the table's file column and of a label (whole labels: no cut names)."""
        return max([len(display_path(p)) for p in self.paths] + [4]), max(len(lab) for lab in self._kept.names)

    def header(self, top: int) -> str | None:
        """The table's first line (no newline) for ``top`` labels a file; None when no track was found."""
        if not self.paths:
            return None
        width, label_width = self._widths
        head = "  ".join(f"{'top' + str(i + 1):<{label_width + 5}}" for i in range(min(top, len(self._kept.names))))
        return f"{'file':<{width}}  {head}".rstrip()

    def classify(self, *, top: int = 3, windows: int | None = DEFAULT_WINDOWS) -> Iterator[ClassifiedTrack]:
        """Run the model on every track, in input order (:func:`predict_files`), each with its ``top``
        best labels as a JSON record and a table row.

        Yields
        ------
        ClassifiedTrack
        """
        width, label_width = self._widths
        kept = self._kept
        results = predict_files(self.model, self.paths, jobs=self.jobs, cluster=self.cluster, progress=self.progress,
                                windows=windows)  # fmt: skip
        for result in results:
            if not result.ok:
                yield ClassifiedTrack(result)
                continue
            assert result.probabilities is not None
            scores = kept.pick(result.probabilities)  # as they are: nothing renormalised
            best = top_labels(kept.names, scores, top)
            record = {
                "path": result.path,  # as os.fsdecode gives it: json_line writes \udcNN for non-UTF-8 bytes
                "label": best[0][0],
                "top": [{"label": lab, "probability": round(p, 4)} for lab, p in best],
                "probabilities": {lab: round(float(p), 4) for lab, p in zip(kept.names, scores)},
                "duration": None if result.duration is None else round(result.duration, 3),
                "windows": result.windows,  # windows the network saw (--windows)
                "warnings": result.warnings,
            }
            cells = "  ".join(f"{lab:<{label_width}} {p:4.2f}" for lab, p in best)
            yield ClassifiedTrack(result, record, f"{display_path(result.path):<{width}}  {cells}".rstrip())


def open_classifier(
    inputs: Sequence[str],
    *,
    model: str | os.PathLike[str] | None = None,
    weights: str | os.PathLike[str] | None = None,
    labels: str | os.PathLike[str] | None = None,
    jobs: int = 1,
    cluster: str | None = None,
    progress: bool | None = None,
) -> Classifier:
    """The model of ``--model`` loaded, and the tracks of ``inputs`` found: what ``classify`` runs.

    Parameters
    ----------
    inputs : audio files, ``.npz`` spectro arrays or folders (searched recursively)
    model : a model file or a pretrained network's name (:func:`specmusic.models.resolve.resolve_model`);
        None: :data:`~specmusic.models.zoo.registry.DEFAULT_TAGGER`, bundled
    weights : a network that is not bundled: its local checkpoint (else the cache or a download)
    labels : the labels to report: ``all`` (None), ``music`` or a file of labels
        (:func:`~specmusic.inference.labels.select_labels`)
    jobs, cluster : how the tracks will run (``jobs > 1`` or a cluster: one onnxruntime thread here)
    progress : download bar and conversion note, and later the progress bar (None: only on a terminal)

    Raises
    ------
    ModelError, ConfigError
        The model cannot be had or loaded, or it lacks labels that ``labels`` names.
    InputError
        No audio file or ``.npz`` array in the inputs, and nothing unreadable either; a labels
        file that cannot be read.
    """
    from specmusic.audio import AUDIO_EXTENSIONS
    from specmusic.data import discover_tracks

    if model is None:
        from specmusic.models.zoo.registry import DEFAULT_TAGGER

        model = DEFAULT_TAGGER
    ref = resolve_model(str(model), allow=("named", "file"))  # a network: bundled, or converted once
    path = ref.ensure_path(weights=weights, progress=progress)
    loaded = load_model(path, threads=1 if jobs > 1 or cluster else None)
    name = (loaded.meta.get("pretrained") or {}).get("name") or display_path(loaded.path)
    kept = select_labels(loaded.labels, labels, model_name=str(name))
    tracks, failures = discover_tracks(list(inputs), labels_from_folders=False, extensions=AUDIO_EXTENSIONS | {".npz"})
    if not tracks and not failures:
        raise InputError(
            "no audio files or .npz arrays found in the inputs — extensions read: "
            ".wav .flac .mp3 .ogg .opus .au .aiff .npz"
        )
    return Classifier(loaded, [t.path for t in tracks], [f.message for f in failures], jobs, cluster, progress, kept)
