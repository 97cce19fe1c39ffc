"""Rows of a CSV file as vectors: ``recommend`` over a table of features (tempo, energy, ...).

Without ``columns``, every column whose cells all parse as numbers is a feature, except the
id column and *id-like* columns, which number rows rather than describe tracks:

* named like an id: ``id``, ``idx``, ``index``, ``key``, ``no``, ``row``, ``#``, ``Unnamed: 0``
  (pandas' index), or ending in ``_id``/``_idx``/``_index``/``Id``/``ID`` (``track_id``, ``trackId``);
* or holding whole numbers that count up by one down the file (row numbers: 0, 1, 2… or 1, 2, 3…),
  at least 3 rows.

Id-like columns are listed in :attr:`TabularSource.skipped`, columns with text in
:attr:`TabularSource.non_numeric` (``recommend`` names both on stderr); name an id-like column in
``columns`` to use it anyway.

``.tsv`` files are tab-separated, ``.csv`` comma-separated; other names and stdin are
tab-separated when the header line has tabs and no commas. Values of the id column must be unique.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO

import numpy as np

from specmusic.errors import InputError
from specmusic.fileio import display_path

__all__ = ["TabularSource", "read_tabular", "is_id_like"]

_ID_NAMES = {"id", "idx", "index", "key", "no", "nr", "row", "rowid", "row_id", "row_number", "rownum", "#", ""}
_ID_SUFFIX = re.compile(r"_(id|idx|index)$")  # on the lower-cased name
_CAMEL_ID = re.compile(r"[a-z0-9](Id|ID)$")  # trackId, songID


@dataclass
class TabularSource:
    """Rows of a CSV file as vectors (raw, unscaled)."""

    ids: list[str]
    columns: list[str]
    values: np.ndarray  # float64 [n, len(columns)]
    rows: list[dict[str, str]]
    skipped: list[str] = field(default_factory=list)  # id-like numeric columns left out
    non_numeric: list[str] = field(default_factory=list)  # columns left out for holding text


def is_id_like(name: str, values: Sequence[float]) -> bool:
    """Whether a numeric column numbers rows rather than describing them (see the module docstring)."""
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    if key in _ID_NAMES or key.startswith("unnamed:") or _ID_SUFFIX.search(key) or _CAMEL_ID.search(name.strip()):
        return True
    v = np.asarray(values, dtype=np.float64)
    return len(v) >= 3 and float(v[0]).is_integer() and bool(np.all(np.diff(v) == 1))


def _is_number(s: str | None) -> bool:
    try:
        return s is not None and math.isfinite(float(s))
    except ValueError:
        return False


def _read_rows(path: str, stdin: IO[str] | None, name: str) -> tuple[list[str], list[dict[str, str]]]:
    try:
        f = (stdin or sys.stdin) if path == "-" else open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"{name}: cannot open ({exc.strerror}) — check the path") from None
    with f if path != "-" else contextlib.nullcontext(f):
        try:
            text = f.read()
        except UnicodeDecodeError:
            raise InputError(f"{name}: not UTF-8 text — save the table as UTF-8 CSV or TSV") from None
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_delimiter(path, text.partition("\n")[0]))
    header = list(reader.fieldnames or [])
    rows = list(reader)
    if not header or not rows:
        raise InputError(f"{name}: no rows — give a CSV with a header line and one row per track")
    return header, rows


def _delimiter(path: str, header_line: str) -> str:
    """Tab for ``.tsv``, comma for ``.csv``; otherwise tab when the header has tabs and no commas."""
    lower = path.lower()
    if lower.endswith(".tsv"):
        return "\t"
    if lower.endswith(".csv"):
        return ","
    return "\t" if "\t" in header_line and "," not in header_line else ","


def _check_unique_ids(ids: list[str], id_column: str, name: str) -> None:
    first: dict[str, int] = {}
    for i, id_ in enumerate(ids):
        if id_ in first:
            raise InputError(
                f"{name}: id {id_!r} is on rows {first[id_] + 2} and {i + 2} of column {id_column!r} — ids must be "
                "unique; fix the file or name rows by another --id column"
            )
        first[id_] = i


def _numeric_columns(
    header: list[str], rows: list[dict[str, str]], id_column: str | None, name: str
) -> tuple[list[str], list[str]]:
    """The all-numeric columns that are features, and the id-like ones left out."""
    numeric = [c for c in header if c != id_column and all(_is_number(r.get(c)) for r in rows)]
    skipped = [c for c in numeric if is_id_like(c, [float(r[c]) for r in rows])]
    cols = [c for c in numeric if c not in skipped]
    if not cols:
        also = f" (id-like: {', '.join(skipped)})" if skipped else ""
        raise InputError(f"{name}: no all-numeric feature columns{also} — name them with --columns")
    return cols, skipped


def read_tabular(
    path: str | os.PathLike[str],
    *,
    id_column: str | None = None,
    columns: Sequence[str] | None = None,
    stdin: IO[str] | None = None,
) -> TabularSource:
    """Read numeric columns of a CSV as one vector a row.

    Parameters
    ----------
    path : CSV file, or ``-`` for stdin
    id_column : column naming each row (default: the row number, from 0)
    columns : numeric columns to use (default: every all-numeric column that is not id-like)

    Raises
    ------
    InputError
        Missing columns, a non-numeric or empty cell, no rows, an id on two rows.
    """
    p = os.fspath(path)
    name = "<stdin>" if p == "-" else display_path(p)
    header, rows = _read_rows(p, stdin, name)
    if id_column is not None and id_column not in header:
        raise InputError(f"{name}: no column {id_column!r} — columns are {', '.join(header)}")
    skipped: list[str] = []
    non_numeric: list[str] = []
    if columns:
        missing = [c for c in columns if c not in header]
        if missing:
            raise InputError(f"{name}: no column(s) {', '.join(missing)} — columns are {', '.join(header)}")
        cols = list(columns)
    else:
        cols, skipped = _numeric_columns(header, rows, id_column, name)
        non_numeric = [c for c in header if c != id_column and c not in cols and c not in skipped]
    values = np.empty((len(rows), len(cols)), np.float64)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            cell = r.get(c)
            try:
                values[i, j] = float(cell)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise InputError(
                    f"{name}: row {i + 2} column {c!r} is {cell!r}, not a number — fix the cell or leave the column out"
                ) from None
            if not math.isfinite(values[i, j]):
                raise InputError(f"{name}: row {i + 2} column {c!r} is {cell!r} (NaN vector) — fix or drop that row")
    ids = [r[id_column] for r in rows] if id_column else [str(i) for i in range(len(rows))]
    if id_column:
        _check_unique_ids(ids, id_column, name)
    return TabularSource(ids, cols, values, rows, skipped, non_numeric)
