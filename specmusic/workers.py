"""Worker processes for ``--jobs N`` that never outlive their run.

:func:`worker_pool` wraps :class:`concurrent.futures.ProcessPoolExecutor`:

- workers ignore SIGINT: Ctrl-C reaches the parent, which cancels queued work and stops the workers
  at once (the stock executor's ``with`` block would finish every queued track first);
- workers exit when the parent dies, even by SIGKILL: Linux's ``PR_SET_PDEATHSIG`` where available,
  and everywhere a watchdog thread that notices the parent is gone within half a second.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

__all__ = ["auto_threads", "worker_pool"]

_PR_SET_PDEATHSIG = 1


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


def _init(parent_pid: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    signal.signal(signal.SIGTERM, lambda *_: _exit_now(143))  # stopped mid-task: no half-written file left
    _die_with_parent(parent_pid)
    if parent_pid != os.getppid():  # the parent died while we were starting
        os._exit(1)
    if initializer is not None:
        initializer(*initargs)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel queued work and end the workers now (their current task is abandoned)."""
    running = getattr(pool, "_processes", None)  # the executor keeps no public list of its workers
    processes = list(running.values()) if isinstance(running, dict) else []
    if hasattr(signal, "SIGPIPE") and threading.current_thread() is threading.main_thread():
        # The executor's feeder may still write to a worker we are ending; with SIGPIPE at its default
        # (the CLI sets it so `| head` ends quietly) that would kill this process instead of letting
        # the interrupt finish with exit 130. The run is over: a broken pipe is an ordinary error now.
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.terminate()
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.join(timeout=2)


@contextlib.contextmanager
def worker_pool(
    jobs: int,
    *,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> Iterator[ProcessPoolExecutor]:
    """A fork-based process pool whose workers stop with the run (Ctrl-C, an error, or the parent's death).

    On a normal exit the pool is shut down after all submitted work; on any exception (including
    KeyboardInterrupt) queued work is cancelled and the workers are terminated before it propagates.
    """
    import multiprocessing as mp

    pool = ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=mp.get_context("fork"),
        initializer=_init,
        initargs=(os.getpid(), initializer, initargs),
    )
    try:
        yield pool
    except BaseException:
        _stop(pool)
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
