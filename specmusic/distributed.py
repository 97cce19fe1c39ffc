"""Running a batch on a Dask cluster: ``--cluster local[:N]`` or ``--cluster tcp://HOST:PORT``.

``spectro``, ``embed`` and ``classify`` hand their per-file work to :mod:`specmusic.batch`, which
runs the same task functions in a local process pool (``--jobs N``) or, through this module, on
Dask ``distributed`` (the optional extra ``pip install 'specmusic[cluster]'``):

- ``local`` / ``local:N``: a :class:`distributed.LocalCluster` on this machine, bound to
  127.0.0.1 (nothing listens beyond it), N worker *processes* (default: the cores) of one thread
  each, no dashboard, quiet logs; it is closed when the run ends, Ctrl-C included.
- ``tcp://HOST:PORT``: a scheduler the user started (``dask scheduler`` and ``dask worker`` over
  SSH, Kubernetes, Slurm/PBS with dask-jobqueue…); an unreachable address fails in a few seconds
  with one line. Every worker needs specmusic with the same models, and reads audio **by path**:
  the collection must be on a shared filesystem mounted at the same path on every worker.

:func:`map_bounded` keeps at most ``in_flight`` tasks submitted at a time and yields results as
they complete, so the client's memory does not grow with the number of tracks (the scheduler
holds a few futures, never a million). A worker that dies is Dask's business: the scheduler runs
its tasks on another worker, and gives up on a task after it killed 3 (``KilledWorker``), which
:mod:`specmusic.batch` reports as that file's failure, in the words it uses for a local pool's
(:class:`specmusic.workers.WorkerDied`). Ctrl-C cancels the submitted tasks before it propagates.

A Dask task costs ~30 ms more than a ``--jobs`` task (measured per 30 s clip on 2 workers, where
``embed --cluster local:2`` took 1.27× the wall of ``--jobs 2``): :func:`task_groups` puts consecutive short files into one
task (:mod:`specmusic.batch` runs each file of it on its own and sends their results back one by one),
so a task holds about ``TASK_AUDIO_SECONDS`` of audio (~1 s of work for ``embed``'s default models); a
file that long or longer is a task of its own.

Defaults (one block)::

    CONNECT_TIMEOUT = 10     # seconds to reach a tcp:// scheduler
    HANDSHAKE_TIMEOUT = 3    # seconds for what answers there to speak Dask's protocol first
    LOCAL_START_TIMEOUT = 300  # seconds a local cluster's workers may take to start and connect (a loaded
                               # machine is slow to start them; Dask's own default, 30 s, fails there)
    IN_FLIGHT_PER_WORKER = 4 # tasks submitted per worker thread at most (bounded client memory);
                             # the worker count is looked up again every 5 s (workers that join count)
    TASK_AUDIO_SECONDS = 120.0  # files are grouped into one task until it holds this much audio (4 clips
                                # of 30 s); a file this long or longer (a song) is a task of its own
    MAX_FILES_PER_TASK = 16  # and never more files than this (tiny files), nor more than a quarter of a
                             # worker thread's share of the run (every thread gets 4 tasks at least: a
                             # small run is not left to finish on one worker)
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from specmusic.errors import ConfigError

__all__ = [
    "CLUSTER_EXTRA",
    "ClusterSpec",
    "check_cluster",
    "cluster_client",
    "group_by_work",
    "is_dask_client",
    "map_bounded",
    "parse_cluster",
    "require_cluster",
    "task_groups",
    "worker_address",
]

CONNECT_TIMEOUT = 10
HANDSHAKE_TIMEOUT = 3.0
LOCAL_START_TIMEOUT = 300
IN_FLIGHT_PER_WORKER = 4
TASK_AUDIO_SECONDS = 120.0
MAX_FILES_PER_TASK = 16
CLUSTER_EXTRA = "pip install 'specmusic[cluster]'"
_GRAMMAR = "local, local:N (N worker processes on this machine) or tcp://HOST:PORT (a running Dask scheduler)"


@dataclass(frozen=True)
class ClusterSpec:
    """A parsed ``--cluster``: a local cluster of ``workers`` processes, or the scheduler at ``address``."""

    address: str | None = None  # tcp://HOST:PORT; None: a LocalCluster
    workers: int | None = None  # local only; None: one per core

    @property
    def local(self) -> bool:
        return self.address is None

    def __str__(self) -> str:
        if self.address:
            return self.address
        return "local" if self.workers is None else f"local:{self.workers}"


def parse_cluster(value: str) -> ClusterSpec:
    """``local``, ``local:N`` or ``tcp://HOST:PORT`` → :class:`ClusterSpec`.

    Raises
    ------
    ConfigError
        Anything else (one line that gives the grammar).
    """
    text = value.strip()
    if text == "local":
        return ClusterSpec()
    m = re.fullmatch(r"local:(\d+)", text)
    if m and int(m.group(1)) >= 1:
        return ClusterSpec(workers=int(m.group(1)))
    m = re.fullmatch(r"tcp://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})", text)
    if m and 0 < int(m.group(2)) < 65536:
        return ClusterSpec(address=text)
    raise ConfigError(f"--cluster {value!r} is not understood — use {_GRAMMAR}")


def require_cluster() -> None:
    """Stop with one line when Dask ``distributed`` is not installed.

    Raises
    ------
    ConfigError
        ``distributed`` is missing: the message names ``pip install 'specmusic[cluster]'``.
    """
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ConfigError(
            f"--cluster needs Dask distributed, which is not installed — {CLUSTER_EXTRA} (on every worker too)"
        ) from None


def check_cluster(value: str | None, jobs: int = 1) -> str | None:
    """``--cluster``, checked before any work: its grammar, ``distributed`` installed, not with ``--jobs``.

    Returns
    -------
    The cluster in its canonical form (``str`` of :class:`ClusterSpec`), or None without one.

    Raises
    ------
    ConfigError
        One line saying what to change.
    """
    if value is None:
        return None
    spec = parse_cluster(value)
    if jobs > 1:
        raise ConfigError("--jobs runs local processes and --cluster runs Dask workers — give one of them")
    require_cluster()
    return str(spec)


@contextlib.contextmanager
def cluster_client(spec: ClusterSpec | str) -> Iterator[Any]:
    """A :class:`distributed.Client` for ``spec``; a local cluster is closed on the way out.

    Raises
    ------
    ConfigError
        ``distributed`` is missing, or the scheduler cannot be reached within ``CONNECT_TIMEOUT``.
    """
    if isinstance(spec, str):
        spec = parse_cluster(spec)
    require_cluster()
    import distributed

    for name in ("distributed", "distributed.worker", "distributed.scheduler", "distributed.nanny"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # The client logs each failed reconnection with a traceback; map_bounded says it in one line.
    logging.getLogger("distributed.client").setLevel(logging.CRITICAL)
    if spec.local:
        import dask

        # The workers' statistical profiler samples the running task's stack every 10 ms, for a
        # dashboard we do not start; and Dask's MALLOC_TRIM_THRESHOLD_=65536 hands every freed
        # buffer back to the OS, so each decoded window faults its pages in again (~0.1 s of system
        # CPU a song). Each nanny hands this config to its worker (restarts too).
        environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
        environ.pop("MALLOC_TRIM_THRESHOLD_", None)
        quiet = {"distributed.worker.profile.enabled": False, "distributed.nanny.pre-spawn-environ": environ,
                 "distributed.comm.timeouts.connect": f"{LOCAL_START_TIMEOUT}s"}
        with dask.config.set(quiet):
            cluster = distributed.LocalCluster(
                n_workers=spec.workers or (os.cpu_count() or 1), threads_per_worker=1, processes=True,
                host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR,
                # no dashboard; the scheduler's small HTTP server (health, metrics) on a free loopback port
                scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
            )  # fmt: skip
        try:
            client = distributed.Client(cluster, set_as_default=False, timeout=LOCAL_START_TIMEOUT)
            try:
                yield client
            finally:
                with contextlib.suppress(Exception):
                    client.close(timeout=5)
        finally:
            with contextlib.suppress(Exception):
                cluster.close(timeout=5)
        return
    _probe(spec.address)
    try:
        client = distributed.Client(spec.address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except Exception as exc:  # noqa: BLE001 — whatever answered there, it is not a usable scheduler
        raise ConfigError(
            f"{spec.address} did not answer as a Dask scheduler ({type(exc).__name__}) — check --cluster "
            "(the scheduler's address, e.g. tcp://HOST:8786)"
        ) from None
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close(timeout=5)


def _probe(address: str) -> None:
    """Fail fast, with one line, when nothing listens at ``tcp://HOST:PORT``."""
    import socket

    host, _, port = address.removeprefix("tcp://").rpartition(":")
    try:
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__).lower()
        raise ConfigError(
            f"cannot reach the Dask scheduler at {address} ({why}) — start it (`dask scheduler`, then "
            "`dask worker ADDRESS` on each machine) or check --cluster"
        ) from None
    # A Dask server sends its handshake as soon as a connection opens; an HTTP server (the dashboard's
    # port, 8787, given by mistake) waits for a request, and Client() would then wait for minutes.
    try:
        sock.settimeout(HANDSHAKE_TIMEOUT)
        spoke = bool(sock.recv(1))
    except OSError:
        spoke = False
    finally:
        sock.close()
    if not spoke:
        raise ConfigError(
            f"{address} answers but not as a Dask scheduler (no handshake in {HANDSHAKE_TIMEOUT:g} s) — check "
            "--cluster: the scheduler's port (8786 by default), not the dashboard's (8787)"
        )


def worker_address() -> str | None:
    """The address of the Dask worker running the current task (None outside one)."""
    try:
        from distributed import get_worker
    except ImportError:
        return None
    try:
        return str(get_worker().address)
    except ValueError:
        return None


def is_dask_client(executor: Any) -> bool:
    """Whether ``executor`` is a :class:`distributed.Client` (not a local pool, not None)."""
    return hasattr(executor, "scheduler_info")


def group_by_work(
    items: Iterable[Any], weigh: Callable[[Any], float], *, target: float, max_items: int
) -> Iterator[list[Any]]:
    """``items`` in runs of consecutive items (input order kept) whose weights add up to ``target`` or more.

    A group is closed as soon as it reaches ``target`` or holds ``max_items``; an item that weighs
    ``target`` or more on its own is a group of its own (the group before it is closed first). Lazy:
    one item is read ahead of the group being filled at most.

    Parameters
    ----------
    weigh : an item's expected work (any unit: ``target``'s)
    target : the work a group should hold at least (the last group may hold less)
    max_items : the most items a group holds (at least 1)
    """
    group: list[Any] = []
    total = 0.0
    for item in items:
        weight = weigh(item)
        if weight >= target:
            if group:
                yield group
                group, total = [], 0.0
            yield [item]
            continue
        group.append(item)
        total += weight
        if total >= target or len(group) >= max_items:
            yield group
            group, total = [], 0.0
    if group:
        yield group


def task_groups(client: Any, items: Iterable[Any], weigh: Callable[[Any], float]) -> Iterator[list[Any]]:
    """:func:`group_by_work` with this module's defaults: ``TASK_AUDIO_SECONDS`` of audio a task, at most
    ``MAX_FILES_PER_TASK`` files and, when ``items`` has a length, no more than a quarter of a worker thread's
    share (each of the cluster's threads has 4 tasks at least, like the ``IN_FLIGHT_PER_WORKER`` it is sent).

    Parameters
    ----------
    weigh : an item's expected seconds of audio (``TASK_AUDIO_SECONDS`` or more: a task of its own)
    """
    cap = MAX_FILES_PER_TASK
    if hasattr(items, "__len__"):
        cap = min(cap, -(-len(items) // (IN_FLIGHT_PER_WORKER * _threads(client))))  # type: ignore[arg-type]
    return group_by_work(items, weigh, target=TASK_AUDIO_SECONDS, max_items=max(1, cap))


def _threads(client: Any) -> int:
    """Worker threads the scheduler has now (at least 1: workers may still be joining)."""
    try:
        return max(1, sum(int(n) for n in client.nthreads().values()))
    except Exception:  # noqa: BLE001 — only a sizing hint
        return 1


class _InFlight:
    """How many tasks to keep submitted: fixed, or ``IN_FLIGHT_PER_WORKER`` per worker thread,
    looked up again every ``refresh`` seconds (workers join and leave: dask-jobqueue, autoscaling)."""

    def __init__(self, executor: Any, dask: bool, fixed: int | None, refresh: float = 5.0) -> None:
        self.executor, self.dask, self.fixed, self.refresh = executor, dask, fixed, refresh
        self.value, self.checked = 0, -refresh

    def __call__(self) -> int:
        if self.fixed:
            return self.fixed
        import time

        now = time.monotonic()
        if now - self.checked >= self.refresh:
            workers = _threads(self.executor) if self.dask else int(getattr(self.executor, "max_workers", 1) or 1)
            self.value, self.checked = IN_FLIGHT_PER_WORKER * workers, now
        return self.value


def map_bounded(
    executor: Any,
    fn: Callable[..., Any],
    items: Iterable[Any],
    *,
    args: tuple[Any, ...] = (),
    in_flight: int | None = None,
    ordered: bool = False,
    on_killed: Callable[[Any, BaseException], Any] | None = None,
) -> Iterator[tuple[Any, Any]]:
    """``(item, fn(item, *args))`` for every item, at most ``in_flight`` tasks submitted at once.

    ``executor`` is a :class:`distributed.Client` (:func:`cluster_client`) or a
    :class:`specmusic.workers.WorkerPool` (:func:`specmusic.workers.worker_pool`; any executor with
    ``submit`` and ``max_workers`` will do). On a cluster ``fn``
    must be importable by the workers (a module-level function of an installed package). Results
    come as tasks complete or, with ``ordered``, in input order (then a slow task holds back the
    ones after it, and completed results count against ``in_flight``: memory stays bounded either
    way). An exception a task raises is re-raised here (the callers' task functions return
    per-file failures instead); a worker that dies has its tasks run elsewhere (by the scheduler, or
    on a restarted local pool).
    On any exception, Ctrl-C included, the submitted tasks are cancelled.

    Parameters
    ----------
    in_flight : tasks submitted at a time (default: ``IN_FLIGHT_PER_WORKER`` per worker thread, as
        many as the cluster has at the time: looked up again every few seconds)
    ordered : yield in input order instead of completion order
    on_killed : the result for an item whose task killed every worker that ran it (Dask gives up
        after 3, ``KilledWorker``; a local pool after 2, ``WorkerDied``; the file may crash the
        decoder); default: raise
    """
    dask = is_dask_client(executor)
    limit = _InFlight(executor, dask, in_flight)
    done: queue.Queue[Any] = queue.Queue()
    pending: dict[Any, Any] = {}  # future → item, in submission order
    todo = iter(items)
    exhausted = False

    def fill() -> None:
        nonlocal exhausted
        while not exhausted and len(pending) < limit():
            item = next(todo, _END)
            if item is _END:
                exhausted = True
                return
            fut = executor.submit(fn, item, *args, pure=False) if dask else executor.submit(fn, item, *args)
            pending[fut] = item
            fut.add_done_callback(done.put)

    finished: set[Any] = set()
    recover = None if dask else getattr(executor, "recover", None)  # a local pool that lost a worker: a new one
    try:
        fill()
        while pending:
            if recover is not None:
                recover()
            try:
                finished.add(done.get(timeout=0.5 if recover is None else 0.2))  # a timeout: Ctrl-C is seen promptly
            except queue.Empty:
                continue
            while pending:
                fut = next(iter(pending)) if ordered else next((f for f in finished if f in pending), None)
                if fut is None or fut not in finished:
                    break
                finished.discard(fut)
                item = pending.pop(fut)
                try:
                    result = fut.result()
                except Exception as exc:
                    if dask and _lost_scheduler(exc):
                        raise ConfigError(
                            f"lost the Dask scheduler ({type(exc).__name__}) — what finished is kept; check the "
                            "cluster and rerun the same command to do only the rest"
                        ) from None
                    if on_killed is None or type(exc).__name__ not in ("KilledWorker", "WorkerDied"):
                        raise
                    result = on_killed(item, exc)
                if dask:
                    fut.release()
                fill()
                yield item, result
    except BaseException:
        futures = list(pending)
        pending.clear()
        with contextlib.suppress(Exception):
            if dask:
                executor.cancel(futures, force=True)
            else:
                for fut in futures:
                    fut.cancel()
        raise


_END = object()


def _lost_scheduler(exc: BaseException) -> bool:
    """A future that failed because the connection to the scheduler went, not because its task raised."""
    if type(exc).__name__ in ("FutureCancelledError", "CancelledError", "CommClosedError"):
        return True
    return "scheduler-connection-lost" in str(exc) or "connection" in type(exc).__name__.lower()
