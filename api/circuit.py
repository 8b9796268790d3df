"""A circuit breaker for Spotify searches, shared by every API instance through one Redis hash
{failures, open_until} per client id: FAILURES_TO_OPEN failed searches in a row (any instance)
open it for OPEN_S, during which no instance asks Spotify. Time is Redis server time.

Only faults count (5xx, timeouts, dropped connections, malformed bodies): a 429 has its own
shared penalty box, a 403 is the tier's rule, and neither means Spotify is down.
"""

from __future__ import annotations

import redis

from pipeline.errors import RedisUnavailable
from shared.keys import RedisKeys
from shared.redis_conn import server_time_s

FAILURES_TO_OPEN = 5
OPEN_S = 30.0
FORGET_AFTER_S = 300  # failures this old no longer count towards opening

# Count the failure; at the threshold open the circuit and start counting again. One round trip,
# atomic across instances. ARGV: open_until if it opens now, threshold, forget-after.
_FAIL = """
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
if failures >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'open_until', ARGV[1], 'failures', 0)
  return 1
end
return 0
"""


class Circuit:
    def __init__(self, client: redis.Redis, keys: RedisKeys, client_id: str, *,
                 failures_to_open: int = FAILURES_TO_OPEN, open_s: float = OPEN_S):
        self._redis = client
        self._key = keys.search_circuit(client_id)
        self.failures_to_open = failures_to_open
        self.open_s = open_s
        self._fail = client.register_script(_FAIL)

    def is_open(self) -> bool:
        try:
            open_until = self._redis.hget(self._key, "open_until")
            return bool(open_until) and float(open_until) > server_time_s(self._redis)  # type: ignore[arg-type]
        except redis.RedisError as exc:
            raise RedisUnavailable(f"Redis: {exc}") from exc

    def failed(self) -> bool:
        """Count one failure; True when this one opened the circuit."""
        try:
            open_until = server_time_s(self._redis) + self.open_s
            return bool(self._fail(keys=[self._key], args=[open_until, self.failures_to_open, FORGET_AFTER_S]))
        except redis.RedisError as exc:
            raise RedisUnavailable(f"Redis: {exc}") from exc

    def succeeded(self) -> None:
        try:
            self._redis.hdel(self._key, "failures")
        except redis.RedisError as exc:
            raise RedisUnavailable(f"Redis: {exc}") from exc
