"""Atomic file writes: write to a temporary name beside the target, then rename.

A reader (or a rerun after an interruption) never sees a half-written file under the final name.
``tempfile.mkstemp`` creates files with mode 0600; the finished file gets the permissions a plain
``open`` would have given it under the current umask.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "atomic_write", "sha256_file"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``.

    The temporary file exists (empty) when the block starts, so a writer may open it by name.
    On any exception it is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(target: str | os.PathLike[str], write: Callable[[Any], None], mode: str = "wb") -> None:
    """Call ``write(f)`` on a temporary file opened with ``mode``, then rename it to ``target``."""
    with atomic_path(target) as tmp:
        kwargs = {} if "b" in mode else {"encoding": "utf-8"}
        with open(tmp, mode, **kwargs) as f:
            write(f)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    what: str,
    how_to_fix: str,
    sha256: str | None = None,
    progress: bool | None = None,
) -> Path:
    """Fetch ``url`` to ``dest`` atomically, with a progress bar on stderr and an optional sha256 check.

    Raises
    ------
    ModelError
        No network or an HTTP error (``cannot download the {what} weights (…) — {how_to_fix}``), or a
        sha256 mismatch; ``dest`` is left as it was and no temporary file remains.
    """
    import sys
    import urllib.error
    import urllib.request

    from tqdm import tqdm

    from specmusic.errors import ModelError

    digest = hashlib.sha256()
    with atomic_path(dest, suffix=".part") as tmp:
        with open(tmp, "wb") as out:
            try:
                request = urllib.request.Request(url, headers={"User-Agent": "specmusic"})
                with urllib.request.urlopen(request, timeout=60) as response:
                    total = int(response.headers.get("Content-Length") or 0) or None
                    bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {what}", file=sys.stderr,
                               disable=None if progress is None else not progress, leave=False)
                    with bar:
                        for block in iter(lambda: response.read(1 << 16), b""):
                            out.write(block)
                            digest.update(block)
                            bar.update(len(block))
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", None) or exc
                raise ModelError(f"cannot download the {what} weights ({reason}) — {how_to_fix}") from exc
        got = digest.hexdigest()
        if sha256 is not None and got != sha256:
            raise ModelError(
                f"downloaded {url} has sha256 {got[:16]}…, expected {sha256[:16]}… — "
                f"the download is corrupt or the file changed upstream; retry, or {how_to_fix}"
            )
    return Path(dest)
