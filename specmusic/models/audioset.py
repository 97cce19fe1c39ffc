"""AudioSet's vocabulary as specmusic ships it: the 527 classes in the output order of AudioSet
taggers, and the music classes drawn from the AudioSet ontology's hierarchy.

Standard library only (``classify``'s cold path reads it). The data lie in ``specmusic/models/data/``:

* ``audioset_class_labels_indices.csv`` — AudioSet's ``class_labels_indices.csv`` (``index,mid,
  display_name``), byte for byte the copy in EfficientAT's ``metadata/`` (MIT);
* ``audioset_music.txt`` — the display names of "Music" (``/m/04rlf``) and of every class below it
  in the ontology (``child_ids`` followed transitively: instruments, genres, music roles, moods)
  that is one of the 527, one a line in output order, under a ``#`` header that states its source.
  The 527-row CSV holds no hierarchy: :func:`music_labels_from_ontology` derives the list from the
  ontology's ``ontology.json`` (github.com/audioset/ontology, (c) Google, CC BY-SA 4.0), and
  ``python -m specmusic.models.audioset ontology.json`` rewrites the file.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from specmusic.errors import InputError

__all__ = [
    "CLASSES_FILE",
    "LABELS_CSV",
    "MUSIC_FILE",
    "MUSIC_ID",
    "N_CLASSES",
    "ONTOLOGY_URL",
    "audioset_labels",
    "audioset_music_labels",
    "music_labels_from_ontology",
    "read_audioset_classes",
    "read_audioset_labels",
    "read_label_list",
    "write_music_labels",
]

DATA_DIR = Path(__file__).resolve().parent / "data"
LABELS_CSV = "audioset_class_labels_indices.csv"
#: The package's copy of AudioSet's 527 classes (``index,mid,display_name``).
CLASSES_FILE = DATA_DIR / LABELS_CSV
#: The music classes, one display name a line (:func:`audioset_music_labels`).
MUSIC_FILE = DATA_DIR / "audioset_music.txt"
N_CLASSES = 527
#: The ontology node "Music".
MUSIC_ID = "/m/04rlf"
ONTOLOGY_URL = "https://github.com/audioset/ontology"


def read_audioset_classes(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """The 527 AudioSet classes as ``(mid, display name)``, in output order, from ``class_labels_indices.csv``.

    The file's header is ``index,mid,display_name`` and its rows are numbered 0..526 in order.

    Raises
    ------
    InputError
        Missing file, another header, rows out of order, or not 527 of them.
    """
    import csv  # only here: classify's cold path never reads the CSV

    src = Path(path).expanduser()
    try:
        with open(src, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except OSError as exc:
        raise InputError(f"{src}: cannot read the AudioSet labels ({exc.strerror or exc}) — pass {LABELS_CSV}") from None
    if not rows or [c.strip() for c in rows[0]] != ["index", "mid", "display_name"]:
        raise InputError(f"{src}: header is not index,mid,display_name — pass AudioSet's {LABELS_CSV}")
    body = rows[1:]
    if len(body) != N_CLASSES or any(len(r) != 3 or r[0].strip() != str(i) for i, r in enumerate(body)):
        raise InputError(f"{src}: expected {N_CLASSES} rows numbered 0..{N_CLASSES - 1} — pass AudioSet's {LABELS_CSV}")
    return [(r[1], r[2]) for r in body]


def read_audioset_labels(path: str | os.PathLike[str]) -> list[str]:
    """The 527 AudioSet display names, in output order (:func:`read_audioset_classes`).

    Raises
    ------
    InputError
        As :func:`read_audioset_classes`.
    """
    return [name for _, name in read_audioset_classes(path)]


@functools.cache
def audioset_labels() -> tuple[str, ...]:
    """The 527 AudioSet display names in output order, from the package's :data:`CLASSES_FILE`."""
    return tuple(read_audioset_labels(CLASSES_FILE))


def read_label_list(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """Labels from a text file, one a line (surrounding spaces dropped; blank lines and lines
    starting with ``#`` skipped), in file order without repeats.

    Raises
    ------
    InputError
        The file cannot be read, is not UTF-8 text, or names no label.
    """
    src = Path(path).expanduser()
    try:
        text = src.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{src}: not UTF-8 text — give a text file with one label a line") from None
    except OSError as exc:
        raise InputError(f"{src}: cannot read the labels ({exc.strerror or exc}) — check the path") from None
    lines = (line.strip() for line in text.splitlines())
    labels = tuple(dict.fromkeys(line for line in lines if line and not line.startswith("#")))
    if not labels:
        raise InputError(f"{src}: no label in the file — write one label a line")
    return labels


@functools.cache
def audioset_music_labels() -> tuple[str, ...]:
    """AudioSet's music classes (the ontology's "Music" and every class below it), in output order,
    from the package's :data:`MUSIC_FILE`."""
    return read_label_list(MUSIC_FILE)


def music_labels_from_ontology(
    ontology: Sequence[Mapping[str, Any]], classes: Sequence[tuple[str, str]], *, root: str = MUSIC_ID
) -> list[str]:
    """The display names of ``root`` and of every node below it (``child_ids`` followed transitively)
    that are among ``classes``, in the order of ``classes``.

    A node with several parents counts when any of them lies below ``root`` (Cowbell: under
    Percussion and under Cattle); abstract and blacklisted nodes that are not among ``classes`` add
    nothing themselves but their children are still followed.

    Parameters
    ----------
    ontology : the objects of the ontology's ``ontology.json`` (``id``, ``name``, ``child_ids``, …)
    classes : ``(mid, display name)`` in output order (:func:`read_audioset_classes`)
    root : the ontology id of the subtree (default: "Music")

    Raises
    ------
    InputError
        ``root`` or a child id is not in the ontology.
    """
    children = {node["id"]: list(node.get("child_ids", [])) for node in ontology}
    if root not in children:
        raise InputError(f"the ontology has no node {root} — pass AudioSet's ontology.json ({ONTOLOGY_URL})")
    below, todo = set(), [root]
    while todo:
        node = todo.pop()
        if node in below:
            continue
        if node not in children:
            raise InputError(f"the ontology names a child {node} it does not define — pass AudioSet's ontology.json")
        below.add(node)
        todo.extend(children[node])
    return [name for mid, name in classes if mid in below]


def write_music_labels(ontology_json: str | os.PathLike[str], out: str | os.PathLike[str] = MUSIC_FILE) -> list[str]:
    """Derive the music classes from ``ontology.json`` and the package's 527 classes, and write them
    to ``out`` (one a line, under a header that states the source and its sha256), atomically.

    Raises
    ------
    InputError
        The ontology cannot be read or lacks the "Music" node.
    """
    import hashlib
    import json

    from specmusic.fileio import atomic_write

    src = Path(ontology_json).expanduser()
    try:
        data = src.read_bytes()
        ontology = json.loads(data)
    except (OSError, ValueError) as exc:
        raise InputError(f"{src}: cannot read the ontology ({exc}) — pass AudioSet's ontology.json") from None
    classes = read_audioset_classes(CLASSES_FILE)
    labels = music_labels_from_ontology(ontology, classes)
    index = {name: i for i, (_, name) in enumerate(classes)}
    header = [
        'AudioSet\'s music classes: "Music" (/m/04rlf) and every class below it in the AudioSet ontology',
        "(child_ids followed transitively) that is one of the 527 classes of class_labels_indices.csv,",
        f"one display name a line in output order: {len(labels)} labels, indices "
        + ", ".join(_ranges(sorted(index[name] for name in labels))) + ".",
        f"Source: ontology.json of {ONTOLOGY_URL} ({len(data):,} bytes,",
        f"sha256 {hashlib.sha256(data).hexdigest()}), (c) Google Inc., CC BY-SA 4.0.",
        "Written by: python -m specmusic.models.audioset ontology.json (music_labels_from_ontology).",
    ]
    text = "".join(f"# {line}\n" for line in header) + "".join(f"{name}\n" for name in labels)
    atomic_write(Path(out), lambda f: f.write(text), "w")
    return labels


def _ranges(indices: list[int]) -> list[str]:
    """``[1, 2, 3, 7]`` → ``["1-3", "7"]``."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return [f"{a}-{b}" if b > a else f"{a}" for a, b in runs]


def main(argv: list[str] | None = None) -> int:
    """``python -m specmusic.models.audioset ONTOLOGY_JSON``: rewrite the package's music list."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m specmusic.models.audioset ontology.json", file=sys.stderr)
        return 2
    try:
        labels = write_music_labels(args[0])
    except InputError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(labels)} music labels → {MUSIC_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
