"""The job ledger on a real PostgreSQL: every transition is a compare-and-set on the row."""

from datetime import timedelta

from sqlalchemy import text

from pipeline import jobs
from pipeline.jobs import NewJob


def one_job(engine, payload=None):
    [job_id] = jobs.create_jobs(engine, [NewJob("track_sync", payload or {"ids": ["a" * 22]})])
    return job_id


def expire_lease(engine, job_id):
    with engine.begin() as conn:
        conn.execute(text('UPDATE spotify_sync_jobs SET "leaseUntil" = "leaseUntil" - interval \'1 hour\' WHERE id = :i'),
                     {"i": job_id})


def test_a_job_runs_pending_running_completed_with_its_times_and_result(clean_db):
    engine = clean_db
    job_id = one_job(engine)
    claim = jobs.claim(engine, job_id, lease_s=60)
    job = claim.job
    assert job.status == "running" and job.attempts == 1 and job.retry_count == 0
    assert job.started_at is not None and job.lease_until - job.started_at >= timedelta(seconds=59)

    assert jobs.complete(engine, job, {"upserted": 1})
    done = jobs.get_job(engine, job_id)
    assert (done.status, done.result, done.lease_until, done.error) == ("completed", {"upserted": 1}, None, None)
    assert done.completed_at >= done.started_at
    # A second message for it (at-least-once delivery) finds it finished and changes nothing.
    assert jobs.claim(engine, job_id, lease_s=60).finished
    assert not jobs.complete(engine, job, {"upserted": 99})
    assert jobs.get_job(engine, job_id).result == {"upserted": 1}


def test_a_running_job_with_a_live_lease_cannot_be_claimed_twice(clean_db):
    job_id = one_job(clean_db)
    first = jobs.claim(clean_db, job_id, lease_s=60).job
    second = jobs.claim(clean_db, job_id, lease_s=60)
    assert second.job is None and second.wait_until == first.lease_until


def test_an_expired_lease_is_taken_over_counting_a_retry_and_fencing_off_the_old_run(clean_db):
    job_id = one_job(clean_db)
    old_run = jobs.claim(clean_db, job_id, lease_s=60).job
    expire_lease(clean_db, job_id)
    new_run = jobs.claim(clean_db, job_id, lease_s=60).job
    assert (new_run.attempts, new_run.retry_count) == (2, 1)
    # The old run wakes up: it can neither renew nor finish.
    assert not jobs.renew_lease(clean_db, old_run, 60)
    assert not jobs.complete(clean_db, old_run, {"from": "old"})
    assert jobs.complete(clean_db, new_run, {"from": "new"})
    assert jobs.get_job(clean_db, job_id).result == {"from": "new"}


def test_parking_keeps_the_retry_count_and_the_job_waits_for_its_not_before(clean_db):
    job_id = one_job(clean_db)
    run = jobs.claim(clean_db, job_id, lease_s=60).job
    until = jobs.db_now(clean_db) + timedelta(seconds=120)
    assert jobs.park(clean_db, run, until, "RateLimited", "retry after 120s")
    parked = jobs.get_job(clean_db, job_id)
    assert (parked.status, parked.retry_count, parked.not_before, parked.error_class) == (
        "pending", 0, until, "RateLimited")
    assert jobs.counts(clean_db)["track_sync"]["parked"] == 1
    early = jobs.claim(clean_db, job_id, lease_s=60)
    assert early.job is None and early.wait_until == until
    with clean_db.begin() as conn:  # the deadline passes
        conn.execute(text('UPDATE spotify_sync_jobs SET "notBefore" = "notBefore" - interval \'1 hour\''))
    rerun = jobs.claim(clean_db, job_id, lease_s=60).job
    assert (rerun.attempts, rerun.retry_count, rerun.not_before) == (2, 0, None)
    assert jobs.complete(clean_db, rerun, {})
    assert jobs.get_job(clean_db, job_id).error_class is None


def test_a_retry_counts_and_a_failure_keeps_class_and_message(clean_db):
    job_id = one_job(clean_db)
    run = jobs.claim(clean_db, job_id, lease_s=60).job
    assert jobs.park(clean_db, run, jobs.db_now(clean_db), "ServerError", "HTTP 503", count_retry=True)
    run = jobs.claim(clean_db, job_id, lease_s=60).job
    assert run.retry_count == 1
    assert jobs.fail(clean_db, run, "ServerError", "HTTP 503 (gave up after 1 retries)")
    failed = jobs.get_job(clean_db, job_id)
    assert (failed.status, failed.error_class, failed.error, failed.retry_count) == (
        "failed", "ServerError", "HTTP 503 (gave up after 1 retries)", 1)
    assert failed.completed_at is not None


def test_renewing_the_lease_saves_a_checkpoint_merged_into_the_result(clean_db):
    job_id = one_job(clean_db)
    run = jobs.claim(clean_db, job_id, lease_s=60).job
    assert jobs.renew_lease(clean_db, run, 60, checkpoint={"offset": 50, "pages": 1})
    assert jobs.renew_lease(clean_db, run, 60, checkpoint={"offset": 100, "pages": 2})
    assert jobs.get_job(clean_db, job_id).result == {"offset": 100, "pages": 2}


def test_operators_cancel_and_retry(clean_db):
    a, b = jobs.create_jobs(clean_db, [NewJob("track_sync", {"ids": []}), NewJob("track_sync", {"ids": []})])
    assert jobs.cancel(clean_db, [a]) == [a]
    assert jobs.cancel(clean_db, [a]) == []  # already finished
    cancelled = jobs.get_job(clean_db, a)
    assert (cancelled.status, cancelled.error_class) == ("failed", "Cancelled")
    assert jobs.get_job(clean_db, a[:8]).id == a  # an id prefix is enough
    assert jobs.failed_job_ids(clean_db) == [a]
    assert jobs.reset_for_retry(clean_db, [a, b]) == [(a, "track_sync")]
    again = jobs.get_job(clean_db, a)
    assert (again.status, again.retry_count, again.error, again.completed_at) == ("pending", 0, None, None)
