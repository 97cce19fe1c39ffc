"""Audio and pictures of a report: relative links, embedded excerpts, spectrogram thumbnails.

A report is a page beside its own folder (``report.html`` + ``report_files/``), so the page keeps
working when that folder is copied together with the outputs it describes. Audio is *linked*:
``os.path.relpath`` from the page's folder, each byte URL-quoted (``quote(os.fsencode(rel))``), so a
name with spaces, ``#``, quotes or bytes that are not UTF-8 still resolves under ``file://``. With
``embed_audio`` the first :data:`EXCERPT_SECONDS` of each clip are re-encoded as Ogg Vorbis and
embedded as a ``data:`` URI (a self-contained page, at ~8 KB per second of audio); so is audio no
browser plays (:data:`UNPLAYABLE`: ``.au``, AIFF), whatever the option. A self-contained page
embeds its pictures too.

Thumbnails are the spectrogram itself as an image (one pixel per pooled bin, no axes), written as
an 8-bit palette PNG in matplotlib's ``magma`` colours (Pillow, which matplotlib already needs): a
few milliseconds and ~10–40 KB each, so a page of a hundred tracks stays small. Pictures a command already drew (``--png``, ``confusion.png``, ``W.png``) are
linked, not redrawn.

Defaults (one block)::

    EXCERPT_SECONDS  = 10.0    # --embed-audio: seconds of each clip embedded
    EXCERPT_RATE     = 22050   # Hz, mono Ogg Vorbis
    THUMB_ROWS       = 64      # thumbnail height (frequency rows, pooled)
    THUMB_COLUMNS    = 480     # thumbnail width at most (time frames, max-pooled)
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np

from specmusic.fileio import atomic_path, display_path

__all__ = ["EXCERPT_SECONDS", "Media", "relative_url", "resolve_audio", "thumbnail_array"]

EXCERPT_SECONDS = 10.0
EXCERPT_RATE = 22050
THUMB_ROWS = 64
THUMB_COLUMNS = 480

#: Extensions browsers cannot play (Sun .au, AIFF): their audio is embedded as an excerpt even when
#: links were asked for, so every player on a page plays.
UNPLAYABLE = frozenset({".au", ".snd", ".aif", ".aiff", ".aifc"})


def relative_url(target: str | os.PathLike[str], page_dir: str | os.PathLike[str]) -> str:
    """``target`` as a URL relative to ``page_dir``: POSIX separators, every other byte percent-quoted."""
    rel = os.path.relpath(os.path.abspath(target), os.path.abspath(page_dir))
    return quote(os.fsencode(rel).replace(os.sep.encode(), b"/"), safe="/")


def resolve_audio(path: str, bases: list[Path]) -> Path | None:
    """An audio path as a command wrote it, found on disk: absolute as is, relative to the current folder,
    then to each of ``bases`` (the folder of the file that named it). None when it is nowhere."""
    p = Path(path)
    candidates = [p] if p.is_absolute() else [p, *(b / p for b in bases)]
    for c in candidates:
        if c.is_file():
            return c
    return None


def thumbnail_array(spec: np.ndarray, *, rows: int = THUMB_ROWS, columns: int = THUMB_COLUMNS) -> np.ndarray:
    """A spectrogram [shape=(n_rows, n_frames)] pooled to at most ``rows`` × ``columns`` and scaled to [0, 1].

    A complex array (an STFT saved as is) is drawn by its magnitude (numpy would drop the imaginary part
    with a ``ComplexWarning`` on stderr); anything not numeric, not 2-D or empty is a blank picture.
    """
    x = np.asarray(spec)
    if x.ndim != 2 or x.size == 0 or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        return np.zeros((1, 1), dtype=np.float32)
    x = np.nan_to_num((np.abs(x) if np.iscomplexobj(x) else x).astype(np.float32))
    if x.ndim != 2 or x.size == 0:
        return np.zeros((1, 1), dtype=np.float32)
    r = max(1, -(-x.shape[0] // rows))
    c = max(1, -(-x.shape[1] // columns))
    x = np.pad(x, ((0, -x.shape[0] % r), (0, -x.shape[1] % c)), mode="edge")
    x = x.reshape(x.shape[0] // r, r, x.shape[1] // c, c).mean(axis=1).max(axis=2)
    lo, hi = np.percentile(x, 2), np.percentile(x, 99.5)
    return np.clip((x - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)


@dataclass
class Media:
    """Links and files for one report: ``page_dir`` holds the pages, ``files_dir`` the thumbnails."""

    page_dir: Path
    files_dir: Path
    embed_audio: bool = False
    excerpt_seconds: float = EXCERPT_SECONDS
    written: list[Path] = field(default_factory=list)
    _audio: dict[str, dict[str, str | None]] = field(default_factory=dict, repr=False)

    def link(self, path: str | os.PathLike[str]) -> str:
        """A file beside the outputs, linked relative to the page."""
        return relative_url(path, self.page_dir)

    def picture(self, path: str | os.PathLike[str]) -> str:
        """A PNG a command drew: linked, or (``embed_audio``: a self-contained page) embedded as a ``data:`` URI."""
        if not self.embed_audio:
            return self.link(path)
        with open(path, "rb") as f:
            return "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")

    def audio(self, path: str | os.PathLike[str] | None) -> dict[str, str | None]:
        """``{"src", "missing"}`` for an ``<audio>``: a relative URL, a ``data:`` URI of an excerpt, or
        (file not found or undecodable) no ``src`` and the reason."""
        if path is None:
            return {"src": None, "missing": "not found"}
        key = os.path.abspath(path)
        if key not in self._audio:  # a track listed twice (recommend neighbours) is encoded once
            self._audio[key] = self._audio_src(Path(path))
        return self._audio[key]

    def _audio_src(self, path: Path) -> dict[str, str | None]:
        if not self.embed_audio and Path(path).suffix.lower() not in UNPLAYABLE:
            return {"src": self.link(path), "missing": None}
        try:
            return {"src": self._excerpt_uri(path), "missing": None}
        except Exception as exc:  # noqa: BLE001 - a clip that cannot be decoded is shown as such, the rest go on
            return {"src": None, "missing": f"cannot decode ({type(exc).__name__})"}

    def _excerpt_uri(self, path: Path) -> str:
        import soundfile as sf

        from specmusic.audio import load_audio

        y, sr = load_audio(path, sr=EXCERPT_RATE, mono=True, duration=self.excerpt_seconds)
        buf = io.BytesIO()
        sf.write(buf, np.clip(y, -1.0, 1.0), sr, format="OGG", subtype="VORBIS")
        return "data:audio/ogg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")

    def thumbnail(self, spec: np.ndarray, key: str) -> str:
        """Write ``spec``'s thumbnail as ``files_dir/<hash of key>.png`` (atomically); its URL (with
        ``embed_audio``, the picture itself as a ``data:`` URI, and no file)."""
        from matplotlib import colormaps
        from PIL import Image

        name = hashlib.sha1(os.fsencode(key)).hexdigest()[:16] + ".png"
        target = self.files_dir / name
        grey = np.round(thumbnail_array(spec)[::-1] * 255).astype(np.uint8)  # low frequencies at the bottom
        picture = Image.fromarray(grey, mode="L").convert("P")
        palette = (colormaps["magma"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)
        picture.putpalette(palette.tobytes())
        if self.embed_audio:  # a self-contained page: no file beside it
            buf = io.BytesIO()
            picture.save(buf, format="PNG", optimize=True)
            return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
        with atomic_path(target, suffix=".png") as tmp:
            picture.save(tmp, format="PNG", optimize=True)
        self.written.append(target)
        return self.link(target)

    def audio_thumbnail(self, path: Path, *, seconds: float = 30.0) -> str | None:
        """A log-mel thumbnail of the first ``seconds`` of an audio file; None when it cannot be decoded."""
        from specmusic.features import FeatureConfig, compute_features_file

        try:
            spec, _ = compute_features_file(path, FeatureConfig(n_mels=64), duration=seconds)
        except Exception:  # noqa: BLE001 - the page says the picture is missing; the rest go on
            return None
        return self.thumbnail(spec, f"audio:{os.path.abspath(path)}")


def name_of(path: str | os.PathLike[str]) -> str:
    """A path as printable text (bytes that are not UTF-8 as ``\\xNN``)."""
    return display_path(path)
