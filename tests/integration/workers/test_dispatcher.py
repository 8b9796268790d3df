"""The dispatcher against real PostgreSQL and Redis (a real Redis broker): parked jobs come back
when due, at the pace asked, never while the penalty box is shut, and a Redis that lost its
messages gets every pending job's message again at the next tick, with no cron involved, and so
does a job whose worker was lost, a tick after its lease ran out."""

from datetime import timedelta

import pytest
import redis
from sqlalchemy import text

from pipeline.ratecontrol.budget import FixedBudget
from pipeline.ratecontrol.pacer import InMemoryPacer, background_per_s
from pipeline.store import ledger
from pipeline.store.ledger import NewJob
from shared.keys import RedisKeys
from shared.settings import Rate
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
    broker.client.connection_pool.disconnect()  # Dramatiq's close() leaves its Redis connections open
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


def test_due_jobs_come_back_at_the_pace_the_return_line_gave_them_their_slots(fleet, settings):
    """One rule (pipeline/ratecontrol/pacer.py): a tick sends as many due jobs as the line has
    slots in a second, fractions carried (9.5 a second: 10, 9, 10, 9), not int(9.5) a tick."""
    _, broker, client, _, engine = fleet
    budget = FixedBudget(Rate(300, 30))
    dispatcher = Dispatcher(engine, broker, JobSender(broker), client, RedisKeys(settings.redis_namespace),
                            max_retries=5, release_per_s=lambda: background_per_s(budget), every_s=1.0)
    next_tick(dispatcher, client, settings)
    park(engine, 40, due_in_s=-1)
    pacer = InMemoryPacer(budget, clock_s=lambda: 0.0)
    slots = [pacer.slot(0)[0] for _ in range(40)]
    released = [next_tick(dispatcher, client, settings) for _ in range(5)]
    assert released == [10, 9, 10, 9, 2]
    # By each tick, as many sent as the line had slots by then (within the one a fraction holds).
    assert all(abs(sum(released[: k + 1]) - sum(1 for s in slots if s < k + 1)) <= 1 for k in range(5))


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


def test_a_job_whose_lease_ran_out_runs_again_at_the_next_tick_not_the_next_reconcile(fleet, settings):
    dispatcher, broker, client, _, engine = fleet
    next_tick(dispatcher, client, settings)  # the first tick reconciles; the next ones only take back
    [lost, held] = ledger.create_jobs(engine, [NewJob("track_sync", {"ids": [f"{i:022d}"]}) for i in range(2)])
    for job_id in (lost, held):
        ledger.claim(engine, job_id, 60, max_retries=5)
    with engine.begin() as conn:  # the worker running `lost` was SIGKILLed a lease ago
        conn.execute(text('UPDATE spotify_sync_jobs SET "leaseUntil" = "leaseUntil" - interval \'61 seconds\' '
                          "WHERE id = :id"), {"id": lost})
    assert next_tick(dispatcher, client, settings) == 1
    assert live_job_ids(broker) == {lost}
    assert ledger.get_job(engine, lost).status == "pending" and ledger.get_job(engine, held).status == "running"
    assert next_tick(dispatcher, client, settings) == 0  # taken back once


def test_a_message_a_worker_fetched_and_dropped_long_ago_is_not_live(fleet, settings):
    """A worker that lost its connection drops the messages it held in memory, while its heartbeat
    and acks set live on: such a message, fetched over IN_FLIGHT_STALE_S ago, counts as lost."""
    import json

    from workers.broker import IN_FLIGHT_STALE_S

    dispatcher, broker, client, _, engine = fleet
    send = JobSender(broker)
    recent, dropped = ledger.create_jobs(engine, [NewJob("track_sync", {"ids": [f"{i:022d}"]}) for i in range(2)])
    for job_id in (recent, dropped):
        send("track_sync", job_id)
    ns = broker.namespace
    fetched = {json.loads(data)["args"][0]: message_id for message_id, data in client.hscan_iter(f"{ns}:tracks.msgs")}
    for job_id, age_s in ((recent, 10), (dropped, IN_FLIGHT_STALE_S + 60)):  # both taken by a worker...
        message_id = fetched[job_id]
        client.lrem(f"{ns}:tracks", 0, message_id)
        client.sadd(f"{ns}:__acks__.gone-worker.tracks", message_id)
        message = json.loads(client.hget(f"{ns}:tracks.msgs", message_id))
        message["message_timestamp"] -= age_s * 1000
        client.hset(f"{ns}:tracks.msgs", message_id, json.dumps(message))
    assert live_job_ids(broker) == {recent}  # ...one of them long ago, and never run
    next_tick(dispatcher, client, settings)  # the first tick: the broker marker is set, the lost one re-sent
    assert ledger.get_job(engine, dropped).enqueued_at > ledger.get_job(engine, recent).enqueued_at
