"""``specmusic report``: one static HTML page (or a few pages) for each kind of output specmusic writes.

A builder per kind (:mod:`~specmusic.report.folders`, :mod:`~specmusic.report.listings`) reads the
command's own files and returns a context; a Jinja2 template per kind (``templates/<kind>.html.j2``,
extending ``base.html.j2``) renders it (:mod:`~specmusic.report.render`). The page needs no network:
its CSS and JavaScript are inline, pictures sit in ``<stem>_files/`` beside it, audio is linked
relative to it or embedded as excerpts (:mod:`~specmusic.report.media`); it opens from ``file://``.
"""

from __future__ import annotations

from specmusic.report.kinds import KINDS, Report, detect_kind
from specmusic.report.render import (
    DEFAULT_LIMIT,
    ReportResult,
    build_report,
    default_output,
)

__all__ = ["DEFAULT_LIMIT", "KINDS", "Report", "ReportResult", "build_report", "default_output", "detect_kind"]
