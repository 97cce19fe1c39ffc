"""The networks that ship inside the package: ``specmusic/models/bundled/<name>.onnx``, each checked
against ``bundled/SHA256SUMS`` (``sha256sum`` format) before it is used.

They work on a fresh, offline machine without torch; the authors' licences are in
``bundled/LICENSE``. Which networks ship is the registry's to say
(:func:`specmusic.models.zoo.registry.bundled_names`); the maintainer command that rebuilds them is
``python -m specmusic.models.zoo --bundle`` (:mod:`specmusic.models.zoo.rebuild`).
"""

from __future__ import annotations

from pathlib import Path

from specmusic.errors import ModelError
from specmusic.fileio import atomic_write, display_path, sha256_file
from specmusic.models.zoo.registry import bundled_names

__all__ = ["BUNDLE_DIR", "BUNDLE_SUMS", "bundled_model", "read_sums", "record_bundled"]

BUNDLE_DIR = Path(__file__).resolve().parents[1] / "bundled"
BUNDLE_SUMS = "SHA256SUMS"
_REINSTALL = "reinstall specmusic: pip install --force-reinstall specmusic"

_VERIFIED: dict[Path, str] = {}  # bundled files already checked in this process → their sha256


def read_sums(folder: Path) -> dict[str, str]:
    """``SHA256SUMS`` of ``folder`` (``sha256sum`` format: ``<hex>  <file name>``) as {file name: hex};
    empty when there is none."""
    try:
        text = (folder / BUNDLE_SUMS).read_text(encoding="utf-8")
    except OSError:
        return {}
    sums = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0]
    return sums


def record_bundled(path: Path) -> None:
    """Put ``path``'s sha256 into the ``SHA256SUMS`` of its folder (one line a file, sorted by name), and
    forget any earlier check of it in this process."""
    sums = read_sums(path.parent)
    sums[path.name] = sha256_file(path)
    atomic_write(path.parent / BUNDLE_SUMS, lambda f: f.writelines(f"{h}  {n}\n" for n, h in sorted(sums.items())), "w")
    _VERIFIED.pop(path, None)


def bundled_model(name: str) -> Path | None:
    """The ONNX model of network ``name`` shipped inside the package, checked against its sha256.

    Returns ``None`` when ``name`` is not bundled (:func:`~specmusic.models.zoo.registry.bundled_names`)
    or this install lacks the file (a source tree without its package data): the caller falls back to
    the cache and the download.

    Raises
    ------
    ModelError
        The file's sha256 is not the one recorded in ``bundled/SHA256SUMS`` (a damaged install).
    """
    if name not in bundled_names():
        return None
    path = BUNDLE_DIR / f"{name}.onnx"
    if path in _VERIFIED:
        return path
    if not path.is_file():
        return None
    expected = read_sums(BUNDLE_DIR).get(path.name)
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise ModelError(f"cannot read the bundled {name} tagger {display_path(path)} ({exc.strerror}) — "
                         f"{_REINSTALL}") from exc  # fmt: skip
    if digest != expected:
        recorded = f"{expected[:16]}…" if expected else f"no entry in {BUNDLE_SUMS}"
        raise ModelError(
            f"the bundled {name} tagger {display_path(path)} is damaged (sha256 {digest[:16]}…, recorded {recorded}) — "
            f"{_REINSTALL}"
        )
    _VERIFIED[path] = digest
    return path
