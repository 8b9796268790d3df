"""Benchmark 4, scale: enqueueing a 1,000,000-id backfill.

The producer runs as the operator runs it, a child process (`spotify-sync enqueue track-sync
--ids-file FILE`), on a file of valid catalog ids, into a fresh database and namespace with no
worker running. Measured: its wall time (start of the process to its exit: interpreter start,
COPY of the ids, cutting them into jobs, one Dramatiq message per job) and its own peak resident
memory (the kernel's ru_maxrss for that one child). Afterwards the ledger and the queue are
checked to hold every job, so a fast figure cannot come from work left undone.
Targets: <= 60 s and <= 200 MB.
"""

from __future__ import annotations

import redis

from bench.harness import BenchError, enqueue_track_sync, latest_backfill_id, world, write_ids
from bench.report import Figure
from emulator.config import EmulatorConfig
from pipeline.producers import TRACKS_PER_JOB
from pipeline.store import ledger
from shared.keys import RedisKeys

TARGET_S = 60
TARGET_MB = 200
MB = 1_000_000


def run(quick: bool) -> list[Figure]:
    count = 100_000 if quick else 1_000_000
    with world(EmulatorConfig(catalog_size=count, rate_limit=None)) as w:
        ids_file = write_ids(w, count, catalog_size=count)
        child = enqueue_track_sync(w, ids_file)
        engine = w.engine()
        try:
            progress = ledger.backfill_progress(engine, latest_backfill_id(engine))
        finally:
            engine.dispose()
        expected_jobs = -(-count // TRACKS_PER_JOB)
        queued = _queued_messages(w.settings.redis_url, w.settings.redis_namespace)
        if progress.total_jobs != expected_jobs or queued != expected_jobs:
            raise BenchError(f"enqueue left {progress.total_jobs} job rows and {queued} messages "
                             f"for {count} ids (expected {expected_jobs} of each)")
    against = f"{count:,} ids -> {expected_jobs:,} jobs and messages"
    return [
        Figure("enqueue backfill: seconds", round(child.seconds, 2), "s", against=against,
               target=f"<= {TARGET_S} s" + (" (at 1,000,000)" if quick else ""),
               met=child.seconds <= TARGET_S),
        Figure("enqueue backfill: producer peak RSS", round(child.peak_rss_bytes / MB, 1), "MB", against=against,
               target=f"<= {TARGET_MB} MB", met=child.peak_rss_bytes <= TARGET_MB * MB),
    ]


def _queued_messages(url: str, namespace: str) -> int:
    """Messages waiting in the Dramatiq queues of this namespace (Redis broker: one hash per queue)."""
    client = redis.Redis.from_url(url)
    try:
        prefix = RedisKeys(namespace).dramatiq_namespace()
        return sum(client.hlen(key) for key in client.scan_iter(match=prefix + ":*.msgs")
                   if b".DQ." not in key and b".XQ." not in key)
    finally:
        client.close()
