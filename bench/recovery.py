"""Benchmark 5, recovery: seconds from a worker's SIGKILL until its unfinished messages run again.

Worker A (1 process x 4 threads) takes messages of slow jobs (the emulator holds every /tracks
answer a few seconds, less than our read timeout, so jobs are slow but succeed). Once A has jobs
running, the job ids of every message A holds unacknowledged (Dramatiq's per-worker "acks" sets
in Redis: the jobs it runs and the ones it prefetched) are read, A's whole process group is
SIGKILLed (a lost host: no shutdown hook runs), and worker B starts at once. Recovery is the
time from the kill until the last of those jobs has been claimed again on the ledger (its
`attempts` went up) or finished, polled every 0.2 s.
What it is made of: Dramatiq's Redis broker returns a dead worker's messages after its
heartbeat timeout (workers/broker.py), and a returned message whose job still holds its lease
waits for the lease to run out (JOB_LEASE). Full: the settings' defaults. Quick: JOB_LEASE=10s,
so the run stays short; the broker's timeout is the same.
Target: <= 30 s.
"""

from __future__ import annotations

import json
import os
import signal
import time

import redis
from sqlalchemy import text

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
from shared.keys import RedisKeys

TARGET_S = 30
SLOW_S = 3.0  # each /tracks answer; below SPOTIFY_READ_TIMEOUT (10 s), so no retries muddle it
JOBS = 40


def _held_job_ids(url: str, namespace: str) -> set[str]:
    """Job ids of every message a worker holds unacknowledged (Dramatiq's Redis layout:
    <ns>:__acks__.<worker>.<queue> sets of message ids, <ns>:<queue>.msgs hashes of messages)."""
    prefix = RedisKeys(namespace).dramatiq_namespace()
    client = redis.Redis.from_url(url)
    try:
        held = set()
        for key in client.scan_iter(match=prefix + ":__acks__.*", count=1000):
            queue = key.decode().rsplit(".", 1)[1]
            for message_id in client.smembers(key):
                data = client.hget(f"{prefix}:{queue}.msgs", message_id)
                if data:
                    held.add(str(json.loads(data)["args"][0]))
        return held
    finally:
        client.close()


def _attempts(engine, job_ids: set[str]) -> dict[str, tuple[int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(text('SELECT id, attempts, status FROM spotify_sync_jobs WHERE id = ANY(:ids)'),
                            {"ids": list(job_ids)})
        return {r.id: (r.attempts, r.status) for r in rows}


def _wait_running(engine, at_least: int, timeout_s: float, workers: Workers) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        workers.check_alive()
        with engine.connect() as conn:
            running = conn.execute(text("SELECT count(*) FROM spotify_sync_jobs WHERE status = 'running'")).scalar_one()
        if running >= at_least:
            return
        time.sleep(0.1)
    raise BenchError(f"worker A never had {at_least} jobs running; log: {workers.tail()}")


def run(quick: bool) -> list[Figure]:
    changes = {"spotify_rate_limit": UNLIMITED}
    if quick:
        changes["job_lease_s"] = 10
    config = EmulatorConfig(rate_limit=None, faults=(), slow_s=SLOW_S).with_changes({"faults": "slow:1.0@/v1/tracks"})
    with world(config, **changes) as w:
        lease_s = w.settings.job_lease_s
        enqueue_track_sync(w, write_ids(w, JOBS * 50))
        engine = w.engine()
        try:
            backfill = latest_backfill_id(engine)
            a = Workers(w, 1, 4)
            try:
                _wait_running(engine, 4, 60, a)
                time.sleep(1.0)  # let it settle: leases written, prefetch filled
                victims = _held_job_ids(w.settings.redis_url, w.settings.redis_namespace)
                before = _attempts(engine, victims)
                os.killpg(a.process.pid, signal.SIGKILL)
                killed_at = time.monotonic()
            finally:
                a.stop()
            victims = {j for j in victims if before.get(j, (0, "completed"))[1] != "completed"}
            if not victims:
                raise BenchError("the killed worker held no unfinished messages")
            running_at_kill = sum(1 for j in victims if before[j][1] == "running")
            with Workers(w, 2, 8) as b:
                back: dict[str, float] = {}
                deadline = killed_at + 600
                while len(back) < len(victims):
                    if time.monotonic() > deadline:
                        raise BenchError(f"{len(victims) - len(back)} job(s) of the killed worker never ran again")
                    b.check_alive()
                    now = time.monotonic() - killed_at
                    for job_id, (attempts, status) in _attempts(engine, victims - back.keys()).items():
                        if attempts > before[job_id][0] or status in ("completed", "failed"):
                            back[job_id] = now
                    time.sleep(0.2)
                progress = wait_backfill(engine, backfill, timeout_s=300, workers=b)
            if progress.by_status.get("completed") != progress.total_jobs:
                raise BenchError(f"after recovery not every job completed: {progress.by_status}")
        finally:
            engine.dispose()
    worst = max(back.values())
    return [Figure(
        "recovery after SIGKILL", round(worst, 1), "s",
        against=(f"{len(victims)} unfinished messages of the killed worker ({running_at_kill} running); "
                 f"JOB_LEASE={lease_s}s{' (quick)' if quick else ''}; first back after {min(back.values()):.1f} s"),
        target=f"<= {TARGET_S} s", met=worst <= TARGET_S,
    )]
