"""When parked work comes back (issue 14.8): at the pace the budget admits, not all at once.

One 429 shuts the penalty box, and every thread that picks up a job while it is shut parks it:
a backfill of 2,000 jobs parks in seconds. Parked until the box opens (plus a few seconds of
jitter), they would all come back together, meet the budget or the next limit, and park again.
Instead each parked job takes the next return slot of one line per client id: the first when the
box opens, each later one a budget step (window / background share) after the one before. So they
return at about the rate the fleet may send, and whatever parks later queues behind them.

The line is a Redis key holding the next free slot (ms, Redis's clock), taken in one script.

How fast work comes back is one rule, `background_per_s`: the budget's background lane spread
evenly over its window. The line's slots are one step of it apart (`slot_width_s`), and the
dispatcher (workers/dispatcher.py), which sends the due jobs their messages, releases at most
that many a second (`ReleaseAllowance`): the jobs a 429 parked, and the jobs a backoff parked,
which took no slot, alike.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis

from pipeline.errors import RedisUnavailable
from pipeline.ratecontrol.budget import Budget
from pipeline.ratecontrol.limiter import BACKGROUND, lane_limit

# KEYS[1] = the line; ARGV[1] = not before, ms from now; ARGV[2] = slot width (ms).
# Returns {slot_ms, now_ms}.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local slot = math.max(now + tonumber(ARGV[1]), tonumber(redis.call('GET', KEYS[1]) or '0'))
local after = slot + tonumber(ARGV[2])
redis.call('SET', KEYS[1], after, 'PX', after - now + 60000)
return {slot, now}
"""


class Window(Protocol):
    """What a pace is made of (a Budget, fixed or learned, has both)."""

    @property
    def window_s(self) -> int: ...
    def requests(self) -> int: ...


def background_per_s(budget: Window) -> float:
    """The pace of background work: the requests a second its lane of the budget (fixed or learned,
    less the interactive share) admits, spread evenly over the window."""
    return lane_limit(budget.requests(), BACKGROUND) / budget.window_s


def slot_width_s(budget: Window) -> float:
    """The time one request of the background lane takes at the budget's pace."""
    return 1 / background_per_s(budget)


class ReleaseAllowance:
    """How many due jobs one dispatcher tick may send: `per_s()` (the pace, asked at every tick: a
    learned budget moves) times the tick, the fraction carried to the next tick, so that a pace of
    9.5 a second sends 19 in two ticks (not 9 and 9, falling behind the line's slots) and a pace
    under one a second sends one every few ticks."""

    def __init__(self, per_s: Callable[[], float], every_s: float):
        self._per_s = per_s
        self._every_s = every_s
        self._carried = 0.0

    def take(self) -> int:
        allowed = self._carried + self._per_s() * self._every_s
        count = int(allowed)
        # Only the fraction is carried, never a tick's unused allowance: no burst after a lull.
        self._carried = allowed - count
        return count


class ReturnPacer:
    """The fleet's line of return slots for one client id, in Redis at `key`."""

    def __init__(self, client: redis.Redis, key: str, budget: Budget):
        self._take = client.register_script(_TAKE)
        self._key = key
        self._budget = budget

    def slot(self, delay_s: float) -> tuple[float, float]:
        """The next return slot at least `delay_s` from now: (slot, now), epoch s on Redis's clock."""
        width_ms = int(slot_width_s(self._budget) * 1000)
        try:
            slot_ms, now_ms = self._take(keys=[self._key], args=[int(max(delay_s, 0.0) * 1000), max(width_ms, 1)])
        except redis.exceptions.RedisError as exc:
            raise RedisUnavailable(f"the return line's Redis did not answer: {exc.__class__.__name__}") from exc
        return int(slot_ms) / 1000, int(now_ms) / 1000


class InMemoryPacer:
    """The fake: one process's line on an injectable clock (epoch s)."""

    def __init__(self, budget: Budget, clock_s: Callable[[], float] = time.time):
        self._budget = budget
        self._clock_s = clock_s
        self._next_s = 0.0
        self._lock = threading.Lock()

    def slot(self, delay_s: float) -> tuple[float, float]:
        with self._lock:
            now = self._clock_s()
            slot = max(now + max(delay_s, 0.0), self._next_s)
            self._next_s = slot + slot_width_s(self._budget)
            return slot, now
