"""The reconciler: every job whose work is unfinished gets a message again (design.md, decision 1).

Two kinds of jobs lost their message:
- **running with an expired lease**: the worker died (SIGKILL, OOM, a lost host). The job goes
  back to pending (that run counts as a retry: a job that kills its worker every time fails
  after JOB_MAX_RETRIES with `WorkerLost`) and gets a new message;
- **pending without a live message**: Redis lost its data (a flush, a restart without
  persistence), or a producer died between its commit and its sends. A job is *live* when the
  broker still holds a message for it (queued, delayed or being worked on); when the broker cannot
  say (RabbitMQ), a pending job counts as lost once its last message is `stale_after_s` old.

Safe from several hosts at once: expired leases are taken with FOR UPDATE SKIP LOCKED, and a
pending job is re-sent only by the host whose compare-and-set moved its `enqueuedAt` forward.
Messages that turn out to be duplicates are harmless: a claim is a compare-and-set too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, text

from pipeline.jobs import db_now
from shared.db import transaction

SendDelayed = Callable[[str, str, float], None]  # (job type, job id, delay seconds)
LiveJobIds = Callable[[], "set[str] | None"]  # the ids the broker holds messages for; None: unknown

CHUNK = 5000


@dataclass(frozen=True)
class Reconciled:
    leases_expired: int
    failed_worker_lost: int
    pending_resent: int
    live_known: bool

    def summary(self) -> str:
        how = "" if self.live_known else " (the broker cannot list its messages: judged by age)"
        return (f"{self.leases_expired} expired lease(s) taken back ({self.failed_worker_lost} failed: "
                f"worker lost too often), {self.pending_resent} pending job(s) re-sent{how}")


def reconcile(engine: Engine, send: SendDelayed, live_job_ids: LiveJobIds, *, max_retries: int,
              grace_s: int = 120, stale_after_s: int = 3600) -> Reconciled:
    expired, failed = _take_back_expired(engine, send, max_retries)
    now = db_now(engine)  # before the broker is asked: a message sent later is for a younger job
    live = live_job_ids()
    resent = _resend_pending(engine, send, live, now, grace_s if live is not None else max(grace_s, stale_after_s))
    _close_abandoned_backfills(engine, now, grace_s)
    return Reconciled(expired, failed, resent, live is not None)


def _close_abandoned_backfills(engine: Engine, now: datetime, grace_s: int) -> None:
    """A producer that died while sending left its backfill 'enqueuing'; its jobs were just
    re-sent above, so the backfill's progress can count them as enqueued."""
    with transaction(engine) as session:
        session.execute(
            text(
                """
                UPDATE spotify_backfills SET state = 'enqueued', "enqueuedAt" = :now, "updatedAt" = :now
                WHERE state = 'enqueuing' AND "createdAt" < :now - make_interval(secs => greatest(:grace, 600))
                """
            ),
            {"now": now, "grace": grace_s},
        )


def _take_back_expired(engine: Engine, send: SendDelayed, max_retries: int) -> tuple[int, int]:
    taken = failed = 0
    while True:
        with transaction(engine) as session:
            rows = session.execute(
                text(
                    """
                    WITH expired AS (
                        SELECT id FROM spotify_sync_jobs
                        WHERE status = 'running' AND "leaseUntil" < (statement_timestamp() AT TIME ZONE 'UTC')
                        ORDER BY "leaseUntil" LIMIT :n FOR UPDATE SKIP LOCKED)
                    UPDATE spotify_sync_jobs j SET
                        status = CASE WHEN j."retryCount" + 1 > :max THEN 'failed' ELSE 'pending' END,
                        "completedAt" = CASE WHEN j."retryCount" + 1 > :max
                                        THEN statement_timestamp() AT TIME ZONE 'UTC' END,
                        "retryCount" = j."retryCount" + 1,
                        "leaseUntil" = NULL,
                        "notBefore" = NULL,
                        "enqueuedAt" = statement_timestamp() AT TIME ZONE 'UTC',
                        "errorClass" = 'WorkerLost',
                        error = 'its worker stopped before finishing (the lease ran out)',
                        "updatedAt" = statement_timestamp() AT TIME ZONE 'UTC'
                    FROM expired WHERE j.id = expired.id
                    RETURNING j.id, j."jobType", j.status
                    """
                ),
                {"n": CHUNK, "max": max_retries},
            ).all()
        for job_id, job_type, status in rows:
            if status == "pending":
                send(job_type, job_id, 0)
            else:
                failed += 1
        taken += len(rows)
        if len(rows) < CHUNK:
            return taken, failed


def _resend_pending(engine: Engine, send: SendDelayed, live: set[str] | None, now: datetime, grace_s: int) -> int:
    resent, after = 0, ""
    while True:
        with transaction(engine) as session:
            candidates = session.execute(
                text(
                    """
                    SELECT id FROM spotify_sync_jobs
                    WHERE status = 'pending' AND id > :after
                      AND coalesce("enqueuedAt", "createdAt") < :now - make_interval(secs => :grace)
                    ORDER BY id LIMIT :n
                    """
                ),
                {"after": after, "now": now, "grace": grace_s, "n": CHUNK},
            ).scalars().all()
            lost = [c for c in candidates if live is None or c not in live]
            rows = session.execute(
                text(
                    """
                    UPDATE spotify_sync_jobs SET "enqueuedAt" = statement_timestamp() AT TIME ZONE 'UTC',
                        "updatedAt" = statement_timestamp() AT TIME ZONE 'UTC'
                    WHERE id = ANY(:ids) AND status = 'pending'
                      AND coalesce("enqueuedAt", "createdAt") < :now - make_interval(secs => :grace)
                    RETURNING id, "jobType",
                        greatest(0, extract(epoch FROM "notBefore" - (statement_timestamp() AT TIME ZONE 'UTC')))
                    """
                ),
                {"ids": lost, "now": now, "grace": grace_s},
            ).all() if lost else []
        # Committed before sending: a host that sends must own the move of enqueuedAt.
        for job_id, job_type, delay_s in rows:
            send(job_type, job_id, float(delay_s or 0))
        resent += len(rows)
        if len(candidates) < CHUNK:
            return resent
        after = candidates[-1]
