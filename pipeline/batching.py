"""Fill every request across jobs (docs/architecture.md, decision 6): a job holds 50 tracks, the width of
GET /tracks?ids=, but GET /audio-features takes 100. `Coalescer` lets the threads of one worker
process share requests: a thread that asks for 50 ids waits (at most `max_wait_s`) for another
thread's 50, and one request serves both. The request's answer, or its error (a 429, a 403),
goes to every thread that took part, each of which then parks or fails its own job as usual.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

Fetch = Callable[[list[str]], dict[str, Any]]


class _Batch:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.full = False
        self.done = threading.Event()
        self.result: dict[str, Any] = {}
        self.error: BaseException | None = None


class CoalescedRequestLost(Exception):
    """The request this thread's ids rode on never came back (its leader thread was interrupted
    or hung): a transient failure, the job is tried again."""


class Coalescer:
    def __init__(self, fetch: Fetch, *, size: int = 100, max_wait_s: float = 0.3, follower_timeout_s: float = 120.0,
                 monotonic: Callable[[], float] = time.monotonic, hold_while: Callable[[], bool] | None = None,
                 max_hold_s: float = 60.0):
        self._fetch = fetch
        self.size = size
        self.max_wait_s = max_wait_s
        # While `hold_while()` (the rate budget is spent: the request would only wait for it), a
        # leader keeps its batch open past max_wait_s, up to max_hold_s: a half batch sent then
        # costs a whole request of the window (issue 16.5: 601 requests need a third window).
        self._hold_while = hold_while or (lambda: False)
        self.max_hold_s = max_hold_s
        # A follower never waits forever: its job's lease is renewed while it waits.
        self.follower_timeout_s = follower_timeout_s
        self._monotonic = monotonic
        self._lock = threading.Condition()
        self._open: _Batch | None = None

    def __call__(self, ids: Sequence[str]) -> dict[str, Any]:
        ids = list(dict.fromkeys(ids))
        if len(ids) >= self.size:
            return self._fetch(ids)
        with self._lock:
            batch, leader = self._join(ids)
        if leader:
            self._lead(batch)
        elif not batch.done.wait(self.follower_timeout_s):
            raise CoalescedRequestLost(f"no answer to a shared request of {len(batch.ids)} ids "
                                       f"within {self.follower_timeout_s:.0f}s")
        if batch.error is not None:
            raise batch.error
        return {i: batch.result.get(i) for i in ids}

    def _join(self, ids: list[str]) -> tuple[_Batch, bool]:
        """Add `ids` to the open batch, or open one (and lead it). Called under the lock."""
        batch = self._open
        if batch is not None and len(batch.ids) + len(ids) > self.size:
            batch.full = True  # no room: its leader sends it now, we start another
            self._lock.notify_all()
            batch = None
        leader = batch is None
        if batch is None:
            batch = self._open = _Batch()
        batch.ids.extend(i for i in ids if i not in set(batch.ids))
        if len(batch.ids) >= self.size:
            batch.full = True
            self._lock.notify_all()
        return batch, leader

    def _lead(self, batch: _Batch) -> None:
        """Wait briefly for the batch to fill, send it, hand the answer to every thread in it.
        Whatever happens here (an interrupt included), the batch is closed and answered."""
        try:
            with self._lock:
                try:
                    started = self._monotonic()
                    deadline, held = started + self.max_wait_s, False
                    while not batch.full:
                        left = deadline - self._monotonic()
                        if left <= 0:
                            if self._hold_while() and self._monotonic() - started < self.max_hold_s:
                                held = True  # look at the budget again after another short wait
                            elif held:
                                held = False  # it just freed: one more wait, for the threads it let through
                            else:
                                break
                            left = self.max_wait_s
                            deadline = self._monotonic() + left
                        self._lock.wait(left)
                finally:
                    if self._open is batch:
                        self._open = None
            batch.result = self._fetch(batch.ids)
        except BaseException as exc:  # noqa: BLE001 - handed to every thread of the batch
            batch.error = exc
        finally:
            batch.done.set()
