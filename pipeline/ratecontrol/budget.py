"""How many requests per window the fleet may send: a fixed figure (SPOTIFY_RATE_LIMIT=100/60s), or
one learned from Spotify's answers (SPOTIFY_RATE_LIMIT=auto; the policy is learning.py).

The learned budget is one value per client id for the whole fleet: a Redis hash that every process
reads (at most once a second) and that one writer at a time changes (WATCH/MULTI on Redis's clock:
a writer that lost the race reads again and finds the step already taken). PostgreSQL keeps a copy
(pipeline/store/ratecontrol.py) written at every change, so a restart of every worker, a Redis
flush or a failover picks up where the fleet was rather than at the start again.
"""

from __future__ import annotations

import math
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Protocol, cast

import redis
from loguru import logger

from pipeline.errors import RedisUnavailable, StoreError
from pipeline.ratecontrol.learning import (
    Bounds,
    LearnedState,
    after_rate_limit,
    after_window,
    initial,
    measured_since_ms,
    release_interval_ms,
)
from shared.settings import Rate

REFRESH_S = 1.0  # how stale a process's copy of the learned budget may be
# While a step up is released (learning.py), a waiting thread naps about the time one more request
# takes to be released, at random between half and one and a half of it (so a process's threads do
# not all ask at once), never less than this: each nap ends in one more round trip to the log.
MIN_NAP_S = 0.25
HELD_BACK = "held_back_ms"  # a field beside the state: when a call last waited for the budget (Redis clock)

# KEYS[1] = the state's hash: note, on Redis's clock, that a call waited for the budget.
_NOTE_HELD_BACK = """
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'held_back_ms', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
"""


class Budget(Protocol):
    """What the limiter asks of a budget."""

    learned: bool

    @property
    def window_s(self) -> int: ...

    def requests(self) -> int:
        """Requests per window the fleet may send now."""

    def rate_limited(self) -> None:
        """Spotify answered a window 429 (not a quota one)."""

    def held_back(self) -> None:
        """A call had to wait for the budget: the fleet wants more than it has."""

    def nap_s(self) -> float:
        """The longest a thread waiting for the budget should sleep before asking again, however
        long the log says the wait is: a budget being raised frees requests before the log does."""


class BudgetRows(Protocol):
    """Where the learned budget outlives Redis (pipeline/store/ratecontrol.py)."""

    def load(self, client_id: str) -> LearnedState | None: ...
    def save(self, client_id: str, state: LearnedState) -> None: ...
    def forget(self, client_id: str) -> int: ...


class FixedBudget:
    """SPOTIFY_RATE_LIMIT=N/Ws: the operator's figure, whatever Spotify answers."""

    learned = False

    def __init__(self, rate: Rate):
        self.rate = rate

    @property
    def window_s(self) -> int:
        return self.rate.per_s

    def requests(self) -> int:
        return self.rate.requests

    def rate_limited(self) -> None:
        pass

    def held_back(self) -> None:
        pass

    def nap_s(self) -> float:
        return math.inf


_FIELDS = tuple(LearnedState.__dataclass_fields__)
_OPTIONAL = ("ceiling", "grown_from")  # float or None ("" in Redis); grown_from may be missing (an older release)


def encode(state: LearnedState) -> dict[str, str]:
    return {k: "" if v is None else repr(v) for k, v in asdict(state).items()}


def decode(raw: dict[Any, Any]) -> LearnedState | None:
    """The state from its Redis hash; None for a missing or unreadable one (learned again)."""
    values = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
              for k, v in raw.items()}
    if not set(_FIELDS) - set(_OPTIONAL) <= set(values):
        return None
    try:
        optional = {k: float(values[k]) if values.get(k) else None for k in _OPTIONAL}
        return LearnedState(budget=float(values["budget"]), ceiling=optional["ceiling"],
                            grown_from=optional["grown_from"],
                            **{k: int(values[k]) for k in _FIELDS if k != "budget" and k not in _OPTIONAL})
    except ValueError:
        return None


class LearnedBudget:
    """SPOTIFY_RATE_LIMIT=auto: the fleet's budget for one client id, learned, in Redis at `key`.

    `used_since(redis, since_ms)` counts the requests the fleet admitted since then (the limiter's
    log): since the period being judged began for a step up, from a window before its event's
    first 429 at a 429.
    `on_change(requests)` hears every value read (the metrics gauge)."""

    learned = True

    def __init__(self, client: redis.Redis, key: str, rate: Rate, client_id: str, *,
                 used_since: Callable[[Any, int], int], refused_key: str, rows: BudgetRows | None = None,
                 on_change: Callable[[int], None] | None = None, monotonic: Callable[[], float] = time.monotonic):
        if rate.learn_up_to is None:
            raise ValueError("a learned budget needs SPOTIFY_RATE_LIMIT=auto")
        self._redis = client
        self._key = key
        self._client_id = client_id
        self.bounds = Bounds(rate.requests, rate.learn_up_to, rate.per_s * 1000)
        self._used_since = used_since
        self._refused_key = refused_key
        self._rows = rows
        self._on_change = on_change or (lambda requests: None)
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._state: LearnedState | None = None
        self._read_at = float("-inf")  # monotonic, when _state was read
        self._read_ms = 0  # Redis's clock then
        self._noted_at = float("-inf")
        self._note_held_back = client.register_script(_NOTE_HELD_BACK)

    @property
    def window_s(self) -> int:
        return self.bounds.window_ms // 1000

    def requests(self) -> int:
        with self._lock:
            state, now_ms = self._current()
        requests = state.requests_at(now_ms, self.bounds)
        self._on_change(requests)
        return requests

    def nap_s(self) -> float:
        with self._lock:
            state, now_ms = self._current()
        interval_ms = release_interval_ms(state, now_ms, self.bounds)
        if interval_ms is None:
            return math.inf
        return max(MIN_NAP_S, interval_ms / 1000 * random.uniform(0.5, 1.5))

    def _current(self) -> tuple[LearnedState, int]:
        """This process's copy of the state (read again once a second) and Redis's clock now, as
        this process reckons it from its last read. Under self._lock."""
        if self._state is None or self._monotonic() - self._read_at >= REFRESH_S:
            self._state, self._read_ms = self._change(after_window)
            self._read_at = self._monotonic()
        return self._state, self._read_ms + int((self._monotonic() - self._read_at) * 1000)

    def rate_limited(self) -> None:
        try:  # this refusal counts against the measure of the limit, for this 429 and the next ones
            seconds, micros = self._redis.time()
            now_ms = int(seconds) * 1000 + int(micros) // 1000
            pipe = self._redis.pipeline(transaction=False)
            pipe.zadd(self._refused_key, {f"{now_ms}:{uuid.uuid4().hex[:8]}": now_ms})
            pipe.zremrangebyscore(self._refused_key, "-inf", now_ms - 2 * self.bounds.window_ms)
            pipe.pexpire(self._refused_key, 2 * self.bounds.window_ms)
            pipe.execute()
        except redis.exceptions.RedisError as exc:
            raise RedisUnavailable(f"the learned budget's Redis did not answer: {exc.__class__.__name__}") from exc
        with self._lock:
            before = self._state
            self._state, self._read_ms = self._change(after_rate_limit)
            self._read_at = self._monotonic()
            state = self._state
        if before is None or state.version != before.version:
            logger.info("the fleet's learned budget after a 429: {} requests per {}s window (limit measured at {})",
                        state.requests, self.window_s, state.ceiling)
        self._on_change(state.requests_at(self._read_ms, self.bounds))

    def held_back(self) -> None:
        """Noted in Redis at most once a second per process: the step up asks whether any did."""
        now = self._monotonic()
        if now - self._noted_at < REFRESH_S:
            return
        self._noted_at = now
        try:
            self._note_held_back(keys=[self._key])
        except redis.exceptions.RedisError as exc:
            raise RedisUnavailable(f"the learned budget's Redis did not answer: {exc.__class__.__name__}") from exc

    def state(self) -> LearnedState | None:
        """What the fleet has learned, as Redis holds it (None: nothing yet, or Redis was emptied)."""
        try:
            return decode(self._redis.hgetall(self._key))
        except redis.exceptions.RedisError as exc:
            raise RedisUnavailable(f"the learned budget's Redis did not answer: {exc.__class__.__name__}") from exc

    def _change(self, step: Callable[[LearnedState, int, int, Bounds], LearnedState | None]) -> tuple[LearnedState, int]:
        """Apply `step` to the fleet's state, one writer at a time; the state in force after it, and
        Redis's clock when it was read."""
        restored: list[LearnedState] = []
        changed: list[LearnedState] = []
        read_ms: list[int] = []

        def attempt(pipe: Any) -> LearnedState:
            restored.clear()
            changed.clear()
            read_ms.clear()
            seconds, micros = pipe.time()
            now_ms = int(seconds) * 1000 + int(micros) // 1000
            read_ms.append(now_ms)
            raw = pipe.hgetall(self._key)
            state = decode(raw)
            held_back_ms = int(raw.get(HELD_BACK.encode(), raw.get(HELD_BACK, 0)) or 0)
            if state is None:
                state = self._restore(now_ms)
                restored.append(state)
            if step is after_window:
                stepped = after_window(state, self._used_since(pipe, state.stepped_at_ms), now_ms, self.bounds,
                                       held_back=held_back_ms >= state.stepped_at_ms)
            else:  # a window 429: what Spotify let through of the window before its event began
                since_ms = measured_since_ms(state, now_ms, self.bounds)
                refused = int(pipe.zcount(self._refused_key, since_ms, "+inf"))
                stepped = step(state, self._used_since(pipe, since_ms) - refused, now_ms, self.bounds)
            if stepped is not None:
                changed.append(stepped)
            if restored or changed:
                pipe.multi()
                pipe.hset(self._key, mapping=encode(stepped or state))
            return stepped or state

        try:
            # redis-py types the callable as returning None; with value_from_callable it hands back ours.
            state = cast(LearnedState, self._redis.transaction(attempt, self._key,  # type: ignore[arg-type]
                                                               value_from_callable=True))
        except redis.exceptions.RedisError as exc:
            raise RedisUnavailable(f"the learned budget's Redis did not answer: {exc.__class__.__name__}") from exc
        if changed:
            self._save(state)
        return state, read_ms[-1]

    def _restore(self, now_ms: int) -> LearnedState:
        """Redis holds nothing: what PostgreSQL kept, else the start."""
        if self._rows is not None:
            try:
                kept = self._rows.load(self._client_id)
            except StoreError as exc:
                logger.warning("the learned budget could not be read from PostgreSQL: starting again ({})", exc)
                kept = None
            if kept is not None:
                logger.info("the fleet's learned budget restored from PostgreSQL: {} requests per {}s window",
                            kept.requests, self.window_s)
                return kept
        return initial(self.bounds, now_ms)

    def _save(self, state: LearnedState) -> None:
        if self._rows is None:
            return
        try:
            self._rows.save(self._client_id, state)
        except StoreError as exc:  # Redis still holds it; the next change is saved again
            logger.warning("the learned budget could not be kept in PostgreSQL: {}", exc)

    def forget(self) -> bool:
        """Drop what was learned, in Redis and PostgreSQL: the fleet starts again. True if there was any."""
        try:
            dropped = bool(self._redis.delete(self._key))
        except redis.exceptions.RedisError as exc:
            raise RedisUnavailable(f"the learned budget's Redis did not answer: {exc.__class__.__name__}") from exc
        if self._rows is not None:
            dropped = bool(self._rows.forget(self._client_id)) or dropped
        with self._lock:
            self._state, self._read_at = None, float("-inf")
        return dropped
