"""Enrichment end to end inside the process: the real Spotify client against the emulator over a
socket, real PostgreSQL (songs, job rows) and real Redis (cache, circuit, limiter, broker)."""

from __future__ import annotations

import time
from concurrent.futures import wait

import pytest
from sqlalchemy import text

from api.app import build_services
from api.circuit import Circuit
from shared.keys import RedisKeys
from tests.integration.spotify.conftest import pointed_at, start_emulator  # noqa: F401 - a fixture


@pytest.fixture
def emulator(start_emulator):  # noqa: F811
    started = start_emulator(rate_limit=None, catalog_size=5_000)
    assert started.http.post("/_emulator/search/warm").status_code == 200  # not on the first search
    return started


@pytest.fixture
def make_services(clean_db, settings, emulator):
    built = []

    def make(**changes):
        services = build_services(pointed_at(settings, emulator, **{"search_enrich_wait_s": 2.0, **changes}))
        built.append(services)
        return services

    yield make
    for services in built:
        services.enricher.wait_idle(15)
        services.close()


def searches(emulator) -> int:
    return emulator.requests("/v1/search")


def song_ids(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(text('SELECT "spotifyId" FROM songs')).scalars())


def track_sync_ids(engine) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT payload FROM spotify_sync_jobs WHERE \"jobType\" = 'track_sync'")).scalars()
        return {i for payload in rows for i in payload["ids"]}


def test_a_fresh_enrichment_adds_songs_with_track_sync_jobs_and_is_cached(make_services, emulator):
    services = make_services()
    first = services.enricher.enrich("love", 10)
    assert first.status == "fresh" and first.added > 0
    added = song_ids(services.engine)
    assert len(added) == first.added
    assert track_sync_ids(services.engine) == added
    assert searches(emulator) == 1

    again = services.enricher.enrich("LOVE", 10)  # the same search, as Spotify reads it
    assert (again.status, again.added) == ("cached", 0)
    assert searches(emulator) == 1


def test_the_wait_is_honoured_when_spotify_is_slow(make_services, emulator):
    services = make_services(search_enrich_wait_s=0.2)
    emulator.configure(faults="slow:1@/v1/search", slow_s=1.5)
    started = time.monotonic()
    outcome = services.enricher.enrich("love", 10)
    waited = time.monotonic() - started
    assert outcome.status == "pending"
    assert 0.2 <= waited < 0.6
    assert services.enricher.wait_idle(10)  # the call finishes in the background...
    assert len(song_ids(services.engine)) > 0  # ...and its songs land
    assert services.enricher.enrich("love", 10).status == "cached"


def test_an_enrichment_asked_first_runs_while_the_caller_works_and_its_deadline_is_the_callers(
        make_services, emulator):
    services = make_services()
    asked = services.enricher.ask("love", 10)
    assert asked.known is None and asked.call is not None  # a Spotify call under way, nothing waited for
    assert wait([asked.call], timeout=10).done  # the call ends while the caller does something else
    outcome = asked.outcome(deadline=time.monotonic() - 1)  # a deadline passed: the finished call still counts
    assert outcome.status == "fresh" and outcome.added == len(song_ids(services.engine)) > 0

    emulator.configure(faults="slow:1@/v1/search", slow_s=1.0)
    started = time.monotonic()
    slow = services.enricher.ask("heart", 10).outcome(deadline=started + 0.05)
    assert slow.status == "pending" and time.monotonic() - started < 0.5


def test_more_searches_than_slots_are_skipped(make_services, emulator):
    services = make_services(search_enrich_wait_s=0.1, search_enrich_max_in_flight=1)
    emulator.configure(faults="slow:1@/v1/search", slow_s=1.0)
    assert services.enricher.enrich("first", 10).status == "pending"
    skipped = services.enricher.enrich("second", 10)
    assert (skipped.status, skipped.reason) == ("skipped", "too_many_in_flight")


@pytest.mark.parametrize("fault", ["503:1@/v1/search", "drop:1@/v1/search", "malformed:1@/v1/search"])
def test_spotify_failing_is_degraded_within_the_wait(make_services, emulator, fault):
    services = make_services(search_enrich_wait_s=0.5)
    emulator.configure(faults=fault)
    started = time.monotonic()
    outcome = services.enricher.enrich("broken", 10)
    assert (outcome.status, outcome.reason) == ("degraded", "spotify_unavailable")
    assert time.monotonic() - started < 0.9
    assert song_ids(services.engine) == set()


def test_repeated_failures_open_the_shared_circuit(make_services, emulator, settings):
    services = make_services(search_enrich_wait_s=0.5)
    emulator.configure(faults="503:1@/v1/search")
    for n in range(5):
        assert services.enricher.enrich(f"broken {n}", 10).reason == "spotify_unavailable"
    calls = searches(emulator)
    other_instance = make_services(search_enrich_wait_s=0.5)
    outcome = other_instance.enricher.enrich("anything else", 10)
    assert (outcome.status, outcome.reason) == ("degraded", "circuit_open")
    assert searches(emulator) == calls  # no call made while it is open
    circuit = Circuit(other_instance.redis, RedisKeys(settings.redis_namespace), settings.spotify_client_id)
    assert circuit.is_open()


def test_rate_limited_is_degraded_and_leaves_the_circuit_closed(make_services, emulator, settings):
    services = make_services()
    emulator.http.post("/_emulator/force", json={"kind": "429", "count": 1, "retry_after_s": 60,
                                                  "endpoint": "/v1/search"}).raise_for_status()
    outcome = services.enricher.enrich("limited", 10)
    assert (outcome.status, outcome.reason) == ("degraded", "rate_limited")
    # The fleet's penalty box holds now: the next search sends nothing either.
    calls = searches(emulator)
    assert services.enricher.enrich("limited again", 10).reason == "rate_limited"
    assert searches(emulator) == calls
    circuit = Circuit(services.redis, RedisKeys(settings.redis_namespace), settings.spotify_client_id)
    assert not circuit.is_open()


def test_a_dev_2026_app_is_asked_for_10_at_most(make_services, emulator):
    services = make_services()
    emulator.configure(tier="dev-2026")  # it answers 400 to a search limit above 10
    outcome = services.enricher.enrich("love", 50)
    assert outcome.status == "fresh" and 0 < outcome.added <= 10


def test_redis_down_means_no_cache_and_no_enrichment(make_services, emulator):
    services = make_services(redis_url="redis://127.0.0.1:1/0")
    started = time.monotonic()
    outcome = services.enricher.enrich("anything", 10)
    assert (outcome.status, outcome.reason) == ("degraded", "redis_unavailable")
    assert time.monotonic() - started < 1.0
    assert searches(emulator) == 0
