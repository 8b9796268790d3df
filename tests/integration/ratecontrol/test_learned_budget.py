"""SPOTIFY_RATE_LIMIT=auto against the served emulator, real Redis and PostgreSQL: two client
processes learn one budget, which outlives Redis (PostgreSQL keeps it), and a spent quota parks
everyone without teaching the budget anything."""

from __future__ import annotations

import multiprocessing

import pytest
import redis

from pipeline.errors import PENALTY_BOX, RateLimited
from pipeline.ratecontrol import report
from pipeline.store.ratecontrol import PostgresBudgetRows
from pipeline.wiring import build_client
from shared.keys import RedisKeys
from shared.settings import parse_rate_limit
from tests.integration.spotify.conftest import pointed_at

pytestmark = pytest.mark.integration

LIMIT, WINDOW_S = 40, 3  # the emulator's, which the fleet is not told
AUTO = parse_rate_limit(f"auto:start=5,max=400,window={WINDOW_S}s")
PROCESSES, THREADS, LOAD_S = 2, 4, 27.0


def _learn(settings, ids) -> list[dict]:
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    from tests.integration.spotify.fleet import steady_load

    processes = [ctx.Process(target=steady_load, args=(settings, ids, THREADS, start, LOAD_S, results),
                             kwargs={"with_database": True, "wait_out_limits": True})
                 for _ in range(PROCESSES)]
    [p.start() for p in processes]
    start.set()
    outcomes = [results.get(timeout=LOAD_S + 60) for _ in processes]
    [p.join(30) for p in processes]
    return outcomes


def test_two_processes_learn_one_budget_just_below_the_limit_and_a_redis_flush_keeps_it(
        settings, engine, clean_db, start_emulator):
    emulator = start_emulator(rate_limit=LIMIT, rate_window_s=float(WINDOW_S))
    settings = pointed_at(settings, emulator, spotify_rate_limit=AUTO)
    outcomes = _learn(settings, emulator.ids(1))

    assert [o["errors"] for o in outcomes] == [[]] * PROCESSES
    keys = RedisKeys(settings.redis_namespace)
    client_id = settings.spotify_client_id
    r = redis.Redis.from_url(settings.redis_url)
    limits = report.read(settings, r, engine)
    learned = limits.budget.requests
    assert limits.budget.kept_in == "redis" and 0.8 * LIMIT <= learned <= LIMIT, limits
    assert {o["budget"] for o in outcomes} == {learned}  # one value for the whole fleet
    # Slow start from 5 overshoots once, then the fleet stays below the limit.
    window_429s = emulator.stats()["rate_limited"].get("window", 0)
    assert 1 <= window_429s <= 6, emulator.stats()["rate_limited"]
    kept = PostgresBudgetRows(engine).load(client_id)
    assert kept is not None and kept.requests == learned

    # Every worker restarted and Redis lost its data: the budget comes back from PostgreSQL.
    r.delete(keys.learned_budget(client_id), keys.rate_bucket(client_id))
    assert report.read(settings, r, engine).budget.kept_in == "postgres"
    restarted = build_client(settings, engine=engine)
    assert restarted._limiter.budget.requests() == learned
    assert report.read(settings, r, engine).budget.kept_in == "redis"


def test_a_spent_quota_parks_every_client_of_the_account_and_leaves_the_learned_rate_alone(
        settings, engine, clean_db, start_emulator):
    emulator = start_emulator(rate_limit=None, daily_quota=3, quota_period_s=3600.0)
    settings = pointed_at(settings, emulator, spotify_rate_limit=AUTO, spotify_developer_account="acme")
    client = build_client(settings, engine=engine)
    [track_id] = emulator.ids(1)
    for _ in range(3):
        client.get_track(track_id)
    budget_before = report.read(settings, redis.Redis.from_url(settings.redis_url), engine).budget
    with pytest.raises(RateLimited) as spent:
        client.get_track(track_id)
    assert spent.value.reason == "quota_exceeded" and spent.value.retry_after_s > 3000

    # Another app of the same developer account sends nothing either; the first one neither.
    sibling = build_client(settings.replace(spotify_client_id="another-app-of-acme"), engine=engine)
    sent = emulator.api_requests()
    for each in (client, sibling):
        with pytest.raises(RateLimited) as held:
            each.get_track(track_id)
        assert held.value.source == PENALTY_BOX and held.value.reason == "quota_exceeded"
    assert emulator.api_requests() == sent

    limits = report.read(settings, redis.Redis.from_url(settings.redis_url), engine)
    assert limits.quota.shut and limits.quota.blocked_for_s > 3000 and not limits.penalty.shut
    assert limits.budget.requests == budget_before.requests and limits.budget.ceiling is None  # nothing learned
    assert "quota (acme): spent (quota_exceeded); comes back in" in "\n".join(report.as_lines(limits))
