"""A job's independent requests in flight together (issue 16.5).

A track_sync job of 100 ids makes two /tracks requests and one /audio-features request that need
nothing of each other's answers. Made one after another, a job's thread waits three round trips
(and the limiter's, penalty box's and token's) where one would do; while the budget's window is
open that is the pace at which a window's permits are spent, and a rolling window frees the next
window's at that same pace, so a finite backfill ends that much later (bench/finish.py).

`Overlap.start(fn)` begins `fn` on the worker process's pool and returns at once; `Later.result()`
waits for it. Without a pool (the default, and unit tests' fakes) nothing runs until `result()`
asks: the same code, one call after another, in the order asked. Each call runs in a copy of the
caller's context, so its log lines keep the job's id.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Generic, TypeVar

T = TypeVar("T")


class Later(Generic[T]):
    """A call started (on a pool) or deferred (without one) until its result is asked for."""

    def __init__(self, fn: Callable[[], T], future: Future[T] | None):
        self._fn = fn
        self._future = future

    @classmethod
    def done(cls, value: T) -> Later[T]:
        """A call already answered."""
        future: Future[T] = Future()
        future.set_result(value)
        return cls(lambda: value, future)

    @property
    def started(self) -> bool:
        """Has the call been made (or is it being made)? A deferred one has not, until `result()`."""
        return self._future is not None

    def result(self) -> T:
        """The call's value, or its exception raised here."""
        if self._future is None:
            self._future = Future()
            try:
                self._future.set_result(self._fn())
            except BaseException as exc:  # noqa: BLE001 - kept, and raised below like a pool's would be
                self._future.set_exception(exc)
        return self._future.result()


class Overlap:
    def __init__(self, executor: Executor | None = None):
        self._executor = executor

    def start(self, fn: Callable[[], T]) -> Later[T]:
        if self._executor is None:
            return Later(fn, None)
        context = contextvars.copy_context()
        return Later(fn, self._executor.submit(context.run, fn))
