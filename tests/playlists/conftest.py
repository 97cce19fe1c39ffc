"""A small tagged collection (5 artists × 2 albums × 3 tracks, each artist its own pitch), one byte copy
of a track on a compilation under another title, and its MFCC library: what the playlist tests share."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from specmusic.cli.app import app
from tests.conftest import tone, write

ARTISTS = {"Ann": (110.0, "Jazz", 1995), "Bob": (196.0, "Rock", 1985), "Cy": (349.0, "Jazz", 2005),
           "Dee": (622.0, "Folk", 1975), "Eve": (1109.0, "Rock", 2015)}  # fmt: skip


def run(*args: str, input: str | None = None):
    """``specmusic ARGS`` in-process (CliRunner: stdout and stderr apart)."""
    return CliRunner().invoke(app, list(args), input=input)


def tag(path: Path, **tags: str) -> Path:
    """Write ``tags`` into ``path`` with mutagen (the test skips where mutagen, a runtime dependency, is missing)."""
    mutagen = pytest.importorskip("mutagen", reason="mutagen (a runtime dependency) is not installed")
    f = mutagen.File(path, easy=True)
    for key, value in tags.items():
        f[key] = value
    f.save()
    return path


def make_collection(root: Path) -> Path:
    """``root/<Artist>/<Album>/0N Song.flac``, tagged, plus ``root/Compilation/01 Copy.flac`` (the bytes of
    Ann/One/01, tagged as another album and title: only the audio says it is the same recording)."""
    for a, (name, (base, genre, year)) in enumerate(ARTISTS.items()):
        for b, album in enumerate(("One", "Two")):
            for t in range(3):
                path = root / name / album / f"0{t + 1} Song.flac"
                write(path, tone(base * (1 + 0.04 * (3 * b + t)), 1.5, seed=100 * a + 10 * b + t), format="FLAC")
                tag(path, artist=name, album=f"{name} {album}", title=f"{name} song {3 * b + t + 1}", genre=genre,
                    date=str(year + b), tracknumber=str(t + 1))  # fmt: skip
    copy = root / "Compilation" / "01 Copy.flac"
    copy.parent.mkdir(parents=True)
    shutil.copyfile(root / "Ann" / "One" / "01 Song.flac", copy)
    tag(copy, album="Greatest Hits", title="Another Title")
    return root


@pytest.fixture(scope="package")
def collection(tmp_path_factory) -> Path:
    return make_collection(tmp_path_factory.mktemp("collection") / "music")


@pytest.fixture(scope="package")
def library(collection, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("library") / "lib.npz"
    r = run("embed", str(collection), "-m", "mfcc", "-o", str(out))
    assert r.exit_code == 0, r.stderr
    return out


def track(collection: Path, artist: str, album: str, n: int) -> str:
    return str(collection / artist / album / f"0{n} Song.flac")
