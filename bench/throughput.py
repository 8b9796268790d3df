"""Benchmark 3, unthrottled throughput: tracks per second end to end (emulator -> workers ->
Postgres) against the scripts a user would write, on the same ids, in the same run:
- bench/spotipy_script.py, one process: spotipy fetching 100 ids at a time (two /tracks of 50,
  one /audio-features of 100, the same requests as the pipeline) and psycopg upserting them, one
  transaction per 100. The figure the target applies to (issue 16): >= 2x its tracks/s.
- bench/naive_script.py: httpx and an ORM merge per row, one transaction per 50; context.

No limit anywhere: the emulator admits everything and our fleet limiter is set far above what
the machine can send. Each side gets a fresh database and emulator (the pipeline its own
namespace). Start-up is left out of the figure on every side alike, and measured beside it:
- the pipeline: the backfill is enqueued first, then the workers start; its time is the
  ledger's, from the first job's start to the last job's completion (PostgreSQL's clock). Workers
  are a service that starts once and then serves every backfill, so their start-up (interpreter,
  imports, forking, connecting) is not a cost of this backfill; it is reported on its own (launch
  to the first job started), as is the enqueue;
- the spotipy script: its own clock, from its first request to its last commit; its process
  start-up (interpreter, imports) is reported beside it;
- the naive script: naive_script.run, from its first request to its last commit.
Each must leave exactly one song row per id, or the figure is not reported. The spotipy script
and the pipeline run ROUNDS times in turns (a shared host's load moves) and their medians are
compared; the naive script, slower and only context, runs once.
Also measured here: the peak resident memory of any one worker process over the run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import text

from bench import naive_script
from bench.harness import (
    ROOT,
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

TARGET_RATIO = 2.0  # of the spotipy script's tracks/s
ROUNDS = 3
PROCESSES, THREADS = 2, 8  # the machine has 2 cores; the emulator and Postgres share them
MB = 1_000_000


def _config() -> EmulatorConfig:
    return EmulatorConfig(rate_limit=None, catalog_size=100_000)


def _song_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text('SELECT count(DISTINCT "spotifyId") FROM songs')).scalar_one()


@dataclass(frozen=True)
class PipelineRun:
    seconds: float  # first job started to last job completed (the ledger's clock)
    startup_s: float  # the workers' launch to the first job started
    enqueue_s: float  # `spotify-sync enqueue track-sync`, its process start-up included
    peak_rss: int  # bytes, the largest of any one worker process


def pipeline_run(count: int) -> PipelineRun:
    with world(_config(), spotify_rate_limit=UNLIMITED) as w:
        ids_file = write_ids(w, count)
        enqueue_s = enqueue_track_sync(w, ids_file).seconds
        engine = w.engine()
        try:
            backfill = latest_backfill_id(engine)
            launched = datetime.now(UTC).replace(tzinfo=None)  # the same host's clock as PostgreSQL's
            with Workers(w, PROCESSES, THREADS) as workers:
                progress = wait_backfill(engine, backfill, timeout_s=600, workers=workers)
                peak_rss = workers.stop()
            if progress.by_status.get("failed"):
                raise BenchError(f"{progress.by_status['failed']} job(s) failed; workers log: {workers.tail()}")
            with engine.connect() as conn:
                seconds, startup_s = conn.execute(text(
                    'SELECT EXTRACT(EPOCH FROM max("completedAt") - min("startedAt")), '
                    'EXTRACT(EPOCH FROM min("startedAt") - :launched) '
                    'FROM spotify_sync_jobs WHERE "backfillId" = :b'), {"b": backfill, "launched": launched}).one()
            landed = _song_count(engine)
        finally:
            engine.dispose()
    if landed != count:
        raise BenchError(f"the pipeline left {landed} songs for {count} ids")
    return PipelineRun(float(seconds), float(startup_s), enqueue_s, peak_rss)


def spotipy_run(count: int) -> tuple[float, float]:
    """The spotipy script in one process: (seconds on its own clock, its process start-up in s)."""
    with world(_config()) as w:
        ids_file = write_ids(w, count)
        token = w.emulator.app_token(*w.settings.require_client_credentials())
        started = time.perf_counter()
        child = subprocess.run([sys.executable, "-m", "bench.spotipy_script", w.settings.spotify_api_base_url, token,
                                w.database_url, str(ids_file)], cwd=ROOT, capture_output=True, text=True, timeout=600)
        wall_s = time.perf_counter() - started
        if child.returncode != 0:
            raise BenchError(f"the spotipy script exited with {child.returncode}: {child.stderr[-800:]}")
        seconds = float(json.loads(child.stdout.strip().splitlines()[-1])["seconds"])
        engine = w.engine()
        try:
            landed = _song_count(engine)
        finally:
            engine.dispose()
    if landed != count:
        raise BenchError(f"the spotipy script left {landed} songs for {count} ids")
    return seconds, wall_s - seconds


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
    count, rounds = (2_000, 1) if quick else (20_000, ROUNDS)
    naive = baseline_rate(count)
    spotipy_runs: list[tuple[float, float]] = []
    ours_runs: list[PipelineRun] = []
    for _ in range(rounds):
        spotipy_runs.append(spotipy_run(count))
        ours_runs.append(pipeline_run(count))
    spotipy_s, spotipy_startup_s = median(spotipy_runs, key=lambda r: r[0])
    ours = median(ours_runs, key=lambda r: r.seconds)
    spotipy, rate = count / spotipy_s, count / ours.seconds
    ratio = rate / spotipy
    with_startup = count / (ours.seconds + ours.startup_s)
    spotipy_with_startup = count / (spotipy_s + spotipy_startup_s)
    each = "; ".join(f"{count / r.seconds:,.0f} vs {count / s:,.0f}" for r, (s, _) in zip(ours_runs, spotipy_runs, strict=True))
    return [
        Figure("end-to-end tracks/s (no limit)", round(rate, 1), "tracks/s",
               against=f"spotipy script {spotipy:,.1f} tracks/s ({ratio:.2f}x; median of {rounds}, in turns: {each}); "
                       f"naive script {naive:,.1f} tracks/s ({rate / naive:.2f}x); {count:,} ids, "
                       f"{PROCESSES} processes x {THREADS} threads",
               target=f">= {TARGET_RATIO:g}x spotipy", met=ratio >= TARGET_RATIO),
        Figure("end-to-end start-up (left out above)", round(ours.startup_s, 2), "s",
               against=f"workers' launch to their first job; counted in, {with_startup:,.1f} tracks/s "
                       f"({with_startup / spotipy_with_startup:.2f}x spotipy counted with its {spotipy_startup_s:.2f} s "
                       f"process start-up); the enqueue before it, {ours.enqueue_s:.2f} s, in neither"),
        Figure("worker process peak RSS", round(ours.peak_rss / MB, 1), "MB",
               against=f"largest of {PROCESSES} worker processes over the run above"),
    ]


T = TypeVar("T")


def median(runs: list[T], key: Callable[[T], float]) -> T:
    """The run with the median `key` (the upper one of an even count)."""
    return sorted(runs, key=key)[len(runs) // 2]
