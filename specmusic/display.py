"""How names are shown in text and pictures: one line, printable, the same file recognisable.

File names on Linux are bytes and labels are anything a folder is called: a byte that is not UTF-8
(Python keeps it as a lone surrogate ``\\udcNN``), a newline or another control character would
break a terminal line, a ``warning:`` line, a table row or a matplotlib picture.
:func:`printable_text` writes such characters as escapes (``\\xNN`` as
:func:`specmusic.fileio.display_path` does, ``\\n`` as JSON does); JSON output keeps the exact
name (:func:`specmusic.fileio.json_line`).
"""

from __future__ import annotations

import os
import re

__all__ = ["printable_path", "printable_text"]

_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, as os.fsdecode keeps it
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable_text(text: str) -> str:
    """``text`` as one line that any terminal, UTF-8 file or picture can show.

    A byte of a file name that is not UTF-8 (a lone surrogate ``\\udcNN``, as ``os.fsdecode`` keeps
    it) becomes ``\\xNN``, as :func:`~specmusic.fileio.display_path` writes it; control characters
    are escaped as JSON escapes them (``\\n``, ``\\r``, ``\\t``; others ``\\xNN``), and so are
    the Unicode line separators, so a name never splits a ``warning:`` line or a table row.
    Idempotent: printable text stays as it is.
    """
    return _UNPRINTABLE.sub(_escape, text)


def printable_path(path: str | os.PathLike[str] | bytes) -> str:
    """:func:`printable_text` of a path (bytes that are not UTF-8 as ``\\xNN``, control characters escaped)."""
    return printable_text(os.fsdecode(os.fspath(path)))
