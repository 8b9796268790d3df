"""The emulator's shared state behind one small interface: in memory, or in Redis.

State that several emulator processes must share (rate windows, stats, grants and tokens, the
running config) goes through a Store. `MemoryStore` serves one process (all its threads: one
lock); `RedisStore` serves any number of processes. The same contract tests run against both
(tests/integration/emulator/test_store_contract.py).

Operations are the few the emulator needs, each atomic:
  get / set / set_nx / pop / delete / incr      strings and counters, optional TTL
  hincr / hgetall / hmax                        counters by field, and a running maximum
  sadd_capped                                   set membership with a cap on its size
  window_admit / window_record                  rolling-window logs of timestamps
  delete_prefix                                 what reset uses
Times are passed in (the emulator's clock, which tests may move), never read here.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import deque
from typing import Protocol, cast


class Store(Protocol):
    prefix: str

    def get(self, key: str) -> str | None: ...
    def set(self, key: str, value: str, ttl_s: float | None = None) -> None: ...
    def set_nx(self, key: str, value: str, ttl_s: float | None = None) -> bool: ...
    def pop(self, key: str) -> str | None: ...
    def delete(self, *keys: str) -> None: ...
    def incr(self, key: str, n: int = 1, ttl_s: float | None = None) -> int: ...
    def hincr(self, key: str, field: str, n: int = 1) -> None: ...
    def hgetall(self, key: str) -> dict[str, str]: ...
    def hmax(self, key: str, field: str, value: int) -> None: ...
    def sadd_capped(self, key: str, member: str, cap: int | None) -> bool: ...
    def window_admit(self, key: str, now: float, window_s: float, limit: int) -> float: ...
    def window_record(self, key: str, now: float, window_s: float) -> int: ...
    def keys(self, prefix: str) -> list[str]: ...
    def delete_prefix(self, prefix: str) -> None: ...
    def close(self) -> None: ...


class MemoryStore:
    """One process. A single lock makes every operation atomic across threads."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix or f"emulator:{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._strings: dict[str, tuple[str, float | None]] = {}  # value, expires (monotonic)
        self._hashes: dict[str, dict[str, int]] = {}
        self._sets: dict[str, set[str]] = {}
        self._windows: dict[str, deque[float]] = {}

    def _live(self, key: str) -> str | None:
        item = self._strings.get(key)
        if item is None:
            return None
        if item[1] is not None and item[1] <= time.monotonic():
            del self._strings[key]
            return None
        return item[0]

    @staticmethod
    def _expiry(ttl_s: float | None) -> float | None:
        return None if ttl_s is None else time.monotonic() + ttl_s

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._live(key)

    def set(self, key: str, value: str, ttl_s: float | None = None) -> None:
        with self._lock:
            self._strings[key] = (value, self._expiry(ttl_s))

    def set_nx(self, key: str, value: str, ttl_s: float | None = None) -> bool:
        with self._lock:
            if self._live(key) is not None:
                return False
            self._strings[key] = (value, self._expiry(ttl_s))
            return True

    def pop(self, key: str) -> str | None:
        with self._lock:
            value = self._live(key)
            self._strings.pop(key, None)
            return value

    def delete(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                for family in (self._strings, self._hashes, self._sets, self._windows):
                    family.pop(key, None)

    def incr(self, key: str, n: int = 1, ttl_s: float | None = None) -> int:
        with self._lock:
            current = self._live(key)
            if current is None:
                self._strings[key] = (str(n), self._expiry(ttl_s))
                return n
            value = int(current) + n
            self._strings[key] = (str(value), self._strings[key][1])
            return value

    def hincr(self, key: str, field: str, n: int = 1) -> None:
        with self._lock:
            h = self._hashes.setdefault(key, {})
            h[field] = h.get(field, 0) + n

    def hgetall(self, key: str) -> dict[str, str]:
        with self._lock:
            return {k: str(v) for k, v in self._hashes.get(key, {}).items()}

    def hmax(self, key: str, field: str, value: int) -> None:
        with self._lock:
            h = self._hashes.setdefault(key, {})
            if value > h.get(field, 0):
                h[field] = value

    def sadd_capped(self, key: str, member: str, cap: int | None) -> bool:
        with self._lock:
            members = self._sets.setdefault(key, set())
            if member in members:
                return True
            if cap is not None and len(members) >= cap:
                return False
            members.add(member)
            return True

    def window_admit(self, key: str, now: float, window_s: float, limit: int) -> float:
        """Admit (and log) a request if fewer than `limit` were admitted in (now - window, now].
        Returns 0.0 when admitted, else the seconds until the window admits one again."""
        with self._lock:
            log = self._windows.setdefault(key, deque())
            while log and log[0] <= now - window_s:
                log.popleft()
            if len(log) < limit:
                log.append(now)
                return 0.0
            if limit <= 0:
                return window_s
            return max(log[len(log) - limit] + window_s - now, 1e-6)

    def window_record(self, key: str, now: float, window_s: float) -> int:
        """Log a request and return how many are logged in (now - window, now]."""
        with self._lock:
            log = self._windows.setdefault(key, deque())
            log.append(now)
            while log[0] <= now - window_s:
                log.popleft()
            return len(log)

    def keys(self, prefix: str) -> list[str]:
        with self._lock:
            found: set[str] = set()
            for family in (self._strings, self._hashes, self._sets, self._windows):
                found.update(k for k in family if k.startswith(prefix))
            return sorted(found)

    def delete_prefix(self, prefix: str) -> None:
        for key in self.keys(prefix):
            self.delete(key)

    def close(self) -> None:
        pass


_WINDOW_ADMIT = """
local key, now, win, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - win)
local n = redis.call('ZCARD', key)
if n < limit then
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('PEXPIRE', key, math.ceil(win * 1000) + 1000)
  return '0'
end
if limit <= 0 then return tostring(win) end
local at = redis.call('ZRANGE', key, n - limit, n - limit, 'WITHSCORES')
return tostring(math.max(tonumber(at[2]) + win - now, 0.000001))
"""

_WINDOW_RECORD = """
local key, now, win = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZADD', key, now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - win)
redis.call('PEXPIRE', key, math.ceil(win * 1000) + 1000)
return redis.call('ZCARD', key)
"""

_HMAX = """
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > current then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 0
"""

_SADD_CAPPED = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
local cap = tonumber(ARGV[2])
if cap >= 0 and redis.call('SCARD', KEYS[1]) >= cap then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
return 1
"""

_INCR_TTL = """
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if v == tonumber(ARGV[1]) and tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v
"""


class RedisStore:
    """Any number of processes. Every operation is one command or one Lua script."""

    def __init__(self, url: str, prefix: str | None = None) -> None:
        import redis  # imported here: the in-memory emulator needs no Redis client

        self.prefix = prefix or f"emulator:{uuid.uuid4().hex[:8]}"
        self._redis = redis.Redis.from_url(url, decode_responses=True)
        self._admit = self._redis.register_script(_WINDOW_ADMIT)
        self._record = self._redis.register_script(_WINDOW_RECORD)
        self._hmax = self._redis.register_script(_HMAX)
        self._sadd_capped = self._redis.register_script(_SADD_CAPPED)
        self._incr_ttl = self._redis.register_script(_INCR_TTL)

    def _k(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    @staticmethod
    def _px(ttl_s: float | None) -> int | None:
        return None if ttl_s is None else max(1, math.ceil(ttl_s * 1000))

    def get(self, key: str) -> str | None:
        return cast("str | None", self._redis.get(self._k(key)))  # decode_responses: str, never bytes

    def set(self, key: str, value: str, ttl_s: float | None = None) -> None:
        self._redis.set(self._k(key), value, px=self._px(ttl_s))

    def set_nx(self, key: str, value: str, ttl_s: float | None = None) -> bool:
        return bool(self._redis.set(self._k(key), value, px=self._px(ttl_s), nx=True))

    def pop(self, key: str) -> str | None:
        return cast("str | None", self._redis.getdel(self._k(key)))

    def delete(self, *keys: str) -> None:
        if keys:
            self._redis.delete(*(self._k(k) for k in keys))

    def incr(self, key: str, n: int = 1, ttl_s: float | None = None) -> int:
        return int(self._incr_ttl(keys=[self._k(key)], args=[n, self._px(ttl_s) or 0]))

    def hincr(self, key: str, field: str, n: int = 1) -> None:
        self._redis.hincrby(self._k(key), field, n)

    def hgetall(self, key: str) -> dict[str, str]:
        return cast("dict[str, str]", self._redis.hgetall(self._k(key)))

    def hmax(self, key: str, field: str, value: int) -> None:
        self._hmax(keys=[self._k(key)], args=[field, value])

    def sadd_capped(self, key: str, member: str, cap: int | None) -> bool:
        return bool(self._sadd_capped(keys=[self._k(key)], args=[member, -1 if cap is None else cap]))

    def window_admit(self, key: str, now: float, window_s: float, limit: int) -> float:
        member = f"{now!r}:{uuid.uuid4().hex[:8]}"
        return float(self._admit(keys=[self._k(key)], args=[repr(now), repr(window_s), limit, member]))

    def window_record(self, key: str, now: float, window_s: float) -> int:
        member = f"{now!r}:{uuid.uuid4().hex[:8]}"
        return int(self._record(keys=[self._k(key)], args=[repr(now), repr(window_s), member]))

    def keys(self, prefix: str) -> list[str]:
        cut = len(self.prefix) + 1
        return sorted(k[cut:] for k in self._redis.scan_iter(match=self._k(prefix) + "*", count=500))

    def delete_prefix(self, prefix: str) -> None:
        batch = [self._k(k) for k in self.keys(prefix)]
        for i in range(0, len(batch), 500):
            self._redis.delete(*batch[i : i + 500])

    def close(self) -> None:
        self._redis.close()


def open_store(redis_url: str | None, prefix: str | None) -> Store:
    return RedisStore(redis_url, prefix) if redis_url else MemoryStore(prefix)
