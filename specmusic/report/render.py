"""Rendering: one Jinja2 template per kind, paged, written atomically.

The listed items (tracks, misclassified clips, queries, parts, samples, files) are cut into pages
of ``limit``: ``report.html`` holds the summary (metrics, map, clusters, tables) and the first
``limit`` items, ``report-2.html``… the next ones, each page linking to the others. The default,
:data:`DEFAULT_LIMIT` items a page, keeps a page to a few MB with linked audio and its thumbnails
(~10–40 KB each), quick to open and scroll; 100 audio players each reading their metadata is
light, and a collection of any size is still all there, page by page.

Defaults (one block)::

    DEFAULT_LIMIT = 100   # items a page (--limit)

Pages leave out nothing silently: a capped list on the first page (errors, clusters, duplicates)
says how many more there are. Pages from an earlier, longer report and thumbnails no page uses
any more are removed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from specmusic.errors import InputError
from specmusic.fileio import atomic_write, display_path
from specmusic.report.folders import (
    build_generate,
    build_nmf,
    build_spectro,
    build_train,
)
from specmusic.report.kinds import KINDS, Report, detect_kind
from specmusic.report.listings import build_describe, build_embed, build_recommend
from specmusic.report.media import EXCERPT_SECONDS, Media

__all__ = ["BUILDERS", "DEFAULT_LIMIT", "ReportResult", "build_report", "default_output", "page_paths"]

DEFAULT_LIMIT = 100
TEMPLATES = Path(__file__).with_name("templates")

Builder = Callable[[Path, Media, int], Report]
BUILDERS: dict[str, Builder] = {
    "spectro": build_spectro, "train": build_train, "embed": build_embed, "recommend": build_recommend,
    "nmf": build_nmf, "generate": build_generate, "describe": build_describe,
}
assert set(BUILDERS) == set(KINDS)


@dataclass
class ReportResult:
    """What :func:`build_report` wrote."""

    kind: str
    pages: list[Path]
    items: int
    files_dir: Path


def default_output(path: str | os.PathLike[str]) -> Path:
    """``FOLDER/report.html`` for a folder; ``NAME.html`` beside a file (``recs.jsonl`` → ``recs.html``)."""
    p = Path(path)
    return p / "report.html" if p.is_dir() else p.with_suffix(".html")


def page_paths(output: Path, n_pages: int) -> list[Path]:
    """``report.html``, ``report-2.html``, … for ``n_pages`` pages."""
    return [output] + [output.with_name(f"{output.stem}-{k}{output.suffix}") for k in range(2, n_pages + 1)]


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=jinja2.ChainableUndefined,  # a describe JSON may lack a field: shown as –
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["pct"] = lambda v: f"{100 * v:.1f} %" if isinstance(v, (int, float)) and not isinstance(v, bool) else "–"
    return env


def _num(value: Any, digits: int = 3) -> str:
    import jinja2

    if value is None or isinstance(value, jinja2.Undefined):
        return "–"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}g}" if abs(value) >= 1e4 or (value and abs(value) < 1e-3) else f"{round(value, digits):g}"


def build_report(
    path: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    limit: int = DEFAULT_LIMIT,
    embed_audio: bool = False,
    excerpt_seconds: float = EXCERPT_SECONDS,
    title: str | None = None,
) -> ReportResult:
    """Write the HTML report of the specmusic output at ``path``.

    Parameters
    ----------
    path : an output of spectro, train, embed, recommend --json, nmf, generate sample or describe --json
    output : the first page (default :func:`default_output`); pictures go to ``<stem>_files/`` beside it
    limit : items per page (tracks, clips, queries…); more go to ``<stem>-2.html``…
    embed_audio : embed the first ``excerpt_seconds`` of each clip as Ogg Vorbis instead of linking the files
    title : the page title (default: the kind and the name of ``path``)

    Returns
    -------
    ReportResult

    Raises
    ------
    InputError
        ``path`` is none of the kinds (the message lists them) or cannot be read; ``limit`` < 1.
    """
    if limit < 1:
        raise InputError(f"--limit {limit}: a page lists at least 1 item — give --limit 1 or more")
    source = Path(path)
    kind = detect_kind(source)
    out = Path(output) if output is not None else default_output(source)
    if out.is_dir():
        raise InputError(f"{display_path(out)}: is a folder — give -o a file name such as report.html")
    files_dir = out.parent / f"{out.stem}_files"
    media = Media(out.parent, files_dir, embed_audio=embed_audio, excerpt_seconds=excerpt_seconds)
    report = BUILDERS[kind](source, media, limit)
    if title:
        report.title = title
    n_pages = max(1, -(-len(report.items) // limit))
    paths = page_paths(out, n_pages)
    names = [quote(os.fsencode(p.name)) for p in paths]  # links between pages, each byte quoted
    template = _environment().get_template(f"{kind}.html.j2")
    from specmusic import __version__

    for k, target in enumerate(paths, start=1):
        first = (k - 1) * limit
        html = template.render(
            report=report, head=report.head, items=report.items[first:first + limit], first=first, page=k,
            pages=[(i, name) for i, name in enumerate(names, start=1)], n_pages=n_pages, kind=kind,
            total=len(report.items), version=__version__, embedded=embed_audio, excerpt=excerpt_seconds,
        )
        data = html.encode("utf-8", errors="backslashreplace")  # a stray lone surrogate never stops the page
        atomic_write(target, lambda f, d=data: f.write(d))
    _remove_stale(out, n_pages, media)
    return ReportResult(kind, paths, len(report.items), files_dir)


def _made_by_report(page: Path) -> bool:
    """A page this command wrote (its generator tag in the first 1 KB), never a user's own file."""
    try:
        with open(page, "rb") as f:
            return b'<meta name="generator" content="specmusic' in f.read(1024)
    except OSError:
        return False


def _remove_stale(out: Path, n_pages: int, media: Media) -> None:
    """Pages beyond ``n_pages`` and thumbnails no page links any more, left by an earlier report."""
    pattern = re.compile(rf"^{re.escape(out.stem)}-(\d+){re.escape(out.suffix)}$")
    for entry in out.parent.iterdir():
        m = pattern.match(entry.name)
        if m and int(m.group(1)) > n_pages and entry.is_file() and _made_by_report(entry):
            entry.unlink()
    if media.files_dir.is_dir():
        keep = {p.name for p in media.written}
        thumb = re.compile(r"^[0-9a-f]{16}\.png$")
        for entry in media.files_dir.iterdir():
            if thumb.match(entry.name) and entry.name not in keep:
                entry.unlink()
