"""What each client process of the rate-control tests runs (spawned: a fresh interpreter each)."""

from __future__ import annotations

import threading
import time

from pipeline.errors import RateLimited, SpotifyError
from pipeline.wiring import build_client
from shared.db import make_engine


def steady_load(settings, ids: list[str], threads: int, start, duration_s: float, results) -> None:
    """`threads` threads call get_tracks for `duration_s` after `start` opens, each waiting out a
    RateLimited (as a parked job would) before its next call; then reports what it saw."""
    engine = make_engine(settings, pool_size=2)
    client = build_client(settings, engine=engine)
    outcome: dict = {"ok": 0, "rate_limited": 0, "errors": []}
    lock = threading.Lock()
    start.wait()
    end = time.monotonic() + duration_s

    def run() -> None:
        while time.monotonic() < end:
            try:
                client.get_tracks(ids)
                with lock:
                    outcome["ok"] += 1
            except RateLimited as limited:
                with lock:
                    outcome["rate_limited"] += 1
                time.sleep(min(max(limited.retry_after_s, 0.05), max(0.0, end - time.monotonic())))
            except SpotifyError as exc:
                with lock:
                    outcome["errors"].append(repr(exc))

    workers = [threading.Thread(target=run) for _ in range(threads)]
    [w.start() for w in workers]
    [w.join() for w in workers]
    outcome["budget"] = client._limiter.budget.requests()  # type: ignore[attr-defined]
    engine.dispose()
    results.put(outcome)
