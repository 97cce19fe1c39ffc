"""Running the service: :func:`serve_library` checks where it may listen, reads the library, binds the
port and runs uvicorn until SIGINT or SIGTERM.

Where it listens: loopback (``127.0.0.1``, ``::1``, ``localhost``) by default, reachable from this
machine only. Any other address needs a bearer token (:func:`check_listen`): every request must then
carry ``Authorization: Bearer <token>``. uvicorn's own lines and the access log go to stderr.
"""

from __future__ import annotations

import errno
import ipaddress
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any

from specmusic.errors import ConfigError, InputError
from specmusic.fileio import display_path
from specmusic.serve.live import LiveLibrary

__all__ = ["MIN_TOKEN_LENGTH", "check_listen", "is_loopback", "open_socket", "serve_library"]

#: Characters a ``--token`` must have at least (``openssl rand -hex 32`` gives 64).
MIN_TOKEN_LENGTH = 16
_NOTE = Callable[[str], None]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address of this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name, or 0.0.0.0 / :: (every address)


def check_listen(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token, and a token too short to guess.

    Raises
    ------
    ConfigError
        ``host`` is not loopback and ``token`` is None; ``token`` shorter than :data:`MIN_TOKEN_LENGTH`.
    """
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"--token has {len(token)} characters — give at least {MIN_TOKEN_LENGTH} (e.g. `openssl rand -hex 32`)")
    if not is_loopback(host) and token is None:
        raise ConfigError(
            f"--host {host} is reachable from other machines, so the service needs a bearer token — give --token TOKEN "
            "(or $SPECMUSIC_TOKEN; clients send `Authorization: Bearer TOKEN`), or keep the default loopback host"
        )


def open_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (``port`` 0: a free one), for uvicorn to listen on.

    Raises
    ------
    InputError
        The address cannot be bound (in use, not this machine's, no permission).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]  # fmt: skip
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise InputError(f"cannot listen on {host} ({exc.strerror or exc}) — give an address of this machine to --host") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        fix = {
            errno.EADDRINUSE: "give another --port (0: any free one), or stop what uses it",
            errno.EADDRNOTAVAIL: "give an address of this machine to --host",
            errno.EACCES: "ports below 1024 need privileges — give a --port from 1024",
        }.get(exc.errno or 0, "check --host and --port")  # fmt: skip
        raise InputError(f"cannot listen on {host}:{port} ({exc.strerror or exc}) — {fix}") from None
    return sock


def _log_config(access_log: bool) -> dict[str, Any]:
    """uvicorn's logging, all of it on stderr: its warnings and errors, and (``access_log``) one line a request."""
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {
            "default": {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(levelprefix)s %(message)s", "use_colors": False},
            "access": {"()": "uvicorn.logging.AccessFormatter", "use_colors": False,
                       "fmt": '%(asctime)s %(client_addr)s "%(request_line)s" %(status_code)s'},
        },
        "handlers": {"default": {**handler, "formatter": "default"}, "access": {**handler, "formatter": "access"}},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "WARNING", "propagate": False},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO" if access_log else "WARNING", "propagate": False},
            "specmusic.serve": {"handlers": ["default"], "level": "INFO", "propagate": False},
        },
    }  # fmt: skip


def _url(host: str, port: int) -> str:
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve_library(
    library: str, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None, poll_seconds: float = 2.0,
    access_log: bool = True, on_note: _NOTE | None = None,
) -> None:  # fmt: skip
    """Serve ``library`` (:mod:`specmusic.serve.api`) until SIGINT or SIGTERM, then return.

    Raises
    ------
    ConfigError
        A host beyond loopback without a token, a short token (:func:`check_listen`).
    InputError
        The library cannot be read; the address cannot be bound.
    """
    import uvicorn
    from threadpoolctl import threadpool_limits

    from specmusic.serve.api import create_app

    def note(line: str) -> None:
        if on_note is not None:
            on_note(line)

    check_listen(host, token)
    # One BLAS thread a request: concurrent requests share the cores without oversubscribing them, and the
    # per-search limit of specmusic.index then changes nothing under another request's feet.
    threadpool_limits(limits=1, user_api="blas")
    live = LiveLibrary(library, poll_seconds=poll_seconds, on_note=on_note)
    sock = open_socket(host, port)
    server = uvicorn.Server(uvicorn.Config(
        create_app(live, token=token), log_config=_log_config(access_log), access_log=access_log, lifespan="off",
        server_header=False, timeout_graceful_shutdown=10,
    ))  # fmt: skip
    url = _url(host, sock.getsockname()[1])
    note(f"serve: {len(live.current)} tracks of {display_path(library)} at {url} (API docs: {url}docs); reloads when "
         "the library changes; Ctrl-C stops")  # fmt: skip
    if token is not None:
        note("serve: every request needs the header `Authorization: Bearer <token>`")
    if not is_loopback(host):
        note(f"note: {host} is reachable from other machines, and the token travels in clear text — beyond a network you "
             "trust, put a TLS reverse proxy in front (docs/serve.md)")  # fmt: skip
    if threading.current_thread() is threading.main_thread():
        # uvicorn stops gracefully on SIGTERM, then raises it again with this handler: a clean exit 0, not a kill
        signal.signal(signal.SIGTERM, lambda *_: None)
    live.start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # SIGINT, raised again once uvicorn has stopped gracefully
        pass
    finally:
        live.stop()
        sock.close()
    note("serve: stopped")
