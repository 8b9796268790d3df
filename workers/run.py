"""The run of one job: the ledger's protocol around an actor's work.

Claim the row (or send the message again for when the job may run, or drop it when the job is
finished), bind job id, type and user to every log line the run writes, do the work, then
complete, park or fail the row as the retry policy (pipeline/retry_policy.py) says. A job's own
failure never reaches Dramatiq: the job row is where it shows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TypeVar

from dramatiq.middleware import Interrupt
from loguru import logger

from pipeline import retry_policy
from pipeline.errors import (
    LeaseLost,
    RedisUnavailable,
    StoreConflict,
    StoreError,
    StoreUnavailable,
    WorkerInterrupted,
)
from pipeline.metrics import JOB_RUNS
from pipeline.retry_policy import Fail, Park
from pipeline.store import ledger
from pipeline.store.ledger import Job
from workers.setup import WorkerEnv, current_env

T = TypeVar("T")


# The job types whose work starts by asking which of its ids are fresh (pipeline/sync.py,
# sync_tracks): their claim answers that in the same statement.
CLAIM_WITH_FRESHNESS = frozenset({"track_sync"})

# A database blip (a PostgreSQL restart) is waited out around a run's transitions this long,
# so that the outcome of work already done is recorded rather than lost with the message.
TRANSITION_RETRY_S = 15.0


def run_job(job_id: str, job_type: str, work: Callable[[WorkerEnv, Job], dict], env: WorkerEnv | None = None) -> None:
    """Claim, work, finish: see the module docstring. Never raises for a job's own failure."""
    env = env or current_env()
    settings = env.settings
    try:
        freshness_ttl_s = settings.track_ttl_s if job_type in CLAIM_WITH_FRESHNESS else None
        claim = _through_blips(lambda: ledger.claim(env.engine, job_id, settings.job_lease_s,
                                                    max_retries=settings.job_max_retries,
                                                    freshness_ttl_s=freshness_ttl_s))
    except (StoreError, RedisUnavailable) as exc:
        # The database is down for longer than a blip: keep the message, come back later.
        env.send(job_type, job_id, CLAIM_RETRY_S)
        logger.warning("job not claimed (the database did not answer): message sent again", job_id=job_id,
                       job_type=job_type, error=str(exc), delay_s=CLAIM_RETRY_S)
        return
    if claim.gave_up is not None:
        JOB_RUNS.labels(job_type, "failed").inc()
        logger.error("job failed: its worker was lost too often", job_id=job_id, job_type=job_type,
                     retry_count=claim.gave_up.retry_count)
        return
    if claim.job is None:
        if claim.wait_until is None or claim.db_now is None:
            logger.debug("job already finished or gone: message dropped", job_id=job_id, job_type=job_type)
            return
        # Parked, or leased to a worker that may be alive: come back when that runs out.
        delay_s = (claim.wait_until - claim.db_now).total_seconds() + 1.0
        env.send(job_type, job_id, delay_s)
        logger.debug("job not runnable yet: message sent again", job_id=job_id, job_type=job_type,
                     delay_s=round(delay_s, 1))
        return
    job = claim.job
    with logger.contextualize(job_id=job.id, job_type=job.job_type, user_id=job.user_id), env.leases.holding(job):
        if job.job_type != job_type:
            _through_blips(lambda: ledger.fail(env.engine, job, "BadJob", f"a {job.job_type} job was sent to {job_type}"))
            return
        logger.info("job started", attempt=job.attempts)
        try:
            with _capabilities_once(env):
                result = work(env, job)
        except LeaseLost:
            logger.warning("job lost its lease (taken over or cancelled): stopped")
            return
        except Interrupt as exc:  # Dramatiq's time limit or shutdown: tried again later
            _after_failure(env, job, WorkerInterrupted(f"{type(exc).__name__}: the run was interrupted"))
            return
        except Exception as exc:  # noqa: BLE001 - every failure is the retry policy's to judge
            _after_failure(env, job, exc)
            return
        if env.leases.lost(job.id) or not _through_blips(lambda: ledger.complete(env.engine, job, result)):
            logger.warning("job finished but its lease was lost: the result was not recorded")
            return
        JOB_RUNS.labels(job_type, "completed").inc()
        logger.info("job completed", **{k: v for k, v in result.items() if isinstance(v, (int, str))})


CLAIM_RETRY_S = 5.0


def _capabilities_once(env: WorkerEnv) -> AbstractContextManager[None]:
    """The run reads the capabilities' version in Redis once, not at every look
    (pipeline/capabilities.py, `once_per_job`)."""
    once = getattr(getattr(env.client, "capabilities", None), "once_per_job", None)
    return once() if once is not None else nullcontext()


def _through_blips(transition: Callable[[], T]) -> T:
    """`transition()`, tried again while the database is briefly unavailable (a restart, a
    failover), for at most TRANSITION_RETRY_S; then its StoreError is raised."""
    deadline = time.monotonic() + TRANSITION_RETRY_S
    pause_s = 0.2
    while True:
        try:
            return transition()
        except (StoreUnavailable, StoreConflict):
            if time.monotonic() + pause_s > deadline:
                raise
            time.sleep(pause_s)
            pause_s = min(pause_s * 2, 2.0)


def _after_failure(env: WorkerEnv, job: Job, exc: BaseException) -> None:
    try:
        _record_failure(env, job, exc)
    except StoreError as store_down:
        # Not recorded: the row stays running until its lease ends, and the job is taken over then.
        logger.opt(exception=exc).error("job failed and the failure could not be recorded: {}", store_down)


def _record_failure(env: WorkerEnv, job: Job, exc: BaseException) -> None:
    now = _through_blips(lambda: ledger.db_now(env.engine))
    decision = retry_policy.decide(exc, retry_count=job.retry_count, max_retries=env.settings.job_max_retries, now=now)
    if isinstance(decision, Fail):
        if not _through_blips(lambda: ledger.fail(env.engine, job, decision.error_class, decision.message)):
            _lease_lost_on_failure(decision.error_class)
            return
        JOB_RUNS.labels(job.job_type, "failed").inc()
        # One of our errors is expected (a user to re-authorise, bad ids): its message says it all.
        # Anything else is a bug, and its traceback is what the operator needs.
        logger.opt(exception=exc if decision.bug else None).error("job failed: {}: {}", decision.error_class,
                                                                  decision.message)
        return
    assert isinstance(decision, Park)
    # Parked on its row only: the dispatcher (workers/dispatcher.py) sends its message when it is due.
    if _through_blips(lambda: ledger.park(env.engine, job, decision.until, decision.error_class, decision.message,
                                          count_retry=decision.counts_as_retry)):
        JOB_RUNS.labels(job.job_type, "retry" if decision.counts_as_retry else "parked").inc()
        verb = "will retry" if decision.counts_as_retry else "parked"
        # A job the fleet's own box or budget held back sent nothing: below a real 429's warning.
        logger.log("INFO" if decision.quiet else "WARNING", "job {} in {:.0f}s: {}: {}", verb, decision.delay_s,
                   decision.error_class, decision.message)
    else:
        _lease_lost_on_failure(decision.error_class)


def _lease_lost_on_failure(error_class: str) -> None:
    # Another run holds the job now (a takeover after this one's lease ran out) or it was cancelled:
    # this run's outcome is not the job's, and the job's row says what the other run did.
    logger.warning("job lost its lease (taken over or cancelled): its {} was not recorded", error_class)
