"""Decode, mix down, resample and save audio, without librosa.

Decoding is soundfile's (libsndfile: WAV, FLAC, MP3, OGG/Vorbis, Opus, AU, AIFF); resampling is
soxr's "HQ" quality, the same resampler and quality that ``librosa.load`` uses by default.
Long files are read in blocks (:func:`stream_audio`), so an hour-long file never has to sit in
memory at its native rate.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from specmusic.errors import AudioError
from specmusic.fileio import atomic_path, display_path, printable_path, printable_text

__all__ = [
    "AUDIO_EXTENSIONS", "AudioInfo", "AudioStream", "MAX_SAMPLE_RATE", "MIN_SAMPLE_RATE", "display_path",
    "sample_rate_problem", "BAND_SHARE_FLOOR", "PeakMeter", "SILENCE_PEAK", "signal_warnings", "read_info",
    "stream_audio", "stream_audio_frames", "check_complete", "load_audio", "AUDIO_OUTPUT_FORMATS",
    "audio_output_format", "check_audio_output", "save_audio", "loudness_normalize", "mix_down",
]

#: File name extensions treated as audio when walking folders (lower case).
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".au", ".snd", ".aif", ".aiff"}
)

_FIX = "check that it is a complete WAV, FLAC, MP3, OGG, Opus or AU file"

#: The sample rates of real audio: outside them a header or metadata is corrupt (1 Hz makes 66 KB 18 hours long)
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 768_000


def sample_rate_problem(rate: float) -> str | None:
    """Why ``rate`` (Hz) is no real sample rate (``"1 Hz, outside the 1000–768000 Hz of real audio"``), or None."""
    real = MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE
    return None if real else f"{rate:g} Hz, outside the {MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz of real audio"


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


_MPEG_EXTENSIONS = (".mp3", ".mp2", ".mpga")


_QUIET_LOCK = threading.Lock()
_QUIET_DEPTH = 0
_QUIET_SAVED = -1


@contextlib.contextmanager
def mpeg_quiet(path: str | os.PathLike[str]) -> Iterator[None]:
    """Silence libmpg123's own stderr chatter ("Warning: Xing stream size off…") while it decodes ``path``.

    libmpg123 writes to file descriptor 2 from C, past Python's ``sys.stderr``; specmusic reports
    what matters itself (a truncated file is an error naming it). Only MPEG files are affected.
    Safe from several threads at once: the first to enter redirects fd 2, the last to leave restores it.
    """
    global _QUIET_DEPTH, _QUIET_SAVED
    if not os.fsdecode(os.fspath(path)).lower().endswith(_MPEG_EXTENSIONS):
        yield
        return
    with _QUIET_LOCK:
        if _QUIET_DEPTH == 0:
            sys.stderr.flush()
            _QUIET_SAVED = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        _QUIET_DEPTH += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _QUIET_DEPTH -= 1
            if _QUIET_DEPTH == 0:
                os.dup2(_QUIET_SAVED, 2)
                os.close(_QUIET_SAVED)


def _open(path: str | os.PathLike[str]) -> sf.SoundFile:
    """Open ``path`` with soundfile, turning every failure into a one-line :class:`AudioError`.

    Every reader passes here: a header whose sample rate is no real one (:func:`sample_rate_problem`)
    is refused before a sample is decoded.
    """
    name = printable_path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise AudioError(f"{name}: no such file — check the path") from None
    except PermissionError:
        raise AudioError(f"{name}: permission denied — make the file readable") from None
    except OSError as exc:
        raise AudioError(f"{name}: cannot stat ({exc.strerror}) — check the path") from None
    if stat.S_ISDIR(info.st_mode):
        raise AudioError(f"{name}: is a folder, not an audio file — give one audio file here")
    if not stat.S_ISREG(info.st_mode):
        what = next((what for test, what in _SPECIAL_FILES if test(info.st_mode)), "a special file")
        raise AudioError(f"{name}: is {what}, not a regular file — save the audio to a file and give its path")
    if info.st_size == 0:
        raise AudioError(f"{name}: file is empty (0 bytes) — re-export or remove it")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{name}: permission denied — make the file readable")
    try:
        with mpeg_quiet(path):
            f = sf.SoundFile(os.fsencode(path))  # bytes: names that are not valid UTF-8 work too
    except sf.LibsndfileError as exc:
        raise AudioError(f"{name}: {_unreadable_reason(path, exc, info.st_size)} — {_FIX}") from None
    except (RuntimeError, OSError, TypeError) as exc:
        raise AudioError(f"{name}: cannot decode ({exc}) — {_FIX}") from None
    problem = sample_rate_problem(f.samplerate)
    if problem is not None:
        f.close()
        raise AudioError(f"{name}: the header's sample rate is {problem}: the header is corrupt — re-encode "
                         "the file from its original")
    return f


#: What a path that is not a regular file is (after symlinks), for the error line.
_SPECIAL_FILES = ((stat.S_ISFIFO, "a pipe (FIFO)"), (stat.S_ISCHR, "a character device (such as /dev/zero)"),
                  (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _unreadable_reason(path: str | os.PathLike[str], exc: sf.LibsndfileError, size: int) -> str:
    """libsndfile's refusal, in words that fit a regular file that exists (its MPEG reader says "File does
    not exist or is not a regular file (possibly a pipe?)" of an MP3 with no audio frame: an ID3 tag alone)."""
    reason = str(exc.error_string).strip().rstrip(".") or "unknown format"
    if "possibly a pipe" not in reason:
        return f"not a readable audio file ({reason})"
    tag = _id3_size(path)
    if tag and tag >= size:
        return f"holds only an ID3 tag ({size} bytes) and no MPEG audio"
    return "no audio stream libsndfile recognises (damaged, or a format it does not read)"


def _id3_size(path: str | os.PathLike[str]) -> int:
    """Bytes of the ID3v2 tag at the start of ``path`` (header and footer included); 0 without one."""
    with contextlib.suppress(OSError), open(os.fsencode(os.fspath(path)), "rb") as fh:
        h = fh.read(10)
        if len(h) == 10 and h[:3] == b"ID3" and not any(b & 0x80 for b in h[6:10]):  # a syncsafe size
            return 10 + ((h[6] << 21) | (h[7] << 14) | (h[8] << 7) | h[9]) + (10 if h[5] & 0x10 else 0)
    return 0


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
) -> AudioStream:
    """Yield consecutive blocks of decoded, mixed-down and resampled audio.

    Parameters
    ----------
    path : path to an audio file
    sr : target sample rate; ``None`` keeps the file's own rate
    mono : average the channels
    offset : seconds to skip at the start
    duration : seconds to read at most (``None``: to the end)
    block_seconds : length of a decoded block at the native rate; memory stays bounded by it

    Returns
    -------
    AudioStream
        Blocks np.ndarray [shape=(n,) if mono else (channels, n)], float32, that make up the resampled
        signal (the file is opened on the first ``next``), and ``native_peak``.

    Raises
    ------
    AudioError
        Missing, empty, undecodable or truncated file, or non-finite samples.
    """
    def blocks(stream: AudioStream) -> Iterator[np.ndarray]:
        with _open(path) as f:
            native = f.samplerate
            start = int(round(max(offset, 0.0) * native))
            stop = None if duration is None else start + int(round(duration * native))
            yield from _stream(f, path, start=start, stop=stop, sr=sr, mono=mono, block_seconds=block_seconds,
                               stream=stream)

    return AudioStream(blocks)


def stream_audio_frames(
    path: str | os.PathLike[str],
    *,
    start: int = 0,
    stop: int | None = None,
    sr: int | None = 22050,
    mono: bool = True,
    block_seconds: float = 20.0,
) -> AudioStream:
    """:func:`stream_audio` of the native sample frames ``start`` to ``stop``, found by seeking.

    libsndfile seeks to the exact sample in WAV, FLAC, Ogg Vorbis and Opus; in an MP3 the first
    ~70 ms after a seek can differ from a whole decode (the bit reservoir refills), so start a little
    early and drop them. When ``start * sr / native`` is a whole number the resampled blocks lie on
    the same sample grid as a decode of the whole file, so away from the first few milliseconds (the
    resampler's and decoder's warm-up) they agree with the matching slice of it.

    Parameters
    ----------
    start, stop : native sample frames (``stop=None``: to the end of the file)

    Raises
    ------
    AudioError
        As :func:`stream_audio`; a read that ends short of ``stop`` by more than the truncation
        tolerance (5% of the file or half a second) is a truncated file.
    """
    def blocks(stream: AudioStream) -> Iterator[np.ndarray]:
        with _open(path) as f:
            yield from _stream(f, path, start=start, stop=stop, sr=sr, mono=mono, block_seconds=block_seconds,
                               stream=stream)

    return AudioStream(blocks)


def check_complete(path: str | os.PathLike[str], info: AudioInfo) -> None:
    """Raise when the file is visibly cut short: an Ogg stream without its end-of-stream page.

    A decode to the end of the file checks this itself; a reader that only seeks to windows
    calls it once per file.

    Raises
    ------
    AudioError
        The Ogg stream lacks its last page (an interrupted download or copy).
    """
    if info.format == "OGG" and not ogg_has_end(path):
        raise AudioError(
            f"{printable_path(path)}: truncated — the Ogg stream stops after {info.duration:.1f} s without its "
            "end-of-stream page; re-download or re-encode the file"
        )


def _stream(
    f: sf.SoundFile,
    path: str | os.PathLike[str],
    *,
    start: int,
    stop: int | None,
    sr: int | None,
    mono: bool,
    block_seconds: float,
    stream: AudioStream,
) -> Iterator[np.ndarray]:
    """Blocks of the open file ``f`` from native frame ``start`` to ``stop`` (None: the end); the peak of
    the decoded (mixed-down) samples goes to ``stream.native_peak`` before they are resampled."""
    import soxr  # small C extension; imported here to keep `import specmusic.audio` light

    name = printable_path(path)
    native = f.samplerate
    channels = 1 if mono else f.channels
    start = max(int(start), 0)
    if start:
        if f.seekable():
            with mpeg_quiet(path):
                f.seek(min(start, f.frames))
        else:  # pragma: no cover - every format soundfile reads is seekable
            f.read(start, dtype="float32")
    remaining = None if stop is None else max(int(stop) - start, 0)
    if remaining is None:
        check_complete(path, AudioInfo(native, f.channels, f.frames, f.format))
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
            with mpeg_quiet(path):
                x = f.read(want, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(f"{name}: decoding failed ({exc}) — {_FIX}") from None
        decoded += len(x)
        if remaining is not None:
            remaining -= len(x)
        last = len(x) < want or remaining == 0
        # A read that stops short of what the header promises is a truncated file (mpg123 decodes
        # what is there); 5% of the file or half a second of slack, whichever part is read.
        reached = start + decoded
        target = f.frames if stop is None else min(int(stop), f.frames)
        if len(x) < want and target - reached > max(0.05 * f.frames, 0.5 * native):
            raise AudioError(
                f"{name}: truncated — the header promises {f.frames / native:.1f} s but decoding stops at "
                f"{reached / native:.1f} s; re-download or re-encode the file"
            )
        x = mix_down(x)[:, None] if mono else x
        if not np.isfinite(x).all():
            raise AudioError(f"{name}: contains NaN or infinite samples — {_FIX}")
        if x.size:
            stream.native_peak = max(stream.native_peak, float(np.abs(x).max()))
        if resampler is not None:
            x = resampler.resample_chunk(x, last=last)
        out = np.ascontiguousarray(x[:, 0] if mono else x.T, dtype=np.float32)
        if out.size:
            yield out
        if last:
            break


def mix_down(x: np.ndarray) -> np.ndarray:
    """The mean of the channels of ``x`` [shape=(n, channels)], float32 [shape=(n,)]: the same values as
    ``x.mean(axis=1, dtype=np.float32)``, channel by channel (numpy's reduction along a short axis of
    interleaved samples costs ~16 ms for 30 s of stereo; adding the columns, under 1 ms)."""
    channels = x.shape[1]
    if channels == 1:
        return x[:, 0]
    if channels >= 8:  # numpy sums 8 values or more pairwise: keep its order
        return x.mean(axis=1, dtype=np.float32)
    out = x[:, 0] + x[:, 1]
    for c in range(2, channels):
        out += x[:, c]
    out /= np.float32(channels)
    return out


def ogg_has_end(path: str | os.PathLike[str], *, tail: int = 1 << 16) -> bool:
    """True when the last Ogg page in the file's final ``tail`` bytes carries the end-of-stream flag.

    An Ogg file cut short (an interrupted download or copy) decodes without error to whatever
    pages are left, and its length is read from the last page, so nothing else reveals it.
    """
    with open(os.fsencode(os.fspath(path)), "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(size - tail, 0))
        data = fh.read()
    at = data.rfind(b"OggS")
    while at >= 0:
        if at + 27 <= len(data):  # a whole page header: header_type is byte 5, EOS is bit 2
            return bool(data[at + 5] & 0x04)
        at = data.rfind(b"OggS", 0, at)
    return False


class AudioStream:
    """The blocks of :func:`stream_audio`; ``native_peak`` is the largest sample decoded so far, before
    resampling (a legal file stays within full scale there; the resampler's ringing does not: full-scale
    noise at 44.1 kHz reaches ±1.8 at 22.05 kHz)."""

    def __init__(self, blocks: Callable[[AudioStream], Iterator[np.ndarray]]) -> None:
        self.native_peak = 0.0
        self._blocks = blocks(self)

    def __iter__(self) -> AudioStream:
        return self

    def __next__(self) -> np.ndarray:
        return next(self._blocks)

    def close(self) -> None:  # stop early: the file is closed
        self._blocks.close()


class PeakMeter:
    """Pass audio blocks through, noting the largest absolute sample and the sample count.

    ``PeakMeter(stream_audio(path))`` feeds :func:`specmusic.features.compute_features_stream`
    while measuring what :func:`signal_warnings` needs, without a second pass over the file (over an
    :class:`AudioStream`, the peak before resampling). With ``band=(low_hz, high_hz, blocks' rate)`` it
    sums each mono block's power in the band and in all (Hann-windowed: DC or 5 Hz leaks below -100 dB
    into a band from 20 Hz): ``band_power / power`` is the share a model hearing that band can hear.
    """

    def __init__(self, blocks: Iterator[np.ndarray], *, band: tuple[float, float, int] | None = None) -> None:
        self._blocks = blocks
        self._peak = 0.0
        self.samples = 0
        self.band = band
        self.band_power = 0.0
        self.power = 0.0

    @property
    def peak(self) -> float:
        """The largest absolute sample seen (the decoded file's, for an :class:`AudioStream`)."""
        native = getattr(self._blocks, "native_peak", None)
        return self._peak if native is None else native

    def __iter__(self) -> Iterator[np.ndarray]:
        for block in self._blocks:
            if block.size:
                self._peak = max(self._peak, float(np.abs(block).max()))
                self.samples += block.shape[-1]
                if self.band is not None and block.ndim == 1 and block.size > 1:
                    self._measure_band(block)
            yield block

    def _measure_band(self, block: np.ndarray) -> None:
        low, high, sr = self.band  # type: ignore[misc]
        n = min(block.size, _BAND_FRAME)  # whole frames of 2^16 samples (a shorter block: itself); a tail
        frames = block[: block.size // n * n].reshape(-1, n)  # shorter than a frame is left out
        window, inside = _band_tools(n, float(low), float(high), float(sr))
        power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2
        self.power += float(power.sum(dtype=np.float64))
        self.band_power += float(power[:, inside].sum(dtype=np.float64))


_BAND_FRAME = 1 << 16  # 2 s at 32 kHz: 0.5 Hz bins, so DC or 5 Hz leaks below -100 dB into a band from 20 Hz


@functools.lru_cache(maxsize=16)
def _band_tools(n: int, low: float, high: float, sr: float) -> tuple[np.ndarray, np.ndarray]:
    """A float32 Hann window of ``n`` samples, and which of its ``rfft`` bins lie in ``low``..``high`` Hz."""
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)
    freqs = np.arange(n // 2 + 1) * (sr / n)
    return window, (freqs >= low) & (freqs <= high)


SILENCE_PEAK = 1e-5  # -100 dBFS
BAND_SHARE_FLOOR = 1e-6  # -60 dB: less of the power in the model's band (DC, infrasound) is nothing to hear


def signal_warnings(name: str, *, peak: float, seconds: float, window_seconds: float | None = None,
                    band: tuple[float, float] | None = None, band_share: float | None = None) -> list[str]:
    """What makes a result from this audio untrustworthy: digital silence, no energy in the model's band,
    a mis-scaled signal, a clip too short.

    ``name`` is shown as :func:`printable_text`; ``peak`` and ``band_share`` (of the power inside ``band``,
    Hz) as :class:`PeakMeter` measures them. Returns one line per problem (none for music a model can judge).
    """
    name = printable_text(name)
    out = []
    if peak < SILENCE_PEAK:
        out.append(f"{name}: digital silence (peak below -100 dBFS) — any label or vector for it is meaningless")
    elif band is not None and band_share is not None and band_share < BAND_SHARE_FLOOR:
        out.append(f"{name}: no energy between {band[0]:g} and {band[1]:g} Hz, the band the model hears (only DC "
                   "or infrasound) — any label or vector for it is meaningless")
    if peak > 1.5:
        out.append(f"{name}: samples reach ±{peak:.3g}, far beyond full scale (±1) — the file is mis-scaled or "
                   "corrupt; results are unreliable")
    if window_seconds is not None and seconds < window_seconds:
        out.append(f"{name}: only {seconds:.2f} s of audio, shorter than the model's {window_seconds:.2f} s window "
                   "— it is repeated to fill one; results are unreliable")
    return out


def load_audio(path: str | os.PathLike[str], *, sr: int | None = 22050, mono: bool = True, offset: float = 0.0,
               duration: float | None = None) -> tuple[np.ndarray, int]:
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
        after = f" after offset {offset:g} s" if offset else ""
        raise AudioError(f"{printable_path(path)}: contains no audio samples{after} — check the file or the --offset")
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


#: Audio a file name may ask for when writing (lower-case extension → libsndfile format).
AUDIO_OUTPUT_FORMATS: dict[str, str] = {
    ".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3", ".aiff": "AIFF", ".aif": "AIFF", ".au": "AU",
}


def audio_output_format(path: str | os.PathLike[str]) -> str:
    """The libsndfile format that writing to ``path`` gives (``"-"``: WAV on stdout).

    Raises
    ------
    InputError
        The extension names no format specmusic writes (one line naming the file and the formats).
    """
    from specmusic.errors import InputError

    if os.fspath(path) == "-":
        return "WAV"
    ext = os.path.splitext(os.fspath(path))[1].lower()
    fmt = AUDIO_OUTPUT_FORMATS.get(ext)
    if fmt is None:
        what = f"the extension {ext!r} is not an audio format specmusic writes" if ext else "it has no extension"
        raise InputError(
            f"{printable_path(path)}: {what} — end the name in {', '.join(sorted(AUDIO_OUTPUT_FORMATS))} "
            "(or give - for WAV on stdout)"
        )
    return fmt


def check_audio_output(path: str | os.PathLike[str], *, option: str = "-o") -> None:
    """Check, before any work, that audio can be written to ``path``: a known extension and a writable folder.

    Creates the folder (as the write would). ``"-"`` (stdout) always passes.

    Raises
    ------
    InputError
        An extension that is no audio format (:func:`audio_output_format`), a folder that cannot be
        created or written, or ``path`` is a folder.
    """
    from specmusic.errors import InputError
    from specmusic.fileio import ensure_writable_dir

    audio_output_format(path)
    if os.fspath(path) == "-":
        return
    if os.path.isdir(path):
        raise InputError(f"{printable_path(path)}: is a folder — give {option} a file name such as out.wav")
    ensure_writable_dir(Path(path).parent, option=option)


def save_audio(path: str | os.PathLike[str], y: np.ndarray, sr: int, *, subtype: str | None = None) -> None:
    """Write ``y`` [shape=(n,) or (channels, n)] to ``path``; ``"-"`` writes WAV to stdout.

    The format follows the extension (:data:`AUDIO_OUTPUT_FORMATS`: ``.wav``, ``.flac``, ``.ogg``,
    ``.mp3``, ``.aiff``, ``.au``). The write is atomic: a temporary file in the same folder is renamed
    over ``path`` once complete.

    Raises
    ------
    InputError
        An extension that names no audio format (checked before anything is written; callers check
        earlier still with :func:`check_audio_output`).
    """
    fmt = audio_output_format(path)
    data = np.asarray(y, dtype=np.float32)
    data = data.T if data.ndim == 2 else data
    if os.fspath(path) == "-":
        buf = io.BytesIO()
        sf.write(buf, data, sr, format="WAV", subtype=subtype or "PCM_16")
        sys.stdout.buffer.write(buf.getvalue())
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    with atomic_path(target, suffix=target.suffix) as tmp:
        sf.write(os.fsencode(tmp), data, sr, format=fmt, subtype=subtype)
