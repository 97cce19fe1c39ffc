"""One way to run per-file work: in this process, a local pool (``--jobs N``) or a Dask cluster (``--cluster``).

``spectro``, ``embed`` and ``classify`` each define one *task function* per file (a module-level
function, so both a forked pool and spawned Dask workers can import it) and run it with
:func:`open_executor` + :func:`run_tasks`. The same function runs in every mode, so a run gives
the same outputs whichever way it ran. A task builds what it needs once per worker process
(:func:`worker_cached`: the ONNX model, the embedder — ONNX sessions cannot be pickled, so only
their path or description travels) and returns a picklable result.

- A task that raises a :class:`SpecmusicError` comes back as a :class:`TaskFailure` (turned into
  the caller's per-file failure by ``on_failure``), never as a crash of the run.
- On a cluster, :func:`require_visible` turns a file the worker cannot see into one line naming
  the worker and the fix (workers read audio by path).
- Tasks are submitted a few at a time (:func:`specmusic.distributed.map_bounded`), so memory stays
  flat in the number of tracks; Ctrl-C cancels what is queued, stops the local workers, and
  closes a local cluster; the caller keeps what finished.

Defaults (one block)::

    jobs    = 1      # local worker processes; 1: in this process
    cluster = None   # local | local:N | tcp://HOST:PORT (specmusic.distributed)
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from specmusic.errors import InputError, SpecmusicError

__all__ = ["TaskFailure", "open_executor", "require_visible", "run_tasks", "worker_cached"]


@dataclass(frozen=True)
class TaskFailure:
    """A task raised a :class:`SpecmusicError`: its one-line message."""

    error: str


_CACHE: dict[Any, Any] = {}


def worker_cached(key: Any, build: Callable[[], Any]) -> Any:
    """What ``build()`` returns, built once per process for ``key`` (a model, an embedder)."""
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


def _guarded(item: Any, task: Callable[..., Any], *args: Any) -> Any:
    """``task(item, *args)``, a :class:`SpecmusicError` returned as a :class:`TaskFailure`."""
    try:
        return task(item, *args)
    except SpecmusicError as exc:
        return TaskFailure(str(exc))


def _guarded_at(item: Any, cwd: str, task: Callable[..., Any], *args: Any) -> Any:
    """:func:`_guarded` on a Dask worker, in the client's working folder: relative paths (inputs, ``-o``)
    mean there what they mean to the user. Skipped where that folder does not exist on the worker
    (then a relative input is "not found on worker …", and spectro checks its outputs). Every task of
    a run carries the same folder, so workers with several threads agree on it."""
    if cwd != os.getcwd() and os.path.isdir(cwd):
        os.chdir(cwd)
    return _guarded(item, task, *args)


def _killed(item: Any, exc: BaseException) -> TaskFailure:
    """The failure of a file whose task killed every worker that tried it."""
    from specmusic.fileio import display_path

    path = item if isinstance(item, str) else getattr(getattr(item, "track", None), "path", None)
    name = display_path(path) if path else "a task"
    return TaskFailure(
        f"{name}: its worker died each time it ran ({type(exc).__name__}) — the file may crash the decoder "
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
    on_failure : turns an item and a :class:`SpecmusicError` message into the caller's per-file
        failure result (default: the :class:`TaskFailure` itself)
    """
    if executor is None:
        results: Iterator[tuple[Any, Any]] = ((item, _guarded(item, task, *args)) for item in items)
    else:
        from specmusic.distributed import map_bounded

        results = map_bounded(
            executor, _guarded_at, items, args=(os.getcwd(), task, *args), ordered=ordered, on_killed=_killed
        )
    for item, result in results:
        if isinstance(result, TaskFailure) and on_failure is not None:
            result = on_failure(item, result.error)
        yield item, result
