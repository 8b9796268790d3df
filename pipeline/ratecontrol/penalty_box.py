"""The penalty box: after a 429, nobody in the fleet calls Spotify with that client id until the
deadline has passed. `check_open(quota_box, penalty_box)` checks several at once: boxes on one Redis
client in one round trip (a request's two boxes cost one script, not two). A request of the API
client does not even pay that: the limiter reads its boxes in the script that takes its permit
(limiter.ADMIT, READ_BOXES here), and takes none while one holds.

`block(retry_after_s)` sets "blocked until Redis-now + retry_after_s" and never shortens a
deadline already set (one Lua script: read, compare, write). Every request finds its boxes open
first, or raises RateLimited without touching the network while a deadline holds. A process that
has seen a deadline remembers it (on its monotonic clock) and does not ask Redis again until it
has passed.

Calling again while limited makes Spotify's wait longer, so this is shared by every process:
the first 429 stops all of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import redis

from pipeline.errors import PENALTY_BOX, RateLimited, RedisUnavailable

QUOTA_EXCEEDED = "quota_exceeded"
# A Retry-After this far beyond Spotify's 30 s window is a spent quota (a daily budget), not the rate.
QUOTA_AFTER_S = 600.0


def is_quota(limited: RateLimited) -> bool:
    """Does this 429 say the quota is spent (QUOTA_EXCEEDED, or a Retry-After of more than ten
    minutes) rather than that the fleet went too fast? A quota parks the fleet in the quota box (one
    per developer account) and teaches the learned budget nothing."""
    return limited.reason == QUOTA_EXCEEDED or limited.retry_after_s > QUOTA_AFTER_S

# KEYS[1] = the box; ARGV[1] = retry-after in ms, ARGV[2] = reason.
# Returns {deadline_ms, now_ms, reason}: the deadline in force after the call.
_BLOCK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wanted = now + tonumber(ARGV[1])
local current = redis.call('HMGET', KEYS[1], 'until', 'reason')
if current[1] and tonumber(current[1]) >= wanted then
  return {tonumber(current[1]), now, current[2] or ''}
end
redis.call('HSET', KEYS[1], 'until', wanted, 'reason', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], wanted + 1000)
return {wanted, now, ARGV[2]}
"""

# Reads boxes KEYS[first..] into `answer`: {deadline_ms or 0, reason} each; true when one holds at
# `now`. Shared by _CHECK and the limiter's admission (limiter.ADMIT), which checks a request's
# boxes and takes its permit in one round trip.
READ_BOXES = """
local function read_boxes(answer, first, now)
  local held = false
  for i = first, #KEYS do
    local current = redis.call('HMGET', KEYS[i], 'until', 'reason')
    local deadline = tonumber(current[1]) or 0
    table.insert(answer, deadline)
    table.insert(answer, current[2] or '')
    if deadline > now then held = true end
  end
  return held
end
"""

# KEYS = the boxes a request must find open (the quota's, the client id's): read in one round trip.
# Returns {now_ms, then for each box deadline_ms or 0, reason}.
_CHECK = READ_BOXES + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local answer = {now}
read_boxes(answer, 1, now)
return answer
"""


class PenaltyBox(Protocol):
    def block(self, retry_after_s: float, reason: str) -> float:
        """Hold the box for `retry_after_s` from now unless it is held longer; returns the
        deadline in force (epoch seconds, the shared clock)."""

    def check(self) -> None:
        """Raise RateLimited while the box holds; return at once otherwise."""

    def remaining_s(self) -> float:
        """Seconds until the box opens (0.0 when open)."""


class _LocalMemory:
    """What this process already knows of the deadline, on its monotonic clock."""

    def __init__(self, monotonic: Callable[[], float]):
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._open_at = 0.0  # monotonic
        self._deadline_s = 0.0  # epoch, shared clock
        self._reason = ""

    def remember(self, deadline_s: float, now_s: float, reason: str) -> None:
        with self._lock:
            open_at = self._monotonic() + max(0.0, deadline_s - now_s)
            if open_at > self._open_at:
                self._open_at, self._deadline_s, self._reason = open_at, deadline_s, reason

    def held(self) -> RateLimited | None:
        with self._lock:
            left = self._open_at - self._monotonic()
            if left <= 0:
                return None
            return RateLimited(left, self._reason or "penalty_box", source=PENALTY_BOX, blocked_until=self._deadline_s)


class RedisPenaltyBox:
    def __init__(
        self,
        client: redis.Redis,
        key: str,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        on_change: Callable[[float], None] | None = None,
    ):
        self._client = client
        self._key = key
        self._block = client.register_script(_BLOCK)  # redis-py reloads it after a NOSCRIPT
        self._check = client.register_script(_CHECK)
        self._memory = _LocalMemory(monotonic)
        self._on_change = on_change or (lambda remaining_s: None)

    def _learn(self, deadline_ms: int, now_ms: int, reason: str | bytes) -> tuple[float, float, str]:
        """What Redis answered for this box: remembered while it holds, told to `on_change`."""
        reason = reason.decode() if isinstance(reason, bytes) else reason
        deadline_s, now_s = int(deadline_ms) / 1000, int(now_ms) / 1000
        if deadline_s > now_s:
            self._memory.remember(deadline_s, now_s, reason)
        self._on_change(max(0.0, deadline_s - now_s))
        return deadline_s, now_s, reason

    def block(self, retry_after_s: float, reason: str) -> float:
        try:
            deadline_ms, now_ms, reason = self._block(keys=[self._key], args=[int(round(retry_after_s * 1000)), reason])
        except redis.exceptions.RedisError as exc:
            raise RedisUnavailable(f"the penalty box's Redis did not answer: {exc.__class__.__name__}") from exc
        deadline_s, _, _ = self._learn(deadline_ms, now_ms, reason)
        return deadline_s

    def check(self) -> None:
        check_open(self)

    def remaining_s(self) -> float:
        try:
            self.check()
        except RateLimited as limited:
            return limited.retry_after_s
        return 0.0


def check_open(*boxes: PenaltyBox | None) -> None:
    """Raise RateLimited for the first of these boxes (None: no box) that holds, in the order given;
    return at once when all are open. Redis boxes on one client are read in one round trip (a
    request checks the quota's box and the client id's: one script, not two), after what each
    process already remembers of them."""
    present = [box for box in boxes if box is not None]
    on_redis = on_one_client(present)
    if on_redis is not None:
        check_known(*on_redis)
        try:
            now_ms, *answers = on_redis[0]._check(keys=[box._key for box in on_redis])
        except redis.exceptions.RedisError as exc:
            raise RedisUnavailable(f"the penalty box's Redis did not answer: {exc.__class__.__name__}") from exc
        raise_held(on_redis, now_ms, answers)
        return
    for box in present:  # fakes, or boxes on several Redis clients: one at a time
        box.check()


def check_known(*boxes: PenaltyBox | None) -> None:
    """check_open on what this process knows, no round trip: a Redis box raises while the deadline
    it remembers holds, any other box is checked as it is (a fake's check is local)."""
    for box in boxes:
        if isinstance(box, RedisPenaltyBox):
            known = box._memory.held()
            if known is not None:
                box._on_change(known.retry_after_s)
                raise known
        elif box is not None:
            box.check()


def on_one_client(boxes: list[PenaltyBox]) -> list[RedisPenaltyBox] | None:
    """These boxes, if they are all Redis boxes on one client (readable by one script of it,
    READ_BOXES); None otherwise (and for none at all)."""
    on_redis = [box for box in boxes if isinstance(box, RedisPenaltyBox)]
    if not on_redis or len(on_redis) != len(boxes) or any(box._client is not on_redis[0]._client for box in on_redis):
        return None
    return on_redis


def client_of(boxes: Sequence[RedisPenaltyBox]) -> redis.Redis:
    return boxes[0]._client


def box_keys(boxes: Sequence[RedisPenaltyBox]) -> list[str]:
    return [box._key for box in boxes]


def raise_held(boxes: Sequence[RedisPenaltyBox], now_ms: int, answers: list) -> None:
    """What READ_BOXES answered for these boxes ({deadline_ms, reason} each), learned by each box;
    RateLimited for the first that holds."""
    held: RateLimited | None = None
    for box, deadline_ms, reason in zip(boxes, answers[0::2], answers[1::2], strict=True):
        deadline_s, now_s, reason = box._learn(deadline_ms, now_ms, reason)
        if held is None and deadline_s > now_s:
            held = RateLimited(deadline_s - now_s, reason or "penalty_box", source=PENALTY_BOX, blocked_until=deadline_s)
    if held is not None:
        raise held


class InMemoryPenaltyBox:
    """The fake: one process's box on an injectable clock (epoch seconds)."""

    def __init__(self, clock_s: Callable[[], float] = time.time):
        self._clock_s = clock_s
        self._lock = threading.Lock()
        self._deadline_s = 0.0
        self._reason = ""

    def block(self, retry_after_s: float, reason: str) -> float:
        with self._lock:
            wanted = self._clock_s() + retry_after_s
            if wanted > self._deadline_s:
                self._deadline_s, self._reason = wanted, reason
            return self._deadline_s

    def check(self) -> None:
        with self._lock:
            left = self._deadline_s - self._clock_s()
            if left > 0:
                raise RateLimited(left, self._reason, source=PENALTY_BOX, blocked_until=self._deadline_s)

    def remaining_s(self) -> float:
        with self._lock:
            return max(0.0, self._deadline_s - self._clock_s())
