"""Binary files the package writes reach the OS in pieces of at most ``WRITE_PIECE`` bytes, byte for byte
what a plain file gets (``benchmarks/write_pieces.py`` times why)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from specmusic import fileio
from specmusic.fileio import WRITE_PIECE, PiecewiseWriter, atomic_write, open_binary_writer, save_npz_atomic


class _CountingFileIO(io.FileIO):
    sizes: list[int]

    def write(self, data) -> int:  # noqa: ANN001
        self.sizes.append(memoryview(data).nbytes)
        return super().write(data)


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"spec": rng.standard_normal((128, 1292)).astype(np.float32), "duration": np.asarray(30.0),
            "config": np.asarray('{"kind": "mel"}')}  # fmt: skip


def test_large_writes_reach_the_os_in_pieces_and_the_bytes_are_a_plain_files(tmp_path: Path) -> None:
    raw = _CountingFileIO(tmp_path / "pieces.npz", "w")
    raw.sizes = []
    with PiecewiseWriter(raw) as f:
        np.savez(f, **_arrays())
    with open(tmp_path / "plain.npz", "wb") as f:
        np.savez(f, **_arrays())
    assert max(raw.sizes) <= WRITE_PIECE
    assert sum(s >= WRITE_PIECE for s in raw.sizes) >= (128 * 1292 * 4) // WRITE_PIECE  # the array went in pieces
    assert (tmp_path / "pieces.npz").read_bytes() == (tmp_path / "plain.npz").read_bytes()


def test_writes_of_other_objects_keep_their_meaning(tmp_path: Path) -> None:
    path = tmp_path / "mixed.bin"
    big = np.arange(100_000, dtype=np.float64)
    with open_binary_writer(path) as f:
        assert f.write(b"head") == 4
        assert f.write(bytearray(b"\x00" * (3 * WRITE_PIECE + 5))) == 3 * WRITE_PIECE + 5
        assert f.write(big) == big.nbytes  # a numpy buffer: counted in bytes
        f.write(big[::2].copy())
    data = path.read_bytes()
    assert data[:4] == b"head" and len(data) == 4 + 3 * WRITE_PIECE + 5 + big.nbytes + big.nbytes // 2
    assert np.array_equal(np.frombuffer(data[-big.nbytes // 2 :], dtype=np.float64), big[::2])


def test_a_non_contiguous_buffer_is_refused_as_a_plain_file_refuses_it(tmp_path: Path) -> None:
    strided = np.arange(10, dtype=np.int32)[::2]
    with open(tmp_path / "plain.bin", "wb") as plain, pytest.raises((BufferError, TypeError, ValueError)) as want:
        plain.write(strided)
    with open_binary_writer(tmp_path / "pieces.bin") as f, pytest.raises(want.type):
        f.write(strided)


def test_atomic_npz_and_bytes_go_through_the_piecewise_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[Path] = []
    real = fileio.open_binary_writer

    def spy(path):  # noqa: ANN001, ANN202
        opened.append(Path(path))
        return real(path)

    monkeypatch.setattr(fileio, "open_binary_writer", spy)
    save_npz_atomic(tmp_path / "a.npz", _arrays())
    atomic_write(tmp_path / "b.bin", lambda f: f.write(b"x" * (WRITE_PIECE * 2)))
    atomic_write(tmp_path / "c.txt", lambda f: f.write("text"), "w")  # text files: a plain text file
    assert len(opened) == 2 and all(p.parent == tmp_path for p in opened)
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:
        assert np.array_equal(z["spec"], _arrays()["spec"])
    assert (tmp_path / "b.bin").stat().st_size == 2 * WRITE_PIECE and (tmp_path / "c.txt").read_text() == "text"
