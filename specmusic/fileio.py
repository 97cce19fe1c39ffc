"""Files: atomic writes (JSON, JSON Lines, ``.npz``), printable paths, the per-user cache folder, downloads.

Every artifact specmusic writes goes through :func:`atomic_path`: write to a temporary name beside
the target, then rename, so a reader (or a rerun after an interruption) never sees a half-written
file under the final name. ``tempfile.mkstemp`` creates files with mode 0600; the finished file gets
the permissions a plain ``open`` would have given it under the current umask.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "CACHE_ENV",
    "atomic_path",
    "atomic_write",
    "cache_dir",
    "deferred_interrupts",
    "display_path",
    "download",
    "ensure_writable_dir",
    "folder_lock",
    "json_line",
    "named_write_error",
    "naming_write_errors",
    "numpy_load_reason",
    "open_binary_writer",
    "PICKLE_REASON",
    "PiecewiseWriter",
    "printable_path",
    "printable_text",
    "save_npz_atomic",
    "save_torch_atomic",
    "sha256_file",
    "stdout_if_full",
    "sweep_stale_temps",
    "WRITE_ERRNOS",
    "write_json_atomic",
    "write_jsonl_atomic",
]

CACHE_ENV = "SPECMUSIC_CACHE"


# -- names as text: one line, printable -----------------------------------------------------
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, as os.fsdecode keeps it
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable_text(text: str) -> str:
    """``text`` as one line that any terminal, UTF-8 file or picture can show.

    File names on Linux are bytes and labels are anything a folder is called. A byte of a file name
    that is not UTF-8 (a lone surrogate ``\\udcNN``, as ``os.fsdecode`` keeps it) becomes ``\\xNN``;
    control characters are escaped as JSON escapes them (``\\n``, ``\\r``, ``\\t``; others ``\\xNN``),
    and so are the Unicode line separators, so a name never splits a ``warning:`` line or a table
    row. Idempotent: printable text stays as it is. JSON output keeps the exact name (:func:`json_line`).
    """
    return _UNPRINTABLE.sub(_escape, text)


def printable_path(path: str | os.PathLike[str] | bytes) -> str:
    """``path`` as printable text: :func:`printable_text` of its name (bytes that are not UTF-8 as ``\\xNN``,
    control characters escaped). Every message, table row and picture shows a file name through it."""
    return printable_text(os.fsdecode(os.fspath(path)))


#: The same function as :func:`printable_path`, under the name most of specmusic calls it by.
display_path = printable_path


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def json_line(obj: Any, **kwargs: Any) -> str:
    """One JSON Lines record: ``json.dumps(obj, ensure_ascii=False)`` plus a newline, UTF-8-safe.

    Paths are written as the OS decodes them (``os.fsdecode``): a byte that is not valid UTF-8
    becomes a lone surrogate, which is written as the JSON escape ``\\udcNN`` (other text stays
    readable). ``os.fsencode(json.loads(line)["path"])`` gives back the file's exact bytes.
    """
    text = json.dumps(obj, ensure_ascii=False, **kwargs)
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"


PICKLE_REASON = "it holds Python objects, which specmusic never loads"


def numpy_load_reason(exc: BaseException, path: str | os.PathLike[str] | None = None) -> str:
    """Why ``np.load(path, allow_pickle=False)`` failed, in plain words — never numpy's advice to
    load the file unsafely: :data:`PICKLE_REASON` for object arrays and pickles, ``not a NumPy
    .npy/.npz file`` for other bytes, else numpy's own message."""
    text = str(exc)
    if "Object arrays" in text:
        return PICKLE_REASON
    if "pickle" in text:  # neither .npy nor .npz: numpy's last resort would be to unpickle it
        head = b""
        if path is not None:
            with contextlib.suppress(OSError), open(path, "rb") as f:
                head = f.read(1)
        return PICKLE_REASON if head == b"\x80" else "not a NumPy .npy/.npz file"
    return text


def cache_dir() -> Path:
    """Per-user cache: ``$SPECMUSIC_CACHE``, else ``$XDG_CACHE_HOME/specmusic``, else ``~/.cache/specmusic``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "specmusic"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- the path that could not be written is named ---------------------------------------------
#: The errors of a write (not of a missing or forbidden path, which name their file themselves).
WRITE_ERRNOS = frozenset(
    e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EFBIG, errno.EIO, errno.EROFS) if e is not None
)
_LOW_SPACE = 1 << 16  # bytes left below which a libsndfile "System error" is taken for a full disk


def _free_bytes(folder: str | os.PathLike[str]) -> int | None:
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):  # no statvfs on Windows
        return None
    return st.f_bavail * st.f_frsize


def named_write_error(
    exc: BaseException, target: str | os.PathLike[str], *, temp: str | os.PathLike[str] | None = None
) -> OSError | None:
    """The error to raise instead of ``exc``, which writing ``target`` raised: an ``OSError`` naming
    ``target``; None when ``exc`` already names its file (other than the temporary one) or is no write error.

    * an ``OSError`` of a write (:data:`WRITE_ERRNOS`: no space left, quota, read-only…) that names no
      file, or any ``OSError`` naming the temporary file ``temp`` written instead of ``target``;
    * libsndfile's ``System error`` (soundfile's ``LibsndfileError``), which hides the ``errno``: a
      full disk when the target's folder has (almost) no space left, else "cannot write".
    Call it before removing the temporary file: its blocks still count as used.
    """
    name = os.fspath(target)
    if isinstance(exc, OSError):
        of_temp = temp is not None and exc.filename is not None and os.fspath(exc.filename) == os.fspath(temp)
        if exc.errno is not None and (of_temp or (exc.filename is None and exc.errno in WRITE_ERRNOS)):
            return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), name)
        return None
    if type(exc).__name__ == "LibsndfileError" and "System error" in str(exc):
        free = _free_bytes(os.path.dirname(os.path.abspath(name)))
        if free is not None and free < _LOW_SPACE:
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)
        return OSError(errno.EIO, f"cannot write it (libsndfile: {exc})", name)
    return None


@contextlib.contextmanager
def naming_write_errors(target: str | os.PathLike[str]) -> Iterator[None]:
    """Raise :func:`named_write_error` instead of a write error of the block that does not name ``target``
    (a stream appended to, a folder of files written in turn)."""
    try:
        yield
    except BaseException as exc:
        named = named_write_error(exc, target)
        if named is None:
            raise
        raise named from exc


def stdout_if_full(exc: BaseException) -> str | None:
    """``"stdout"`` when ``exc`` is a write error naming no file and stdout is a file on a full disk
    (``specmusic classify … > /full/disk/x.jsonl``): the output it failed to write; else None."""
    if not isinstance(exc, OSError) or exc.filename is not None or exc.errno not in WRITE_ERRNOS:
        return None
    try:
        free = os.fstatvfs(sys.stdout.fileno())
    except (OSError, AttributeError, ValueError):  # no descriptor (a test's stream), or no statvfs
        return None
    return "stdout" if free.f_bavail * free.f_frsize < _LOW_SPACE else None


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``.

    The temporary file exists (empty) when the block starts, so a writer may open it by name. It is
    named ``.NAME.XXXXXXXX{suffix}`` and locked (``flock``) until the rename: :func:`sweep_stale_temps`
    tells a write in progress from one that a killed process left. On any exception it is removed and
    ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    tmp = Path(name)
    _LIVE_TEMPS.add(tmp)
    try:
        with contextlib.suppress(OSError):  # a filesystem without locks: the write goes on unlocked
            lock_fd(fd, wait=False)
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException as exc:
        named = named_write_error(exc, target, temp=tmp)  # a full disk names the file (before freeing tmp's blocks)
        tmp.unlink(missing_ok=True)
        if named is not None:
            raise named from exc
        raise
    finally:
        _LIVE_TEMPS.discard(tmp)
        os.close(fd)  # releases the lock


#: The names :func:`atomic_path` gives its temporary files: ``.`` + the target's name + ``.`` + mkstemp's 8
#: characters + a suffix (``.tmp``, or the format's own: ``.png``, ``.pt``, ``.part`` …).
_TEMP_NAME = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}\.[A-Za-z0-9]{1,8}")
#: And those that earlier versions tagged with their pid (``.NAME.PID.tmp[.png]``: figures, ANN indexes), still swept.
_PID_TEMP_NAME = re.compile(r"\.(?P<target>.+)\.(?P<pid>\d+)\.tmp(?:\.[A-Za-z0-9]{1,8})?")


def sweep_stale_temps(
    folder: str | os.PathLike[str],
    *,
    before: float | None = None,
    recursive: bool = False,
    targets: Iterable[str] | None = None,
) -> int:
    """Delete the temporary files that writes cut short by SIGKILL (or a power cut) left in ``folder``.

    Only names of the atomic writers' patterns, only inside ``folder``, only files last modified before
    ``before`` that no live process holds: :func:`atomic_path` keeps its temporary file locked until the
    rename (the file goes when its lock can be taken); a file tagged with its writer's pid goes when no
    process of that pid lives on this machine. Nothing is removed where the OS has no ``flock``.

    Parameters
    ----------
    before : POSIX time; younger files are kept (default: now). A run passes its start.
    recursive : also in sub-folders (an output tree such as ``spectro``'s)
    targets : only the temporary files of these file names (``lib.npz``: ``.lib.npz.XXXXXXXX.tmp``), for a
        folder that holds more than this tool's outputs

    Returns
    -------
    How many files were removed.
    """
    if not HAS_FLOCK:
        return 0
    import time

    before = time.time() if before is None else before
    names = None if targets is None else set(targets)
    removed = 0
    pending = [Path(folder)]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue
        for entry in entries:
            if recursive and entry.is_dir(follow_symlinks=False):
                pending.append(Path(entry.path))
                continue
            m = _TEMP_NAME.fullmatch(entry.name) or _PID_TEMP_NAME.fullmatch(entry.name)
            if m and (names is None or m.group("target") in names):
                pid = m.groupdict().get("pid")
                removed += _remove_if_stale(entry, before, None if pid is None else int(pid))
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's: alive
        return True
    return True


def _remove_if_stale(entry: os.DirEntry[str], before: float, pid: int | None = None) -> int:
    """1 when ``entry`` is a plain file older than ``before`` whose writer is gone (it is removed), else 0:
    nobody holds its lock, or (``pid``) no process of that pid lives."""
    try:
        if not entry.is_file(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_mtime >= before:
            return 0
        if pid is not None and _pid_alive(pid):
            return 0
        fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return 0
    try:
        if not lock_fd(fd, wait=False):
            return 0  # a live write holds it
        os.unlink(entry.path)
        return 1
    except OSError:
        return 0
    finally:
        os.close(fd)


#: Temporary files of the atomic writes in progress in this process (see :func:`remove_live_temps`).
_LIVE_TEMPS: set[Path] = set()


def remove_live_temps() -> None:
    """Delete the temporary files of the atomic writes in progress: a worker process ended mid-write
    (SIGTERM when its run is interrupted, or its parent gone) leaves no ``.NAME.*.tmp`` behind."""
    for tmp in list(_LIVE_TEMPS):
        try:
            tmp.unlink()
        except OSError:
            pass


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) and SIGTERM until the block ends, then deliver them to the handlers they had.

    For the few statements that must happen together or not at all: a record written and counted, so
    that what an interrupted run says it kept is what it kept. Outside the main thread (where no handler
    can be set) nothing is held.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[tuple[int, Any]] = []
    held = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not None]  # None: set outside Python
    previous = {s: signal.signal(s, lambda signum, frame: caught.append((signum, frame))) for s in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum, frame in caught[:1]:
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)  # KeyboardInterrupt, or specmusic.workers.Terminated
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), signum)


#: Largest piece a :class:`PiecewiseWriter` hands the OS in one ``write``. On the project's Linux virtual
#: machines a write of more than 64 KiB can cost ~8 µs per KiB: one 662 KB write took 4.3 ms, the same bytes as
#: 64 KiB writes 0.22 ms (``benchmarks/write_pieces.py``); where large writes are cheap the pieces cost ~0.1 ms.
WRITE_PIECE = 1 << 16


class PiecewiseWriter(io.BufferedWriter):
    """A buffered binary file whose writes reach the OS in pieces of at most :data:`WRITE_PIECE` bytes."""

    def write(self, data: Any) -> int:
        try:
            view = memoryview(data).cast("B")
        except (TypeError, ValueError):  # not a contiguous buffer: as a plain buffered file would
            return super().write(data)
        written = 0
        for start in range(0, view.nbytes, WRITE_PIECE):
            written += super().write(view[start : start + WRITE_PIECE])
        return written


def open_binary_writer(path: str | os.PathLike[str]) -> PiecewiseWriter:
    """``open(path, "wb")``, as a :class:`PiecewiseWriter`."""
    return PiecewiseWriter(io.FileIO(path, "w"))


def atomic_write(target: str | os.PathLike[str], write: Callable[[Any], None], mode: str = "wb") -> None:
    """Call ``write(f)`` on a temporary file opened with ``mode`` (``"wb"``: a :class:`PiecewiseWriter`),
    then rename it to ``target``."""
    with atomic_path(target) as tmp:
        if mode == "wb":
            with open_binary_writer(tmp) as f:
                write(f)
            return
        kwargs = {} if "b" in mode else {"encoding": "utf-8"}
        with open(tmp, mode, **kwargs) as f:
            write(f)


def ensure_writable_dir(path: str | os.PathLike[str], *, option: str = "-o") -> Path:
    """Create ``path`` (and parents) and check that files can be written in it, before any work is done.

    Raises
    ------
    InputError
        The folder cannot be created or is not writable (``cannot write to OUT (reason) — …``).
    """
    from specmusic.errors import InputError

    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(
            f"cannot write to {display_path(folder)} ({reason.lower()}) — choose a writable folder with {option} "
            "or fix its permissions"
        ) from None
    return folder


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on the folder itself (POSIX ``flock`` on its descriptor; a no-op elsewhere).

    Serialises the read-merge-write of a folder's shared files (manifest, errors) between runs,
    without leaving a lock file behind.
    """
    if not HAS_FLOCK:  # Windows
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        lock_fd(fd)
        yield
    finally:
        os.close(fd)  # closing releases the lock


try:
    import fcntl as _fcntl
except ImportError:  # Windows: no flock
    _fcntl = None  # type: ignore[assignment]

#: Whether this OS has POSIX ``flock`` (the locks below are no-ops without it).
HAS_FLOCK = _fcntl is not None


def lock_fd(fd: int, *, wait: bool = True) -> bool:
    """Take an exclusive ``flock`` on ``fd`` (released when it is closed).

    Returns False when ``wait`` is False and another process holds it; True once locked, and
    always where there is no ``flock``.
    """
    if _fcntl is None:
        return True
    try:
        _fcntl.flock(fd, _fcntl.LOCK_EX | (0 if wait else _fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write pretty JSON (sorted keys, trailing newline) via a temporary file + rename."""
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n"), "w")


def write_jsonl_atomic(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> None:
    """Write JSON Lines, one object a line, via a temporary file + rename."""
    atomic_write(path, lambda f: f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in records), "w")


def save_npz_atomic(path: str | os.PathLike[str], arrays: dict[str, Any], *, compressed: bool = False) -> None:
    """``np.savez`` (or ``savez_compressed``) via a temporary file + rename; never pickles objects."""
    import numpy as np

    save = np.savez_compressed if compressed else np.savez
    atomic_write(path, lambda f: save(f, **arrays))


def save_torch_atomic(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """``torch.save`` a checkpoint via a temporary file + rename (torch imported only here)."""
    import torch

    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)


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
