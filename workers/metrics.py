"""The workers' metrics endpoint: Dramatiq's Prometheus middleware (its exposition server serves
every worker process's values on one port, default 9191) plus a sampler of the queue depths
(the job queues' and the search indexer's).

Our own counters live in pipeline/metrics.py; `spotify-sync worker` prepares the multiprocess
directory they are written to before any process imports prometheus_client.
"""

from __future__ import annotations

import threading

import dramatiq
from dramatiq.middleware import Middleware
from loguru import logger

from pipeline.metrics import CONNECTIONS, QUEUE_DEPTH, SEARCH_QUEUED

SAMPLE_EVERY_S = 5.0


class QueueDepthSampler(Middleware):
    """Each worker process samples the queue depths, the search indexer's backlog and the
    connections by status every few seconds into gauges (the highest live value is exported), so the metrics show the backlog
    and the refresh tokens about to die without a scrape touching Redis or PostgreSQL."""

    def __init__(self, every_s: float = SAMPLE_EVERY_S):
        self.every_s = every_s
        self._stop = threading.Event()

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        threading.Thread(target=self._loop, args=(broker,), name="queue-depth", daemon=True).start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker) -> None:
        self._stop.set()

    def _loop(self, broker: dramatiq.Broker) -> None:
        from pipeline.status import SEARCH_QUEUE_COUNTED
        from pipeline.store import search_index
        from pipeline.store.connections import count_by_status
        from workers.broker import queue_depths
        from workers.setup import current_env

        while True:
            try:
                for depth in queue_depths(broker):
                    for state in ("ready", "delayed"):
                        if getattr(depth, state) is not None:
                            QUEUE_DEPTH.labels(depth.queue, state).set(getattr(depth, state))
                engine = current_env().engine
                for status, n in count_by_status(engine).items():
                    CONNECTIONS.labels(status).set(n)
                if search_index.installed(engine):
                    SEARCH_QUEUED.set(search_index.queued(engine, at_most=SEARCH_QUEUE_COUNTED))
            except Exception as exc:  # noqa: BLE001 - a metrics sampler must never take a worker down
                logger.debug("queue depths not sampled: {}", exc)
            if self._stop.wait(self.every_s):
                return


def metrics_middleware() -> list[Middleware]:
    from dramatiq.middleware.prometheus import Prometheus

    return [Prometheus(), QueueDepthSampler()]
