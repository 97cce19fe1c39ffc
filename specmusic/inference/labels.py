"""Which of a model's labels ``classify`` reports (``--labels``): all of them, a named set, or the
labels listed in a file.

Named sets (:data:`LABEL_SETS`):

* ``all`` — every label of the model (the default);
* ``music`` — AudioSet's music classes: "Music" and every class below it in the AudioSet ontology
  (instruments, genres, music roles, moods; :func:`specmusic.models.audioset.audioset_music_labels`).

Anything else names a text file with one label a line (blank lines and ``#`` lines skipped). A set
keeps scores as they are: multi-label sigmoid scores are not renormalised, and a softmax
distribution cut to a subset is not rescaled either.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from specmusic.errors import ConfigError
from specmusic.models.audioset import audioset_music_labels, read_label_list

__all__ = ["ALL_LABELS", "LABEL_SETS", "LabelSelection", "select_labels"]

ALL_LABELS = "all"
#: The named label sets of ``--labels`` besides ``all``: name → the labels it keeps.
LABEL_SETS: dict[str, Callable[[], Sequence[str]]] = {"music": audioset_music_labels}


@dataclass(frozen=True)
class LabelSelection:
    """The labels of a model that are reported, in the model's output order.

    Attributes
    ----------
    indices : their positions in the model's output [shape=(n_kept,)], ascending; None: every label
    names : their names, in the same order
    """

    indices: np.ndarray | None
    names: list[str]

    def pick(self, probabilities: np.ndarray) -> np.ndarray:
        """The kept scores of one track's ``probabilities`` [shape=(n_classes,)] → [shape=(n_kept,)], unchanged."""
        return probabilities if self.indices is None else probabilities[self.indices]


def select_labels(labels: Sequence[str], which: str | os.PathLike[str] | None, *, model_name: str) -> LabelSelection:
    """The labels of a model (``labels``, in output order) that ``--labels which`` keeps.

    Parameters
    ----------
    labels : the model's labels in output order
    which : ``all`` or None (every label), a name of :data:`LABEL_SETS`, or a text file with one label a line
    model_name : the model as messages name it

    Raises
    ------
    ConfigError
        ``which`` is neither a set nor an existing file, or the model lacks some of the labels it names.
    InputError
        The file cannot be read or names no label.
    """
    if which is None or str(which) == ALL_LABELS:
        return LabelSelection(None, list(labels))
    text = os.fspath(which)
    if text in LABEL_SETS:
        wanted = tuple(LABEL_SETS[text]())
    elif Path(text).expanduser().is_file():
        wanted = read_label_list(text)
    else:
        sets = ", ".join([ALL_LABELS, *LABEL_SETS])
        raise ConfigError(f"--labels {text}: no such label set or file — use one of {sets}, or a text file "
                          "with one label a line")  # fmt: skip
    position = {label: i for i, label in enumerate(labels)}
    missing = [label for label in wanted if label not in position]
    if missing:
        raise ConfigError(_missing_message(labels, wanted, missing, which=text, model_name=model_name))
    indices = np.array(sorted(position[label] for label in wanted), dtype=np.intp)
    return LabelSelection(indices, [labels[i] for i in indices])


def _missing_message(labels: Sequence[str], wanted: Sequence[str], missing: list[str], *, which: str,
                     model_name: str) -> str:  # fmt: skip
    """One line: which of ``wanted`` the model lacks, and what to do."""
    if which in LABEL_SETS and len(missing) == len(wanted):
        return (f"{model_name} has none of the {len(wanted)} labels of --labels {which} (AudioSet classes) — "
                f"use a model with AudioSet's labels (-m audioset-mn04), or --labels {ALL_LABELS}")  # fmt: skip
    folded = {label.casefold(): label for label in labels}
    more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
    hint = next((f" (did you mean {folded[m.casefold()]!r}?)" for m in missing if m.casefold() in folded), "")
    return (f"{model_name} has no label {', '.join(repr(m) for m in missing[:3])}{more} of the {len(wanted)} "
            f"of --labels {which}{hint} — list the model's labels exactly as it names them (classify --json "
            "shows them), one a line")  # fmt: skip
