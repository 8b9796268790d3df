"""Parked work comes back at the budget's pace, and the interactive lane finds a permit at once
while background work holds its lane at the limit: real Redis, the served emulator."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from pipeline.errors import PENALTY_BOX, RateLimited
from pipeline.ratecontrol.limiter import BACKGROUND, INTERACTIVE, RedisLimiter
from pipeline.retry_policy import Park, decide
from pipeline.wiring import build_client
from shared.settings import Rate
from tests.integration.spotify.conftest import pointed_at

pytestmark = pytest.mark.integration


def test_jobs_parked_by_one_429_come_back_one_budget_step_apart_and_go_through(settings, start_emulator):
    emulator = start_emulator(rate_limit=None)
    settings = pointed_at(settings, emulator, spotify_rate_limit=Rate(20, 2))  # 10 a second
    client = build_client(settings)
    [track_id] = emulator.ids(1)
    emulator.post("/_emulator/force", {"kind": "429", "count": 1, "retry_after_s": 1})
    with pytest.raises(RateLimited) as first:
        client.get_track(track_id)
    parked: list[RateLimited] = []
    for _ in range(30):  # thirty jobs picked up while the box is shut: parked, no request sent
        with pytest.raises(RateLimited) as held:
            client.get_track(track_id)
        parked.append(held.value)
    assert {p.source for p in parked} == {PENALTY_BOX} and emulator.api_requests() == 1
    slots = sorted(p.blocked_until for p in [first.value, *parked])
    gaps = [b - a for a, b in zip(slots, slots[1:], strict=False)]
    # One step of the background lane: 2 s / its 19 requests (the 20th is kept for searches).
    assert all(gap == pytest.approx(2 / 19, abs=0.002) for gap in gaps), gaps
    # The retry policy keeps that spread (a little jitter, no bunching) and calls it a quiet park.
    now = __import__("datetime").datetime(2026, 12, 1)
    decisions = [decide(p, retry_count=0, max_retries=5, now=now) for p in parked]
    assert all(isinstance(d, Park) and d.quiet for d in decisions)
    assert "in its turn at the budget's pace" in decisions[0].message

    # Each comes back at its slot: they go through, not one parked again.
    returned: list[float] = []
    failures: list[BaseException] = []

    def come_back(limited: RateLimited) -> None:
        time.sleep(max(0.0, limited.blocked_until - time.time()))
        try:
            client.get_track(track_id)
            returned.append(time.time())
        except RateLimited as again:
            failures.append(again)

    threads = [threading.Thread(target=come_back, args=(p,)) for p in parked]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    assert failures == [] and len(returned) == 30
    assert max(returned) - min(returned) >= 2.5  # spread over about 3 s, not all at once


def test_an_interactive_call_takes_the_reserved_share_while_the_background_lane_is_full(settings):
    client = redis.Redis.from_url(settings.redis_url)
    limiter = RedisLimiter(client, f"{settings.redis_namespace}:rate:lane", Rate(400, 10))
    stop = threading.Event()
    background_permits: list[float] = []

    def backfill() -> None:  # eight threads that always have work
        while not stop.is_set():
            try:
                limiter.acquire(max_wait_s=1.0, lane=BACKGROUND)
                background_permits.append(time.monotonic())
            except RateLimited:
                pass

    limiter.acquire(max_wait_s=0.5, lane=INTERACTIVE)  # a search came: the reserve is held from now on
    threads = [threading.Thread(target=backfill) for _ in range(8)]
    [t.start() for t in threads]
    try:
        deadline = time.monotonic() + 10
        while len(background_permits) < 379 and time.monotonic() < deadline:
            time.sleep(0.05)
        # 95 % of the budget (the search's permit among them), then the background lane is full.
        assert len(background_permits) == 379
        time.sleep(0.3)
        assert len(background_permits) == 379
        waits = []
        for _ in range(14):  # the first search took one of the 20 kept
            started = time.monotonic()
            limiter.acquire(max_wait_s=0.5, lane=INTERACTIVE)
            waits.append(time.monotonic() - started)
        assert sorted(waits)[int(0.95 * len(waits))] <= 0.1, waits
        assert len(background_permits) == 379  # the reserve went to searches only
    finally:
        stop.set()
        [t.join(5) for t in threads]
