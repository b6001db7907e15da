"""Many provider calls in flight from one worker process: a batch's sends run side by side on a pool
of threads, while the task's own thread keeps the database work (claims and records, in bulk).

Provider calls are I/O (50-300 ms each, nearly all of it waiting), so threads that only do HTTP are
enough: no database connection is ever used off the task's thread. The pool is made in the process
that uses it (after the prefork pool's fork) and kept for the life of the process.
"""

import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

_pool: ThreadPoolExecutor | None = None
_pool_made_for = (0, 0)  # (process id, SEND_CONCURRENCY)


@dataclass(frozen=True)
class Outcome:
    started: bool
    value: object = None
    error: BaseException | None = None
    finished_at: object = None  # when the call returned (timezone-aware)


class SideBySide:
    """Calls running concurrently (up to SEND_CONCURRENCY at once) from the moment this is made, while
    the caller's thread goes on with other work; `outcomes` waits for them."""

    def __init__(self, calls: list[Callable[[], object]]):
        self.started = time.monotonic()
        self.futures = [_executor().submit(_timed, call) for call in calls]

    def outcomes(self, *, start_within: float | None = None) -> list[Outcome]:
        """One Outcome per call, in order. A call not started within `start_within` seconds of the start
        (None: no limit) is not started at all, so that the task ends within its time limit; the calls
        already running are waited for (their own timeouts bound them)."""
        left = None if start_within is None else max(0.0, start_within - (time.monotonic() - self.started))
        _, late = wait(self.futures, timeout=left)
        for future in late:
            future.cancel()  # only a call that has not started yet can be cancelled
        wait(self.futures)
        return [_outcome(future) for future in self.futures]


def call_side_by_side(calls: list[Callable[[], object]], *, start_within: float | None = None) -> list[Outcome]:
    """Run the calls concurrently and wait for them (SideBySide.outcomes)."""
    return SideBySide(calls).outcomes(start_within=start_within)


def _timed(call: Callable[[], object]):
    value = call()
    return value, timezone.now()


def _outcome(future: Future) -> Outcome:
    if future.cancelled():
        return Outcome(started=False)
    error = future.exception()
    if error is not None:
        return Outcome(started=True, error=error, finished_at=timezone.now())
    value, finished_at = future.result()
    return Outcome(started=True, value=value, finished_at=finished_at)


def _executor() -> ThreadPoolExecutor:
    global _pool, _pool_made_for
    wanted = (os.getpid(), settings.SEND_CONCURRENCY)
    if _pool is None or _pool_made_for != wanted:
        if _pool is not None and _pool_made_for[0] == wanted[0]:
            _pool.shutdown(wait=False)
        _pool = ThreadPoolExecutor(max_workers=settings.SEND_CONCURRENCY, thread_name_prefix="send")
        _pool_made_for = wanted
    return _pool
