"""One way to run per-file work: in this process, a local pool (``--jobs N``) or a Dask cluster (``--cluster``).

``spectro``, ``embed``, ``classify`` and ``describe`` each define one *task function* per file (a
module-level function, so both a forked pool and spawned Dask workers can import it) and run it with
:func:`open_executor` + :func:`run_tasks`. The same function runs in every mode, so a run gives
the same outputs whichever way it ran. A task builds what it needs once per worker process
(:func:`worker_cached`: the ONNX model, the embedder — ONNX sessions cannot be pickled, so only
their path or description travels) and returns a picklable result.

Nothing one file does stops the batch:

- any exception a task raises is that file's failure, a :class:`TaskFailure` (turned into the
  caller's per-file failure by ``on_failure``): a :class:`SpecmusicError` gives its own line, any
  other exception ``PATH: internal error (TYPE: …) — rerun with -v for the traceback`` (its
  traceback printed to stderr after :func:`show_tracebacks`). Only a fault that is no file's —
  a full or read-only disk, an output that cannot be written — stops the run (:func:`stops_the_run`);
- a worker that dies (SIGKILL, a crash in C code) has its tasks run again on a new one
  (:mod:`specmusic.workers`; on a cluster, Dask's scheduler); a file whose worker died each time it
  ran it is reported as that file's failure (:func:`killed_failure`). On a cluster short files travel
  several to a task (:func:`specmusic.distributed.task_groups`, by :func:`expected_seconds`): each
  still succeeds or fails on its own, and a task of several files that killed its workers is run
  again one file a task, so that only the file that kills them is blamed;
- on a cluster, :func:`require_visible` turns a file the worker cannot see into one line naming
  the worker and the fix (workers read audio by path).

Tasks are submitted a few at a time (:func:`specmusic.distributed.map_bounded`), so memory stays
flat in the number of tracks; Ctrl-C (or SIGTERM) cancels what is queued, stops the local workers,
and closes a local cluster; the caller keeps what finished.

Defaults (one block)::

    jobs    = 1      # local worker processes; 1: in this process
    cluster = None   # local | local:N | tcp://HOST:PORT (specmusic.distributed)
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from specmusic.errors import InputError, SpecmusicError

__all__ = [
    "TaskFailure",
    "expected_seconds",
    "item_path",
    "killed_failure",
    "open_executor",
    "require_visible",
    "run_tasks",
    "show_tracebacks",
    "stops_the_run",
    "worker_cached",
]


@dataclass(frozen=True)
class TaskFailure:
    """A task failed: its one-line message; ``traceback`` (text) when it was an internal error, not a
    :class:`SpecmusicError`."""

    error: str
    traceback: str | None = None


_CACHE: dict[Any, Any] = {}
_CACHE_LOCK = threading.RLock()  # a build may ask for another cached thing
_TRACEBACKS: list[bool] = [False]


def show_tracebacks(show: bool = True) -> None:
    """Print the traceback of each internal error a task hits to stderr, as it comes (``specmusic -v``)."""
    _TRACEBACKS[0] = show


def worker_cached(key: Any, build: Callable[[], Any]) -> Any:
    """What ``build()`` returns, built once per process for ``key`` (a model, an embedder), kept for the
    process's next tasks; built once even when the tasks of a worker with several threads ask at once."""
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = build()
        return _CACHE[key]


def require_visible(path: str) -> None:
    """On a Dask worker, fail with one line when ``path`` does not exist there.

    Raises
    ------
    InputError
        The file is missing on this worker (a no-op outside a cluster: the task's own error says it).
    """
    if "distributed" not in sys.modules or os.path.exists(path):
        return
    from specmusic.distributed import worker_address

    where = worker_address()
    if where is None:
        return
    from specmusic.fileio import display_path

    raise InputError(
        f"{display_path(path)}: not found on worker {where} — workers read audio by path; "
        "mount the same folder at the same path on every worker"
    )


def item_path(item: Any) -> str | None:
    """The file a task item stands for: the item itself (a path), its ``track.path`` or its ``path``."""
    if isinstance(item, (str, os.PathLike)):
        return os.fsdecode(item)
    for owner in (getattr(item, "track", None), item):
        path = getattr(owner, "path", None)
        if isinstance(path, (str, os.PathLike)):
            return os.fsdecode(path)
    return None


#: Bytes a second of audio takes in a file, by its extension: uncompressed CD audio, FLAC-like lossless
#: at about 55 %, anything else as lossy at 160 kbit/s. A guess at a file's length from its size alone
#: (one ``stat``, no header read), good enough to put short files together (:func:`expected_seconds`).
_BYTES_PER_SECOND = {".wav": 176_400, ".wave": 176_400, ".aif": 176_400, ".aiff": 176_400, ".au": 176_400,
                     ".caf": 176_400, ".w64": 176_400, ".flac": 100_000, ".wv": 100_000, ".ape": 100_000}  # fmt: skip
_LOSSY_BYTES_PER_SECOND = 20_000


def expected_seconds(item: Any) -> float:
    """About how many seconds of audio ``item``'s file holds, from its size and extension; ``inf`` for a file
    that cannot be looked at here (so it is never put in one task with others)."""
    path = item_path(item)
    if path is None:
        return float("inf")
    try:
        size = os.stat(path).st_size
    except OSError:
        return float("inf")
    return size / _BYTES_PER_SECOND.get(os.path.splitext(path)[1].lower(), _LOSSY_BYTES_PER_SECOND)


#: Errors of the disk, not of a file: a batch that hits one stops (every other file would hit it too).
_RUN_ERRNOS = {errno.ENOSPC, errno.EROFS, getattr(errno, "EDQUOT", errno.ENOSPC)}


def stops_the_run(exc: BaseException, item: Any = None) -> bool:
    """Whether an exception a task raised is no file's fault and must stop the whole run: a full or read-only
    disk, or permission denied on a path that is not the item's input (an output that cannot be written)."""
    if not isinstance(exc, OSError):
        return False
    if exc.errno in _RUN_ERRNOS:
        return True
    if exc.errno in (errno.EACCES, errno.EPERM) and exc.filename is not None:
        source = item_path(item)
        return source is None or os.path.abspath(os.fsdecode(exc.filename)) != os.path.abspath(source)
    return False


def _display(item: Any) -> str:
    from specmusic.fileio import display_path

    path = item_path(item)
    return display_path(path) if path is not None else "a task"


def _internal(item: Any, exc: Exception) -> TaskFailure:
    """An exception that is no :class:`SpecmusicError`: one line naming the file, and its traceback."""
    import traceback

    text = " ".join(str(exc).split())
    what = f"{type(exc).__name__}: {text[:200]}{'…' if len(text) > 200 else ''}" if text else type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        what = f"{type(exc).__name__}: {exc.strerror}"
    return TaskFailure(f"{_display(item)}: internal error ({what})", traceback.format_exc())


def _guarded(item: Any, task: Callable[..., Any], *args: Any) -> Any:
    """``task(item, *args)``; an exception is returned as a :class:`TaskFailure`, unless it stops the run."""
    try:
        return task(item, *args)
    except SpecmusicError as exc:
        return TaskFailure(str(exc))
    except Exception as exc:
        if stops_the_run(exc, item):
            raise
        return _internal(item, exc)


def _guarded_at(item: Any, cwd: str, task: Callable[..., Any], *args: Any) -> Any:
    """:func:`_guarded` on a Dask worker, in the client's working folder: relative paths (inputs, ``-o``)
    mean there what they mean to the user. Skipped where that folder does not exist on the worker
    (then a relative input is "not found on worker …", and spectro checks its outputs). Every task of
    a run carries the same folder, so workers with several threads agree on it."""
    if cwd != os.getcwd() and os.path.isdir(cwd):
        os.chdir(cwd)
    return _guarded(item, task, *args)


def _guarded_group(items: list[Any], cwd: str, task: Callable[..., Any], *args: Any) -> list[Any]:
    """:func:`_guarded_at` for each of ``items`` in turn (one Dask task): one result each, in order."""
    return [_guarded_at(item, cwd, task, *args) for item in items]


@dataclass(frozen=True)
class _GroupKilled:
    """A task of several files killed every worker that ran it: Dask's exception, to run them one a task."""

    error: BaseException


def _run_on_cluster(
    client: Any, task: Callable[..., Any], items: Iterable[Any], args: tuple[Any, ...], ordered: bool
) -> Iterator[tuple[Any, Any]]:
    """``(item, result)`` for each item, short files several to a Dask task (:func:`expected_seconds`)."""
    from specmusic.distributed import map_bounded, task_groups

    def killed(group: list[Any], exc: BaseException) -> TaskFailure | _GroupKilled:
        return killed_failure(group[0], exc) if len(group) == 1 else _GroupKilled(exc)

    args = (os.getcwd(), task, *args)
    groups = task_groups(client, items, expected_seconds)
    for group, results in map_bounded(client, _guarded_group, groups, args=args, ordered=ordered, on_killed=killed):
        if isinstance(results, TaskFailure):
            yield group[0], results
        elif isinstance(results, _GroupKilled):
            # One file at a time: Dask blames every task a dying worker holds, so a file that kills its worker
            # must not be sent beside another file of the group.
            yield from map_bounded(client, _guarded_at, group, args=args, in_flight=1, on_killed=killed_failure)
        else:
            yield from zip(group, results)


def killed_failure(item: Any, exc: BaseException) -> TaskFailure:
    """The failure of a file whose task killed every worker that ran it: Dask's ``KilledWorker`` (after 3) or
    :class:`specmusic.workers.WorkerDied` (after 2, with how the worker died)."""
    how = getattr(exc, "how", None) or type(exc).__name__
    return TaskFailure(
        f"{_display(item)}: its worker died each time it ran ({how}) — the file may crash the decoder "
        "or need more memory than a worker has; check it, or leave it out"
    )


@contextlib.contextmanager
def open_executor(*, jobs: int = 1, cluster: str | None = None, n_items: int | None = None) -> Iterator[Any]:
    """Where tasks run: ``None`` (this process), a local pool of ``jobs`` processes, or a Dask client.

    Parameters
    ----------
    jobs : local worker processes (ignored with ``cluster``)
    cluster : ``--cluster``'s value (:func:`specmusic.distributed.parse_cluster`)
    n_items : no more local workers than items

    Raises
    ------
    ConfigError
        A bad ``cluster`` value, ``distributed`` not installed, or a scheduler out of reach.
    """
    if cluster:
        from specmusic.distributed import cluster_client

        with cluster_client(cluster) as client:
            yield client
        return
    jobs = min(jobs, n_items) if n_items is not None else jobs
    if jobs <= 1:
        yield None
        return
    from specmusic.workers import worker_pool

    with worker_pool(jobs) as pool:
        yield pool


def run_tasks(
    executor: Any,
    task: Callable[..., Any],
    items: Iterable[Any],
    *,
    args: tuple[Any, ...] = (),
    ordered: bool = False,
    on_failure: Callable[[Any, str], Any] | None = None,
) -> Iterator[tuple[Any, Any]]:
    """``(item, task(item, *args))`` for each item, run where ``executor`` says (:func:`open_executor`).

    Parameters
    ----------
    task : a module-level function (workers import it)
    ordered : input order (else completion order, except in this process where it is input order anyway)
    on_failure : turns an item and its one-line failure (any exception the task raised, or the death of
        every worker that ran it) into the caller's per-file failure result (default: the
        :class:`TaskFailure` itself)

    Raises
    ------
    OSError
        A fault that is no file's (:func:`stops_the_run`): the run stops.
    """
    if executor is None:
        results: Iterator[tuple[Any, Any]] = ((item, _guarded(item, task, *args)) for item in items)
    else:
        from specmusic.distributed import is_dask_client, map_bounded

        if is_dask_client(executor):
            results = _run_on_cluster(executor, task, items, args, ordered)
        else:
            results = map_bounded(
                executor, _guarded_at, items, args=(os.getcwd(), task, *args), ordered=ordered,
                on_killed=killed_failure,
            )  # fmt: skip
    for item, result in results:
        if isinstance(result, TaskFailure):
            result = _said(result)
            if on_failure is not None:
                result = on_failure(item, result.error)
        yield item, result


def _said(failure: TaskFailure) -> TaskFailure:
    """An internal error's line with where its traceback is (printed here first with :func:`show_tracebacks`)."""
    if failure.traceback is None:
        return failure
    if _TRACEBACKS[0]:
        sys.stderr.write(failure.traceback if failure.traceback.endswith("\n") else failure.traceback + "\n")
        sys.stderr.flush()
        return TaskFailure(f"{failure.error} — its traceback is above", failure.traceback)
    return TaskFailure(f"{failure.error} — rerun with -v for the traceback", failure.traceback)
