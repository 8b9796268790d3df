"""The Redis connection, made from the settings."""

from __future__ import annotations

import redis

from shared.settings import Settings


def connect(settings: Settings, **options) -> redis.Redis:
    """A pooled client for REDIS_URL; responses decoded to str unless told otherwise."""
    options.setdefault("decode_responses", True)
    options.setdefault("socket_connect_timeout", 5)
    # A Redis that stops answering must fail a call (a transient error), not hang a thread that
    # holds the limiter's process lock.
    options.setdefault("socket_timeout", 10)
    options.setdefault("health_check_interval", 30)
    return redis.Redis.from_url(settings.require_redis_url(), **options)


def server_time_ms(client: redis.Redis) -> int:
    """Redis server time in whole milliseconds: the one clock every host of the fleet agrees on
    (the limiter's window, the penalty box and the shared token are all timed by it)."""
    return time_ms(client.time())


def time_ms(reply: tuple[int, int]) -> int:
    """A TIME reply (seconds, microseconds) in whole milliseconds (for a TIME sent in a pipeline)."""
    seconds, micros = reply
    return int(seconds) * 1000 + int(micros) // 1000


def server_time_s(client: redis.Redis) -> float:
    return server_time_ms(client) / 1000
