"""The workers' metrics endpoint: Dramatiq's Prometheus middleware (its exposition server serves
every worker process's values on one port, default 9191) plus a sampler of the queue depths.

Our own counters live in pipeline/metrics.py; `spotify-sync worker` prepares the multiprocess
directory they are written to before any process imports prometheus_client.
"""

from __future__ import annotations

import threading

import dramatiq
from dramatiq.middleware import Middleware
from loguru import logger

from pipeline.metrics import QUEUE_DEPTH

SAMPLE_EVERY_S = 5.0


class QueueDepthSampler(Middleware):
    """Each worker process samples the queue depths every few seconds into a gauge (the highest
    live value is exported), so the metrics show the backlog without a scrape touching Redis."""

    def __init__(self, every_s: float = SAMPLE_EVERY_S):
        self.every_s = every_s
        self._stop = threading.Event()

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        threading.Thread(target=self._loop, args=(broker,), name="queue-depth", daemon=True).start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker) -> None:
        self._stop.set()

    def _loop(self, broker: dramatiq.Broker) -> None:
        from workers.broker import queue_depths

        while True:
            try:
                for depth in queue_depths(broker):
                    for state in ("ready", "delayed"):
                        if getattr(depth, state) is not None:
                            QUEUE_DEPTH.labels(depth.queue, state).set(getattr(depth, state))
            except Exception as exc:  # noqa: BLE001 - a metrics sampler must never take a worker down
                logger.debug("queue depths not sampled: {}", exc)
            if self._stop.wait(self.every_s):
                return


def metrics_middleware() -> list[Middleware]:
    from dramatiq.middleware.prometheus import Prometheus

    return [Prometheus(), QueueDepthSampler()]
