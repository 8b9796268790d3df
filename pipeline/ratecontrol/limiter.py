"""One request budget per Spotify client id, shared by every process on every host.

pyrate-limiter's RedisBucket keeps a sliding-window log in a Redis sorted set and admits an item
atomically in a Lua script. Around it this module adds what a fleet needs:
- one clock: every timestamp is Redis server time, never the host's clock, read inside the admit
  script itself (TIME), so an admission is one round trip, not a TIME and then the script;
- NOSCRIPT recovery: a Redis restart, failover or SCRIPT FLUSH empties the script cache, and the
  bucket would fail on EVALSHA until rebuilt (PyrateLimiter issue #182); the script is reloaded
  and the call made again;
- the request's penalty boxes read in the same script, before the permit is taken (none is
  taken while one holds: a permit taken is a request sent), so a request costs one round trip
  to Redis, not a check of its boxes and then an admission;
- a blocking acquire with a bounded wait: waiting for our own budget is short (a window at most);
  a wait longer than `max_wait_s` raises RateLimited(reason="local_budget") so the job is parked;
- no race between reading the clock and inserting: pyrate's script counts the window up to the
  item's own timestamp, so a process that read the clock a moment before another but inserts
  after it does not see the other's entry, and the fleet overspends at every window edge (seen
  as 429s with 16 threads in 4 processes). Our script (`ADMIT`, pyrate's check-and-insert for
  one rate) counts every entry from the window's start on (`+inf`), which admits at most the
  limit in any window whatever the order (and with the clock read inside the script, there is
  no order to get wrong);
- a safety margin: Spotify counts arrivals, we count admissions; the time from one to the other
  varies (thread scheduling on a busy host, connection set-up), and could let Spotify's window
  hold more than ours, so every entry is held `margin_ms` longer than the window: 3% of it,
  between 250 ms and 1 s. A flat 250 ms let 6 requests in 3 minutes through as 429s with 24
  threads on 2 busy cores against a 30 s window (bench/saturation.py).

Two lanes share the one log: interactive calls (a search someone waits on, `SpotifyClient.interactive()`)
may fill all of the budget; background work (jobs) may fill all but a reserved share
(`INTERACTIVE_SHARE`, 5 %) while interactive calls are about (one in the last two windows,
anywhere in the fleet: `LanePresence`), so searches find a permit at once while a backfill holds
the background lane at its limit. With no search about, background work has all of it: a reserve
kept for nobody would cost a finite backfill a whole extra window (600 requests at 300 per 30 s
would need three windows, not two). The budget itself (budget.py) is fixed
or learned, and read at every put: a learned change reaches every process within a second.

We drive the bucket ourselves (put_decision, then sleep and retry with a fresh timestamp) rather
than through `Limiter.try_acquire(blocking=True)`: its retry loop advances the item's timestamp
by its own sleep instead of reading the shared clock again, so under contention the recorded
times drift behind the real ones and the fleet would overspend.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from typing import cast

import redis
from loguru import logger
from pyrate_limiter import Rate as PyrateRate
from pyrate_limiter import RateItem
from pyrate_limiter.abstracts import AbstractBucket, Decision
from pyrate_limiter.abstracts.algorithm import ADMITTED
from pyrate_limiter.buckets import InMemoryBucket, RedisBucket
from pyrate_limiter.utils import id_generator

from pipeline.errors import BUDGET, RateLimited, RedisUnavailable
from pipeline.ratecontrol.budget import Budget, FixedBudget
from pipeline.ratecontrol.penalty_box import (
    READ_BOXES,
    PenaltyBox,
    RedisPenaltyBox,
    box_keys,
    check_known,
    check_open,
    client_of,
    on_one_client,
    raise_held,
)
from shared.redis_conn import server_time_ms
from shared.settings import Rate

BACKGROUND = "background"
INTERACTIVE = "interactive"
LANES = (BACKGROUND, INTERACTIVE)
INTERACTIVE_SHARE = 0.05  # of the budget, kept from background work
LONG_WAIT_S = 5.0  # a thread that waits this long for the budget says so in the log


def default_margin_ms(rate: Rate) -> int:
    """How much longer than the window an admission is held (see the module docstring)."""
    return int(min(max(rate.per_s * 1000 * 0.03, 250), 1000))


def lane_limit(requests: int, lane: str, *, reserving: bool = True) -> int:
    """Of a budget of `requests` per window, what `lane` may fill: all of it for interactive calls;
    for background work all but the reserved share while `reserving` (none below 20 requests,
    where 5 % is not one)."""
    if lane == INTERACTIVE or not reserving:
        return requests
    return max(1, requests - math.floor(requests * INTERACTIVE_SHARE))


class LanePresence:
    """Whether interactive calls are about: one seen in the last `window_s` x 2, by any process
    (Redis, with a client) or by this one (without). Each process asks at most once a second."""

    def __init__(self, window_s: int, client: redis.Redis | None = None, key: str = "",
                 monotonic: Callable[[], float] = time.monotonic):
        self._ttl_ms = 2 * window_s * 1000
        self._client, self._key = client, key
        self._monotonic = monotonic
        self._seen_at = float("-inf")  # this process's last interactive call
        self._told_at = float("-inf")  # when it last told Redis
        self._asked_at, self._answer = float("-inf"), False

    def seen(self) -> None:
        now = self._seen_at = self._monotonic()
        if self._client is not None and now - self._told_at >= 1.0:
            self._told_at = now
            self._client.set(self._key, 1, px=self._ttl_ms)

    def recent(self) -> bool:
        now = self._monotonic()
        if now - self._seen_at < self._ttl_ms / 1000:
            return True
        if self._client is None:
            return False
        if now - self._asked_at >= 1.0:
            self._asked_at, self._answer = now, bool(self._client.exists(self._key))
        return self._answer


def default_max_wait_s(window_s: int, margin_ms: int) -> float:
    """How long a background call waits for the budget before its job is parked: two windows. In a
    saturated window every permit frees a window after it was taken, so a thread that came in late
    waits a little more than one; parking it then would bring its job back after the permit it
    waited for had gone to someone else (issue 16.5)."""
    return 2 * window_s + margin_ms / 1000 + 1

_LEAK_EVERY = 64


# pyrate's check-and-insert (its LuaScript.PUT_ITEM, SlidingWindowLog) for one rate and weight 1,
# on Redis's clock, behind the request's penalty boxes: KEYS[1] = the log, KEYS[2..] = the boxes
# (the quota's, the client id's); ARGV = now in ms (-1: read TIME here), the window in ms, the
# limit, the entry's member. While a box holds nothing is taken (a permit taken is a request
# sent). Every entry from the window's start on counts ('+inf': see the module docstring).
# Returns {admitted 1 / refused 0 / a box holds 2, the timestamp of the entry whose expiry frees
# room (-1: none), now, Redis's now (the boxes' clock, whatever the log's), then each box's
# deadline and reason (penalty_box.READ_BOXES)}.
ADMIT = READ_BOXES + """
local bucket = KEYS[1]
local t = redis.call('TIME')
local server_now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now = tonumber(ARGV[1])
if now < 0 then
  now = server_now
end
local answer = {1, -1, now, server_now}
if read_boxes(answer, 2, server_now) then
  answer[1] = 2
  return answer
end
local interval, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('ZCOUNT', bucket, now - interval, '+inf') >= limit then
  local blocking = redis.call('ZRANGE', bucket, -limit, -limit, 'WITHSCORES')
  answer[1], answer[2] = 0, blocking[2] and tonumber(blocking[2]) or -1
  return answer
end
redis.call('ZADD', bucket, now, ARGV[4])
return answer
"""
SERVER_CLOCK = -1  # a RateItem timestamp meaning "now on Redis's clock, read by the script"


class FleetRedisBucket(RedisBucket):
    """RedisBucket whose check-and-insert is `ADMIT`: on Redis's clock in the same round trip, the
    clock-to-insert race closed (see the module docstring); it survives a lost script cache and a
    failed leak. `last_now_ms` is the Redis time of the latest put. `boxes` (set by the limiter
    for each put, like `rates`) are the penalty boxes the put reads first: RateLimited from the
    first that holds, and nothing taken."""

    # pyrate-limiter types its Redis client and results as sync-or-async; ours is the sync client.

    last_now_ms: int | None = None
    boxes: tuple[RedisPenaltyBox, ...] = ()

    def now(self) -> int:
        return server_time_ms(cast(redis.Redis, self.redis))

    def _check_and_insert(self, item: RateItem) -> Decision:
        [rate] = self.rates  # the limiter sets the one rate of this put
        member = f"{item.name}:{id_generator()}:"
        boxes = self.boxes
        keys = (self.bucket_key, *box_keys(boxes))
        args = (item.timestamp, rate.interval, rate.limit, member)
        client = cast(redis.Redis, self.redis)
        try:
            reply = client.evalsha(self.script_hash, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            # Redis restarted or SCRIPT FLUSH ran: load the script again and retry once.
            self.script_hash = cast(str, client.script_load(ADMIT))
            reply = client.evalsha(self.script_hash, len(keys), *keys, *args)
        admitted, blocking, now_ms, server_now_ms, *answers = cast(list, reply)
        admitted, blocking, now_ms = int(admitted), int(blocking), int(now_ms)
        self.last_now_ms = now_ms
        if boxes:
            raise_held(boxes, int(server_now_ms), answers)  # a box holds (admitted == 2): RateLimited, nothing taken
        if admitted:
            return ADMITTED
        # As pyrate's SlidingWindowLog: +1 clears the inclusive lower bound of the window.
        wait_ms = blocking + rate.interval - now_ms + 1 if blocking >= 0 else 0
        # pyrate records the wait as a moment after the item's timestamp: give it the real one.
        return Decision(failing_rate=rate, retry_after_ms=wait_ms)

    def put(self, item: RateItem) -> bool:
        decision = self._check_and_insert(item)
        # The verdict recorded against the put's real time (put_decision reads it back).
        return cast(bool, self._record(item, decision))

    def leak(self, current_timestamp: int | None = None) -> int:
        """Drop the entries older than every window, as of `current_timestamp` (default: the
        latest put's Redis time)."""
        try:
            if current_timestamp is None:
                current_timestamp = self.last_now_ms if self.last_now_ms is not None else self.now()
            return cast(int, super().leak(current_timestamp))
        except redis.exceptions.RedisError:
            return 0  # housekeeping only: the admit script counts by window, not by size


class BudgetLimiter:
    """Admits one request at a time against a pyrate-limiter bucket; the same loop serves Redis
    and the in-memory fake, so they share one contract (tests/unit/spotify/test_limiter_contract.py)."""

    def __init__(
        self,
        bucket: AbstractBucket,
        clock_ms: Callable[[], int] | None,
        *,
        max_wait_s: float,
        budget: Budget,
        margin_ms: int = 0,
        presence: LanePresence | None = None,
        name: str = "spotify",
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        jitter_ms: int = 20,
    ):
        self.bucket = bucket
        self.budget = budget
        self.max_wait_s = max_wait_s
        self._margin_ms = margin_ms
        self.presence = presence or LanePresence(budget.window_s)
        self._clock_ms = clock_ms
        self._name = name
        self._sleep = sleep
        self._monotonic = monotonic
        self._jitter_ms = jitter_ms
        # The bucket records its last verdict on itself: one put at a time per process.
        self._lock = threading.Lock()
        self._puts = 0
        # Until when (monotonic) this process's last verdict says the budget is spent: `spent()`
        # reads it, no round trip. A refusal says when a unit frees; an admission, that one is free.
        self._spent_until = float("-inf")

    def try_acquire(self, lane: str = BACKGROUND, boxes: tuple[PenaltyBox | None, ...] = ()) -> float:
        """Take one unit now if `lane`'s share of the budget allows: 0.0; else the seconds until one
        frees (no sleep). `boxes` (None: no box) must all be open first, else RateLimited and
        nothing taken: Redis boxes on the bucket's own client are read in the admission's round
        trip, others checked before it."""
        in_script = self._boxes_in_script([box for box in boxes if box is not None])
        if in_script is None:
            check_open(*boxes)
        else:
            check_known(*in_script)  # what this process remembers of them: no round trip
        try:  # outside the lock: a learned budget and the presence may ask Redis
            requests = self.budget.requests()
            if lane == INTERACTIVE:
                self.presence.seen()
            reserving = self.presence.recent()
        except redis.exceptions.RedisError as exc:
            raise RedisUnavailable(f"the rate limiter's Redis did not answer: {exc.__class__.__name__}") from exc
        limit = lane_limit(requests, lane, reserving=reserving)
        rate = PyrateRate(limit, self.budget.window_s * 1000 + self._margin_ms)
        try:
            with self._lock:
                self.bucket.rates = [rate]
                if isinstance(self.bucket, FleetRedisBucket):
                    self.bucket.boxes = tuple(in_script or ())
                # The clock is read inside the lock: a timestamp taken before waiting for it would
                # record the request earlier than it is sent (see the margin in the docstring).
                # Without a clock of its own the bucket's script reads Redis's, in the same round trip.
                now_ms = self._clock_ms() if self._clock_ms is not None else SERVER_CLOCK
                decision = cast(Decision, self.bucket.put_decision(RateItem(self._name, now_ms, weight=1)))
                self._puts += 1
                if self._puts % _LEAK_EVERY == 0:
                    self.bucket.leak(None if now_ms == SERVER_CLOCK else now_ms)
        except redis.exceptions.RedisError as exc:
            raise RedisUnavailable(f"the rate limiter's Redis did not answer: {exc.__class__.__name__}") from exc
        if decision.allowed:
            self._spent_until = float("-inf")
            return 0.0
        self.budget.held_back()
        wait_ms = decision.retry_after_ms
        if wait_ms is None:  # cannot happen for weight 1; be safe: a whole window
            wait_ms = max(r.interval for r in self.bucket.rates)
        wait_s = max(wait_ms, 1) / 1000
        self._spent_until = self._monotonic() + wait_s
        return wait_s

    def _boxes_in_script(self, boxes: list[PenaltyBox]) -> list[RedisPenaltyBox] | None:
        """The boxes the bucket's admission can read itself (Redis boxes on its client); None when
        it cannot (the in-memory fake, other boxes)."""
        if not isinstance(self.bucket, FleetRedisBucket):
            return None
        if not boxes:
            return []
        on_redis = on_one_client(boxes)
        return on_redis if on_redis is not None and client_of(on_redis) is self.bucket.redis else None

    def spent(self) -> bool:
        """Is the budget spent for now, as this process's last put found it (refused, and the unit
        it waits for not free yet)? A caller about to send a half-filled request may as well keep
        filling it until this is False. It turns False on its own when that unit frees: a process
        whose last put was refused and which puts nothing more (the end of a backfill) must not
        find the budget spent forever (a coalesced request was held 60 s so)."""
        return self._monotonic() < self._spent_until

    def acquire(self, max_wait_s: float | None = None, lane: str = BACKGROUND,
                boxes: tuple[PenaltyBox | None, ...] = ()) -> float:
        """Block until one unit of `lane`'s share of the budget is ours, for at most `max_wait_s`
        (default: the limiter's); returns the seconds slept. Raises RateLimited(source="budget")
        without waiting when the budget frees later than that, RedisUnavailable when Redis does not
        answer. Every try finds `boxes` open first (a peer may meet a 429 while this one waits),
        else RateLimited(source="penalty_box") and nothing taken. A wait of LONG_WAIT_S or more is
        logged, parked or not."""
        budget_s = self.max_wait_s if max_wait_s is None else max_wait_s
        deadline = time.monotonic() + budget_s
        slept_s = 0.0
        while True:
            wait_s = self.try_acquire(lane, boxes)
            if wait_s == 0.0:
                if slept_s >= LONG_WAIT_S:
                    logger.info("waited {:.1f}s for the fleet's rate budget ({} lane)", slept_s, lane)
                return slept_s
            # Spread the wake-ups of threads waiting for the same free slot.
            wait_s += random.uniform(0, self._jitter_ms) / 1000
            if time.monotonic() + wait_s > deadline:
                if slept_s + wait_s >= LONG_WAIT_S:
                    logger.info("the fleet's rate budget is not free for {:.1f}s more after a wait of {:.1f}s: "
                                "the job is parked", wait_s, slept_s)
                raise RateLimited(wait_s, "local_budget", source=BUDGET)
            # A learned budget being raised frees requests before the log does (budget.nap_s).
            nap_s = min(wait_s, self.budget.nap_s())
            self._sleep(nap_s)
            slept_s += nap_s


def pyrate_rate(rate: Rate, margin_ms: int) -> PyrateRate:
    return PyrateRate(rate.requests, rate.per_s * 1000 + margin_ms)


class RedisLimiter(BudgetLimiter):
    """The fleet's budget for one client id, in the Redis sorted set at `key`. `budget` says how
    many requests a window holds (default: `rate`, fixed)."""

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        rate: Rate,
        *,
        budget: Budget | None = None,
        max_wait_s: float | None = None,
        margin_ms: int | None = None,
        clock_ms: Callable[[], int] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        margin_ms = default_margin_ms(rate) if margin_ms is None else margin_ms
        bucket = FleetRedisBucket([pyrate_rate(rate, margin_ms)], client, key, script_hash="")
        bucket.script_hash = _script_hash(client)
        super().__init__(
            bucket,
            clock_ms,  # None: Redis's, read by the admit script itself
            max_wait_s=default_max_wait_s(rate.per_s, margin_ms) if max_wait_s is None else max_wait_s,
            budget=budget or FixedBudget(rate),
            margin_ms=margin_ms,
            presence=LanePresence(rate.per_s, client, key + ":interactive"),
            sleep=sleep,
            monotonic=monotonic,
        )


def used_since(key: str) -> Callable[[redis.Redis, int], int]:
    """Counts the admissions of the log at `key` since `since_ms` (for budget.py)."""
    return lambda client, since_ms: int(client.zcount(key, since_ms, "+inf"))


def _script_hash(client: redis.Redis) -> str:
    try:
        return client.script_load(ADMIT)
    except redis.exceptions.RedisError:
        # Redis is down right now: the first put fails with NoScriptError or a connection
        # error, and the script is loaded then.
        import hashlib

        return hashlib.sha1(ADMIT.encode()).hexdigest()


class InMemoryLimiter(BudgetLimiter):
    """The fake: one process's budget in memory, on an injectable clock."""

    def __init__(
        self,
        rate: Rate,
        *,
        budget: Budget | None = None,
        max_wait_s: float | None = None,
        margin_ms: int = 0,
        clock_ms: Callable[[], int] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        bucket = InMemoryBucket([pyrate_rate(rate, margin_ms)])
        super().__init__(
            bucket,
            clock_ms or (lambda: time.monotonic_ns() // 1_000_000),
            max_wait_s=default_max_wait_s(rate.per_s, margin_ms) if max_wait_s is None else max_wait_s,
            budget=budget or FixedBudget(rate),
            margin_ms=margin_ms,
            sleep=sleep,
            monotonic=monotonic,
        )
