"""Decode, mix down, resample and save audio, without librosa.

Decoding is soundfile's (libsndfile: WAV, FLAC, MP3, OGG/Vorbis, Opus, AU, AIFF); resampling is
soxr's "HQ" quality, the same resampler and quality that ``librosa.load`` uses by default.
Long files are read in blocks (:func:`stream_audio`), so an hour-long file never has to sit in
memory at its native rate.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from specmusic.errors import AudioError
from specmusic.fileio import atomic_path, display_path

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioInfo",
    "display_path",
    "read_info",
    "stream_audio",
    "load_audio",
    "save_audio",
    "loudness_normalize",
]

#: File name extensions treated as audio when walking folders (lower case).
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".au", ".snd", ".aif", ".aiff"}
)

_FIX = "check that it is a complete WAV, FLAC, MP3, OGG, Opus or AU file"



@dataclass(frozen=True)
class AudioInfo:
    """What the container says about an audio file."""

    sample_rate: int
    channels: int
    frames: int
    format: str

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _open(path: str | os.PathLike[str]) -> sf.SoundFile:
    """Open ``path`` with soundfile, turning every failure into a one-line :class:`AudioError`."""
    name = display_path(path)
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise AudioError(f"{name}: no such file — check the path") from None
    except PermissionError:
        raise AudioError(f"{name}: permission denied — make the file readable") from None
    except OSError as exc:
        raise AudioError(f"{name}: cannot stat ({exc.strerror}) — check the path") from None
    if os.path.isdir(path):
        raise AudioError(f"{name}: is a directory, not an audio file — pass the folder as an input")
    if size == 0:
        raise AudioError(f"{name}: file is empty (0 bytes) — re-export or remove it")
    try:
        return sf.SoundFile(os.fsencode(path))  # bytes: names that are not valid UTF-8 work too
    except sf.LibsndfileError as exc:
        reason = str(exc.error_string).strip().rstrip(".") or "unknown format"
        raise AudioError(f"{name}: not a readable audio file ({reason}) — {_FIX}") from None
    except (RuntimeError, OSError, TypeError) as exc:
        raise AudioError(f"{name}: cannot decode ({exc}) — {_FIX}") from None


def read_info(path: str | os.PathLike[str]) -> AudioInfo:
    """Read sample rate, channel count and length from the file header.

    Raises
    ------
    AudioError
        Missing, empty or undecodable file.
    """
    with _open(path) as f:
        return AudioInfo(f.samplerate, f.channels, f.frames, f.format)


def stream_audio(
    path: str | os.PathLike[str],
    *,
    sr: int | None = 22050,
    mono: bool = True,
    offset: float = 0.0,
    duration: float | None = None,
    block_seconds: float = 20.0,
) -> Iterator[np.ndarray]:
    """Yield consecutive blocks of decoded, mixed-down and resampled audio.

    Parameters
    ----------
    path : path to an audio file
    sr : target sample rate; ``None`` keeps the file's own rate
    mono : average the channels
    offset : seconds to skip at the start
    duration : seconds to read at most (``None``: to the end)
    block_seconds : length of a decoded block at the native rate; memory stays bounded by it

    Yields
    ------
    block : np.ndarray [shape=(n,) if mono else (channels, n)], float32
        Concatenating the blocks gives the whole resampled signal.

    Raises
    ------
    AudioError
        Missing, empty, undecodable or truncated file, or non-finite samples.
    """
    import soxr  # small C extension; imported here to keep `import specmusic.audio` light

    name = display_path(path)
    with _open(path) as f:
        native = f.samplerate
        channels = 1 if mono else f.channels
        start = int(round(max(offset, 0.0) * native))
        if start:
            if f.seekable():
                f.seek(min(start, f.frames))
            else:  # pragma: no cover - every format soundfile reads is seekable
                f.read(start, dtype="float32")
        remaining = None if duration is None else int(round(duration * native))
        # What the header promises, to notice a truncated file (mpg123 decodes what is there).
        expected = max(f.frames - start, 0) if remaining is None else min(remaining, max(f.frames - start, 0))
        decoded = 0
        block = max(int(block_seconds * native), 1024)
        resampler = (
            soxr.ResampleStream(native, sr, channels, dtype="float32", quality="HQ")
            if sr is not None and sr != native
            else None
        )
        while True:
            want = block if remaining is None else min(block, remaining)
            if want <= 0:
                break
            try:
                x = f.read(want, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise AudioError(f"{name}: decoding failed ({exc}) — {_FIX}") from None
            decoded += len(x)
            if remaining is not None:
                remaining -= len(x)
            last = len(x) < want or remaining == 0
            if last and expected - decoded > max(0.05 * expected, 0.5 * native):
                raise AudioError(
                    f"{name}: truncated — the header promises {expected / native:.1f} s but only "
                    f"{decoded / native:.1f} s decode; re-download or re-encode the file"
                )
            x = x.mean(axis=1, keepdims=True, dtype=np.float32) if mono else x
            if not np.isfinite(x).all():
                raise AudioError(f"{name}: contains NaN or infinite samples — {_FIX}")
            if resampler is not None:
                x = resampler.resample_chunk(x, last=last)
            out = np.ascontiguousarray(x[:, 0] if mono else x.T, dtype=np.float32)
            if out.size:
                yield out
            if last:
                break


def load_audio(
    path: str | os.PathLike[str],
    *,
    sr: int | None = 22050,
    mono: bool = True,
    offset: float = 0.0,
    duration: float | None = None,
) -> tuple[np.ndarray, int]:
    """Decode a whole file (or the window ``offset``..``offset+duration``) into memory.

    Returns
    -------
    y : np.ndarray [shape=(n,) if mono else (channels, n)], float32
    sr : the sample rate of ``y``

    Raises
    ------
    AudioError
        Missing, empty, undecodable file, or a file with no samples in the window.
    """
    blocks = list(stream_audio(path, sr=sr, mono=mono, offset=offset, duration=duration))
    if sr is None:
        sr = read_info(path).sample_rate
    if not blocks:
        raise AudioError(
            f"{display_path(path)}: contains no audio samples"
            + (f" after offset {offset:g} s" if offset else "")
            + " — check the file or the --offset"
        )
    return np.concatenate(blocks, axis=-1), sr


def loudness_normalize(y: np.ndarray, *, peak_db: float = -1.0, rms_db: float = -20.0) -> np.ndarray:
    """Remove DC, scale to ``rms_db`` dBFS RMS, and limit peaks to ``peak_db`` dBFS.

    Silence stays silence (no division by zero).
    """
    y = np.asarray(y, dtype=np.float32)
    y = y - y.mean(axis=-1, keepdims=True)
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))
    if rms < 1e-9:
        return np.zeros_like(y)
    y = y * (10 ** (rms_db / 20) / rms)
    peak = float(np.max(np.abs(y)))
    limit = 10 ** (peak_db / 20)
    if peak > limit:
        y = y * (limit / peak)
    return y.astype(np.float32)


def save_audio(path: str | os.PathLike[str], y: np.ndarray, sr: int, *, subtype: str | None = None) -> None:
    """Write ``y`` [shape=(n,) or (channels, n)] to ``path``; ``"-"`` writes WAV to stdout.

    The format follows the extension (``.wav``, ``.flac``, ``.ogg``). The write is atomic:
    a temporary file in the same folder is renamed over ``path`` once complete.
    """
    data = np.asarray(y, dtype=np.float32)
    data = data.T if data.ndim == 2 else data
    if os.fspath(path) == "-":
        buf = io.BytesIO()
        sf.write(buf, data, sr, format="WAV", subtype=subtype or "PCM_16")
        sys.stdout.buffer.write(buf.getvalue())
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    with atomic_path(target, suffix=target.suffix) as tmp:  # the suffix tells libsndfile the format
        sf.write(os.fsencode(tmp), data, sr, subtype=subtype)
