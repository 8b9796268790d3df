"""The job ledger on a real PostgreSQL: every transition is a compare-and-set on the row."""

from datetime import timedelta

from sqlalchemy import text

from pipeline.store import ledger
from pipeline.store.ledger import NewJob


def one_job(engine, payload=None):
    [job_id] = ledger.create_jobs(engine, [NewJob("track_sync", payload or {"ids": ["a" * 22]})])
    return job_id


def expire_lease(engine, job_id):
    with engine.begin() as conn:
        conn.execute(text('UPDATE spotify_sync_jobs SET "leaseUntil" = "leaseUntil" - interval \'1 hour\' WHERE id = :i'),
                     {"i": job_id})


def test_a_job_runs_pending_running_completed_with_its_times_and_result(clean_db):
    engine = clean_db
    job_id = one_job(engine)
    claim = ledger.claim(engine, job_id, lease_s=60, max_retries=5)
    job = claim.job
    assert job.status == "running" and job.attempts == 1 and job.retry_count == 0
    assert job.started_at is not None and job.lease_until - job.started_at >= timedelta(seconds=59)

    assert ledger.complete(engine, job, {"upserted": 1})
    done = ledger.get_job(engine, job_id)
    assert (done.status, done.result, done.lease_until, done.error) == ("completed", {"upserted": 1}, None, None)
    assert done.completed_at >= done.started_at
    # A second message for it (at-least-once delivery) finds it finished and changes nothing.
    assert ledger.claim(engine, job_id, lease_s=60, max_retries=5).finished
    assert not ledger.complete(engine, job, {"upserted": 99})
    assert ledger.get_job(engine, job_id).result == {"upserted": 1}


def test_a_claim_brings_the_clock_and_asked_for_the_freshness_of_the_ids_a_payload_names(clean_db):
    plain = ledger.claim(clean_db, one_job(clean_db), lease_s=60, max_retries=5).job
    assert plain.freshness is None and plain.claimed_at == plain.updated_at
    asked = ledger.claim(clean_db, one_job(clean_db), lease_s=60, max_retries=5, freshness_ttl_s=60).job
    assert set(asked.freshness) == {"a" * 22} and not asked.freshness["a" * 22].track_fresh
    # A payload without a list of ids is the work's to refuse (BadJob), not the claim's to choke on.
    bad = ledger.claim(clean_db, one_job(clean_db, {"ids": "nope"}), lease_s=60, max_retries=5,
                       freshness_ttl_s=60).job
    assert bad.status == "running" and bad.freshness is None
    # A taken-over run brings them too.
    expire_lease(clean_db, asked.id)
    again = ledger.claim(clean_db, asked.id, lease_s=60, max_retries=5, freshness_ttl_s=60).job
    assert again.attempts == 2 and set(again.freshness) == {"a" * 22} and again.claimed_at > asked.claimed_at


def test_a_running_job_with_a_live_lease_cannot_be_claimed_twice(clean_db):
    job_id = one_job(clean_db)
    first = ledger.claim(clean_db, job_id, lease_s=60, max_retries=5).job
    second = ledger.claim(clean_db, job_id, lease_s=60, max_retries=5)
    assert second.job is None and second.wait_until == first.lease_until


def test_an_expired_lease_is_taken_over_counting_a_retry_and_fencing_off_the_old_run(clean_db):
    job_id = one_job(clean_db)
    old_run = ledger.claim(clean_db, job_id, lease_s=60, max_retries=5).job
    expire_lease(clean_db, job_id)
    new_run = ledger.claim(clean_db, job_id, lease_s=60, max_retries=5).job
    assert (new_run.attempts, new_run.retry_count) == (2, 1)
    # The old run wakes up: it can neither renew nor finish.
    assert not ledger.renew_lease(clean_db, old_run, 60)
    assert not ledger.complete(clean_db, old_run, {"from": "old"})
    assert ledger.complete(clean_db, new_run, {"from": "new"})
    assert ledger.get_job(clean_db, job_id).result == {"from": "new"}


def test_parking_keeps_the_retry_count_and_the_job_waits_for_its_not_before(clean_db):
    job_id = one_job(clean_db)
    run = ledger.claim(clean_db, job_id, lease_s=60, max_retries=5).job
    until = ledger.db_now(clean_db) + timedelta(seconds=120)
    assert ledger.park(clean_db, run, until, "RateLimited", "retry after 120s")
    parked = ledger.get_job(clean_db, job_id)
    assert (parked.status, parked.retry_count, parked.not_before, parked.error_class) == (
        "pending", 0, until, "RateLimited")
    assert ledger.counts(clean_db)["track_sync"]["parked"] == 1
    assert parked.enqueued_at is None  # no message out: the dispatcher sends one when it is due
    early = ledger.claim(clean_db, job_id, lease_s=60, max_retries=5)  # a duplicate message, early
    assert early.finished and ledger.take_due(clean_db, limit=10) == []
    with clean_db.begin() as conn:  # the deadline passes
        conn.execute(text('UPDATE spotify_sync_jobs SET "notBefore" = "notBefore" - interval \'1 hour\''))
    assert ledger.take_due(clean_db, limit=10) == [(job_id, "track_sync")]
    rerun = ledger.claim(clean_db, job_id, lease_s=60, max_retries=5).job
    assert (rerun.attempts, rerun.retry_count, rerun.not_before) == (2, 0, None)
    assert ledger.complete(clean_db, rerun, {})
    assert ledger.get_job(clean_db, job_id).error_class is None


def test_a_retry_counts_and_a_failure_keeps_class_and_message(clean_db):
    job_id = one_job(clean_db)
    run = ledger.claim(clean_db, job_id, lease_s=60, max_retries=5).job
    assert ledger.park(clean_db, run, ledger.db_now(clean_db), "ServerError", "HTTP 503", count_retry=True)
    run = ledger.claim(clean_db, job_id, lease_s=60, max_retries=5).job
    assert run.retry_count == 1
    assert ledger.fail(clean_db, run, "ServerError", "HTTP 503 (gave up after 1 retries)")
    failed = ledger.get_job(clean_db, job_id)
    assert (failed.status, failed.error_class, failed.error, failed.retry_count) == (
        "failed", "ServerError", "HTTP 503 (gave up after 1 retries)", 1)
    assert failed.completed_at is not None


def test_renewing_the_lease_saves_a_checkpoint_merged_into_the_result(clean_db):
    job_id = one_job(clean_db)
    run = ledger.claim(clean_db, job_id, lease_s=60, max_retries=5).job
    assert ledger.renew_lease(clean_db, run, 60, checkpoint={"offset": 50, "pages": 1})
    assert ledger.renew_lease(clean_db, run, 60, checkpoint={"offset": 100, "pages": 2})
    assert ledger.get_job(clean_db, job_id).result == {"offset": 100, "pages": 2}


def test_operators_cancel_and_retry(clean_db):
    a, b = ledger.create_jobs(clean_db, [NewJob("track_sync", {"ids": []}), NewJob("track_sync", {"ids": []})])
    assert ledger.cancel(clean_db, [a]) == [a]
    assert ledger.cancel(clean_db, [a]) == []  # already finished
    cancelled = ledger.get_job(clean_db, a)
    assert (cancelled.status, cancelled.error_class) == ("failed", "Cancelled")
    assert ledger.get_job(clean_db, a[:8]).id == a  # an id prefix is enough
    assert ledger.failed_job_ids(clean_db) == [a]
    assert ledger.reset_for_retry(clean_db, [a, b]) == [(a, "track_sync")]
    again = ledger.get_job(clean_db, a)
    assert (again.status, again.retry_count, again.error, again.completed_at) == ("pending", 0, None, None)
