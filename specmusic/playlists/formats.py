"""Playlist files: written for players (M3U8, XSPF) and pipes (JSON Lines), and read back (``--extend``).

* **M3U8** (``.m3u8``, ``.m3u``): ``#EXTM3U``, then per entry ``#EXTINF:<seconds>,Artist - Title`` and
  its path. Paths are relative to the playlist's folder (the folder of music and playlist can move
  together; ``absolute`` writes absolute paths), written as the file name's own bytes: a name that
  is not UTF-8 is written as it is on disk, so a player opens it (mpv does; mpd's database skips such
  files when it scans, whatever the playlist says).
* **XSPF** (``.xspf``): XML, each ``<track>`` with its ``<location>`` (a relative URI reference, or a
  ``file://`` URI with ``absolute``; every byte that is not plain ASCII percent-encoded, so any file
  name survives), ``<title>``, ``<creator>``, ``<album>``, ``<trackNum>`` and ``<duration>`` (ms).
* **JSON Lines** (``.jsonl``): one :meth:`~specmusic.playlists.model.PlaylistEntry.to_dict` a line with
  its ``position``, for ``jq`` and other programs; ids as the OS decodes them (``\\udcNN`` for a byte
  that is not UTF-8).

Written to stdout (``-``), paths are absolute: there is no playlist folder to be relative to. The
format comes from the extension; on stdout from ``fmt`` (default M3U8).

:func:`read_playlist` reads any of the three (and plain lists of paths), for ``--extend``.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import IO

from specmusic.errors import InputError
from specmusic.fileio import atomic_write, display_path, json_line
from specmusic.playlists.model import Playlist

__all__ = ["PLAYLIST_FORMATS", "playlist_format", "read_playlist", "render_playlist", "write_playlist"]

#: ``--format``: ``auto`` takes it from the extension.
PLAYLIST_FORMATS = ("auto", "m3u8", "xspf", "jsonl")
_EXTENSIONS = {".m3u8": "m3u8", ".m3u": "m3u8", ".xspf": "xspf", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}
_XSPF_NS = "http://xspf.org/ns/0/"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def playlist_format(output: str | None, fmt: str = "auto") -> str:
    """``m3u8`` | ``xspf`` | ``jsonl``: ``fmt``, else from the extension of ``output`` (stdout: m3u8).

    Raises
    ------
    InputError
        An unknown format or extension.
    """
    if fmt != "auto":
        if fmt not in PLAYLIST_FORMATS:
            raise InputError(f"unknown playlist format {fmt!r} — use one of {', '.join(PLAYLIST_FORMATS[1:])}")
        return fmt
    if output in (None, "-"):
        return "m3u8"
    ext = os.path.splitext(str(output))[1].lower()
    if ext not in _EXTENSIONS:
        raise InputError(
            f"{display_path(str(output))}: unknown playlist extension {ext or '(none)'!r} — use .m3u8, .xspf or .jsonl, "
            "or give --format"
        )
    return _EXTENSIONS[ext]


def _path(id_: str, base: str | None) -> str:
    """The entry's path as written: absolute, or relative to ``base``."""
    full = os.path.abspath(id_)
    return full if base is None else os.path.relpath(full, base)


def _text(value: str) -> str:
    """One line of display text: no control characters, bytes that are not UTF-8 replaced."""
    return _CONTROL.sub(" ", value).encode("utf-8", "replace").decode("utf-8").strip()


def _m3u8(playlist: Playlist, base: str | None) -> bytes:
    out = [b"#EXTM3U\n"]
    for entry in playlist.entries:
        seconds = round(entry.duration) if entry.duration else -1
        out.append(f"#EXTINF:{seconds},{_text(entry.title_line)}\n".encode())
        out.append(os.fsencode(_path(entry.id, base)) + b"\n")
    return b"".join(out)


def _location(id_: str, base: str | None) -> str:
    path = os.fsencode(_path(id_, base))
    quoted = urllib.parse.quote(path, safe="/")
    return "file://" + quoted if base is None else quoted


def _xspf(playlist: Playlist, base: str | None) -> bytes:
    ET.register_namespace("", _XSPF_NS)
    root = ET.Element(f"{{{_XSPF_NS}}}playlist", version="1")
    track_list = ET.SubElement(root, f"{{{_XSPF_NS}}}trackList")
    for entry in playlist.entries:
        track = ET.SubElement(track_list, f"{{{_XSPF_NS}}}track")
        ET.SubElement(track, f"{{{_XSPF_NS}}}location").text = _location(entry.id, base)
        meta = entry.metadata
        fields = {
            "title": meta.title if meta else None, "creator": (meta.artist or meta.albumartist) if meta else None,
            "album": meta.album if meta else None, "trackNum": str(meta.track) if meta and meta.track else None,
            "duration": str(round(entry.duration * 1000)) if entry.duration else None,
        }  # fmt: skip
        if not fields["title"]:
            fields["title"] = entry.title_line
        for name, value in fields.items():
            if value:
                ET.SubElement(track, f"{{{_XSPF_NS}}}{name}").text = _text(value)
    ET.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False) + b"\n"


def _jsonl(playlist: Playlist) -> bytes:
    return "".join(json_line({"position": i, **e.to_dict()}) for i, e in enumerate(playlist.entries, 1)).encode("utf-8")


def render_playlist(playlist: Playlist, fmt: str, *, base: str | None = None) -> bytes:
    """The playlist file's bytes in ``fmt`` (``m3u8`` | ``xspf`` | ``jsonl``); paths relative to the folder
    ``base``, or absolute when None."""
    if fmt == "xspf":
        return _xspf(playlist, base)
    if fmt == "jsonl":
        return _jsonl(playlist)
    return _m3u8(playlist, base)


def write_playlist(
    playlist: Playlist, output: str | None, *, fmt: str = "auto", absolute: bool = False, stdout: IO[bytes] | None = None
) -> str:
    """Write ``playlist`` to the file ``output`` (temporary file + rename), or to ``stdout`` when it is
    None or ``-``; returns the format written.

    Raises
    ------
    InputError
        An unknown format or extension.
    OSError
        The file cannot be written.
    """
    kind = playlist_format(output, fmt)
    if output in (None, "-"):
        import sys

        stream = stdout if stdout is not None else sys.stdout.buffer
        stream.write(render_playlist(playlist, kind, base=None))
        stream.flush()
        return kind
    base = None if absolute else os.path.dirname(os.path.abspath(str(output)))
    data = render_playlist(playlist, kind, base=base)
    atomic_write(str(output), lambda f: f.write(data), "wb")
    return kind


# -- reading --------------------------------------------------------------------------------
def _local(reference: bytes, folder: bytes) -> str | None:
    """A playlist line or location as a local path (a ``file://`` URI decoded; relative: from ``folder``);
    None for another scheme (http://…)."""
    if reference.lower().startswith(b"file://"):
        return os.fsdecode(urllib.parse.unquote_to_bytes(urllib.parse.urlsplit(reference).path))
    if re.match(rb"^[A-Za-z][A-Za-z0-9+.-]*://", reference):
        return None
    path = reference if os.path.isabs(reference) else os.path.join(folder, reference)
    return os.fsdecode(os.path.normpath(path))


def _read_lines(data: bytes, folder: bytes) -> list[str]:
    out = []
    for raw in data.splitlines():
        line = raw.strip().lstrip(b"\xef\xbb\xbf")
        if line and not line.startswith(b"#"):
            found = _local(line, folder)
            if found is not None:
                out.append(found)
    return out


def _read_xspf(data: bytes, folder: bytes, name: str) -> list[str]:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise InputError(f"{name}: not an XSPF playlist ({exc}) — give an .m3u8, .xspf or .jsonl playlist") from None
    out = []
    for loc in root.iter(f"{{{_XSPF_NS}}}location"):
        text = (loc.text or "").strip()
        if text:
            ref = text.encode("utf-8")
            found = _local(ref if ref.lower().startswith(b"file://") else urllib.parse.unquote_to_bytes(ref), folder)
            if found is not None:
                out.append(found)
    return out


def _read_jsonl(data: bytes, name: str) -> list[str]:
    out = []
    for lineno, line in enumerate(data.decode("utf-8", "surrogateescape").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            out.append(str(rec["id"] if "id" in rec else rec["path"]))
        except (ValueError, KeyError, TypeError):
            raise InputError(f"{name}:{lineno}: not a playlist record (a JSON object with \"id\") — give the JSON Lines "
                             "`specmusic playlist` writes") from None  # fmt: skip
    return out


def read_playlist(path: str) -> list[str]:
    """The tracks of a playlist file, in order: M3U/M3U8 (``#`` lines skipped; ``file://`` URIs decoded),
    XSPF (``<location>``), JSON Lines (``id``), or a plain list of paths. Relative paths are read from the
    playlist's folder; other URLs (``http://``) are left out.

    Raises
    ------
    InputError
        The file cannot be read, is malformed, or lists no track.
    """
    name = display_path(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise InputError(f"{name}: cannot read the playlist ({exc.strerror}) — check the path") from None
    folder = os.fsencode(os.path.dirname(path) or ".")
    ext = os.path.splitext(path)[1].lower()
    reader: Callable[[], list[str]]
    if ext == ".xspf" or data.lstrip().startswith(b"<"):
        reader = lambda: _read_xspf(data, folder, name)  # noqa: E731
    elif ext in (".jsonl", ".json", ".ndjson") or data.lstrip().startswith(b"{"):
        reader = lambda: _read_jsonl(data, name)  # noqa: E731
    else:
        reader = lambda: _read_lines(data, folder)  # noqa: E731
    tracks = reader()
    if not tracks:
        raise InputError(f"{name}: the playlist lists no track — give a playlist with local files")
    return tracks
