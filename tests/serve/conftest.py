"""What the serve tests share: tiny tagged libraries written with the library API, and a real
``specmusic serve`` process on a free loopback port, queried over HTTP (``http.client``)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from specmusic.embeddings import EmbeddingLibrary, ModelDescription
from specmusic.index import l2_normalize
from specmusic.metadata import TrackMetadata
from specmusic.serve import missing_serve_modules
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
needs_serve = pytest.mark.skipif(
    bool(missing_serve_modules()), reason="the serve extra (FastAPI, uvicorn) is not installed — pip install 'specmusic[serve]'"
)
ARTISTS = ("Ann", "Bob", "Cy", "Dee", "Eve")
GENRES = ("Jazz", "Rock", "Folk")
DIM = 8
#: How long a server may take to answer /health, or to stop (generous: a busy 2-core machine).
DEADLINE = 90.0


def track_id(i: int) -> str:
    return f"/music/{ARTISTS[i % 5]}/{ARTISTS[i % 5]} {'One' if i % 2 else 'Two'}/{i:03d} Song {i}.flac"


def make_library(n: int, *, start: int = 0, seed: int = 0) -> EmbeddingLibrary:
    """Tracks ``start .. start + n - 1``, tagged (artist, album, title, genre, year, duration), seeded unit vectors
    (track ``i`` gets the same vector in every library, so a grown library holds the old one unchanged)."""
    rows = range(start, start + n)
    vectors = np.stack([np.random.default_rng(seed * 100_000 + i).standard_normal(DIM) for i in rows]).astype(np.float32)
    meta = [TrackMetadata(artist=ARTISTS[i % 5], album=f"{ARTISTS[i % 5]} {'One' if i % 2 else 'Two'}", title=f"Song {i}",
                          genre=GENRES[i % 3], year=1980 + i % 40, duration=180.0 + i) for i in rows]  # fmt: skip
    n_rows = len(rows)
    return EmbeddingLibrary(l2_normalize(vectors), [track_id(i) for i in rows], [None] * n_rows, [None] * n_rows,
                            ModelDescription(kind="onnx", name="tiny-test", sha256="0" * 64, dim=DIM), metadata=meta)  # fmt: skip


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


class Server:
    """``specmusic serve LIBRARY ARGS`` in its own process; :meth:`get` asks it over HTTP."""

    def __init__(self, library: Path | str, *args: str, tmp: Path, token: str | None = None, poll: float = 0.1) -> None:
        self.port, self.token = free_port(), token
        self.stderr_path = tmp / f"serve-{self.port}.stderr"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
        env.pop("SPECMUSIC_TOKEN", None)
        cmd = [sys.executable, "-m", "specmusic", "serve", str(library), "--port", str(self.port), "--poll", str(poll),
               "--no-access-log", *args]  # fmt: skip
        if token is not None:
            cmd += ["--token", token]
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=env)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def get(self, path: str, headers: dict[str, str] | None = None, *, auth: bool = True) -> Response:
        sent = dict(headers or {})
        if auth and self.token is not None:
            sent.setdefault("Authorization", f"Bearer {self.token}")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path, headers=sent)
            r = conn.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def wait_ready(self) -> Server:
        """Poll /health until it answers 200 (bounded by :data:`DEADLINE`); fail at once if the process ends."""
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                pytest.fail(f"specmusic serve exited with {self.proc.returncode}: {self.stderr}")
            try:
                if self.get("/health").status == 200:
                    return self
            except OSError:  # not listening yet
                pass
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"specmusic serve did not answer /health within {DEADLINE:.0f} s: {self.stderr}")

    def stop(self) -> int:
        """SIGTERM, then wait for the process (bounded); its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=DEADLINE)
        assert self.proc.stdout is not None
        self.stdout = self.proc.stdout.read()
        self.proc.stdout.close()
        return code
