"""The pipeline with RabbitMQ as its broker (BROKER_URL=amqp://...), real worker processes, the
emulator as Spotify, real Postgres: a backfill lands, a 429 parks jobs on RabbitMQ's delay queues
and they complete after it, `status` shows RabbitMQ's queue depths, and `jobs reconcile`
re-sends jobs whose messages were lost (judging by age, as RabbitMQ cannot list its messages)."""

import pytest

from cli.common import job_sender
from shared.settings import Settings
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
from workers.broker import QUEUES

TRACKS = 1_000  # 10 jobs


@pytest.fixture
def amqp_settings(settings, rabbitmq_url) -> Settings:
    """The test's settings with RabbitMQ as the broker, its queues empty before and after (they
    live in the URL's vhost, not in the test's Redis namespace: give TEST_RABBITMQ_URL a vhost of
    its own to share a RabbitMQ with anything else)."""
    amqp = settings.replace(broker_url=rabbitmq_url)
    purge_queues(amqp)
    yield amqp
    purge_queues(amqp)


def purge_queues(settings: Settings) -> None:
    with job_sender(settings) as (broker, _):
        broker.flush_all()  # our queues, their delay queues and dead letters


def queue_depth_lines(status: str) -> dict[str, str]:
    """`status`'s queue lines: queue -> "ready / delayed / in flight / dead"."""
    lines = {}
    for line in status.splitlines():
        name, _, counts = line.strip().partition(" ")
        if name in QUEUES:
            lines[name] = counts.strip()
    return lines


def test_a_backfill_runs_through_rabbitmq_and_status_reads_its_queues(amqp_settings, clean_db, emulator, tmp_path):  # noqa: F811
    emulator.reset()
    env = run_env(amqp_settings, emulator)
    assert env["BROKER_URL"].startswith("amqp://")
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(emulator.ids(TRACKS)) + "\n")
    assert "10 job(s) enqueued for 1000 id(s)" in cli_ok(env, "enqueue", "track-sync", "--ids-file", str(ids_file))
    # Before any worker: the ten messages wait in RabbitMQ's tracks queue (in flight: not known).
    assert queue_depth_lines(cli_ok(env, "status"))["tracks"] == "10 / 0 / ? / 0"

    with Workers(env, processes=2, threads=4) as workers:
        wait_until(lambda: all_jobs_finished(clean_db), 60, "the backfill", workers, clean_db)
    assert job_counts(clean_db) == {"completed": 10}
    assert scalar(clean_db, "SELECT count(*) FROM songs") == TRACKS
    assert emulator.stats()["requests"]["/v1/tracks"] == {"200": 20}
    assert queue_depth_lines(cli_ok(env, "status"))["tracks"] == "0 / 0 / ? / 0"


def test_a_429_parks_jobs_on_rabbitmqs_delay_queue_and_they_complete_after_it(amqp_settings, clean_db, emulator, tmp_path):  # noqa: F811
    emulator.reset()
    emulator.force(kind="429", count=1, retry_after_s=3, endpoint="/v1/tracks")
    env = run_env(amqp_settings, emulator)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(emulator.ids(TRACKS)) + "\n")
    cli_ok(env, "enqueue", "track-sync", "--ids-file", str(ids_file), "--quiet")
    with Workers(env, processes=1, threads=4) as workers:
        wait_until(lambda: all_jobs_finished(clean_db), 60, "every job to finish", workers, clean_db)
    assert job_counts(clean_db) == {"completed": 10}
    assert scalar(clean_db, 'SELECT max("retryCount") FROM spotify_sync_jobs') == 0  # parked, not retried
    assert scalar(clean_db, "SELECT count(*) FROM songs") == TRACKS
    assert emulator.stats()["requests"]["/v1/tracks"] == {"429": 1, "200": 20}


def test_jobs_whose_messages_rabbitmq_lost_are_sent_again_by_reconcile(amqp_settings, clean_db, emulator, tmp_path):  # noqa: F811
    emulator.reset()
    env = run_env(amqp_settings, emulator)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(emulator.ids(TRACKS)) + "\n")
    cli_ok(env, "enqueue", "track-sync", "--ids-file", str(ids_file), "--quiet")
    purge_queues(amqp_settings)  # the messages are gone; the ten rows still say pending

    # Younger than --stale-after: RabbitMQ cannot say whether their messages live, so they are left alone.
    assert "0 pending job(s) re-sent" in cli_ok(env, "jobs", "reconcile", "--grace", "0s")
    assert "10 pending job(s) re-sent" in cli_ok(env, "jobs", "reconcile", "--grace", "0s", "--stale-after", "0s")
    with Workers(env, processes=1, threads=4) as workers:
        wait_until(lambda: all_jobs_finished(clean_db), 60, "the re-sent jobs", workers, clean_db)
    assert job_counts(clean_db) == {"completed": 10}
    assert scalar(clean_db, "SELECT count(*) FROM songs") == TRACKS
