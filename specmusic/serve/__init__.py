"""``specmusic serve``: similar tracks, playlists and track search over HTTP, for players and plugins.

Modules, from the bottom up:

* :mod:`~specmusic.serve.library`: :class:`ServedLibrary`, one library in memory and the service's
  answers from it (``/similar``, ``/playlist``, ``/tracks``, ``/health``), and :class:`RequestError`
* :mod:`~specmusic.serve.live`: :class:`LiveLibrary`, the served library read again when it changes
* :mod:`~specmusic.serve.api`: the FastAPI app (:func:`~specmusic.serve.api.create_app`): routes,
  content negotiation, the bearer token, JSON errors
* :mod:`~specmusic.serve.server`: :func:`~specmusic.serve.server.serve_library`, uvicorn on a bound socket

FastAPI and uvicorn are the optional extra ``serve`` (:data:`SERVE_EXTRA`); this package imports
them only in ``api`` and ``server``, so :func:`missing_serve_modules` can say what is missing first.
docs/serve.md is the guide.
"""

from __future__ import annotations

import importlib.util

from specmusic.serve.library import RequestError, ServedLibrary, load_served_library
from specmusic.serve.live import LiveLibrary

__all__ = ["SERVE_EXTRA", "SERVE_MODULES", "LiveLibrary", "RequestError", "ServedLibrary", "load_served_library",
           "missing_serve_modules"]  # fmt: skip

#: What installs the service's web framework and server.
SERVE_EXTRA = "pip install 'specmusic[serve]'"
#: The modules of the ``serve`` extra.
SERVE_MODULES = ("fastapi", "uvicorn")


def missing_serve_modules() -> list[str]:
    """The modules of the ``serve`` extra that are not installed (without importing them)."""
    missing = []
    for name in SERVE_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing
