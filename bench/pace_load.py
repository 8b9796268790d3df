"""A load process of bench/pace.py: `python -m bench.pace_load THREADS SECONDS` with the settings in
its environment. Each thread calls get_tracks (50 ids of the catalog) through the real client
(the fleet's budget, fixed or learned, the penalty and quota boxes) as a worker would, and on
RateLimited waits until the fleet may call again, as a parked job does. Prints one JSON line."""

from __future__ import annotations

import json
import sys
import threading
import time

from pipeline.errors import RateLimited, SpotifyError
from pipeline.wiring import build_client
from shared.db import make_engine
from shared.settings import Settings


def main(threads: int, seconds: float) -> dict:
    settings = Settings.from_env()
    engine = make_engine(settings, pool_size=2)
    client = build_client(settings, engine=engine)
    ids = [line.strip() for line in open(sys.argv[3])][:50]
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
    print(json.dumps(main(int(sys.argv[1]), float(sys.argv[2]))))
