"""Seeded tiny audio fixtures, written to tmp_path (named by edge case, as openl3's tests)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
needs_shared = pytest.mark.skipif(
    not (SHARED / "data").is_dir(), reason="../shared (real music and weights) is not beside the project"
)


def chirp(seconds: float = 1.0, sr: int = 22050, f0: float = 110.0, f1: float = 3520.0, seed: int = 0) -> np.ndarray:
    """A log-frequency sweep with a little seeded noise, float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    k = np.log(f1 / f0) / seconds
    y = 0.5 * np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k) + 0.01 * rng.standard_normal(len(t))
    return y.astype(np.float32)


def tone(freq: float, seconds: float = 1.0, sr: int = 22050, seed: int = 0, amp: float = 0.4) -> np.ndarray:
    """A harmonic tone (3 partials) with seeded noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = sum(amp / (h + 1) * np.sin(2 * np.pi * freq * (h + 1) * t) for h in range(3))
    return (y + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def melody(seconds: float = 10.0, seed: int = 0, sr: int = 22050, *, level_jitter: bool = False) -> np.ndarray:
    """Seeded synthetic music: random harmonic notes with decays and noise hits (every seed a different
    piece); ``level_jitter``: the whole piece at a random level between 0.3 and 1 (benchmarks/describe_speed.py)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    y = np.zeros(n)
    t0 = 0
    while t0 < n:
        dur = int(rng.uniform(0.12, 0.45) * sr)
        f0 = 110.0 * 2 ** (rng.integers(0, 36) / 12)
        t = np.arange(min(dur, n - t0)) / sr
        note = sum(rng.uniform(0.2, 1.0) / (h + 1) * np.sin(2 * np.pi * f0 * (h + 1) * t) for h in range(4))
        y[t0 : t0 + len(t)] += 0.25 * np.exp(-t * rng.uniform(2, 8)) * note
        if rng.random() < 0.4:
            k = min(int(0.05 * sr), n - t0)
            y[t0 : t0 + k] += 0.2 * rng.standard_normal(k) * np.exp(-np.arange(k) / (0.01 * sr))
        t0 += dur
    if level_jitter:
        y *= rng.uniform(0.3, 1.0)
    return y.astype(np.float32)


def write(path: Path, y: np.ndarray, sr: int = 22050, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(os.fsencode(path), y.T if y.ndim == 2 else y, sr, **kw)
    return path


def free_port() -> int:
    """A TCP port free on loopback now (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def mpd_daemon(music: Path, state: Path) -> Iterator[int]:
    """An mpd on a free loopback port with ``music`` as its music directory, its files in ``state`` (made here),
    a null audio output; yields the port (open) and stops it after."""
    port = free_port()
    state.mkdir()
    conf = state / "mpd.conf"
    conf.write_text(
        f'music_directory "{music}"\nplaylist_directory "{state}"\ndb_file "{state / "db"}"\n'
        f'state_file "{state / "state"}"\nlog_file "{state / "log"}"\nbind_to_address "127.0.0.1"\nport "{port}"\n'
        'filesystem_charset "UTF-8"\nzeroconf_enabled "no"\naudio_output {\n  type "null"\n  name "null"\n}\n'
    )
    daemon = subprocess.Popen(["mpd", "--no-daemon", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 30
        while True:  # until the port opens (bounded)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > end or daemon.poll() is not None:
                    pytest.fail(f"mpd did not open its port within 30 s (log: {state / 'log'})")
                time.sleep(0.1)
        yield port
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)


@pytest.fixture
def chirp_mono(tmp_path: Path) -> Path:
    return write(tmp_path / "chirp_mono.wav", chirp(2.0))


@pytest.fixture
def chirp_stereo(tmp_path: Path) -> Path:
    y = chirp(2.0)
    return write(tmp_path / "chirp_stereo.wav", np.stack([y, 0.5 * y]))


@pytest.fixture
def chirp_44k(tmp_path: Path) -> Path:
    return write(tmp_path / "chirp_44k.flac", chirp(2.0, sr=44100), sr=44100)


@pytest.fixture
def silence(tmp_path: Path) -> Path:
    return write(tmp_path / "silence.wav", np.zeros(22050, dtype=np.float32))


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    return p


@pytest.fixture
def zero_length(tmp_path: Path) -> Path:
    return write(tmp_path / "zero_length.wav", np.zeros(0, dtype=np.float32))


@pytest.fixture
def short(tmp_path: Path) -> Path:
    return write(tmp_path / "short.wav", chirp(0.1))


@pytest.fixture
def not_audio(tmp_path: Path) -> Path:
    p = tmp_path / "notes.wav"
    p.write_text("this is a text file, not audio\n")
    return p


@pytest.fixture
def truncated_mp3(tmp_path: Path) -> Path:
    full = write(tmp_path / "full.mp3", chirp(3.0), format="MP3")
    data = full.read_bytes()
    p = tmp_path / "truncated.mp3"
    p.write_bytes(data[: len(data) // 3])
    full.unlink()
    return p


@pytest.fixture
def genre_tree(tmp_path: Path) -> Path:
    """A GTZAN-like folder: 3 labels x 4 tracks of 1.5 s, each label its own pitch."""
    root = tmp_path / "genres"
    for li, (label, f) in enumerate((("low", 110.0), ("mid", 440.0), ("high", 1760.0))):
        for i in range(4):
            write(root / label / f"{label}.{i:05d}.wav", tone(f * (1 + 0.03 * i), 1.5, seed=10 * li + i))
    return root


@pytest.fixture
def non_utf8_name(tmp_path: Path) -> Path:
    name = os.fsdecode(b"caf\xe9-song.wav")  # Latin-1 byte: not valid UTF-8
    return write(tmp_path / name, chirp(1.0))


@pytest.fixture(scope="module")
def dotted_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two labels, one with dots in its name (as ``wesnoth-1.16-music``)."""
    root = tmp_path_factory.mktemp("dotted") / "music"
    for li, (label, f) in enumerate((("wesnoth-1.16-music", 220.0), ("low", 110.0))):
        for i in range(2):
            write(root / label / f"{label}.{i:02d}.wav", tone(f * (1 + 0.03 * i), 1.5, seed=10 * li + i))
    return root


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What of the real work started: samples decoded, a spectrogram inverted (checked instead of a stopwatch)."""
    import specmusic.inversion

    done: list[str] = []
    read, invert = sf.SoundFile.read, specmusic.inversion.griffin_lim

    def reading(self, *args, **kwargs):  # noqa: ANN001, ANN202
        done.append(f"decoded {self.name}")
        return read(self, *args, **kwargs)

    def inverting(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        done.append("inverted")
        return invert(*args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", reading)
    monkeypatch.setattr(specmusic.inversion, "griffin_lim", inverting)
    return done
