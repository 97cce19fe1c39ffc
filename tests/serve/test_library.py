"""The service's parts without a server: where it may listen, which playlist format an Accept header asks for,
and what counts as a change of the library."""

from __future__ import annotations

from pathlib import Path

import pytest

from specmusic.embeddings import ShardedLibraryWriter, save_library
from specmusic.errors import ConfigError
from specmusic.serve import load_served_library
from specmusic.serve.library import library_signature
from specmusic.serve.server import check_listen, is_loopback
from tests.serve.conftest import make_library, needs_serve, track_id


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.10", False), ("example.org", False),
])  # fmt: skip
def test_only_loopback_addresses_count_as_this_machine(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_host_beyond_loopback_needs_a_token_of_16_characters() -> None:
    check_listen("127.0.0.1", None)
    check_listen("0.0.0.0", "x" * 16)
    with pytest.raises(ConfigError, match="--token"):
        check_listen("0.0.0.0", None)
    with pytest.raises(ConfigError, match="at least 16"):
        check_listen("127.0.0.1", "short")


@needs_serve
@pytest.mark.parametrize(("accept", "fmt"), [
    (None, "json"), ("", "json"), ("*/*", "json"), ("application/json", "json"),
    ("audio/x-mpegurl", "m3u8"), ("audio/*", "m3u8"), ("application/vnd.apple.mpegurl", "m3u8"),
    ("application/json;q=0.5, audio/mpegurl", "m3u8"), ("audio/x-mpegurl;q=0.2, */*;q=0.1", "m3u8"),
    ("application/xspf+xml", "xspf"), ("text/html, application/xhtml+xml;q=0.9, */*;q=0.8", "json"),
    ("text/html", None), ("application/json;q=0", None), ("audio/*;q=0, application/*", "json"),
])  # fmt: skip
def test_the_accept_header_chooses_the_playlist_format(accept: str | None, fmt: str | None) -> None:
    from specmusic.serve.api import playlist_format_for

    assert playlist_format_for(accept) == fmt


def test_a_folder_changes_when_its_parts_do_not_when_its_index_is_rewritten(tmp_path: Path) -> None:
    lib = make_library(12)
    writer = ShardedLibraryWriter.open(tmp_path / "lib", lib.model, shard_size=6)
    for i in range(len(lib)):
        writer.add(lib.record(i), lib.vectors[i])
    writer.finish()
    before = library_signature(str(tmp_path / "lib"))
    ShardedLibraryWriter.open(tmp_path / "lib", lib.model).finish()  # index.json rewritten, nothing added
    assert library_signature(str(tmp_path / "lib")) == before is not None
    more = make_library(3, start=12)
    writer = ShardedLibraryWriter.open(tmp_path / "lib", lib.model)
    for i in range(len(more)):
        writer.add(more.record(i), more.vectors[i])
    writer.finish()
    assert library_signature(str(tmp_path / "lib")) != before
    assert library_signature(str(tmp_path / "nothing")) is None and library_signature(str(tmp_path / "no.npz")) is None


def test_a_served_library_finds_ids_exactly_or_by_a_unique_tail(tmp_path: Path) -> None:
    save_library(make_library(10), tmp_path / "lib.npz")
    served = load_served_library(str(tmp_path / "lib.npz"))
    assert served.find("003 Song 3.flac", parameter="track") == track_id(3)
    assert served.find(track_id(3), parameter="id", exact=True) == track_id(3)
    for text, exact in (("003 Song 3.flac", True), ("Song 3.flac", False), ("/music/elsewhere.flac", False)):
        with pytest.raises(Exception, match="unknown track") as caught:
            served.find(text, parameter="id", exact=exact)
        assert caught.value.status == 404 and caught.value.parameter == "id"
    assert served.health()["tracks"] == 10 and len(served) == 10
