"""What every job run goes through, and what every worker process sets up.

- `WorkerSetup` (Dramatiq middleware): in each worker process, after it boots: logging (loguru,
  with Dramatiq's own stdlib logging routed into it), the settings, one engine, one Redis client,
  one Spotify client, and the lease keeper. Nothing is built before the fork.
- `run_job`: the ledger's protocol around an actor's work: claim the row (or send the message
  again for when the job may run, or drop it when the job is finished), bind job id, type and user
  to every log line the run writes, do the work, then complete, park or fail the row as the retry
  policy says. Exceptions never reach Dramatiq: the job row is where a failure shows.
- `LeaseKeeper`: one thread per process renews the leases of the runs in progress every third
  of JOB_LEASE, in one statement, so a long run keeps its job and a dead one loses it quickly.
- `JobSender`: the one way to send a job's message (queue and delay by job type).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import dramatiq
from dramatiq.middleware import Interrupt, Middleware
from loguru import logger

from pipeline import jobs, retry_policy
from pipeline.metrics import JOBS
from pipeline.batching import Coalescer
from pipeline.jobs import Job
from pipeline.retry_policy import Fail, Park
from pipeline.sync import Context, LeaseLost
from shared.settings import Settings

MAX_DELAY_S = 6 * 86_400  # Dramatiq refuses delays of 7 days and more


class JobSender:
    """Sends a job's message: (job type, job id, delay in seconds)."""

    def __init__(self, broker: dramatiq.Broker):
        self.broker = broker

    def __call__(self, job_type: str, job_id: str, delay_s: float = 0.0) -> None:
        actor = self.broker.get_actor(job_type)
        delay_ms = int(min(max(delay_s, 0.0), MAX_DELAY_S) * 1000)
        actor.send_with_options(args=(job_id,), delay=delay_ms or None)


class LeaseKeeper:
    """Renews the leases of this process's runs in progress; remembers the runs that lost theirs."""

    def __init__(self, engine, lease_s: int):
        self.engine = engine
        self.lease_s = lease_s
        self._runs: dict[str, Job] = {}
        self._lost: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="lease-keeper", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    @contextmanager
    def holding(self, job: Job):
        with self._lock:
            self._runs[job.id] = job
        try:
            yield
        finally:
            with self._lock:
                self._runs.pop(job.id, None)
                self._lost.discard(job.id)

    def lost(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._lost

    def renew_now(self) -> None:
        with self._lock:
            runs = list(self._runs.values())
        if not runs:
            return
        held = jobs.renew_leases(self.engine, runs, self.lease_s)
        with self._lock:
            self._lost.update(r.id for r in runs if r.id not in held and r.id in self._runs)

    def _loop(self) -> None:
        while not self._stop.wait(max(self.lease_s / 3, 1)):
            try:
                self.renew_now()
            except Exception as exc:  # noqa: BLE001 - keep renewing; a lease that lapses is taken over
                logger.warning("could not renew job leases: {}", exc)


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
                       audio_features=self.extras.get("audio_features"))

    @classmethod
    def build(cls, settings: Settings, broker: dramatiq.Broker) -> WorkerEnv:
        from pipeline.spotify import SpotifyClient
        from shared.db import make_engine
        from shared.redis_conn import connect

        engine = make_engine(settings, pool_size=8, max_overflow=8)
        redis = connect(settings)
        client = SpotifyClient.from_settings(settings, redis, engine)
        leases = LeaseKeeper(engine, settings.job_lease_s)
        leases.start()
        # Jobs carry 50 tracks; /audio-features takes 100: the process's threads pair up.
        features = Coalescer(client.get_audio_features, size=100)
        return cls(settings, engine, client, JobSender(broker), leases, redis, extras={"audio_features": features})

    def close(self) -> None:
        self.leases.stop()
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
        logger.info("worker process ready", queues=sorted(broker.get_declared_queues()))

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker) -> None:
        env = _env
        if env is not None:
            env.close()


# --- the run of one job -------------------------------------------------------------------------


def run_job(job_id: str, job_type: str, work: Callable[[WorkerEnv, Job], dict], env: WorkerEnv | None = None) -> None:
    """Claim, work, finish: see the module docstring. Never raises for a job's own failure."""
    env = env or current_env()
    settings = env.settings
    claim = jobs.claim(env.engine, job_id, settings.job_lease_s)
    if claim.finished:
        logger.debug("job already finished or gone: message dropped", job_id=job_id, job_type=job_type)
        return
    if claim.job is None:
        # Parked, or leased to a worker that may be alive: come back when that runs out.
        delay_s = (claim.wait_until - claim.db_now).total_seconds() + 1.0
        env.send(job_type, job_id, delay_s)
        logger.debug("job not runnable yet: message sent again", job_id=job_id, job_type=job_type,
                     delay_s=round(delay_s, 1))
        return
    job = claim.job
    with logger.contextualize(job_id=job.id, job_type=job.job_type, user_id=job.user_id), env.leases.holding(job):
        if job.job_type != job_type:
            jobs.fail(env.engine, job, "PermanentJobError", f"a {job.job_type} job was sent to {job_type}")
            return
        if job.retry_count > settings.job_max_retries:  # its workers kept dying
            jobs.fail(env.engine, job, "WorkerLost", f"its worker died {job.retry_count} times")
            JOBS.labels(job_type, "failed").inc()
            logger.error("job failed: its worker died too often")
            return
        logger.info("job started", attempt=job.attempts)
        try:
            result = work(env, job)
        except LeaseLost:
            logger.warning("job lost its lease (taken over or cancelled): stopped")
            return
        except (Exception, Interrupt) as exc:  # Interrupt: Dramatiq's time limit or shutdown
            _after_failure(env, job, exc)
            return
        if env.leases.lost(job.id) or not jobs.complete(env.engine, job, result):
            logger.warning("job finished but its lease was lost: the result was not recorded")
            return
        JOBS.labels(job_type, "completed").inc()
        logger.info("job completed", **{k: v for k, v in result.items() if isinstance(v, (int, str))})


def _after_failure(env: WorkerEnv, job: Job, exc: BaseException) -> None:
    now = jobs.db_now(env.engine)
    decision = retry_policy.decide(exc, retry_count=job.retry_count, max_retries=env.settings.job_max_retries, now=now)
    if isinstance(decision, Fail):
        jobs.fail(env.engine, job, decision.error_class, decision.message)
        JOBS.labels(job.job_type, "failed").inc()
        # A permanent error is expected (a user to re-authorise, bad ids): its message says it all.
        # Anything else is a surprise, and its traceback is what the operator needs.
        surprise = None if retry_policy.is_permanent(exc) else exc
        logger.opt(exception=surprise).error("job failed: {}: {}", decision.error_class, decision.message)
        return
    assert isinstance(decision, Park)
    if jobs.park(env.engine, job, decision.until, decision.error_class, decision.message,
                 count_retry=decision.counts_as_retry):
        env.send(job.job_type, job.id, (decision.until - now) / timedelta(seconds=1))
        JOBS.labels(job.job_type, "retry" if decision.counts_as_retry else "parked").inc()
        verb = "will retry" if decision.counts_as_retry else "parked"
        logger.warning("job {} in {:.0f}s: {}: {}", verb, decision.delay_s, decision.error_class, decision.message)
