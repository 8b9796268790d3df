"""4 processes x 4 threads share one budget: 50 requests per 10 s against an emulator that
allows 150 per 30 s. Zero 429s, no 30-second window above 150, at least 90% of our limit.

It runs for 60 s of load (FLEET_TEST_SECONDS to change it while working on it)."""

import multiprocessing
import os

import pytest

from shared.settings import Rate
from tests.integration.spotify.conftest import pointed_at
from tests.integration.spotify.fleet import steady_load

pytestmark = pytest.mark.integration

DURATION_S = float(os.environ.get("FLEET_TEST_SECONDS", "60"))
PROCESSES, THREADS = 4, 4


def test_the_fleet_spends_its_budget_and_never_meets_a_429(settings, start_emulator):
    emulator = start_emulator(rate_limit=150, rate_window_s=30)
    settings = pointed_at(settings, emulator, spotify_rate_limit=Rate(50, 10))
    ids = emulator.ids(50)
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    processes = [ctx.Process(target=steady_load, args=(settings, ids, THREADS, start, DURATION_S, results))
                 for _ in range(PROCESSES)]
    [p.start() for p in processes]
    import time

    began = time.time()
    start.set()
    outcomes = [results.get(timeout=DURATION_S + 60) for _ in processes]
    [p.join(30) for p in processes]

    assert [o["errors"] for o in outcomes] == [[]] * PROCESSES
    assert sum(o["rate_limited"] for o in outcomes) == 0
    stats = emulator.stats()
    assert stats["requests"]["/v1/tracks"].get("429", 0) == 0 and stats["rate_limited"] == {}
    busiest = stats["max_requests_in_window"]["by_client"][settings.spotify_client_id]
    assert busiest <= 150
    # Processes start a little apart: count what completed within the load period.
    completed = sorted(t for o in outcomes for t in o["completed"])
    in_period = [t for t in completed if began <= t <= began + DURATION_S]
    achieved_per_s = len(in_period) / DURATION_S
    print(f"\nfleet: {len(completed)} requests, {len(in_period)} in {DURATION_S:.0f}s = {achieved_per_s:.2f}/s "
          f"({achieved_per_s / 5 * 100:.1f}% of 5/s), busiest 30 s window at the emulator: {busiest}, "
          f"local-budget parks: {sum(o['local_budget'] for o in outcomes)}")
    assert achieved_per_s >= 0.9 * 50 / 10
