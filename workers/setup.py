"""What every worker process sets up: `WorkerSetup` (Dramatiq middleware), in each worker process
after it boots, builds the process's `WorkerEnv`: logging (loguru, with Dramatiq's own stdlib
logging routed into it), the settings, one engine, one Redis client, one Spotify client, the
audio-features coalescer, the lease keeper, the dispatcher and the search indexer. Nothing is built before the fork.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware
from loguru import logger

from pipeline.batching import Coalescer
from pipeline.overlap import Overlap
from pipeline.ratecontrol.pacer import background_per_s
from pipeline.search_indexer import SearchIndexer
from pipeline.sync import Context
from shared.keys import RedisKeys
from shared.settings import Settings
from workers.dispatcher import Dispatcher
from workers.leases import LeaseKeeper
from workers.sender import JobSender

# The youngest generation is collected after this many new container objects, not CPython's 700:
# one /tracks answer of 50 is about 750 (a dict, a list, each artist, album, image, market list),
# so the default ran a collection for every answer parsed, and every tenth of those walked the
# older generations too (measured: orjson's parse of 100 KB took 2x as long with them).
GC_YOUNG_THRESHOLD = 20_000

OVERLAP_THREADS = 32  # a job's requests started beside its own thread: 2 a job of 100 ids, for every job thread


@dataclass
class WorkerEnv:
    """Everything a job run needs in this process."""

    settings: Settings
    engine: Any
    client: Any
    send: Callable[..., None]
    leases: LeaseKeeper
    redis: Any = None
    extras: dict = field(default_factory=dict)

    @property
    def context(self) -> Context:
        return Context(self.engine, self.client, self.settings.track_ttl_s, self.settings.job_lease_s,
                       audio_features=self.extras.get("audio_features"), overlap=Overlap(self.extras.get("overlap")))

    @classmethod
    def build(cls, settings: Settings, broker: dramatiq.Broker) -> WorkerEnv:
        from pipeline.wiring import build_client
        from shared.db import make_engine
        from shared.redis_conn import connect

        settings.require_token_keys()  # the fleet's app token sits in Redis: never in plaintext
        engine = make_engine(settings, pool_size=8, max_overflow=8)
        redis = connect(settings)
        client = build_client(settings, redis, engine)
        leases = LeaseKeeper(engine, settings.job_lease_s)
        leases.start()
        send = JobSender(broker)
        budget = client.budget
        assert budget is not None, "build_client gives every client the fleet's budget"
        # Parked work goes out at the pace the return line gave it (pacer.py): one rule for both.
        dispatcher = Dispatcher(engine, broker, send, redis, RedisKeys(settings.redis_namespace),
                                max_retries=settings.job_max_retries,
                                release_per_s=lambda: background_per_s(budget),
                                penalty_s=client.held_off_s)
        dispatcher.start()
        # Songs written here become searchable within about a second (unless SEARCH_INDEXER=off).
        indexer = SearchIndexer(engine)
        if settings.search_indexer:
            indexer.start()
        # A job of 100 ids fills its /audio-features request alone; shorter ones (a job cut short, a
        # library page of 50) pair up across the process's threads.
        features = Coalescer(client.get_audio_features, size=100, hold_while=client.budget_spent)
        # A job's independent requests in flight together (pipeline/overlap.py): threads start as
        # they are needed, at most a few per job thread.
        overlap = ThreadPoolExecutor(max_workers=OVERLAP_THREADS, thread_name_prefix="overlap")
        return cls(settings, engine, client, send, leases, redis,
                   extras={"audio_features": features, "dispatcher": dispatcher, "indexer": indexer,
                           "overlap": overlap})

    def close(self) -> None:
        self.leases.stop()
        for name in ("dispatcher", "indexer"):
            if name in self.extras:
                self.extras[name].stop()
        if "overlap" in self.extras:
            self.extras["overlap"].shutdown(wait=False, cancel_futures=True)
        self.engine.dispose()


_env: WorkerEnv | None = None
_env_lock = threading.Lock()


def install_env(env: WorkerEnv | None) -> None:
    """Set this process's environment (WorkerSetup does; tests hand in one of fakes)."""
    global _env
    _env = env


def current_env() -> WorkerEnv:
    if _env is None:
        raise RuntimeError("no worker environment in this process: is WorkerSetup among the broker's middleware?")
    return _env


class _InterceptHandler(logging.Handler):
    """Dramatiq, pika and redis log through the standard library: send their lines to loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def route_stdlib_logging(level: str) -> None:
    logging.basicConfig(handlers=[_InterceptHandler()], level=level, force=True)
    # A line per HTTP request is the Spotify client's to write (it does, at DEBUG, without tokens).
    for noisy in ("httpx", "httpcore", "pika"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def tune_gc() -> None:
    """The cyclic collector for a worker process that parses large answers all day: what it built
    at start-up (modules, the engine, the clients: never garbage) is frozen out of every later
    collection, and the youngest generation is collected less often (GC_YOUNG_THRESHOLD).
    Reference counting still frees almost everything at once; only cycles wait longer."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


class WorkerSetup(Middleware):
    """Sets up each worker process after it boots; closes what it opened when it stops."""

    def __init__(self, settings: Settings, *, build: Callable[[Settings, dramatiq.Broker], WorkerEnv] = WorkerEnv.build):
        self.settings = settings
        self._build = build

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        from shared.logging import setup_logging

        setup_logging(self.settings)
        route_stdlib_logging(self.settings.log_level)
        with _env_lock:
            if _env is None:
                install_env(self._build(self.settings, broker))
        tune_gc()
        logger.info("worker process ready", queues=sorted(broker.get_declared_queues()))

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker) -> None:
        # After the worker threads have ended their jobs, not before: a job still running when
        # the shutdown began keeps its lease renewed, its overlap pool and its database until it
        # ends. (Closed first, such a job's next request met a pool shut down, "cannot schedule
        # new futures after shutdown", and the job failed for good.)
        env = _env
        if env is not None:
            env.close()
