"""A 429 with Retry-After parks the jobs (not-before set, retries untouched): the whole fleet stops
calling, and the jobs complete once the deadline has passed."""

from datetime import timedelta

from sqlalchemy import text

from pipeline.store import ledger
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

TRACKS = 2_000  # 20 jobs


def pending_rows(engine):
    with engine.connect() as conn:
        return conn.execute(text(
            'SELECT "retryCount", "notBefore", "errorClass", (statement_timestamp() AT TIME ZONE \'UTC\') '
            "FROM spotify_sync_jobs WHERE status = 'pending'")).all()


def start(settings, clean_db, emulator, tmp_path, retry_after_s):  # noqa: F811
    emulator.reset()
    emulator.force(kind="429", count=1, retry_after_s=retry_after_s, endpoint="/v1/tracks")
    env = run_env(settings, emulator, SPOTIFY_RATE_LIMIT="50/1s")
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(emulator.ids(TRACKS)))
    cli_ok(env, "enqueue", "track-sync", "--ids-file", str(ids_file), "--quiet")
    return env


def test_a_429_with_retry_after_120_parks_every_job_without_using_its_retries(settings, clean_db, emulator, tmp_path):  # noqa: F811
    env = start(settings, clean_db, emulator, tmp_path, retry_after_s=120)
    with Workers(env, processes=2, threads=4) as workers:
        workers.wait_ready()
        # Every job was claimed once and parked: the first by the 429, the rest by the penalty box;
        # but a job whose three requests were all on the wire with the 429 (at most one a thread)
        # got its answers, and completed.
        wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM spotify_sync_jobs WHERE status = 'completed' "
                                            "OR (status = 'pending' AND \"notBefore\" IS NOT NULL)") == 20, 60,
                   "every job parked or completed", workers, clean_db)
        rows = pending_rows(clean_db)
        parked = len(rows)
        assert parked >= 20 - 2 * 4
        assert {r.retryCount for r in rows} == {0}
        assert {r.errorClass for r in rows} == {"RateLimited"}
        for row in rows:
            assert timedelta(seconds=100) < row.notBefore - row[3] <= timedelta(seconds=126)
        status = cli_ok(env, "status")
        assert "penalty box: blocked for" in status and f"{parked} [{parked}]" in status
    requests = emulator.stats()["requests"]
    # One request met the 429. The others already on the wire with it (a job has its three in
    # flight together: at most two /tracks and one /audio-features for each of 2 processes x 4
    # threads) got their answers, which were written; after it, nobody called again while the
    # box was shut.
    assert requests["/v1/tracks"]["429"] == 1 and requests["/v1/tracks"].get("200", 0) <= 2 * 8 - 1
    assert sum(requests.get("/v1/audio-features", {}).values()) <= 8
    assert ledger.counts(clean_db)["track_sync"]["parked"] == parked


def test_parked_jobs_complete_once_the_deadline_has_passed(settings, clean_db, emulator, tmp_path):  # noqa: F811
    # The same story with a Retry-After of 3 s, so that the suite need not wait two minutes.
    env = start(settings, clean_db, emulator, tmp_path, retry_after_s=3)
    with Workers(env, processes=2, threads=4) as workers:
        wait_until(lambda: all_jobs_finished(clean_db), 60, "every job to finish", workers, clean_db)
    assert job_counts(clean_db) == {"completed": 20}
    assert scalar(clean_db, 'SELECT max("retryCount") FROM spotify_sync_jobs') == 0
    assert scalar(clean_db, "SELECT count(*) FROM songs") == TRACKS
    requests = emulator.stats()["requests"]["/v1/tracks"]
    assert requests == {"429": 1, "200": 40}  # a batch's tracks are written as they come: none fetched twice
