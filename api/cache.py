"""Spotify's search answers in Redis, with the track rows in them.

An entry is kept TRACK_TTL (the track data's lifetime) and is fresh for POPULARITY_TTL (the
popularity in it ages faster): a fresh entry is served as it is, a stale one is served too while
the caller refreshes it in the background (stale-while-revalidate). Redis errors come out as
RedisUnavailable.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from pipeline.errors import RedisUnavailable
from pipeline.search.normalize import unaccent
from shared.keys import RedisKeys
from shared.redis_conn import server_time_s, time_ms

HIT, STALE, MISS = "hit", "stale", "miss"


@dataclass(frozen=True)
class Cached:
    fetched_at_s: float
    track_ids: list[str]
    age_s: float


def query_digest(raw_query: str, spotify_limit: int) -> str:
    """One key per search as Spotify would read it: case, accents and spacing aside."""
    canonical = " ".join(unaccent(raw_query).lower().split())
    return hashlib.sha256(f"{spotify_limit}|{canonical}".encode()).hexdigest()[:32]


class SearchCache:
    def __init__(self, client: redis.Redis, keys: RedisKeys, *, track_ttl_s: int, fresh_s: int):
        self._redis = client
        self._keys = keys
        self.track_ttl_s = track_ttl_s
        self.fresh_s = fresh_s

    def get(self, digest: str) -> tuple[str, Cached | None]:
        """(HIT | STALE | MISS, the entry)."""
        try:
            # One round trip for both (each is a wait for Redis on the search's own path).
            pipe = self._redis.pipeline(transaction=False)
            pipe.get(self._keys.search_cache(digest))
            pipe.time()
            raw, reply = pipe.execute()
            now = time_ms(reply) / 1000
        except redis.RedisError as exc:
            raise RedisUnavailable(f"Redis: {exc}") from exc
        if raw is None:
            return MISS, None
        data: dict[str, Any] = orjson.loads(raw)
        entry = Cached(data["fetched_at_s"], data["track_ids"], max(0.0, now - data["fetched_at_s"]))
        return (HIT if entry.age_s < self.fresh_s else STALE), entry

    def put(self, digest: str, track_ids: list[str], rows: list[dict[str, Any]]) -> None:
        try:
            now = server_time_s(self._redis)
            value = orjson.dumps({"fetched_at_s": now, "track_ids": track_ids, "rows": rows}, default=str)
            self._redis.set(self._keys.search_cache(digest), value, ex=self.track_ttl_s)
        except redis.RedisError as exc:
            raise RedisUnavailable(f"Redis: {exc}") from exc
