"""Where outputs go and what a failed write says: inside ``-o``, never over an input, the path named.

Four rules every writer keeps:

* **Inside ``-o``.** An output that mirrors an input tree (``spectro``: ``OUT/<relpath>.npz``) is placed
  by :func:`mirror_path`: the input's relative path with its ``..`` steps and any root dropped
  (:func:`safe_relpath`: a manifest row ``../../x/song.wav`` is written as ``OUT/x/song.npz``), and
  refused when a link inside ``OUT`` would still carry it outside.
* **Never over an input.** :func:`check_not_an_input` refuses an output file that is one of the inputs
  (the same file by name, through a link or a hard link) before any work.
* **A set of files is whole or absent.** :func:`staged_files` writes a set (``nmf``'s folder, a generated
  sample, a mosaic and its pictures) into a hidden folder beside its place and moves it in only once
  every file is written, its marker file last: a full disk or a crash never leaves half a set.
* **The path that could not be written is named.** :func:`specmusic.fileio.named_write_error` (every
  atomic write goes through it) turns what a write raised without naming its file (a full disk:
  ``OSError(ENOSPC)`` from ``write``, libsndfile's "System error") into an ``OSError`` carrying the
  target's name, which the CLI prints as one line; a batch that a full disk stops says what it did not
  finish (:func:`full_disk_stop`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from specmusic.errors import InputError
from specmusic.fileio import printable_path

__all__ = [
    "check_not_an_input",
    "check_output_extension",
    "full_disk_stop",
    "is_disk_full",
    "mirror_path",
    "safe_relpath",
    "staged_files",
]


# -- inside -o ------------------------------------------------------------------------------
def safe_relpath(raw: str | os.PathLike[str]) -> str:
    """``raw`` as a relative POSIX path that stays inside any folder it is joined to.

    Normalised (``a/./b`` → ``a/b``, ``a/../b`` → ``b``), then the steps that would climb out (leading
    ``..``) and a root or drive are dropped: ``../../x/song.wav`` → ``x/song.wav``, ``/music/a.wav`` →
    ``music/a.wav``. A path of nothing but such steps becomes its last real name, or ``_``.
    """
    text = os.fspath(raw).replace(os.sep, "/")
    if os.altsep:  # Windows: both separators
        text = text.replace(os.altsep, "/")
    text = posixpath.normpath(text.lstrip("/")) if text else ""
    parts = [p for p in text.split("/") if p not in ("", ".", "..")]
    if parts and len(parts[0]) == 2 and parts[0][1] == ":":  # a Windows drive, C:
        parts = parts[1:]
    return "/".join(parts) or "_"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def mirror_path(root: str | os.PathLike[str], relpath: str | os.PathLike[str], *, suffix: str | None = None) -> Path:
    """Where the output of an input at ``relpath`` goes under ``root``: always inside ``root``.

    ``relpath`` passes through :func:`safe_relpath`; with ``suffix`` its extension is replaced
    (``rock/song.mp3`` → ``ROOT/rock/song.npz``; a name without one gets ``suffix`` added).

    Raises
    ------
    InputError
        A symbolic link inside ``root`` would carry the output outside it.
    """
    rel = Path(safe_relpath(relpath))
    if suffix is not None:
        rel = rel.with_name(rel.stem + suffix if rel.suffix else rel.name + suffix)
    dest = Path(root) / rel
    real_root = os.path.realpath(root)
    if not _inside(os.path.realpath(dest.parent), real_root):
        raise InputError(
            f"{printable_path(dest)}: would be written outside {printable_path(root)} (through the link "
            f"{printable_path(_first_link(Path(root), rel))}) — remove the link, or choose another -o"
        )
    return dest


def _first_link(root: Path, rel: Path) -> Path:
    at = root
    for part in rel.parts[:-1]:
        at = at / part
        if at.is_symlink():
            return at
    return at


# -- never over an input --------------------------------------------------------------------
def check_not_an_input(
    output: str | os.PathLike[str] | None,
    inputs: Iterable[str | os.PathLike[str] | None],
    *,
    option: str = "-o",
) -> None:
    """Refuse an output file that is one of ``inputs``, before any work: the same file as
    ``os.path.samefile`` sees it (device and inode, through a symbolic or a hard link). ``None`` and
    ``-`` (stdout, stdin) never clash; one ``stat`` per input.

    Raises
    ------
    InputError
        ``output`` is an input: ``OUT: is one of the inputs (IN) — the output would overwrite it; …``.
    """
    if output is None or os.fspath(output) == "-":
        return
    try:
        out = os.stat(output)
    except (OSError, ValueError):  # nothing there yet: no input to overwrite
        return
    for given in inputs:
        if given is None or os.fspath(given) == "-":
            continue
        try:
            st = os.stat(given)
        except (OSError, ValueError):
            continue
        if (st.st_dev, st.st_ino) == (out.st_dev, out.st_ino):
            also = "" if os.path.abspath(output) == os.path.abspath(given) else f" ({printable_path(given)})"
            raise InputError(
                f"{printable_path(output)}: is one of the inputs{also} — the output would overwrite it; "
                f"give {option} another name"
            )


def check_output_extension(
    path: str | os.PathLike[str] | None, *, extensions: Sequence[str], what: str, option: str = "-o"
) -> None:
    """Refuse, before any work, an output file whose extension is none of ``extensions`` (``.json``);
    ``what`` says what the command writes (``describe writes a JSON document``). ``None`` and ``-``
    (stdout) pass.

    Raises
    ------
    InputError
        ``OUT: describe writes a JSON document, not '.wav' — end the name in .json (or give -o - for stdout)``.
    """
    if path is None or os.fspath(path) == "-":
        return
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in extensions:
        found = f"not {ext!r}" if ext else "and the name has no extension"
        raise InputError(
            f"{printable_path(path)}: {what}, {found} — end the name in {', '.join(extensions)} "
            f"(or give {option} - for stdout)"
        )


# -- a full disk stops a batch --------------------------------------------------------------
def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or the user's quota) is full."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def full_disk_stop(
    exc: OSError, unfinished: Sequence[str], *, listed_in: str | os.PathLike[str]
) -> tuple[list[dict[str, str]], InputError]:
    """A batch stopped by a full disk (``exc``, naming the file it could not write): a failure row for each
    input it did not finish (``{"source", "error"}``, for the errors file ``listed_in``) and the one line
    that ends the run, naming that file and the inputs left."""
    where = printable_path(exc.filename) if exc.filename is not None else "the output"
    reason = (exc.strerror or os.strerror(exc.errno or errno.ENOSPC)).lower()
    rows = [{"source": p, "error": f"{printable_path(p)}: not processed — {where}: {reason}; free space and rerun"}
            for p in unfinished]  # fmt: skip
    first = ", ".join(printable_path(os.path.basename(p)) for p in unfinished[:3])
    more = ", …" if len(unfinished) > 3 else ""
    left = f"{len(unfinished)} input(s) not processed ({first}{more}; listed in {printable_path(listed_in)})" if unfinished else "every input was processed"
    return rows, InputError(
        f"{where}: {reason} — {left}; free space on that disk or choose another -o, then rerun (finished outputs are kept)"
    )


@contextlib.contextmanager
def staged_files(folder: str | os.PathLike[str], *, last: str | None = None) -> Iterator[Path]:
    """Yield a new hidden folder inside ``folder`` to write a set of files into; once the block ends
    they are moved into ``folder`` (renames: no space needed), ``last`` (the set's marker, e.g.
    ``summary.json``) deleted first and moved last, so a folder without it holds no finished set.

    On any error the hidden folder is deleted with what it holds — nothing of the set is left — and a
    write error naming a file in it names that file's place in ``folder`` instead.
    """
    folder = Path(folder)
    try:
        stage = Path(tempfile.mkdtemp(prefix=".partial-", dir=folder))
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, os.fspath(folder)) from exc
    try:
        try:
            yield stage
        except OSError as exc:
            inner = os.fspath(exc.filename) if exc.filename is not None else ""
            if inner.startswith(os.fspath(stage) + os.sep):
                raise OSError(exc.errno, exc.strerror, os.fspath(folder / os.path.relpath(inner, stage))) from exc
            raise
        names = sorted(os.listdir(stage), key=lambda name: name == last)
        if last is not None:
            (folder / last).unlink(missing_ok=True)  # an earlier set is unfinished from here on
        for name in names:
            os.replace(stage / name, folder / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
