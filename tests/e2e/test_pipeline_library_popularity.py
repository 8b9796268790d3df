"""A user's library of 2,000 saved tracks (resumed after a kill without reading a page twice,
then incremental: one page), and popularity under the dev-2026 tier (unavailable, not failed)."""

import os
import signal
import socket

from sqlalchemy import text

from pipeline.store import ledger
from tests.e2e.pipeline_harness import (
    Workers,
    all_jobs_finished,
    cli,
    cli_ok,
    emulator,  # noqa: F401 - a fixture
    job_counts,
    run_env,
    scalar,
    wait_until,
)

LIBRARY = 2_000  # the emulator's user "demo"
PAGES = LIBRARY // 50


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def library_job(engine):
    [job] = ledger.list_jobs(engine, job_type="user_library", status=None, limit=1)
    return job


def test_a_library_of_2000_syncs_resumes_after_a_kill_and_then_reads_one_page(settings, clean_db, emulator):  # noqa: F811
    emulator.reset()
    # Slow: 40 pages take about 8 s, time enough to kill the worker half-way.
    env = run_env(settings, emulator, SPOTIFY_RATE_LIMIT="5/1s",
                  SPOTIFY_REDIRECT_URI=f"http://127.0.0.1:{free_port()}/callback")
    cli_ok(env, "connect", "--user", "u1", "--open-with-http", "--emulated-user", "demo")
    assert "1 library job(s) enqueued" in cli_ok(env, "enqueue", "user-library", "--user", "u1")

    with Workers(env, processes=1, threads=2) as first:
        first.wait_ready()
        wait_until(lambda: (library_job(clean_db).result or {}).get("pages", 0) >= 10, 60, "ten pages", first, clean_db)
        os.killpg(first.process.pid, signal.SIGKILL)  # the whole worker, at once
        first.process.wait(10)
    at_kill = library_job(clean_db)
    assert at_kill.status == "running" and 10 <= at_kill.result["pages"] < PAGES
    with Workers(env, processes=1, threads=2) as second:
        # On its own: the message comes back (broker maintenance), the lease has run out.
        wait_until(lambda: all_jobs_finished(clean_db), 120, "the library job", second, clean_db)
    done = library_job(clean_db)
    assert done.status == "completed", done
    assert (done.result["pages"], done.result["tracks"], done.result["new_links"]) == (PAGES, LIBRARY, LIBRARY)
    assert scalar(clean_db, "SELECT count(*) FROM spotify_saved_tracks WHERE \"userId\" = 'u1'") == LIBRARY
    assert scalar(clean_db, 'SELECT count(DISTINCT "addedAt") FROM spotify_saved_tracks') > 1
    # Each page's songs got their audio features after the page committed (all but, at most, the
    # page the kill cut short; a track-sync of those fills them in).
    missing = scalar(clean_db, 'SELECT count(*) FROM songs WHERE NOT "audioFeaturesSynced"')
    assert missing <= 50, missing
    assert scalar(clean_db, "SELECT count(*) FROM songs WHERE danceability IS NOT NULL") > LIBRARY * 0.8
    # Pages whose rows were committed were not read again: only the page in flight at the kill
    # (fetched, not yet written) may have been.
    page_requests = emulator.requests_to("/v1/me/tracks")
    assert PAGES <= page_requests["200"] <= PAGES + 1, page_requests

    # Again, nothing new saved: the first page holds known tracks, and that is the only request.
    emulator.reset()
    cli_ok(env, "enqueue", "user-library", "--user", "u1")
    with Workers(env, processes=1, threads=2) as third:
        wait_until(lambda: all_jobs_finished(clean_db), 60, "the second library job", third, clean_db)
    assert job_counts(clean_db) == {"completed": 2}
    assert emulator.requests_to("/v1/me/tracks") == {"200": 1}
    assert library_job(clean_db).result["pages"] == 1


def test_under_dev_2026_popularity_update_records_unavailable_and_does_not_fail(settings, clean_db, emulator):  # noqa: F811
    emulator.reset(tier="dev-2026")
    env = run_env(settings, emulator)
    ids = emulator.ids(100)
    with clean_db.begin() as conn:
        conn.execute(text('INSERT INTO songs ("spotifyId", title, artist) '
                          "SELECT i, 't', 'a' FROM unnest(CAST(:ids AS text[])) i"),
                     {"ids": ids})
    out = cli_ok(env, "enqueue", "popularity-update", "--older-than", "1h", "--limit", "100")
    assert "2 popularity job(s) enqueued for 100 song(s)" in out
    with Workers(env, processes=1, threads=1) as workers:
        wait_until(lambda: all_jobs_finished(clean_db), 60, "the popularity jobs", workers, clean_db)
    assert job_counts(clean_db) == {"completed": 2}
    for job in ledger.list_jobs(clean_db):
        assert job.result["popularity"] == "unavailable" and job.result["updated"] == 0, job.result
    assert scalar(clean_db, 'SELECT count(*) FROM songs WHERE "spotifyPopularity" IS NOT NULL') == 0
    assert scalar(clean_db, 'SELECT count(*) FROM songs WHERE "lastPopularityUpdate" IS NOT NULL') == 100
    assert scalar(clean_db, "SELECT count(*) FROM song_popularity_history") == 0
    status = cli_ok(env, "status")
    assert "capability popularity: forbidden" in status
    # One track was enough to learn it: the second job made no request at all.
    assert sum(emulator.requests_to("/v1/tracks/{id}").values()) + sum(emulator.requests_to("/v1/tracks").values()) <= 2
    # The next hourly run finds nothing stale.
    assert "0 popularity job(s)" in cli_ok(env, "enqueue", "popularity-update", "--older-than", "1h")
    assert cli(env, "enqueue", "popularity-update", "--older-than", "soon").returncode == 2
