"""One contract, two stores: the in-memory store and the Redis store behave the same."""

from __future__ import annotations

import threading
import time

import pytest

from emulator.store import MemoryStore, RedisStore


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        yield MemoryStore()
        return
    prefix = request.getfixturevalue("redis_prefix")
    redis_store = RedisStore(request.getfixturevalue("redis_url"), prefix)
    yield redis_store
    redis_store.close()


def test_strings_counters_and_ttl(store):
    assert store.get("a") is None
    store.set("a", "1")
    assert store.get("a") == "1"
    assert store.set_nx("a", "2") is False and store.get("a") == "1"
    assert store.set_nx("b", "x") is True
    assert store.pop("b") == "x" and store.pop("b") is None
    assert store.incr("n") == 1 and store.incr("n", 5) == 6 and store.incr("n", -7) == -1
    store.set("short", "v", ttl_s=0.05)
    time.sleep(0.1)
    assert store.get("short") is None
    store.delete("a", "n")
    assert store.get("a") is None and store.get("n") is None


def test_hashes_and_running_max(store):
    store.hincr("h", "x")
    store.hincr("h", "x", 2)
    store.hincr("h", "y")
    assert store.hgetall("h") == {"x": "3", "y": "1"}
    store.hmax("m", "c", 5)
    store.hmax("m", "c", 3)
    store.hmax("m", "c", 8)
    assert store.hgetall("m") == {"c": "8"}
    assert store.hgetall("missing") == {}


def test_capped_sets(store):
    assert [store.sadd_capped("s", m, 2) for m in ("a", "b", "c", "a")] == [True, True, False, True]
    assert store.sadd_capped("u", "z", None) is True


def test_window_admit_at_the_edges(store):
    t0 = 1_000.0
    assert store.window_admit("w", t0, 30, 2) == 0
    assert store.window_admit("w", t0 + 10, 30, 2) == 0
    assert store.window_admit("w", t0 + 20, 30, 2) == pytest.approx(10)
    assert store.window_admit("w", t0 + 29.5, 30, 2) == pytest.approx(0.5)
    assert store.window_admit("w", t0 + 30, 30, 2) == 0  # t0 is out at exactly t0 + 30
    assert store.window_admit("w", t0 + 30, 30, 2) == pytest.approx(10)
    assert store.window_admit("z", t0, 30, 0) == 30


def test_window_record_counts_the_window(store):
    counts = [store.window_record("r", t, 30) for t in (0.0, 10.0, 29.0, 30.0, 31.0, 100.0)]
    assert counts == [1, 2, 3, 3, 4, 1]


def test_keys_and_delete_prefix(store):
    store.set("stats:a", "1")
    store.hincr("stats:b", "f")
    store.window_record("stats:c", 1.0, 30)
    store.set("oauth:x", "1")
    assert store.keys("stats:") == ["stats:a", "stats:b", "stats:c"]
    store.delete_prefix("stats:")
    assert store.keys("stats:") == [] and store.get("oauth:x") == "1"


def test_window_admit_is_atomic_under_threads(store):
    admitted = []

    def hammer():
        for _ in range(50):
            admitted.append(store.window_admit("busy", 5.0, 30, 60) == 0)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert admitted.count(True) == 60
