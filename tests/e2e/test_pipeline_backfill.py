"""A 20,000-track backfill through real worker processes, the emulator as Spotify, real
Postgres and Redis: every track lands once, every request is full, nothing is fetched twice."""

import time

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

TRACKS = 20_000


def test_a_20000_track_backfill_lands_every_track_once_in_full_batches_and_again_costs_nothing(
        settings, clean_db, emulator, tmp_path):  # noqa: F811
    emulator.reset()
    env = run_env(settings, emulator, SPOTIFY_RATE_LIMIT="200/1s")
    ids = emulator.ids(TRACKS)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")

    started = time.monotonic()
    out = cli_ok(env, "enqueue", "track-sync", "--ids-file", str(ids_file), "--quiet")
    assert "200 job(s) enqueued for 20000 id(s)" in out
    with Workers(env, processes=2, threads=4) as workers:
        wait_until(lambda: all_jobs_finished(clean_db), 240, "the backfill", workers, clean_db, interval_s=0.5)
    took_s = time.monotonic() - started

    assert job_counts(clean_db) == {"completed": 200}
    assert scalar(clean_db, 'SELECT count(*) FROM songs') == TRACKS
    assert scalar(clean_db, 'SELECT count(*) FROM songs WHERE "spotifyId" = ANY(:ids) AND "spotifyLastSync" IS NOT NULL',
                  ids=ids) == TRACKS
    stats = emulator.stats()
    assert stats["batch_ids"]["/v1/tracks"]["histogram"] == {"50": 400}
    assert stats["rate_limited"] == {} and "429" not in stats["requests"].get("/v1/tracks", {})
    assert stats["requests"]["/v1/tracks"] == {"200": 400}
    features = stats["batch_ids"]["/v1/audio-features"]
    # A job of 100 fills its own request (pipeline/producers.py): none is short, in any process.
    assert features["histogram"] == {"100": 200}, features
    print(f"\n20,000-track backfill with 2 worker processes: {took_s:.1f}s; audio features "
          f"{features['ids_per_request']} ids per request")

    # The same backfill again, within the TTL: no job is made, no request is sent.
    emulator.reset()
    out = cli_ok(env, "enqueue", "track-sync", "--ids-file", str(ids_file), "--quiet")
    assert "0 job(s) enqueued for 0 id(s) (20000 skipped" in out
    assert emulator.stats()["requests_total"] == 0


def test_ids_spotify_does_not_know_are_remembered_and_not_asked_for_again(settings, clean_db, emulator, tmp_path):  # noqa: F811
    emulator.reset()
    env = run_env(settings, emulator)
    known = emulator.ids(90, offset=50_000)
    unknown = ["0" * 21 + str(i) for i in range(10)]  # well-formed, in no catalog: Spotify answers null
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(known + unknown) + "\n")
    assert "1 job(s) enqueued for 100 id(s)" in cli_ok(env, "enqueue", "track-sync", "--ids-file", str(ids_file))
    with Workers(env, processes=1, threads=2) as workers:
        wait_until(lambda: all_jobs_finished(clean_db), 60, "the backfill", workers, clean_db)
    assert job_counts(clean_db) == {"completed": 1}
    assert scalar(clean_db, "SELECT count(*) FROM songs") == 90
    assert scalar(clean_db, 'SELECT array_agg("spotifyId" ORDER BY "spotifyId") FROM spotify_unknown_tracks') == unknown
    assert sorted(scalar(clean_db, "SELECT jsonb_agg(x) FROM spotify_sync_jobs, "
                                   "jsonb_array_elements_text(result->'not_found') x")) == unknown

    emulator.reset()
    out = cli_ok(env, "enqueue", "track-sync", "--ids-file", str(ids_file), "--quiet")
    assert "0 job(s) enqueued for 0 id(s) (100 skipped" in out
    assert emulator.stats()["requests_total"] == 0
