"""Issue 16.5, a finite backfill finishes at the limit: the seconds a backfill takes against the
physical minimum of its requests under a known limit, worst of several runs, with spotipy scripts
as baselines.

The emulator admits LIMIT requests per rolling WINDOW_S and the fleet is told the same; the
pipeline runs 2 processes x 4 threads. A backfill of N ids needs at least N/50 /tracks and N/100
/audio-features requests (R); the first LIMIT go at once and each later LIMIT a window after, so
the physical minimum is (ceil(R / LIMIT) - 1) x WINDOW_S, plus the last request's round trip. The
pipeline's time is its ledger's: first job started to last job completed. The baselines fetch the
same ids with spotipy (which sleeps every Retry-After) and upsert with psycopg: one process, and 4
processes that split the ids without knowing of each other. Each run has a fresh database,
namespace and emulator (windows empty, no song fresh).

Full: 20,000 ids, 300 per 30 s (R = 600, minimum 30 s), 5 pipeline runs. Quick: 2,000 ids, 30 per
3 s (R = 60, minimum 3 s), 1 run. Target: the worst pipeline run <= 1.05 x (minimum + 1 s).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

from sqlalchemy import text

from bench.harness import (
    ROOT,
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
from shared.settings import Rate

PROCESSES, THREADS = 2, 4
TARGET = 1.05
ROUND_TRIP_S = 1.0  # the last request, its write and its job's completion, on a busy 2-core host


def fewest_requests(count: int) -> int:
    return math.ceil(count / 50) + math.ceil(count / 100)


def minimum_s(count: int, limit: int, window_s: int) -> float:
    return (math.ceil(fewest_requests(count) / limit) - 1) * window_s


def _config(count: int, limit: int, window_s: int) -> EmulatorConfig:
    return EmulatorConfig(rate_limit=limit, rate_window_s=float(window_s), catalog_size=max(count, 100_000))


def _requests(stats: dict) -> tuple[int, int, int]:
    """(API requests, 429s, /audio-features requests with fewer than 100 ids)."""
    api = sum(sum(s.values()) for e, s in stats["requests"].items() if e.startswith("/v1/"))
    limited = sum(s.get("429", 0) for s in stats["requests"].values())
    histogram = stats["batch_ids"].get("/v1/audio-features", {}).get("histogram", {})
    short = sum(c for n, c in histogram.items() if int(n) < 100)
    return api, limited, short


def pipeline_once(count: int, limit: int, window_s: int) -> dict:
    with world(_config(count, limit, window_s), spotify_rate_limit=Rate(limit, window_s)) as w:
        enqueue_track_sync(w, write_ids(w, count))
        engine = w.engine()
        try:
            backfill = latest_backfill_id(engine)
            with Workers(w, PROCESSES, THREADS) as workers:
                progress = wait_backfill(engine, backfill, timeout_s=30 * window_s, workers=workers)
            if progress.by_status.get("failed"):
                raise BenchError(f"{progress.by_status['failed']} job(s) failed; workers log: {workers.tail()}")
            with engine.connect() as conn:
                seconds, runs = conn.execute(text(
                    'SELECT EXTRACT(EPOCH FROM max("completedAt") - min("startedAt")), sum(attempts) '
                    'FROM spotify_sync_jobs WHERE "backfillId" = :b'), {"b": backfill}).one()
        finally:
            engine.dispose()
        api, limited, short = _requests(w.emulator.stats())
    return {"seconds": float(seconds), "runs": int(runs), "jobs": progress.total_jobs, "requests": api,
            "429s": limited, "short_features": short}


def spotipy_once(count: int, limit: int, window_s: int, processes: int) -> dict:
    with world(_config(count, limit, window_s)) as w:
        ids_file = write_ids(w, count)
        token = w.emulator.app_token(*w.settings.require_client_credentials())
        children = [subprocess.Popen([sys.executable, "-m", "bench.spotipy_script", w.settings.spotify_api_base_url,
                                      token, w.database_url, str(ids_file), str(part), str(processes)],
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    for part in range(processes)]
        seconds = []
        for child in children:
            out, err = child.communicate(timeout=60 * window_s)
            if child.returncode != 0:
                raise BenchError(f"the spotipy script exited with {child.returncode}: {err[-800:]}")
            seconds.append(json.loads(out.strip().splitlines()[-1])["seconds"])
        api, limited, _ = _requests(w.emulator.stats())
    return {"seconds": max(seconds), "requests": api, "429s": limited}


def run(quick: bool) -> list[Figure]:
    count, limit, window_s, runs = (2_000, 30, 3, 1) if quick else (20_000, 300, 30, 5)
    floor_s = minimum_s(count, limit, window_s)
    goal_s = TARGET * (floor_s + ROUND_TRIP_S)
    ours = [pipeline_once(count, limit, window_s) for _ in range(runs)]
    alone = spotipy_once(count, limit, window_s, 1)
    crowd = spotipy_once(count, limit, window_s, 4)
    worst = max(ours, key=lambda r: r["seconds"])
    shape = f"{count:,} ids, {limit} per {window_s} s told and enforced, {PROCESSES}x{THREADS}"
    each = ", ".join(f"{r['seconds']:.1f}" for r in ours)
    return [
        Figure("backfill finish, worst run", round(worst["seconds"], 1), "s",
               against=(f"physical minimum {floor_s:.0f} s for {fewest_requests(count)} requests "
                        f"({worst['seconds'] / (floor_s + ROUND_TRIP_S):.2f}x of it + {ROUND_TRIP_S:.0f} s); "
                        f"runs: {each} s; "
                        f"{shape}"),
               target=f"<= {goal_s:.1f} s ({TARGET}x)", met=worst["seconds"] <= goal_s),
        Figure("backfill worst run: requests / runs / 429s", worst["requests"], "requests",
               against=(f"fewest {fewest_requests(count)}; {worst['short_features']} short /audio-features; "
                        f"{worst['runs']} job runs for {worst['jobs']} jobs; {worst['429s']} 429s")),
        Figure("spotipy script, 1 process", round(alone["seconds"], 1), "s",
               against=f"baseline, same ids and limit; {alone['requests']} requests, {alone['429s']} 429s"),
        Figure("spotipy script, 4 uncoordinated processes", round(crowd["seconds"], 1), "s",
               against=f"baseline; {crowd['requests']} requests, {crowd['429s']} 429s"),
    ]
