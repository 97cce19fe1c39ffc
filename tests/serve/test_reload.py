"""``specmusic serve`` reads its library again when it changes, without failing a request: 20 clients query in
a loop while the ``.npz`` is replaced (by rename) or a new part lands in a sharded folder."""

from __future__ import annotations

import http.client
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from specmusic.embeddings import ShardedLibraryWriter, save_library
from tests.failures.procs import wait_for
from tests.serve.conftest import DEADLINE, Server, make_library, needs_serve, track_id

CLIENTS = 20
#: Requests each client makes at most (the loop is bounded in count and in time).
MAX_REQUESTS = 3000


class Clients:
    """``CLIENTS`` threads, each asking /similar about the first ``old`` tracks over its own kept-alive connection."""

    def __init__(self, port: int, old: int) -> None:
        self.port, self.old = port, old
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.done: list[float] = []  # when each answered request ended
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(c,), daemon=True) for c in range(CLIENTS)]
        for t in self.threads:
            t.start()

    def _run(self, client: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        end = time.monotonic() + DEADLINE
        for n in range(MAX_REQUESTS):
            if self.stop.is_set() or time.monotonic() > end:
                break
            path = "/similar?" + urlencode({"id": track_id((client * 7 + n) % self.old), "k": 5}, quote_via=quote)
            try:
                conn.request("GET", path)
                r = conn.getresponse()
                body = r.read()
                ok = r.status == 200 and body.startswith(b'{"query"')
            except (OSError, http.client.HTTPException) as exc:
                ok, body = False, repr(exc).encode()
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            with self.lock:
                if ok:
                    self.done.append(time.monotonic())
                else:
                    self.failures.append(f"{path}: {body[:200]!r}")
        conn.close()

    def answered_since(self, t: float) -> int:
        with self.lock:
            return sum(1 for d in self.done if d > t)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=DEADLINE)
        assert not any(t.is_alive() for t in self.threads)


def _write_parts(folder: Path, first: int, count: int, shard_size: int) -> None:
    lib = make_library(count, start=first)
    writer = ShardedLibraryWriter.open(folder, lib.model, shard_size=shard_size)
    for i in range(len(lib)):
        writer.add(lib.record(i), lib.vectors[i])
    writer.finish()


@needs_serve
@pytest.mark.parametrize("kind", ["npz-replaced", "folder-new-part"])
def test_the_library_reloads_while_20_clients_query_and_no_request_fails(kind: str, tmp_path: Path) -> None:
    if kind == "npz-replaced":
        library: Path | str = tmp_path / "lib.npz"
        save_library(make_library(30), library)
    else:
        library = f"{tmp_path / 'lib'}/"
        _write_parts(tmp_path / "lib", 0, 30, shard_size=10)
    srv = Server(library, tmp=tmp_path, poll=0.1).wait_ready()
    clients = Clients(srv.port, old=30)
    try:
        wait_for(lambda: clients.answered_since(0) >= 100, timeout=DEADLINE, what="100 answers before the change")
        changed = time.monotonic()
        if kind == "npz-replaced":
            save_library(make_library(50), library)  # a temporary file renamed over the old one
        else:
            _write_parts(tmp_path / "lib", 30, 20, shard_size=20)  # a new part, then index.json (by rename)
        health = wait_for(lambda: (h := srv.get("/health").json())["generation"] == 2 and h, timeout=DEADLINE, what="the reload")
        assert health["tracks"] == 50
        reloaded = time.monotonic()
        wait_for(lambda: clients.answered_since(reloaded) >= 100, timeout=DEADLINE, what="100 answers after the reload")
        new = srv.get("/similar?" + urlencode({"id": track_id(45), "k": 49}, quote_via=quote))
        assert new.status == 200 and {n["id"] for n in new.json()["neighbors"]} == {track_id(i) for i in range(50)} - {track_id(45)}
        assert [t["id"] for t in srv.get("/tracks?q=song%2045").json()["tracks"]] == [track_id(45)]
    finally:
        clients.finish()
        code = srv.stop()
    assert clients.failures == []
    assert clients.answered_since(changed) > clients.answered_since(reloaded)  # requests were answered during the reload
    assert code == 0 and "serve: reloaded" in srv.stderr and "50 tracks (was 30), generation 2" in srv.stderr


@needs_serve
def test_a_change_that_cannot_be_read_keeps_the_old_library_serving(tmp_path: Path) -> None:
    library = tmp_path / "lib.npz"
    save_library(make_library(10), library)
    srv = Server(library, tmp=tmp_path, poll=0.1).wait_ready()
    try:
        half = tmp_path / "half.npz"
        half.write_bytes(library.read_bytes()[:200])  # a copy that stopped half way
        half.replace(library)
        wait_for(lambda: "changed but cannot be read" in srv.stderr, timeout=DEADLINE, what="the note on the unreadable change")
        assert srv.get("/health").json()["generation"] == 1
        assert srv.get("/similar?" + urlencode({"id": track_id(3)}, quote_via=quote)).status == 200
        save_library(make_library(12), library)
        wait_for(lambda: srv.get("/health").json()["tracks"] == 12, timeout=DEADLINE, what="the reload of the good library")
    finally:
        assert srv.stop() == 0
    assert srv.stderr.count("changed but cannot be read") == 1
