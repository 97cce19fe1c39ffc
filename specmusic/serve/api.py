"""The HTTP face of ``specmusic serve``: :func:`create_app` (FastAPI) over a :class:`~specmusic.serve.live.LiveLibrary`.

Every endpoint is a GET; OpenAPI docs at ``/docs``, the schema at ``/openapi.json``::

    /similar?track=PATH|id=ID [&k=10][&where=genre=jazz …][&year=1990..1999][&group_key=artist]
        the record of ``recommend --json``: {"query", "warnings", "neighbors": [{"rank", "id", "score", …}]}
    /playlist?seed=ID [&seed=ID …] [&minutes=60|&tracks=20] | ?from=ID&to=ID[&tracks=12]
              [&where=…][&year=…][&random=0][&format=json|m3u8|xspf]
        JSON (Playlist.to_dict), or an M3U8 / XSPF file: by format=, else by the Accept header
    /tracks?q=WORDS [&limit=20][&offset=0][&where=…][&year=…]
        {"query", "offset", "limit", "more", "tracks": [{"id", "label", "group", "metadata"}]}
    /health
        {"status": "ok", "library", "tracks", "dim", "model", "generation", "loaded_at"}

Errors are JSON, ``{"error": "<what> — <how to fix>", "parameter": NAME}``: 400 a bad or unknown
parameter, 401 no or a wrong bearer token (with ``--token``), 404 an unknown track or path, 406 an
``Accept`` no playlist format meets, 422 a track that cannot be answered (its audio was silent).
JSON is UTF-8 with a byte of a file name that is not UTF-8 written as ``\\udcNN`` (as ``recommend
--json`` writes it).
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from specmusic import __version__
from specmusic.errors import SpecmusicError
from specmusic.fileio import json_line
from specmusic.playlists import render_playlist
from specmusic.serve.library import MAX_K, MAX_LIMIT, MAX_MINUTES, MAX_SEEDS, MAX_TRACKS, RequestError
from specmusic.serve.live import LiveLibrary

__all__ = ["PLAYLIST_MEDIA_TYPES", "JsonResponse", "create_app", "playlist_format_for"]

#: Playlist formats and the media types that ask for them (the first is what the answer is sent as).
PLAYLIST_MEDIA_TYPES: dict[str, tuple[str, ...]] = {
    "json": ("application/json",),
    "m3u8": ("audio/x-mpegurl", "audio/mpegurl", "application/vnd.apple.mpegurl", "application/x-mpegurl"),
    "xspf": ("application/xspf+xml",),
}
_log = logging.getLogger("specmusic.serve")
_WHERE = "Only tracks whose tags meet this (repeatable, all must hold): genre=jazz, artist!=X, title~live, duration<300."
_YEAR = "Only tracks of these years: 1995, 1990..1999, 1990.."


class JsonResponse(Response):
    """JSON as ``recommend --json`` writes it (:func:`specmusic.fileio.json_line`: UTF-8, ``\\udcNN`` for bytes of
    file names that are not UTF-8, no NaN)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json_line(content, allow_nan=False, separators=(",", ":")).encode("utf-8")


def _error(status: int, message: str, parameter: str | None = None, headers: dict[str, str] | None = None) -> JsonResponse:
    return JsonResponse({"error": message, "parameter": parameter}, status_code=status, headers=headers)


def _check_parameters(request: Request, known: tuple[str, ...]) -> None:
    """A parameter the endpoint does not take is a 400 (a typo would otherwise be ignored)."""
    for name in request.query_params:
        if name not in known:
            raise RequestError(f"unknown parameter {name!r} — this endpoint takes {', '.join(known)}", parameter=name)


def _live(request: Request) -> LiveLibrary:
    live: LiveLibrary = request.app.state.live
    return live


# -- endpoints ------------------------------------------------------------------------------
def similar(
    request: Request,
    track: str | None = Query(None, description="A library id, or a unique tail of one (as `recommend -q`)."),
    id: str | None = Query(None, description="An exact library id, as /tracks and /similar give them."),  # noqa: A002
    k: int = Query(10, description=f"Neighbours, 1 to {MAX_K}."),
    where: list[str] = Query([], description=_WHERE),
    year: str | None = Query(None, description=_YEAR),
    group_key: str | None = Query(None, description="Leave out the track's artist, album, dir, label or group."),
) -> JsonResponse:
    """The tracks most similar to one track of the library, with cosine scores (`recommend --json`'s record)."""
    _check_parameters(request, ("track", "id", "k", "where", "year", "group_key"))
    library = _live(request).current
    return JsonResponse(library.similar(track=track, track_id=id, k=k, where=where, year=year, group_key=group_key))


def playlist_format_for(accept: str | None) -> str | None:
    """The playlist format an ``Accept`` header asks for: the one of :data:`PLAYLIST_MEDIA_TYPES` with the highest
    quality (ties: json, m3u8, xspf); json when it names none or ``*/*``; None when it refuses all three."""
    if accept is None or not accept.strip():
        return "json"
    ranges = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for p in params:
            if p.lower().startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        if "/" in media:
            ranges.append((*media.lower().split("/", 1), q))
    best, best_q = None, 0.0
    for fmt, types in PLAYLIST_MEDIA_TYPES.items():
        for mime in types:
            major, minor = mime.split("/")
            matches = [(2 if (t, s) == (major, minor) else 1 if (t, s) == (major, "*") else 0, q)
                       for t, s, q in ranges if (t, s) in ((major, minor), (major, "*"), ("*", "*"))]  # fmt: skip
            q = max(matches)[1] if matches else 0.0  # the most specific range decides
            if q > best_q:
                best, best_q = fmt, q
    return best


def playlist(
    request: Request,
    seed: list[str] = Query([], description=f"Start near this track (library id or unique tail; up to {MAX_SEEDS})."),
    start: str | None = Query(None, alias="from", description="A journey: from this track…"),
    end: str | None = Query(None, alias="to", description="…to this one (both in the playlist)."),
    tracks: int | None = Query(None, description=f"Tracks wanted, 1 to {MAX_TRACKS} (default 20; a journey 12)."),
    minutes: float | None = Query(None, description=f"Or a length in minutes (up to {MAX_MINUTES})."),
    where: list[str] = Query([], description=_WHERE),
    year: str | None = Query(None, description=_YEAR),
    random: int = Query(0, description="Seed of the draw among the best candidates: one seed, one playlist."),
    format: str | None = Query(None, description="json, m3u8 or xspf (default: by the Accept header; else json)."),  # noqa: A002
) -> Response:
    """A playlist from the library: near seed tracks, or a journey from one track to another (as `specmusic
    playlist` makes it). JSON, or an M3U8 or XSPF file of absolute paths: by `format=` or the Accept header."""
    _check_parameters(request, ("seed", "from", "to", "tracks", "minutes", "where", "year", "random", "format"))
    if format is not None:
        if format not in PLAYLIST_MEDIA_TYPES:
            raise RequestError(f"format={format!r} — give json, m3u8 or xspf", parameter="format")
        kind: str | None = format
    else:
        kind = playlist_format_for(request.headers.get("accept"))
    if kind is None:
        accepted = ", ".join(t[0] for t in PLAYLIST_MEDIA_TYPES.values())
        raise RequestError(f"no playlist format meets Accept: {request.headers.get('accept')} — accept {accepted}, "
                           "or give format=json|m3u8|xspf", parameter="Accept", status=406)  # fmt: skip
    made = _live(request).current.playlist(seeds=seed, start=start, end=end, tracks=tracks, minutes=minutes, where=where,
                                           year=year, random_seed=random)  # fmt: skip
    if kind == "json":
        return JsonResponse(made.to_dict(), headers={"Vary": "Accept"})
    headers = {"Vary": "Accept", "Content-Disposition": f'inline; filename="specmusic.{kind}"'}
    return Response(render_playlist(made, kind), media_type=PLAYLIST_MEDIA_TYPES[kind][0], headers=headers)


def tracks(
    request: Request,
    q: str = Query("", description="Words that the id or the tags (artist, album, title, genre, year) must all contain."),
    limit: int = Query(20, description=f"Tracks per page, 1 to {MAX_LIMIT}."),
    offset: int = Query(0, description="Tracks of the matches to skip (the next page: offset + limit)."),
    where: list[str] = Query([], description=_WHERE),
    year: str | None = Query(None, description=_YEAR),
) -> JsonResponse:
    """Search the library's tracks by their tags and paths: the ids to ask /similar and /playlist about."""
    _check_parameters(request, ("q", "limit", "offset", "where", "year"))
    return JsonResponse(_live(request).current.tracks(q=q, limit=limit, offset=offset, where=where, year=year))


def health(request: Request) -> JsonResponse:
    """What is served: the library, its size, model and generation (1 at start, +1 each reload)."""
    _check_parameters(request, ())
    return JsonResponse(_live(request).current.health())


# -- errors ---------------------------------------------------------------------------------
async def _request_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JsonResponse(exc.to_dict(), status_code=exc.status, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(x) for x in first.get("loc", ()) if x not in ("query", "header")]
    name = loc[0] if loc else None
    given = first.get("input")
    return _error(400, f"{name}={given!r}: {str(first.get('msg', 'invalid')).lower()} — see /docs", name)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    hint = " — the endpoints are /similar, /playlist, /tracks and /health (GET; see /docs)" if exc.status_code in (404, 405) else ""
    return _error(exc.status_code, f"{str(exc.detail).lower()}{hint}", None, dict(exc.headers or {}))


async def _library_error(request: Request, exc: Exception) -> Response:
    return _error(400, str(exc))


async def _internal_error(request: Request, exc: Exception) -> Response:
    _log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal error — the server's log (stderr) has the details")


def _bearer(token: str) -> Any:
    """The dependency that admits a request carrying ``Authorization: Bearer <token>`` (compared in constant time)."""
    scheme = HTTPBearer(auto_error=False, description="The token given to `specmusic serve --token`.")
    expected = token.encode("utf-8")

    def check(credentials: HTTPAuthorizationCredentials | None = Depends(scheme)) -> None:
        given = credentials.credentials.encode("utf-8") if credentials is not None else b""
        if credentials is None or not hmac.compare_digest(given, expected):
            what = "a wrong bearer token" if credentials is not None else "no bearer token"
            raise RequestError(f"{what} — send the header `Authorization: Bearer <the --token of the server>`",
                               parameter="Authorization", status=401)  # fmt: skip

    return check


def create_app(live: LiveLibrary, *, token: str | None = None) -> FastAPI:
    """The service's ASGI app (see the module docstring); ``token``: every endpoint (not ``/docs``) needs it."""
    app = FastAPI(
        title="specmusic serve", version=__version__, default_response_class=JsonResponse,
        description="Similar tracks, playlists and track search over an embedding library. Answers ids, tags "
                    "and scores; never audio files. docs/serve.md has the details.",
        dependencies=[Depends(_bearer(token))] if token else None, redoc_url=None,
    )  # fmt: skip
    app.state.live = live
    app.add_api_route("/similar", similar, methods=["GET"], response_class=JsonResponse)
    app.add_api_route("/playlist", playlist, methods=["GET"], response_class=Response, responses={
        200: {"content": {t[0]: {} for t in PLAYLIST_MEDIA_TYPES.values()}, "description": "The playlist."}})  # fmt: skip
    app.add_api_route("/tracks", tracks, methods=["GET"], response_class=JsonResponse)
    app.add_api_route("/health", health, methods=["GET"], response_class=JsonResponse)
    app.add_exception_handler(RequestError, _request_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(SpecmusicError, _library_error)
    app.add_exception_handler(Exception, _internal_error)
    return app
