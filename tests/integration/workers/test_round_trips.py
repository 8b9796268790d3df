"""The round trips one track_sync job of 50 tracks makes to PostgreSQL and to Redis, from its
claim to its finish, counted on the wire (roundtrips.py): the real Spotify client against the
emulator, real PostgreSQL, real Redis, the job run as a worker thread runs it (workers/run.py).

Pinned: a change that adds a round trip to every job fails here, and the message lists the
statements and commands the job made. (One that removes one fails too: lower the pin.)

Before issue 16's cuts a job made 26 to PostgreSQL (7 pool pre-pings, 6 BEGIN/COMMIT pairs, 7
statements: claim, freshness, clock, songs, features pending, features, complete) and 13 to Redis
(5 reads of the capabilities' version, 8 for its two requests' quota box, penalty box, clock and
limiter). Then 10 to PostgreSQL (4 of them pre-pings) and 9 to Redis; then 3 and 7 (a box
apiece per request), now 3 and 5 (the job's requests on the overlap pool, as in a worker: they
read the version once a run since the run's look is shared with them; 7 before); now 3 to Redis
(a request's penalty boxes read by the limiter's script that takes its permit).
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from dramatiq.brokers.stub import StubBroker

from emulator.config import EmulatorConfig
from emulator.server import start_in_thread
from pipeline import producers
from pipeline.batching import Coalescer
from pipeline.capabilities import Capabilities
from pipeline.store import ledger
from pipeline.store.capabilities import PostgresCapabilityRows
from pipeline.sync import sync_tracks
from pipeline.wiring import build_client
from shared.db import make_engine
from shared.keys import RedisKeys
from shared.redis_conn import connect
from shared.settings import Rate
from tests.integration.workers.roundtrips import PostgresCounter, Tally, counted, counting_connection_class
from workers import actors
from workers.leases import LeaseKeeper
from workers.run import run_job
from workers.sender import JobSender
from workers.setup import WorkerEnv

pytestmark = pytest.mark.integration

# The claim (with the ids' freshness and the clock), the songs with their features (one upsert),
# the completion. No pings: a connection is pinged only after it sat idle in the pool (shared/db.py).
POSTGRES_PER_JOB = 3
# The capabilities' version once; per request (/tracks, /audio-features): the limiter's script,
# which reads Redis's clock and the request's quota box and penalty box itself.
REDIS_PER_JOB = 3
# What the Redis client does at most once a second a process, not once a job: the lane presence
# check (EXISTS), the connection health check (PING).
REDIS_PERIODIC = {"EXISTS", "PING"}


@pytest.fixture
def counted_env(settings, clean_db, postgres_server_url):
    """A worker process's environment, built as workers/setup.py builds it, over counted
    connections; no lease keeper or dispatcher thread (their ticks are not the job's)."""
    emulator = start_in_thread(EmulatorConfig(rate_limit=None))
    proxy = PostgresCounter(postgres_server_url)
    redis_tally = Tally()
    settings = settings.replace(spotify_api_base_url=emulator.base_url + "/v1",
                                spotify_accounts_base_url=emulator.base_url, spotify_rate_limit=Rate(100_000, 1))
    # A busy worker's connections go back to the pool and out again within milliseconds; a slow,
    # loaded host must not make one of them idle long enough to be pinged (shared/db.py).
    engine = make_engine(proxy.url(settings.require_database_url()), pool_size=8, max_overflow=8, ping_idle_s=60)
    redis = connect(settings, connection_class=counting_connection_class(redis_tally))
    client = build_client(settings, redis, engine)
    # As built, but without the time-driven re-reads (a slow, loaded host must not add to the count).
    client.capabilities = Capabilities(PostgresCapabilityRows(engine), settings.spotify_client_id, redis=redis,
                                       keys=RedisKeys(settings.redis_namespace), backstop_ttl_s=3600,
                                       per_job_recheck_s=3600)
    broker = StubBroker()
    actors.declare_actors(broker)
    features = Coalescer(client.get_audio_features, size=100, max_wait_s=0.01, hold_while=client.budget_spent)
    # The job's requests in flight together on a pool, as in a worker: the version is read once a
    # run on the pool's threads too (they share the run's look, pipeline/capabilities.py).
    overlap = ThreadPoolExecutor(max_workers=4, thread_name_prefix="overlap")
    env = WorkerEnv(settings, engine, client, JobSender(broker), LeaseKeeper(engine, settings.job_lease_s), redis,
                    extras={"audio_features": features, "overlap": overlap})
    try:
        yield env, proxy.tally, redis_tally, emulator.base_url
    finally:
        overlap.shutdown(wait=True)
        broker.close()
        engine.dispose()
        redis.close()
        proxy.close()
        emulator.stop()


def _enqueue(env, base_url, offset) -> str:
    ids = httpx.get(base_url + "/_emulator/ids", params={"count": 50, "offset": offset}).json()["ids"]
    producers.enqueue_track_sync(env.engine, env.send, iter(ids), force=False, track_ttl_s=86400)
    [job] = ledger.list_jobs(env.engine, status="pending")
    return job.id


def _run(env, job_id) -> None:
    run_job(job_id, "track_sync", lambda e, job: sync_tracks(e.context, job), env=env)


def _listing(labels: list[str]) -> str:
    return "\n".join(f"  {n} x {label}" for label, n in Counter(labels).items())


def test_a_track_sync_of_50_makes_the_pinned_round_trips_from_claim_to_finish(counted_env):
    env, postgres, redis, base_url = counted_env
    # Two jobs first: the app token fetched, the capabilities learned and announced, the pool
    # filled; what every later job of a running worker finds.
    for offset in (0, 50):
        _run(env, _enqueue(env, base_url, offset))
    job_id = _enqueue(env, base_url, 100)

    with counted(postgres, redis) as seen:
        _run(env, job_id)

    done = ledger.get_job(env.engine, job_id)
    assert done.status == "completed" and done.result["upserted"] == 50 and done.result["features_written"] == 50
    postgres_trips, redis_trips = seen
    per_job_redis = [label for label in redis_trips if label not in REDIS_PERIODIC]
    assert len(postgres_trips) == POSTGRES_PER_JOB, f"PostgreSQL round trips:\n{_listing(postgres_trips)}"
    assert len(per_job_redis) == REDIS_PER_JOB, f"Redis round trips:\n{_listing(redis_trips)}"
