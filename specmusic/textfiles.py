"""The text files people bring — manifests, JSON Lines libraries, lists: read as they really come.

UTF-8 with or without a byte-order mark (Excel's "CSV UTF-8" and Windows Notepad write one); any
other encoding is named in one line with the file, the line and what to do, never a
``UnicodeDecodeError``. JSON Lines are parsed one line at a time, each problem named by file and
line: not JSON, or nested so deeply that the parser would overflow its stack (a ``RecursionError``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from typing import IO, Any

from specmusic.errors import InputError
from specmusic.fileio import printable_path

__all__ = ["decoded_lines", "json_records", "open_lines"]

_BOM = "\ufeff"


def _decode(raw: bytes, name: str, lineno: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = raw[exc.start]
        latin = bytes([byte]).decode("latin-1")
        guess = f" ({latin!r} in Latin-1)" if byte >= 0xA0 else ""
        raise InputError(
            f"{name}:{lineno}: not UTF-8 text (byte 0x{byte:02x} at column {exc.start + 1}{guess}) — save the file "
            f"as UTF-8 (in a spreadsheet: CSV UTF-8; or iconv -f latin1 -t utf-8 OLD > NEW)"
        ) from None


def decoded_lines(lines: Iterable[bytes | str], *, name: str) -> Iterator[str]:
    """``lines`` (bytes or text, line endings kept) as text: UTF-8, a byte-order mark at the start dropped.

    Raises
    ------
    InputError
        A line that is not UTF-8: ``NAME:LINE: not UTF-8 text (byte 0xe9 at column 7 ('é' in Latin-1)) — save …``.
    """
    for lineno, line in enumerate(lines, 1):
        text = _decode(line, name, lineno) if isinstance(line, bytes) else line
        yield text[1:] if lineno == 1 and text.startswith(_BOM) else text


def open_lines(path: str | os.PathLike[str]) -> Iterator[str]:
    """The lines of the file ``path`` as text (:func:`decoded_lines`, line endings kept), read as they are used.

    Raises
    ------
    InputError
        A line that is not UTF-8 (named by file and line).
    OSError
        The file cannot be opened.
    """
    f = open(path, "rb")  # noqa: SIM115 — closed when the generator ends
    return _closing(f, decoded_lines(f, name=printable_path(path)))


def _closing(f: IO[bytes], lines: Iterator[str]) -> Iterator[str]:
    with f:
        yield from lines


def json_records(
    lines: Iterable[bytes | str], *, name: str, fix: str, invalid: str = "not valid JSON"
) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` of each non-blank JSON Lines line (:func:`decoded_lines` first).

    ``fix`` ends each error line: what the file should hold (``one JSON object per line``); ``invalid``
    says what a line that does not parse is.

    Raises
    ------
    InputError
        A line that is not UTF-8, not JSON, or nested too deeply for the parser — named by file and line.
    """
    for lineno, line in enumerate(decoded_lines(lines, name=name), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{name}:{lineno}: {invalid} ({exc.msg}) — {fix}") from None
        except RecursionError:  # [[[[…: the parser's stack, not ours, runs out
            raise InputError(f"{name}:{lineno}: nested too deeply to read (thousands of brackets) — {fix}") from None
        yield lineno, value
