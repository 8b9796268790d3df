"""The reconciler: every job whose work is unfinished gets a message again (docs/architecture.md,
decision 1). Policy only: the statements are the ledger's (pipeline/store/ledger.py).

Two kinds of jobs lost their message:
- **its worker was lost** (`ledger.lease_ran_out`: SIGKILL, OOM, a lost host). The job goes back
  to pending (that run counts as a retry, unless PostgreSQL restarted since the run last wrote: a
  job that kills its worker every time fails after JOB_MAX_RETRIES with `WorkerLost`) and gets a
  new message;
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
from datetime import datetime, timedelta

from sqlalchemy import Engine

from pipeline.store import ledger

SendDelayed = Callable[[str, str, float], None]  # (job type, job id, delay seconds)
LiveJobIds = Callable[[], "set[str] | None"]  # the ids the broker holds messages for; None: unknown

CHUNK = 5000
ABANDONED_BACKFILL_S = 600  # a backfill still 'enqueuing' this long after it was made lost its producer


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
    expired, failed = take_back_lost(engine, send, max_retries)
    now = ledger.db_now(engine)  # before the broker is asked: a message sent later is for a younger job
    live = live_job_ids()
    grace = timedelta(seconds=grace_s if live is not None else max(grace_s, stale_after_s))
    resent = _resend_pending(engine, send, live, now - grace)
    ledger.close_abandoned_backfills(engine, now - timedelta(seconds=max(grace_s, ABANDONED_BACKFILL_S)))
    return Reconciled(expired, failed, resent, live is not None)


def take_back_lost(engine: Engine, send: SendDelayed, max_retries: int) -> tuple[int, int]:
    """Jobs whose lease ran out back to pending, each with a message (or failed: worker lost too
    often). Returns (taken back, of which failed). Cheap enough for every dispatcher tick: it reads
    the running jobs (idx_spotify_jobs_status), a few per worker thread."""
    taken = failed = 0
    while True:
        rows = ledger.take_back_lost(engine, max_retries=max_retries, limit=CHUNK)
        for job_id, job_type, status in rows:
            if status == "pending":
                send(job_type, job_id, 0)
            else:
                failed += 1
        taken += len(rows)
        if len(rows) < CHUNK:
            return taken, failed


def _resend_pending(engine: Engine, send: SendDelayed, live: set[str] | None, sent_before: datetime) -> int:
    resent, after = 0, ""
    while True:
        candidates = ledger.pending_sent_before(engine, sent_before, after=after, limit=CHUNK)
        lost = [c for c in candidates if live is None or c not in live]
        # Committed before sending: a host that sends must own the move of enqueuedAt.
        for job_id, job_type, delay_s in ledger.mark_resent(engine, lost, sent_before):
            send(job_type, job_id, delay_s)
            resent += 1
        if len(candidates) < CHUNK:
            return resent
        after = candidates[-1]
