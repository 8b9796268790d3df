"""The search cache and the shared circuit breaker against real Redis."""

from __future__ import annotations

import time

import pytest
import redis

from api.cache import HIT, MISS, STALE, SearchCache, query_digest
from api.circuit import Circuit
from pipeline.errors import RedisUnavailable
from shared.keys import RedisKeys


@pytest.fixture
def client(redis_url):
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    connection.close()


def test_the_digest_ignores_case_accents_and_spacing_but_not_the_limit():
    assert query_digest("Beyoncé  Halo", 10) == query_digest("beyonce halo", 10)
    assert query_digest("beyonce halo", 10) != query_digest("beyonce halo", 5)
    assert query_digest("artist:queen", 10) != query_digest("artist queen", 10)


def test_a_miss_then_a_hit_kept_for_the_track_ttl(client, redis_namespace):
    keys = RedisKeys(redis_namespace)
    cache = SearchCache(client, keys, track_ttl_s=86400, fresh_s=3600)
    digest = query_digest("halo", 10)
    assert cache.get(digest) == (MISS, None)
    cache.put(digest, ["a" * 22], [{"spotifyId": "a" * 22, "title": "Halo"}])
    result, entry = cache.get(digest)
    assert result == HIT and entry.track_ids == ["a" * 22] and entry.age_s < 5
    assert 86000 < client.ttl(keys.search_cache(digest)) <= 86400


def test_past_the_popularity_ttl_an_entry_is_stale_but_still_there(client, redis_namespace):
    cache = SearchCache(client, RedisKeys(redis_namespace), track_ttl_s=86400, fresh_s=0)
    digest = query_digest("halo", 10)
    cache.put(digest, [], [])
    assert cache.get(digest)[0] == STALE


def test_redis_down_is_redis_unavailable(redis_namespace):
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2)
    cache = SearchCache(dead, RedisKeys(redis_namespace), track_ttl_s=86400, fresh_s=3600)
    with pytest.raises(RedisUnavailable):
        cache.get("x")
    with pytest.raises(RedisUnavailable):
        Circuit(dead, RedisKeys(redis_namespace), "client").is_open()


def test_failures_on_one_instance_open_the_circuit_for_all(client, redis_url, redis_namespace):
    keys = RedisKeys(redis_namespace)
    other_connection = redis.Redis.from_url(redis_url, decode_responses=True)
    one = Circuit(client, keys, "client-a", failures_to_open=3, open_s=0.5)
    other = Circuit(other_connection, keys, "client-a", failures_to_open=3, open_s=0.5)
    stranger = Circuit(client, keys, "client-b", failures_to_open=3, open_s=0.5)
    assert [one.failed(), other.failed()] == [False, False]
    assert not one.is_open()
    assert one.failed() is True  # the third, from either instance
    assert one.is_open() and other.is_open() and not stranger.is_open()
    deadline = time.monotonic() + 5
    while other.is_open():  # it closes by itself once open_s has passed (Redis time)
        assert time.monotonic() < deadline, "the circuit never closed"
        time.sleep(0.05)
    other_connection.close()


def test_a_success_forgets_the_failures(client, redis_namespace):
    circuit = Circuit(client, RedisKeys(redis_namespace), "client-a", failures_to_open=2)
    circuit.failed()
    circuit.succeeded()
    assert circuit.failed() is False
    assert not circuit.is_open()
