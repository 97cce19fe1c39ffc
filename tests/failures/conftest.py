"""Shared inputs of the failure tests: a tiny model, WAV headers that lie, and the one-clean-failure check."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.conftest import tone, write
from tests.inference.test_inference import export_tiny_classifier as _export


@pytest.fixture(scope="package")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("model") / "model.onnx", ["low", "mid", "high"])


def wav_claiming_rate(path: Path, rate: int, seconds: float = 1.5) -> Path:
    """A 16-bit mono WAV of a tone whose header says ``rate`` Hz (the samples are 22.05 kHz ones)."""
    write(path, tone(440.0, seconds))
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"fmt "
    struct.pack_into("<I", data, 24, rate)  # sample rate
    struct.pack_into("<I", data, 28, 2 * rate)  # byte rate (one 16-bit channel)
    path.write_bytes(bytes(data))
    return path
