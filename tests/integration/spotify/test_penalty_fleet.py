"""One 429 with Retry-After: 3600 stops every process of the fleet, and nobody sleeps on it."""

import multiprocessing
import time
from collections import Counter

import pytest
import redis

from shared.keys import RedisKeys
from shared.settings import Rate
from tests.integration.spotify.conftest import pointed_at
from tests.integration.spotify.fleet import hammer_until_stopped

pytestmark = pytest.mark.integration

PROCESSES, THREADS = 3, 4
OBSERVE_S = 3.0


def test_one_429_stops_every_process_until_the_deadline(settings, start_emulator):
    emulator = start_emulator(rate_limit=None)
    settings = pointed_at(settings, emulator, spotify_rate_limit=Rate(1000, 10))
    ids = emulator.ids(50)
    ctx = multiprocessing.get_context("spawn")
    start, stop, events, results = ctx.Event(), ctx.Event(), ctx.Queue(), ctx.Queue()
    processes = [ctx.Process(target=hammer_until_stopped, args=(settings, ids, THREADS, start, stop, events, results))
                 for _ in range(PROCESSES)]
    [p.start() for p in processes]
    start.set()
    try:
        flowing = [events.get(timeout=60) for _ in processes]  # traffic flows from every process
        assert {kind for kind, _ in flowing} == {"first-success"} and len({pid for _, pid in flowing}) == PROCESSES
        emulator.post("/_emulator/force", {"kind": "429", "count": 1, "retry_after_s": 3600,
                                           "client_id": settings.spotify_client_id})
        forced_at = time.time()
        # Every thread of every process meets RateLimited: none has a request in flight any more.
        limited = [events.get(timeout=30) for _ in processes]
        assert {kind for kind, _ in limited} == {"all-threads-limited"} and len({pid for _, pid in limited}) == PROCESSES
        sent_before = emulator.api_requests()
        time.sleep(OBSERVE_S)  # the fleet keeps calling for a while: nothing may reach Spotify
        assert emulator.api_requests() == sent_before
    finally:
        stop.set()
        outcomes = [results.get(timeout=30) for _ in processes]
        [p.join(30) for p in processes]

    assert [o["errors"] for o in outcomes] == [[]] * PROCESSES
    assert emulator.requests("/v1/tracks", "429") == 1
    (limited_at,) = [t for o in outcomes for t in o["limited_at"]]
    assert limited_at >= forced_at - 1
    deadlines = {d for o in outcomes for d in o["blocked_until"]}
    assert max(deadlines) - min(deadlines) <= 0.002 and abs(min(deadlines) - (limited_at + 3600)) < 5
    # When the box was filled (Redis time, the same host clock): deadline - Retry-After.
    boxed_at = min(deadlines) - 3600
    # After that a thread may still send the one request that had already passed its check;
    # its next call is refused locally. So at most one late request per thread, and (above)
    # none at all once every thread had met RateLimited.
    late_by_thread = Counter((i, thread) for i, o in enumerate(outcomes) for t, thread in o["sent"] if t > boxed_at)
    assert all(count == 1 for count in late_by_thread.values()), late_by_thread
    assert len(late_by_thread) < PROCESSES * THREADS
    # Nobody slept on it: every call returned within the bounded retry time.
    assert max(o["max_call_s"] for o in outcomes) < settings.retry_budget_s
    assert sum(o["rate_limited"] for o in outcomes) > PROCESSES * THREADS
    # A Retry-After of an hour is a spent quota, not a window: the quota box (of the app's developer
    # account, its client id when none is named) holds it, and the learned rate is left alone.
    box = redis.Redis.from_url(settings.redis_url).pttl(RedisKeys(settings.redis_namespace).quota_box(
        settings.spotify_client_id))
    assert 3590_000 < box <= 3601_000
    print(f"\npenalty box: {sum(o['ok'] for o in outcomes)} calls before the 429, {len(late_by_thread)} in flight, "
          f"{sum(o['rate_limited'] for o in outcomes)} refused locally after it, longest call "
          f"{max(o['max_call_s'] for o in outcomes):.3f}s")
