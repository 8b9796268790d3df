"""Benchmark 3, unthrottled throughput: tracks per second end to end (emulator -> workers ->
Postgres) against the script a user would write (bench/naive_script.py), on the same ids.

No limit anywhere: the emulator admits everything and our fleet limiter is set far above what
the machine can send. Each side gets a fresh database (and the pipeline its own namespace).
- The pipeline: the backfill is enqueued first, then the workers start; its time is the
  ledger's, from the first job's start to the last job's completion (PostgreSQL's clock), so
  neither the interpreter start-up nor the enqueue counts for or against it.
- The baseline: naive_script.run, timed from its first request to its last commit.
Both must leave exactly one song row per id, or the figure is not reported.
Also measured here: the peak resident memory of any one worker process over the run.
Target: >= 3x the baseline.
"""

from __future__ import annotations

from sqlalchemy import text

from bench import naive_script
from bench.harness import (
    UNLIMITED,
    BenchError,
    Workers,
    enqueue_track_sync,
    latest_backfill_id,
    wait_backfill,
    world,
    write_ids,
)
from bench.report import Figure
from emulator.config import EmulatorConfig

TARGET_RATIO = 3.0
PROCESSES, THREADS = 2, 8  # the machine has 2 cores; the emulator and Postgres share them
MB = 1_000_000


def _config() -> EmulatorConfig:
    return EmulatorConfig(rate_limit=None, catalog_size=100_000)


def _song_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text('SELECT count(DISTINCT "spotifyId") FROM songs')).scalar_one()


def pipeline_rate(count: int) -> tuple[float, int]:
    """(tracks/s, peak RSS of a worker process in bytes)."""
    with world(_config(), spotify_rate_limit=UNLIMITED) as w:
        ids_file = write_ids(w, count)
        enqueue_track_sync(w, ids_file)
        engine = w.engine()
        try:
            backfill = latest_backfill_id(engine)
            with Workers(w, PROCESSES, THREADS) as workers:
                progress = wait_backfill(engine, backfill, timeout_s=600, workers=workers)
                peak_rss = workers.stop()
            if progress.by_status.get("failed"):
                raise BenchError(f"{progress.by_status['failed']} job(s) failed; workers log: {workers.tail()}")
            with engine.connect() as conn:
                seconds = conn.execute(text(
                    'SELECT EXTRACT(EPOCH FROM max("completedAt") - min("startedAt")) '
                    'FROM spotify_sync_jobs WHERE "backfillId" = :b'), {"b": backfill}).scalar_one()
            landed = _song_count(engine)
        finally:
            engine.dispose()
    if landed != count:
        raise BenchError(f"the pipeline left {landed} songs for {count} ids")
    return count / float(seconds), peak_rss


def baseline_rate(count: int) -> float:
    with world(_config()) as w:
        ids = write_ids(w, count).read_text().split()
        token = w.emulator.app_token(w.settings.spotify_client_id, w.settings.spotify_client_secret)
        written, seconds = naive_script.run(ids, w.settings.spotify_api_base_url, token, w.database_url)
        engine = w.engine()
        try:
            landed = _song_count(engine)
        finally:
            engine.dispose()
    if written != count or landed != count:
        raise BenchError(f"the baseline script wrote {written} rows and left {landed} songs for {count} ids")
    return count / seconds


def run(quick: bool) -> list[Figure]:
    count = 2_000 if quick else 20_000
    baseline = baseline_rate(count)
    ours, worker_rss = pipeline_rate(count)
    ratio = ours / baseline
    return [
        Figure("end-to-end tracks/s (no limit)", round(ours, 1), "tracks/s",
               against=f"baseline script {baseline:,.1f} tracks/s ({ratio:.2f}x); {count:,} ids, "
                       f"{PROCESSES} processes x {THREADS} threads",
               target=f">= {TARGET_RATIO:g}x baseline", met=ratio >= TARGET_RATIO),
        Figure("worker process peak RSS", round(worker_rss / MB, 1), "MB",
               against=f"largest of {PROCESSES} worker processes over the run above"),
    ]
