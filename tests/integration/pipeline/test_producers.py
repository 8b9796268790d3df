"""Producers: rows first, committed, then one message per job carrying only its id; a big
backfill streams through in bounded memory."""

import contextlib
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
from sqlalchemy import text

from pipeline import mapping, producers
from pipeline.errors import ProducerBusy
from pipeline.store import freshness, ledger, songs
from shared.clock import utc_now


def ids(n, prefix="t"):
    for i in range(n):
        yield f"{prefix}{i:021d}"


class Outbox:
    """Stands in for the broker; checks that every job row was committed before its message."""

    def __init__(self, engine):
        self.engine = engine
        self.sent: list[tuple[str, str]] = []

    def __call__(self, job_type, job_id):
        if len(self.sent) % 500 == 0:
            with self.engine.connect() as conn:  # another connection: sees only committed rows
                status = conn.execute(text("SELECT status FROM spotify_sync_jobs WHERE id = :i"), {"i": job_id}).scalar()
                assert status == "pending"
        self.sent.append((job_type, job_id))


def test_a_backfill_is_cut_into_full_jobs_of_a_hundred_in_input_order(clean_db):
    """100 ids a job: two full /tracks requests and one full /audio-features request (issue 16.5)."""
    outbox = Outbox(clean_db)
    wanted = list(ids(2434))
    result = producers.enqueue_track_sync(clean_db, outbox, iter(wanted + wanted[:10]), force=False, track_ttl_s=86400)
    assert (result.total_ids, result.skipped_ids, result.jobs) == (2444, 10, 25)
    assert sorted(outbox.sent) == sorted(("track_sync", j.id) for j in ledger.list_jobs(clean_db, limit=100))
    payloads = [j.payload for j in ledger.list_jobs(clean_db, limit=100)]
    assert sorted(len(p["ids"]) for p in payloads) == [34] + [100] * 24
    assert sorted(i for p in payloads for i in p["ids"]) == sorted(wanted)
    assert all(p["force"] is False for p in payloads)
    progress = ledger.backfill_progress(clean_db, result.backfill_id)
    assert (progress.state, progress.total_jobs, progress.by_status["pending"], progress.done) == ("enqueued", 25, 25, False)


def test_ids_fresh_in_the_cache_are_left_out_unless_forced(clean_db):
    now = utc_now()
    fresh = [{"id": i, "name": "x", "artists": [{"name": "y"}]} for i in ids(60)]
    songs.write_songs(clean_db, mapping.merge_rows(fresh, None, now))
    # Fresh tracks whose audio features were never asked for (a library page) still need a job.
    features_missing = producers.enqueue_track_sync(clean_db, Outbox(clean_db), ids(100), force=False,
                                                    track_ttl_s=86400)
    assert (features_missing.skipped_ids, features_missing.jobs) == (0, 1)
    with clean_db.begin() as conn:
        conn.execute(text('UPDATE songs SET "audioFeaturesSynced" = true'))
        conn.execute(text("DELETE FROM spotify_sync_jobs"))
    result = producers.enqueue_track_sync(clean_db, Outbox(clean_db), ids(100), force=False, track_ttl_s=86400)
    assert (result.total_ids, result.skipped_ids, result.jobs) == (100, 60, 1)
    assert ledger.list_jobs(clean_db)[0].payload["ids"] == list(ids(100))[60:]
    forced = producers.enqueue_track_sync(clean_db, Outbox(clean_db), ids(100), force=True, track_ttl_s=86400)
    assert (forced.skipped_ids, forced.jobs) == (0, 1)
    # A TTL the songs are older than makes them stale again.
    with clean_db.begin() as conn:
        conn.execute(text('UPDATE songs SET "spotifyLastSync" = "spotifyLastSync" - interval \'2 days\''))
    stale = producers.enqueue_track_sync(clean_db, Outbox(clean_db), ids(100), force=False, track_ttl_s=86400)
    assert (stale.skipped_ids, stale.jobs) == (0, 1)


def test_ids_spotify_answered_null_for_are_left_out_within_the_ttl_unless_forced(clean_db):
    unknown = list(ids(30, prefix="u"))
    songs.write_tracks(clean_db, [], unknown[:20], ledger.db_now(clean_db))  # Spotify answered null just now
    songs.write_tracks(clean_db, [], unknown[20:], datetime(2020, 1, 1))  # long ago: asked again
    result = producers.enqueue_track_sync(clean_db, Outbox(clean_db), iter(unknown), force=False, track_ttl_s=86400)
    assert (result.total_ids, result.skipped_ids, result.jobs) == (30, 20, 1)
    assert ledger.list_jobs(clean_db)[0].payload["ids"] == unknown[20:]
    forced = producers.enqueue_track_sync(clean_db, Outbox(clean_db), iter(unknown), force=True, track_ttl_s=86400)
    assert (forced.skipped_ids, forced.jobs) == (0, 1)
    # What a worker asks before it fetches: the same rule.
    verdicts = freshness.freshness(clean_db, [unknown[19], unknown[20], "never-asked"], 86400)
    assert [verdicts[i].track_fresh for i in (unknown[19], unknown[20], "never-asked")] == [True, False, False]


def test_two_hundred_thousand_ids_take_bounded_memory_and_report_progress(clean_db):
    stages = []
    sent = []
    tracemalloc.start()
    try:
        result = producers.enqueue_track_sync(
            clean_db, lambda t, i: sent.append(i), ids(200_000), force=False, track_ttl_s=86400,
            progress=lambda stage, done, total: stages.append((stage, done, total)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (result.total_ids, result.jobs, len(sent)) == (200_000, 2000, 2000)
    assert peak < 20 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"  # the ids themselves would be ~15 MB
    assert ("reading ids", 200_000, 200_000) in stages and ("sending messages", 2000, 2000) in stages


def test_an_empty_input_makes_no_jobs(clean_db):
    result = producers.enqueue_track_sync(clean_db, Outbox(clean_db), iter([]), force=False, track_ttl_s=86400)
    assert (result.backfill_id, result.total_ids, result.jobs) == (None, 0, 0)
    assert ledger.recent_backfills(clean_db) == []


def test_popularity_refresh_takes_the_stalest_songs_not_already_queued(clean_db):
    now = utc_now()
    rows = mapping.merge_rows([{"id": i, "name": "x", "artists": [], "popularity": None} for i in ids(120)], None, now)
    songs.write_songs(clean_db, rows)
    with clean_db.begin() as conn:  # 20 were refreshed a minute ago, 100 never
        conn.execute(text('UPDATE songs SET "lastPopularityUpdate" = now() AT TIME ZONE \'UTC\' - interval \'1 minute\' '
                          'WHERE "spotifyId" >= :s'), {"s": list(ids(120))[100]})
    first = producers.enqueue_popularity_update(clean_db, Outbox(clean_db), older_than_s=3600, limit=60)
    assert (first.total_ids, first.jobs) == (60, 2)
    second = producers.enqueue_popularity_update(clean_db, Outbox(clean_db), older_than_s=3600, limit=1000)
    assert (second.total_ids, second.jobs) == (40, 1)  # the 60 queued and the 20 fresh are left out
    queued = {i for j in ledger.list_jobs(clean_db) for i in j.payload["ids"]}
    assert queued == set(list(ids(120))[:100])


def connect_users(engine, users=("u1", "u2"), without_connection=("u3",)):
    with engine.begin() as conn:
        for user in (*users, *without_connection):
            conn.execute(text("INSERT INTO users (id) VALUES (:u)"), {"u": user})
        for user in users:
            conn.execute(text('INSERT INTO spotify_connections ("userId", "spotifyUserId", "accessToken", '
                              '"tokenExpiresAt") VALUES (:u, :u, \'x\', now())'), {"u": user})


def test_a_library_job_per_connected_user_and_none_while_one_is_unfinished(clean_db):
    connect_users(clean_db)
    outbox = Outbox(clean_db)
    result, left = producers.enqueue_user_library(clean_db, outbox, user_ids=None, full=False)
    assert (result.jobs, left) == (2, [])
    assert {j.user_id for j in ledger.list_jobs(clean_db)} == {"u1", "u2"}
    again, left = producers.enqueue_user_library(clean_db, outbox, user_ids=["u1", "u3"], full=True)
    assert (again.jobs, left) == (0, ["u1", "u3"])


def test_two_library_producers_at_once_make_one_job_per_user(clean_db, monkeypatch):
    """Cron and an operator at the same moment: each checks for unfinished jobs, then inserts.
    Each producer is slowed between the two (it waits up to a second for the other to catch up):
    unless they take turns, both see no job and both make one."""
    connect_users(clean_db)
    both_checked = threading.Barrier(2, timeout=1.0)
    create_job_group = ledger.create_job_group

    def slow_create_job_group(*args, **kwargs):
        with contextlib.suppress(threading.BrokenBarrierError):
            both_checked.wait()
        return create_job_group(*args, **kwargs)

    monkeypatch.setattr(ledger, "create_job_group", slow_create_job_group)
    with ThreadPoolExecutor(2) as pool:
        made = list(pool.map(lambda _: producers.enqueue_user_library(clean_db, Outbox(clean_db), user_ids=None,
                                                                     full=False)[0].jobs, range(2)))
    assert sorted(made) == [0, 2]
    assert sorted(j.user_id for j in ledger.list_jobs(clean_db)) == ["u1", "u2"]


def test_a_producer_waits_a_bounded_time_for_another_then_gives_up(clean_db, monkeypatch):
    """One that never finishes (stuck in a long check, say) does not hold the next up for good."""
    connect_users(clean_db)
    monkeypatch.setattr(producers, "PRODUCER_LOCK_TIMEOUT_S", 0.2)
    with ledger.producer_turn(clean_db, "user_library", timeout_s=1):  # the other producer
        started = time.monotonic()
        with pytest.raises(ProducerBusy, match="another user_library producer is running"):
            producers.enqueue_user_library(clean_db, Outbox(clean_db), user_ids=None, full=False)
        assert time.monotonic() - started < 5
        # A producer of another job type does not wait for it.
        producers.enqueue_popularity_update(clean_db, Outbox(clean_db), older_than_s=3600, limit=10)
    assert ledger.list_jobs(clean_db, job_type="user_library") == []
    result, _ = producers.enqueue_user_library(clean_db, Outbox(clean_db), user_ids=None, full=False)
    assert result.jobs == 2


def test_the_lock_is_not_held_while_messages_are_sent(clean_db, monkeypatch):
    """A broker that hangs on a send holds up no other producer: by the sends, the rows are
    committed, and the next producer's check sees them."""
    connect_users(clean_db)
    monkeypatch.setattr(producers, "PRODUCER_LOCK_TIMEOUT_S", 0.2)
    during_the_sends = []

    def slow_send(job_type, job_id):
        if not during_the_sends:
            during_the_sends.append(producers.enqueue_user_library(clean_db, Outbox(clean_db), user_ids=None,
                                                                   full=False))

    first, _ = producers.enqueue_user_library(clean_db, slow_send, user_ids=None, full=False)
    [(second, left_alone)] = during_the_sends
    assert (first.jobs, second.jobs, left_alone) == (2, 0, ["u1", "u2"])
