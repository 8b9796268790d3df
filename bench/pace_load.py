"""A load process of bench/pace.py: `python -m bench.pace_load THREADS SECONDS IDS_FILE` with the
settings in its environment. Each thread calls get_tracks (50 ids of the catalog) through the real
client (the fleet's budget, fixed or learned, the penalty and quota boxes) as a worker would, and
on RateLimited waits until the fleet may call again, as a parked job does.

It starts in two steps, so every process of every case begins at the same instant and the bench's
clock is the load's: once the client is built (the imports take seconds on a busy machine) it
prints `ready` and waits for a line `go` on stdin; then it runs for SECONDS and prints one JSON
line of what its calls met. Logging is set up from the settings (LOG_LEVEL=WARNING from the
bench): loguru's default handler writes every request at DEBUG to stderr."""

from __future__ import annotations

import json
import sys
import threading
import time

from pipeline.errors import RateLimited, SpotifyError
from pipeline.wiring import build_client
from shared.db import make_engine
from shared.logging import setup_logging
from shared.settings import Settings

READY, GO = "ready", "go"


def main(threads: int, seconds: float, ids_path: str) -> dict:
    settings = Settings.from_env()
    setup_logging(settings)
    engine = make_engine(settings, pool_size=2)
    client = build_client(settings, engine=engine)
    with open(ids_path) as lines:
        ids = [line.strip() for line in lines][:50]
    print(READY, flush=True)
    if sys.stdin.readline().strip() != GO:  # the bench gave up on the run
        return {"ok": 0, "rate_limited": 0, "errors": 0, "started": False}
    end = time.monotonic() + seconds
    outcome = {"ok": 0, "rate_limited": 0, "errors": 0}
    lock = threading.Lock()

    def run() -> None:
        while time.monotonic() < end:
            try:
                client.get_tracks(ids)
                kind = "ok"
            except RateLimited as limited:
                kind = "rate_limited"
                time.sleep(min(max(limited.retry_after_s, 0.01), max(0.0, end - time.monotonic())))
            except SpotifyError:
                kind = "errors"
                time.sleep(0.1)
            with lock:
                outcome[kind] += 1

    workers = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    engine.dispose()
    return outcome


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3])), flush=True)
