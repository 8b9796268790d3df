"""A takeover that follows a database blip is not charged to the job (pipeline/store/ledger.py,
`_lost_worker_charge`): a real worker process is mid-call when its PostgreSQL (a private cluster)
restarts and stays out of the worker's reach until the lease has run out; the reconciler takes the
job back, and the job's retries are untouched. The worker itself was never lost."""

import psycopg
import pytest

from pipeline.store import ledger
from pipeline.store.ledger import NewJob
from shared import migrate
from shared.db import make_engine
from tests.chaos.services import PrivatePostgres
from tests.e2e.pipeline_harness import (
    Workers,
    cli_ok,
    emulator,  # noqa: F401 - a fixture
    run_env,
    scalar,
    wait_until,
)

WORKER_ROLE = "blip_worker"  # the worker's own role, so that the test can keep it out for a while
# The run's call outlasts the lease (10 s: shorter ones lapse on a machine this busy), the restart
# and the takeover (a `jobs reconcile`, several seconds on a busy machine), so the run is alive
# throughout and meets its lost lease afterwards.
SLOW_S = 40


@pytest.fixture
def private_postgres():
    postgres = PrivatePostgres()
    try:
        postgres.start()
        yield postgres
    finally:
        postgres.destroy()


def _job(engine):
    return scalar(engine, 'SELECT row_to_json(j)::text FROM spotify_sync_jobs j')


def test_a_takeover_after_a_postgres_restart_is_not_charged_to_the_job(settings, emulator, private_postgres,  # noqa: F811
                                                                       tmp_path):
    url = private_postgres.create_database("blip")
    migrate.upgrade(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {WORKER_ROLE} LOGIN SUPERUSER")
    env = run_env(settings, emulator, DATABASE_URL=url.replace("postgres@", f"{WORKER_ROLE}@"), JOB_LEASE="10s",
                  SPOTIFY_READ_TIMEOUT=str(SLOW_S + 10))
    operator = {**env, "DATABASE_URL": url}
    engine = make_engine(url)
    emulator.reset(faults="slow:1.0", slow_s=SLOW_S)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(emulator.ids(50)))
    try:
        cli_ok(operator, "enqueue", "track-sync", "--ids-file", str(ids_file), "--quiet")
        with Workers(env, processes=1, threads=2) as workers:
            workers.wait_ready()
            wait_until(lambda: emulator.stats()["faults"].get("slow", 0) >= 1
                       and scalar(engine, "SELECT status FROM spotify_sync_jobs") == "running",
                       30, "the run's call in flight", workers)
            emulator.configure(faults="")  # the next run's calls answer at once

            # The blip: PostgreSQL restarts (every connection cut) and the worker cannot get back
            # in until its lease has run out and the reconciler has taken the job back.
            # The private cluster commits asynchronously (synchronous_commit=off): without this an
            # immediate stop may lose the claim itself when it comes within the WAL writer's delay
            # of it, and the job is pending again with no lease to run out.
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CHECKPOINT")
            private_postgres.shut_out(WORKER_ROLE)
            private_postgres.restart("immediate")
            engine.dispose()
            wait_until(lambda: scalar(engine, 'SELECT "leaseUntil" < now() AT TIME ZONE \'UTC\' '
                                              "FROM spotify_sync_jobs"), 20, "the lease to run out", workers)
            assert "1 expired lease(s) taken back (0 failed" in cli_ok(operator, "jobs", "reconcile", "--grace", "0s")
            private_postgres.let_in()

            wait_until(lambda: scalar(engine, "SELECT status FROM spotify_sync_jobs") == "completed",
                       60, "the job to complete", workers)
            # The first run ends too: its call returns, and its writes are refused (fenced).
            wait_until(lambda: any(end in workers.output() for end in ("lost its lease", "lease was lost",
                                                                       "could not be recorded")),
                       SLOW_S + 30, "the first run to end", workers)
            output = workers.output()
        row = _job(engine)
        assert scalar(engine, 'SELECT "retryCount" FROM spotify_sync_jobs') == 0, row
        assert scalar(engine, "SELECT attempts FROM spotify_sync_jobs") == 2, row
        assert output.count("job completed") == 1, output[-3000:]
        assert scalar(engine, 'SELECT count(*) FROM songs WHERE "spotifyLastSync" IS NOT NULL') == 50
    finally:
        engine.dispose()


def test_a_worker_that_wrote_after_the_restart_and_then_died_is_charged(private_postgres):
    """The other half of the rule: a run that renewed its lease after PostgreSQL came back was
    alive then, so when its lease runs out later its worker was lost, and the takeover counts."""
    url = private_postgres.create_database("lost")
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        [job_id] = ledger.create_jobs(engine, [NewJob("track_sync", {"ids": ["4uLU6hMCjMI75M1A2tKUQC"]})])
        job = ledger.claim(engine, job_id, 1, max_retries=3).job
        assert job is not None
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")  # the private cluster commits asynchronously: keep the claim through the crash
        private_postgres.restart("immediate")
        engine.dispose()
        assert ledger.renew_leases(engine, [job], 1) == {job_id}  # alive after the restart, then gone
        wait_until(lambda: scalar(engine, 'SELECT "leaseUntil" < now() AT TIME ZONE \'UTC\' FROM spotify_sync_jobs'),
                   10, "the lease to run out")
        assert ledger.take_back_lost(engine, max_retries=3, limit=10) == [(job_id, "track_sync", "pending")]
        assert scalar(engine, 'SELECT "retryCount" FROM spotify_sync_jobs') == 1
    finally:
        engine.dispose()
