"""Worker processes for ``--jobs N`` that never outlive their run, and survive one of them dying.

:func:`worker_pool` gives a :class:`WorkerPool`: a fork-based
:class:`concurrent.futures.ProcessPoolExecutor` that is restarted when a worker dies:

- a worker that dies (SIGKILL from the out-of-memory killer, a crash in C code) breaks the pool: a
  new one is started (:meth:`WorkerPool.recover`, which the caller runs as it waits) and every task
  that was in flight is run again; only the task the dead worker was running counts it, and a task
  whose worker dies a second time fails with :class:`WorkerDied` (its file is reported; the batch
  goes on). Which worker runs which task is known exactly: each task writes its worker's pid into a
  slot of shared memory as it starts;
- workers ignore SIGINT: Ctrl-C reaches the parent, which cancels queued work and stops the workers
  at once (the stock executor's ``with`` block would finish every queued track first); the parent
  waits for them to be gone (SIGKILL after a grace period) before it goes on;
- workers exit when the parent dies, even by SIGKILL: Linux's ``PR_SET_PDEATHSIG`` where available,
  and everywhere a watchdog thread that notices the parent is gone within half a second.

SIGTERM (``kill``, systemd, Slurm, Kubernetes) is Ctrl-C's equal: :func:`raise_on_sigterm` makes it
raise :class:`Terminated`, a :class:`KeyboardInterrupt`, so every path that keeps what finished on
Ctrl-C keeps it on SIGTERM too.

Defaults (one block)::

    STOP_GRACE = 3.0      # seconds a stopped worker has to exit on SIGTERM before SIGKILL
    STRIKES    = 2        # a task is blamed when its worker died this many times running it
    QUIET_BREAKS = 5      # breaks in a row with no task to blame and none finished: the pool gives up
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # concurrent.futures is imported with the first pool: `specmusic` starts faster without it
    from concurrent.futures import Future

__all__ = ["Terminated", "WorkerDied", "WorkerPool", "auto_threads", "raise_on_sigterm", "worker_pool"]

STOP_GRACE = 3.0
STRIKES = 2
QUIET_BREAKS = 5
_SLOTS = 4096  # tasks in flight that can be told apart (more are run untracked)
_PR_SET_PDEATHSIG = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM: raised like Ctrl-C's :class:`KeyboardInterrupt` (what finished is kept); the CLI exits 143."""


def raise_on_sigterm() -> None:
    """From now on SIGTERM raises :class:`Terminated` in the main thread (once: a second SIGTERM while the
    first is handled, what finished being saved, is ignored). Processes forked from here start with SIGTERM's
    default action again: a worker stopped before it has set its own handler just ends."""

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    if not _FORK_RESETS_SIGTERM:
        os.register_at_fork(after_in_child=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
        _FORK_RESETS_SIGTERM.append(True)
    signal.signal(signal.SIGTERM, handler)


_FORK_RESETS_SIGTERM: list[bool] = []


class WorkerDied(Exception):
    """The worker running a task died each time it ran it (``how``: ``killed by SIGKILL``, ``exit status 1``)."""

    def __init__(self, how: str) -> None:
        super().__init__(how)
        self.how = how


# -- in the worker ---------------------------------------------------------------------------------
_WORKER_SLOTS: Any = None  # the pool's shared slots, in a worker


def _die_with_parent(parent_pid: int) -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the watchdog below suffices
        pass

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                _exit_now(1)

    threading.Thread(target=watch, name="specmusic-parent-watchdog", daemon=True).start()


def _exit_now(code: int) -> None:
    """End this worker at once, removing the temporary file of a write in progress first."""
    from specmusic.fileio import remove_live_temps

    remove_live_temps()
    os._exit(code)


def _init(parent_pid: int, slots: Any, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    global _WORKER_SLOTS
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    signal.signal(signal.SIGTERM, lambda *_: _exit_now(143))  # stopped mid-task: no half-written file left
    _die_with_parent(parent_pid)
    if parent_pid != os.getppid():  # the parent died while we were starting
        os._exit(1)
    _WORKER_SLOTS = slots
    if initializer is not None:
        initializer(*initargs)


def _tracked(slot: int, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, this worker's pid written into ``slot`` first: if we die, the parent knows what we ran."""
    if slot >= 0 and _WORKER_SLOTS is not None:
        _WORKER_SLOTS[slot] = os.getpid()
    return fn(*args)


# -- in the parent ---------------------------------------------------------------------------------
@dataclass(eq=False)
class _Task:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: Future
    slot: int = -1
    strikes: int = 0
    how: str = ""


def _settle(future: Future, value: Any = None, error: BaseException | None = None) -> None:
    """Complete ``future`` unless it was cancelled meanwhile (the run is being stopped)."""
    from concurrent.futures import InvalidStateError

    with contextlib.suppress(InvalidStateError):
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


def _exit_text(code: int | None) -> str:
    if code is None:
        return "died"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit status {code}"


class WorkerPool:
    """``jobs`` fork-based worker processes; ``submit`` as an executor's. A pool broken by a dead worker is
    replaced and its tasks run again (see the module docstring); :meth:`stop` ends everything now."""

    def __init__(
        self, jobs: int, *, initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()
    ) -> None:
        import multiprocessing as mp

        self.max_workers = jobs
        self._context = mp.get_context("fork")
        self._slots = self._context.RawArray("q", _SLOTS)  # slot → pid of the worker that started its task
        self._free = list(range(_SLOTS - 1, -1, -1))
        self._initializer, self._initargs = initializer, initargs
        self._lock = threading.RLock()
        self._tasks: set[_Task] = set()  # submitted, not settled
        self._orphans: list[_Task] = []  # of the broken pool, waiting for the next one
        self._dead: list[Any] = []  # the broken pool's processes that were gone when it broke
        self._breaking = False
        self._quiet = 0  # breaks in a row with nobody to blame and no task finished
        self._closed = False
        self._pool = self._new_pool()

    def _new_pool(self) -> Any:
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(
            max_workers=self.max_workers, mp_context=self._context, initializer=_init,
            initargs=(os.getpid(), self._slots, self._initializer, self._initargs),
        )  # fmt: skip

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future:
        """Run ``fn(*args)`` in a worker (``fn`` must be picklable by reference: a module-level function)."""
        from concurrent.futures import Future

        task = _Task(fn, args, Future())
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new tasks after the pool is closed")
            self._tasks.add(task)
            self._start(task)
        return task.future

    def _start(self, task: _Task) -> None:
        """Hand ``task`` to the current pool (under the lock); a broken one keeps it for the next."""
        from concurrent.futures.process import BrokenProcessPool

        if task.slot < 0 and self._free:
            task.slot = self._free.pop()
        if task.slot >= 0:
            self._slots[task.slot] = 0
        try:
            inner = self._pool.submit(_tracked, task.slot, task.fn, *task.args)
        except (BrokenProcessPool, RuntimeError):
            self._orphans.append(task)  # never started: no strike; run on the next pool (recover)
            return
        pool = self._pool
        inner.add_done_callback(lambda done: self._done(task, pool, done))

    def _done(self, task: _Task, pool: Any, inner: Future) -> None:
        """A task's inner future settled (in the pool's manager thread, or here when it already had)."""
        from concurrent.futures.process import BrokenProcessPool

        if inner.cancelled():
            task.future.cancel()
            return
        error = inner.exception()
        if isinstance(error, BrokenProcessPool):
            with self._lock:
                if not self._breaking and pool is self._pool:
                    self._breaking = True
                    self._dead = _dead_processes(pool)  # now, while the executor has not ended the others yet
                self._orphans.append(task)
            return
        with self._lock:
            self._forget(task)
            self._quiet = 0
        _settle(task.future, None if error is not None else inner.result(), error)

    def _forget(self, task: _Task) -> None:
        self._tasks.discard(task)
        if task.slot >= 0:
            self._free.append(task.slot)
            task.slot = -1

    def recover(self) -> None:
        """Replace a broken pool and run its tasks again, blaming only the one a dead worker was running.

        A no-op while the pool is whole. :func:`specmusic.distributed.map_bounded` calls it as it waits;
        call it from the thread that submits (the new workers are forked there: forking from a thread
        while another imports a module can deadlock them).
        """
        with self._lock:
            if self._closed or not (self._breaking or self._orphans):
                return
            old = self._pool
        _wait_gone(_processes_of(old), grace=STOP_GRACE)  # the executor ends the others (SIGTERM)
        with contextlib.suppress(Exception):
            old.shutdown(wait=True)  # once its manager thread ends, every task of it has settled
        with self._lock:
            exits = {p.pid: p.exitcode for p in self._dead}
        if any(code in (143, -signal.SIGTERM) for code in exits.values()):
            time.sleep(1.0)  # SIGTERM to the whole process group? Then ours arrives meanwhile: no restart
        with self._lock:
            if not self._closed:
                self._restart(exits)

    def _restart(self, exits: dict[int, int | None]) -> None:
        """A new pool; the orphans started on it again, or failed (under the lock)."""
        orphans, self._orphans, self._breaking, self._dead = self._orphans, [], False, []
        culprits = [t for t in orphans if t.slot >= 0 and self._slots[t.slot] in exits]
        for task in culprits:
            task.strikes += 1
            task.how = _exit_text(exits[self._slots[task.slot]])
        self._quiet = 0 if culprits else self._quiet + 1
        self._pool = self._new_pool()
        for task in orphans:
            if task.strikes >= STRIKES:
                self._forget(task)
                _settle(task.future, error=WorkerDied(task.how))
            elif self._quiet > QUIET_BREAKS:
                from specmusic.errors import ConfigError

                self._forget(task)
                how = ", ".join(sorted({_exit_text(c) for c in exits.values()})) or "no exit status"
                _settle(task.future, error=ConfigError(
                    f"the --jobs worker processes keep dying before they finish a task ({how}) — run without "
                    "--jobs to see the error, or with fewer jobs if memory is short"))  # fmt: skip
            else:
                self._start(task)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """After every submitted task has settled (with ``wait``), close the pool; ``cancel_futures``: :meth:`stop`."""
        if cancel_futures:
            self.stop()
            return
        from concurrent.futures import wait as wait_for

        while wait:
            with self._lock:
                futures = [t.future for t in self._tasks if not t.future.done()]
            if not futures:
                break
            wait_for(futures, timeout=0.2)
            self.recover()
        with self._lock:
            self._closed = True
            pool = self._pool
        pool.shutdown(wait=wait)

    def stop(self) -> None:
        """Cancel what is queued and end the workers now (their tasks are abandoned); returns once they are gone."""
        with self._lock:
            self._closed = True
            pool = self._pool
            for task in list(self._tasks):
                task.future.cancel()
        _stop(pool)


def _processes_of(pool: Any) -> list[Any]:
    """The worker processes of an executor (it keeps no public list of them)."""
    with contextlib.suppress(RuntimeError):  # the dict changed while it was read: the manager thread's doing
        return list((getattr(pool, "_processes", None) or {}).values())
    return []


def _dead_processes(pool: Any) -> list[Any]:
    """The processes of a pool that has just broken that are gone (their sentinels are ready)."""
    from multiprocessing.connection import wait

    by_sentinel = {p.sentinel: p for p in _processes_of(pool)}
    with contextlib.suppress(OSError, ValueError):
        return [by_sentinel[s] for s in wait(list(by_sentinel), timeout=0)]
    return []


def _wait_gone(processes: list[Any], *, grace: float) -> None:
    """Wait until ``processes`` have exited, SIGKILL those still there after ``grace`` seconds (none is reaped
    here: the executor joins its own)."""
    from multiprocessing.connection import wait

    deadline = time.monotonic() + grace
    alive = {p.sentinel: p for p in processes}
    while alive:
        with contextlib.suppress(OSError, ValueError):
            for s in wait(list(alive), timeout=max(0.0, deadline - time.monotonic())):
                alive.pop(s, None)
        if time.monotonic() >= deadline:
            break
    for p in alive.values():
        with contextlib.suppress(Exception):
            p.kill()


def _stop(pool: Any) -> None:
    """Cancel queued work and end the workers of ``pool`` now, waiting until they are gone."""
    processes = _processes_of(pool)
    # The executor's manager thread ends once it has seen its workers go. It is waited for too: the interpreter's
    # exit hook wakes it through a pipe it may be closing meanwhile (EBADF printed at exit otherwise). The
    # executor forgets both on shutdown: they are taken first.
    manager = getattr(pool, "_executor_manager_thread", None)
    if hasattr(signal, "SIGPIPE") and threading.current_thread() is threading.main_thread():
        # The executor's feeder may still write to a worker we are ending; with SIGPIPE at its default
        # (the CLI sets it so `| head` ends quietly) that would kill this process instead of letting
        # the interrupt finish with exit 130. The run is over: a broken pipe is an ordinary error now.
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.terminate()
    _wait_gone(processes, grace=STOP_GRACE)  # a worker deep in C code runs its SIGTERM handler late: then SIGKILL
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.join(timeout=10)
    if manager is not None and manager is not threading.current_thread():
        manager.join(timeout=10)


@contextlib.contextmanager
def worker_pool(
    jobs: int,
    *,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> Iterator[WorkerPool]:
    """A :class:`WorkerPool` whose workers stop with the run (Ctrl-C, SIGTERM, an error, or the parent's death).

    On a normal exit the pool is shut down after all submitted work; on any exception (including
    KeyboardInterrupt) queued work is cancelled and the workers are ended (and waited for) before it
    propagates.
    """
    pool = WorkerPool(jobs, initializer=initializer, initargs=initargs)
    try:
        yield pool
    except BaseException:
        pool.stop()
        raise
    pool.shutdown(wait=True)


def auto_threads() -> int:
    """Idle cores by the 1-minute load average (at least 1): oversubscribed OpenMP threads spin and stall.

    What ``--threads 0`` means wherever a command has it.
    """
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        return cores
    return max(1, min(cores, int(cores - load + 0.5)))
