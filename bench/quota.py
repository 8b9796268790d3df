"""Benchmark 1, quota efficiency: how much of each request's capacity the pipeline uses, and how
many requests it wastes.

One world (fresh database, namespace, emulator), one set of workers, three phases:
1. backfill: 100,000 ids of the catalog (quick: 5,000). The emulator's stats give ids per batch
   request for /v1/tracks (limit 50) and /v1/audio-features (limit 100).
2. fresh re-enqueue: a tenth of the same ids enqueued again within TRACK_TTL. Every request it
   causes is wasted (the ids are fresh in the cache): the count of /v1 requests it added.
3. dev-2026: the emulator's tier is switched (batch /tracks and /audio-features answer 403
   "Forbidden") and new ids are enqueued in two waves. The first wave meets the 403s and the
   client learns (its concurrent first calls may each meet one: shown, not counted); every 403
   during the second wave is a request to an endpoint known forbidden: the count.
No rate limit: this measures how requests are filled, not how fast they go.
Targets: >= 49.5 ids per /tracks request, >= 99 per /audio-features request, no wasted requests.
"""

from __future__ import annotations

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

PROCESSES, THREADS = 2, 8
FORBIDDEN_IN_DEV_2026 = ("/v1/tracks", "/v1/audio-features")


def _api_requests(stats: dict) -> int:
    """Requests to the API host (tokens and the control API left out)."""
    return sum(sum(by_status.values()) for endpoint, by_status in stats["requests"].items()
               if endpoint.startswith("/v1/"))


def _status_count(stats: dict, endpoint: str, status: str) -> int:
    return stats["requests"].get(endpoint, {}).get(status, 0)


def _backfill(w, engine, workers, count: int, offset: int, timeout_s: float):
    enqueue_track_sync(w, write_ids(w, count, offset=offset))
    progress = wait_backfill(engine, latest_backfill_id(engine), timeout_s, workers=workers)
    if progress.by_status.get("failed"):
        raise BenchError(f"{progress.by_status['failed']} job(s) failed; workers log: {workers.tail()}")
    return progress


def run(quick: bool) -> list[Figure]:
    count = 5_000 if quick else 100_000
    again = count // 10
    dev_ids = 200 if quick else 1_000
    catalog_size = count + dev_ids
    with world(EmulatorConfig(rate_limit=None, catalog_size=catalog_size), spotify_rate_limit=UNLIMITED) as w:
        engine = w.engine()
        try:
            with Workers(w, PROCESSES, THREADS) as workers:
                _backfill(w, engine, workers, count, 0, timeout_s=900)
                after_backfill = w.emulator.stats()

                progress = _backfill(w, engine, workers, again, 0, timeout_s=120)
                wasted_fresh = _api_requests(w.emulator.stats()) - _api_requests(after_backfill)
                fresh_jobs = progress.total_jobs

                w.emulator.configure(tier="dev-2026")
                before_dev = w.emulator.stats()
                # The first wave meets the 403s and learns (its concurrent first calls all
                # meet one); the second comes after that, when every 403 is a waste.
                _backfill(w, engine, workers, dev_ids // 2, count, timeout_s=600)
                learned = w.emulator.stats()
                _backfill(w, engine, workers, dev_ids - dev_ids // 2, count + dev_ids // 2, timeout_s=600)
                after_dev = w.emulator.stats()
        finally:
            engine.dispose()

    batches = after_backfill["batch_ids"]
    tracks_ipr = batches["/v1/tracks"]["ids_per_request"] or 0.0
    features_ipr = batches["/v1/audio-features"]["ids_per_request"] or 0.0
    learning = {e: _status_count(learned, e, "403") - _status_count(before_dev, e, "403")
                for e in FORBIDDEN_IN_DEV_2026}
    forbidden = {e: _status_count(after_dev, e, "403") - _status_count(learned, e, "403")
                 for e in FORBIDDEN_IN_DEV_2026}
    wasted_forbidden = sum(forbidden.values())
    dev_requests = _api_requests(after_dev) - _api_requests(learned)
    return [
        Figure("ids per /tracks request", tracks_ipr, "ids",
               against=f"limit 50; {batches['/v1/tracks']['requests']:,} requests for {count:,} ids",
               target=">= 49.5", met=tracks_ipr >= 49.5),
        Figure("ids per /audio-features request", features_ipr, "ids",
               against=f"limit 100; {batches['/v1/audio-features']['requests']:,} requests for {count:,} ids",
               target=">= 99", met=features_ipr >= 99),
        Figure("wasted requests: ids fresh in cache", wasted_fresh, "requests",
               against=f"{again:,} fresh ids enqueued again within TRACK_TTL ({fresh_jobs} jobs made)",
               target="0", met=wasted_fresh == 0),
        Figure("wasted requests: known-forbidden endpoints", wasted_forbidden, "requests",
               against=(f"dev-2026 tier, after learning: {dev_ids - dev_ids // 2:,} new ids, {dev_requests:,} "
                        f"requests; while learning ({PROCESSES}x{THREADS} threads racing), 403s: "
                        + ", ".join(f"{e} {n}" for e, n in learning.items())),
               target="0", met=wasted_forbidden == 0),
    ]
