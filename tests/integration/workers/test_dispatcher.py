"""The dispatcher against real PostgreSQL and Redis (a real Redis broker): parked jobs come back
when due, at the pace asked, never while the penalty box is shut, and a Redis that lost its
messages gets every pending job's message again at the next tick, with no cron involved."""

from datetime import timedelta

import pytest
import redis
from sqlalchemy import text

from pipeline.store import ledger
from pipeline.store.ledger import NewJob
from shared.keys import RedisKeys
from workers.actors import declare_actors
from workers.broker import build_broker, live_job_ids
from workers.dispatcher import Dispatcher
from workers.sender import JobSender


@pytest.fixture
def fleet(settings, clean_db):
    broker = build_broker(settings)
    declare_actors(broker)
    client = redis.Redis.from_url(settings.redis_url)
    penalty = {"s": 0.0}
    dispatcher = Dispatcher(clean_db, broker, JobSender(broker), client, RedisKeys(settings.redis_namespace),
                            max_retries=5, release_per_s=10, penalty_s=lambda: penalty["s"], every_s=1.0)
    yield dispatcher, broker, client, penalty, clean_db
    broker.close()
    client.close()


def next_tick(dispatcher, client, settings):
    client.delete(RedisKeys(settings.redis_namespace).dispatcher_turn())  # as if the turn had run out
    return dispatcher.tick()


def park(engine, n, due_in_s):
    ids = ledger.create_jobs(engine, [NewJob("track_sync", {"ids": [f"{i:022d}"]}) for i in range(n)])
    for job_id in ids:
        run = ledger.claim(engine, job_id, 60, max_retries=5).job
        ledger.park(engine, run, ledger.db_now(engine) + timedelta(seconds=due_in_s), "RateLimited", "429")
    return ids


def test_due_jobs_come_back_at_the_pace_asked_and_not_while_the_box_is_shut(fleet, settings):
    dispatcher, broker, client, penalty, engine = fleet
    next_tick(dispatcher, client, settings)  # the first tick of a fleet: the broker marker is set
    parked = park(engine, 25, due_in_s=-1)
    later = park(engine, 5, due_in_s=300)
    penalty["s"] = 30.0
    assert next_tick(dispatcher, client, settings) == 0  # they would only meet the shut box
    penalty["s"] = 0.0
    assert [next_tick(dispatcher, client, settings) for _ in range(4)] == [10, 10, 5, 0]
    assert live_job_ids(broker) == set(parked)  # one message each; none for the jobs not yet due
    assert {j.id for j in ledger.list_jobs(engine, limit=100) if j.enqueued_at is None} == set(later)


def test_one_process_of_the_fleet_dispatches_a_tick(fleet, settings):
    dispatcher, _, client, _, engine = fleet
    park(engine, 3, due_in_s=-1)
    assert dispatcher.tick() == 3
    park(engine, 3, due_in_s=-1)
    assert dispatcher.tick() == 0  # the turn is still held (by this process, or another)


def test_a_redis_that_lost_its_messages_gets_them_again_at_the_next_tick(fleet, settings):
    dispatcher, broker, client, _, engine = fleet
    send = JobSender(broker)
    waiting = ledger.create_jobs(engine, [NewJob("track_sync", {"ids": [f"{i:022d}"]}) for i in range(5)])
    for job_id in waiting:
        send("track_sync", job_id)
    next_tick(dispatcher, client, settings)
    assert live_job_ids(broker) == set(waiting)
    for key in client.scan_iter(match=settings.redis_namespace + ":*"):  # FLUSHALL, for our namespace
        client.delete(key)
    assert live_job_ids(broker) == set()
    next_tick(dispatcher, client, settings)
    assert live_job_ids(broker) == set(waiting)
    with engine.connect() as conn:  # each sent once: the rows moved, and nothing else changed
        assert conn.execute(text("SELECT count(*) FROM spotify_sync_jobs WHERE status = 'pending'")).scalar() == 5
