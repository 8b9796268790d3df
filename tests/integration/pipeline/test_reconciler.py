"""The reconciler: jobs whose worker died or whose message Redis lost get a message again;
several hosts running it at once send each one once."""

import threading
from datetime import timedelta

from sqlalchemy import text

from pipeline import reconciler
from pipeline.store import ledger
from pipeline.store.ledger import NewJob


def make_jobs(engine, n):
    return ledger.create_jobs(engine, [NewJob("track_sync", {"ids": [f"{i:022d}"]}) for i in range(n)])


def age(engine, seconds):
    with engine.begin() as conn:
        conn.execute(text('UPDATE spotify_sync_jobs SET "enqueuedAt" = "enqueuedAt" - make_interval(secs => :s), '
                          '"leaseUntil" = "leaseUntil" - make_interval(secs => :s), '
                          '"notBefore" = "notBefore" - make_interval(secs => :s)'), {"s": seconds})


def test_pending_jobs_without_a_live_message_are_resent_and_live_or_young_ones_are_not(clean_db):
    lost, live, young = make_jobs(clean_db, 3)
    age(clean_db, 600)
    with clean_db.begin() as conn:
        conn.execute(text('UPDATE spotify_sync_jobs SET "enqueuedAt" = now() AT TIME ZONE \'UTC\' WHERE id = :i'), {"i": young})
    sent = []
    result = reconciler.reconcile(clean_db, lambda *m: sent.append(m), lambda: {live}, max_retries=5, grace_s=120)
    assert sent == [("track_sync", lost, 0.0)]
    assert (result.pending_resent, result.leases_expired, result.live_known) == (1, 0, True)
    # Run again at once: the job it re-sent is young now.
    assert reconciler.reconcile(clean_db, lambda *m: sent.append(m), lambda: {live}, max_retries=5).pending_resent == 0


def test_a_parked_job_is_the_dispatchers_not_the_reconcilers(clean_db):
    """A parked job has no message out, so none can be lost: the dispatcher sends one when it is due."""
    [job_id] = make_jobs(clean_db, 1)
    run = ledger.claim(clean_db, job_id, 60, max_retries=5).job
    ledger.park(clean_db, run, ledger.db_now(clean_db) + timedelta(seconds=300), "RateLimited", "429")
    age(clean_db, 200)
    sent = []
    reconciler.reconcile(clean_db, lambda *m: sent.append(m), lambda: set(), max_retries=5, grace_s=120)
    assert sent == [] and ledger.take_due(clean_db, limit=10) == []
    age(clean_db, 301)
    assert ledger.take_due(clean_db, limit=10) == [(job_id, "track_sync")]


def test_a_running_job_whose_lease_ran_out_goes_back_to_pending_and_fails_when_it_keeps_dying(clean_db):
    [job_id] = make_jobs(clean_db, 1)
    sent = []
    for died in range(1, 4):
        ledger.claim(clean_db, job_id, 60, max_retries=5)
        age(clean_db, 61)
        result = reconciler.reconcile(clean_db, lambda *m: sent.append(m), lambda: set(), max_retries=2)
        assert result.leases_expired == 1
        job = ledger.get_job(clean_db, job_id)
        assert job.retry_count == died and job.error_class == "WorkerLost"
        if died <= 2:
            assert job.status == "pending" and sent[-1] == ("track_sync", job_id, 0)
    assert (job.status, result.failed_worker_lost, len(sent)) == ("failed", 1, 2)


def test_when_the_broker_cannot_list_messages_pending_jobs_are_judged_by_age(clean_db):
    old, recent = make_jobs(clean_db, 2)
    age(clean_db, 7200)
    with clean_db.begin() as conn:
        conn.execute(text('UPDATE spotify_sync_jobs SET "enqueuedAt" = now() AT TIME ZONE \'UTC\' - interval \'10 minutes\' '
                          "WHERE id = :i"), {"i": recent})
    sent = []
    result = reconciler.reconcile(clean_db, lambda *m: sent.append(m), lambda: None, max_retries=5, stale_after_s=3600)
    assert [s[1] for s in sent] == [old] and not result.live_known


def test_several_hosts_at_once_send_each_lost_job_once(clean_db):
    job_ids = make_jobs(clean_db, 300)
    for job_id in job_ids[:100]:
        ledger.claim(clean_db, job_id, 60, max_retries=5)
    age(clean_db, 600)
    sent, lock = [], threading.Lock()

    def send(*message):
        with lock:
            sent.append(message[1])

    hosts = [threading.Thread(target=reconciler.reconcile, args=(clean_db, send, lambda: set()),
                              kwargs={"max_retries": 5}) for _ in range(4)]
    for host in hosts:
        host.start()
    for host in hosts:
        host.join()
    assert sorted(sent) == sorted(job_ids)


def test_a_backfill_whose_producer_died_while_sending_is_closed_and_its_jobs_resent(clean_db):
    backfill = ledger.create_backfill(clean_db, "track_sync", "died half-way")
    job_ids = ledger.create_jobs(clean_db, [NewJob("track_sync", {"ids": ["x" * 22]})] * 3, backfill_id=backfill)
    with clean_db.begin() as conn:
        conn.execute(text('UPDATE spotify_backfills SET "totalJobs" = 3, "createdAt" = "createdAt" - interval \'1 hour\''))
    age(clean_db, 3600)
    sent = []
    reconciler.reconcile(clean_db, lambda *m: sent.append(m[1]), lambda: set(job_ids[:1]), max_retries=5)
    assert sorted(sent) == sorted(job_ids[1:])
    assert ledger.backfill_progress(clean_db, backfill).state == "enqueued"
