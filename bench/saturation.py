"""Benchmark 2, rate-limit saturation: how much of the allowed request rate 3 worker processes x
8 threads achieve under one shared budget, and how many 429s that costs.

The emulator admits 300 requests per rolling 30 s per client id and our fleet limiter is set to
the same (SPOTIFY_RATE_LIMIT=300/30s); the queue holds more work than the run can finish, so
the workers are never idle for want of jobs. The first window is warm-up: the budget starts
full, and a burst of 300 in the first second would flatter the average. Then the emulator's
request count is read at the start and end of a measured span of whole windows:
    saturation = requests in the span / (limit x span / window).
The 429 count is the emulator's over the whole run, warm-up included.
Full: 30 s window, 3 minutes measured. Quick: the same 10 requests/s with a 10 s window
(100 per 10 s), one window measured; our limiter's 250 ms safety margin per entry weighs 2.5 % of a
10 s window against 0.8 % of a 30 s one, so quick reads a little lower.
Target: >= 0.95 with zero 429s.
"""

from __future__ import annotations

import time

from bench.harness import Workers, enqueue_track_sync, world, write_ids
from bench.report import Figure
from emulator.config import EmulatorConfig
from shared.settings import Rate

PROCESSES, THREADS = 3, 8
REQUESTS_PER_JOB = 2  # /tracks and /audio-features for 50 ids
TARGET = 0.95


def _api_requests(stats: dict) -> int:
    return sum(sum(by_status.values()) for endpoint, by_status in stats["requests"].items()
               if endpoint.startswith("/v1/"))


def _429s(stats: dict) -> int:
    return sum(by_status.get("429", 0) for by_status in stats["requests"].values())


def run(quick: bool) -> list[Figure]:
    limit, window_s, measured_s = (100, 10, 10) if quick else (300, 30, 180)
    rate_per_s = limit / window_s
    # More jobs than the run can finish (warm-up burst + measured span, doubled).
    jobs_needed = int((limit + rate_per_s * measured_s) / REQUESTS_PER_JOB * 2)
    count = jobs_needed * 50
    config = EmulatorConfig(rate_limit=limit, rate_window_s=float(window_s), catalog_size=max(count, 100_000))
    with world(config, spotify_rate_limit=Rate(limit, window_s)) as w:
        enqueue_track_sync(w, write_ids(w, count))
        with Workers(w, PROCESSES, THREADS) as workers:
            workers.wait_ready(PROCESSES)
            time.sleep(window_s)  # warm-up: the full starting budget is spent in it
            workers.check_alive()
            first = w.emulator.stats()
            started = time.monotonic()
            time.sleep(measured_s)
            last = w.emulator.stats()
            span_s = time.monotonic() - started
            workers.check_alive()
    achieved = (_api_requests(last) - _api_requests(first)) / span_s
    saturation = achieved / rate_per_s
    too_many = _429s(last)
    busiest = last["max_requests_in_window"]["max"]
    shape = f"{PROCESSES}x{THREADS}, {limit} per {window_s} s, {measured_s} s measured after {window_s} s warm-up"
    return [
        Figure("rate-limit saturation", round(saturation, 3), "of allowed",
               against=f"{achieved:.2f} req/s of {rate_per_s:g} allowed; busiest window {busiest}/{limit}; {shape}",
               target=f">= {TARGET}", met=saturation >= TARGET),
        Figure("429 responses", too_many, "", against=f"whole run, {shape}", target="0", met=too_many == 0),
    ]
