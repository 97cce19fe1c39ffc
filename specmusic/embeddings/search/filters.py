"""Which library tracks may be recommended: ``--where`` conditions on their tags, and tags read on
demand for libraries that do not keep them.

``--where FIELD OP VALUE`` (repeatable: every condition must hold; ``--filter`` is the same option)::

    genre=jazz            equal, without case; several values: genre=jazz,blues (any of them);
                          a track with several genres ("Jazz; Soul") matches any of them
    artist!=nina simone   equal to none of the values
    title~live            contains, without case (!~: contains none)
    year=1990..1999       numbers: a value, or a range with both ends included (1990.., ..1999)
    duration<300          numbers: < <= > >= (duration in seconds)

Fields: the tags (:data:`specmusic.metadata.METADATA_FIELDS`: artist, albumartist, album, title, genre,
year, track, duration, musicbrainz_*) and the library's ``label``, ``group`` and ``dir`` (the parent
folder's name). ``--year 1990..1999`` is ``--where year=1990..1999``. A track without a value for the
field matches no ``=``, ``~`` or comparison, and every ``!=`` and ``!~``.

A library embedded before tags were kept has no tag columns: :class:`TagsOnDemand` reads each
track's tags the first time a filter, a group key, ``--explain`` or the output needs them (headers
only), with a note saying how to store them (rerun ``embed``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from specmusic.embeddings.records import TrackRow, folder_of
from specmusic.errors import InputError
from specmusic.metadata import METADATA_FIELDS, NUMBER_FIELDS, TrackMetadata, read_metadata

__all__ = ["FILTER_FIELDS", "Condition", "TagsOnDemand", "TrackFilter", "parse_filter"]

#: What ``--where`` may name.
FILTER_FIELDS = METADATA_FIELDS + ("label", "group", "dir")
_OPS = ("!=", "!~", "<=", ">=", "=", "~", "<", ">")
_EXPR = re.compile(r"^\s*([A-Za-z_]+)\s*(" + "|".join(re.escape(o) for o in _OPS) + r")\s*(.*?)\s*$")
_RANGE = re.compile(r"^(-?\d+(?:\.\d+)?)?\s*\.\.\s*(-?\d+(?:\.\d+)?)?$")
_HINT = "e.g. --where genre=jazz, --where 'year=1990..1999', --where 'duration<300', --where 'title~live'"


def _number(text: str, expr: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(f"--where {expr!r}: {text!r} is not a number — {_HINT}") from None


@dataclass(frozen=True)
class Condition:
    """One ``--where`` condition (see the module docstring)."""

    field: str
    op: str
    values: tuple[str, ...] = ()  # text: lower-cased
    low: float | None = None  # numbers: the inclusive range (=) or the bound (< <= > >=)
    high: float | None = None

    @classmethod
    def parse(cls, expr: str) -> Condition:
        """``FIELD OP VALUE``.

        Raises
        ------
        InputError
            Not of that form, an unknown field, a comparison on text, a value that is not a number.
        """
        m = _EXPR.match(expr)
        if not m or not m.group(3):
            raise InputError(f"--where {expr!r} is not FIELD=VALUE — {_HINT}")
        name, op, value = m.group(1).lower(), m.group(2), m.group(3)
        if name not in FILTER_FIELDS:
            raise InputError(f"--where {expr!r}: unknown field {name!r} — use one of {', '.join(FILTER_FIELDS)}")
        if name in NUMBER_FIELDS:
            if op in ("~", "!~"):
                raise InputError(f"--where {expr!r}: {name} is a number — use =, !=, <, <=, > or >=")
            if op in ("=", "!="):
                r = _RANGE.match(value)
                if r and (r.group(1) or r.group(2)):
                    low = float(r.group(1)) if r.group(1) else None
                    high = float(r.group(2)) if r.group(2) else None
                    return cls(name, op, low=low, high=high)
                exact = _number(value, expr)
                return cls(name, op, low=exact, high=exact)
            return cls(name, op, low=_number(value, expr))
        if op in ("<", "<=", ">", ">="):
            raise InputError(f"--where {expr!r}: {name} is text — use =, !=, ~ or !~")
        values = tuple(v.strip().casefold() for v in value.split(",") if v.strip())
        return cls(name, op, values=values)

    def _value(self, row: TrackRow) -> str | float | None:
        if self.field == "label":
            return row.label
        if self.field == "group":
            return row.group
        if self.field == "dir":
            return folder_of(row.id)
        return row.meta.value(self.field) if row.meta is not None else None

    def matches(self, row: TrackRow) -> bool:
        """Whether ``row`` (its ``meta`` read) meets the condition."""
        value = self._value(row)
        negated = self.op in ("!=", "!~")
        if value is None:
            return negated
        if self.field in NUMBER_FIELDS:
            x = float(value)
            if self.op in ("=", "!="):
                inside = (self.low is None or x >= self.low) and (self.high is None or x <= self.high)
                return inside != negated
            bound = float(self.low or 0.0)
            return {"<": x < bound, "<=": x <= bound, ">": x > bound, ">=": x >= bound}[self.op]
        text = str(value).casefold()
        if self.op in ("~", "!~"):
            hit = any(v in text for v in self.values)
        else:
            parts = {text, *(p.strip() for p in re.split(r"[;/]", text))} if self.field == "genre" else {text}
            hit = any(v in parts for v in self.values)
        return hit != negated


@dataclass(frozen=True)
class TrackFilter:
    """Conditions that must all hold (:func:`parse_filter`)."""

    conditions: tuple[Condition, ...]
    text: tuple[str, ...]  # as given, for messages

    @property
    def needs_tags(self) -> bool:
        """Whether a condition reads the tags (not only label, group or folder)."""
        return any(c.field in METADATA_FIELDS for c in self.conditions)

    def matches(self, row: TrackRow) -> bool:
        """Whether ``row`` meets every condition."""
        return all(c.matches(row) for c in self.conditions)

    def describe(self) -> str:
        """The conditions as given: ``genre=jazz and year=1990..1999``."""
        return " and ".join(self.text)


def parse_filter(where: Sequence[str] | None = None, *, year: str | None = None) -> TrackFilter | None:
    """``--where`` conditions (and ``--year``) as a :class:`TrackFilter`; None when there are none.

    Raises
    ------
    InputError
        A condition that does not parse (:meth:`Condition.parse`).
    """
    texts = [w for w in (where or []) if w.strip()]
    if year:
        texts.append(f"year={year}")
    if not texts:
        return None
    return TrackFilter(tuple(Condition.parse(t) for t in texts), tuple(t.strip() for t in texts))


class TagsOnDemand:
    """Fill in the tags of rows whose library keeps none (read from the file once; a note the first time).

    Parameters
    ----------
    name : the library, as the note names it
    on_note : where the note goes
    """

    def __init__(self, name: str, on_note: Callable[[str], None] | None) -> None:
        self.name, self.on_note = name, on_note
        self._cache: dict[str, TrackMetadata] = {}
        self._noted = False

    def __call__(self, row: TrackRow, *, library_row: bool = True) -> TrackRow:
        """``row`` with its ``meta`` (read now when missing); ``library_row``: a row of the library (noted)
        rather than a new audio file."""
        if row.meta is not None:
            return row
        meta = self._cache.get(row.id)
        if meta is None:
            meta = self._cache[row.id] = read_metadata(row.id)
            if library_row and not self._noted and self.on_note is not None:
                self._noted = True
                self.on_note(
                    f"note: {self.name} keeps no tags (embedded before tags were kept) — reading them from the files; "
                    "rerun the same `specmusic embed … -o` to store them (no audio is decoded again)"
                )
        return dataclasses.replace(row, meta=meta)
