"""The job ledger: every unit of work is a row of `spotify_sync_jobs` (design.md, decision 1).

A job's life, every step a compare-and-set on its row (one UPDATE ... WHERE <expected state>):

    pending ──claim──> running ──complete──> completed
       ^                  │  └──fail──────> failed
       └──park / retry────┘
                 (notBefore set; park keeps retryCount, retry adds one)

- `claim` takes a pending job whose notBefore has passed, or a running one whose lease ran out
  (its worker died: that counts as a retry). It bumps `attempts`, the run's fencing token: every
  later transition of that run names it, so a run that lost its lease can no longer write.
- Times come from PostgreSQL (one clock for every host), stored as UTC without a time zone like
  the seed's columns.
- Nothing here sends messages: callers send one after the row says so (row first, then message).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.orm import Session

from shared.db import transaction
from shared.models import JOB_STATUSES, JOB_TYPES, SpotifyBackfill, SpotifySyncJob

# The database's clock, in UTC, like every timestamp column of the contract.
NOW = text("(statement_timestamp() AT TIME ZONE 'UTC')")

JOBS = SpotifySyncJob.__table__
BACKFILLS = SpotifyBackfill.__table__
FINISHED = ("completed", "failed")


@dataclass(frozen=True)
class Job:
    id: str
    job_type: str
    status: str
    payload: dict
    user_id: str | None
    backfill_id: str | None
    retry_count: int
    attempts: int
    lease_until: datetime | None
    not_before: datetime | None
    enqueued_at: datetime | None
    error_class: str | None
    error: str | None
    result: dict | None
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Job:
        m = row._mapping
        return cls(
            id=m["id"], job_type=m["jobType"], status=m["status"], payload=m["payload"] or {},
            user_id=m["userId"], backfill_id=m["backfillId"], retry_count=m["retryCount"],
            attempts=m["attempts"], lease_until=m["leaseUntil"], not_before=m["notBefore"],
            enqueued_at=m["enqueuedAt"], error_class=m["errorClass"], error=m["error"],
            result=m["result"], started_at=m["startedAt"], completed_at=m["completedAt"],
            created_at=m["createdAt"], updated_at=m["updatedAt"],
        )


@dataclass(frozen=True)
class Claim:
    """What a worker holding a message for a job may do.

    Exactly one of: `job` (it is yours, run it), `wait_until` (not yet: parked or leased to
    another worker; send the message again for then), or neither (finished or gone: drop it).
    """

    job: Job | None = None
    wait_until: datetime | None = None
    db_now: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.job is None and self.wait_until is None


@dataclass(frozen=True)
class NewJob:
    job_type: str
    payload: dict
    user_id: str | None = None

    def __post_init__(self) -> None:
        if self.job_type not in JOB_TYPES:
            raise ValueError(f"job type must be one of {', '.join(JOB_TYPES)}, got {self.job_type!r}")


# --- creating -----------------------------------------------------------------------------------


def create_backfill(engine: Engine, job_type: str, description: str, *, force: bool = False) -> str:
    with transaction(engine) as session:
        return session.execute(
            insert(BACKFILLS)
            .values({"jobType": job_type, "description": description, "force": force})
            .returning(BACKFILLS.c.id)
        ).scalar_one()


def mark_backfill_enqueued(engine: Engine, backfill_id: str) -> None:
    with transaction(engine) as session:
        session.execute(
            update(BACKFILLS)
            .where(BACKFILLS.c.id == backfill_id)
            .values({"state": "enqueued", "enqueuedAt": NOW, "updatedAt": NOW})
        )


def create_jobs(engine: Engine, jobs: Sequence[NewJob], *, backfill_id: str | None = None) -> list[str]:
    """Insert the rows in one multi-row statement and commit; returns their ids in order."""
    if not jobs:
        return []
    with transaction(engine) as session:
        now = session.execute(select(NOW)).scalar_one()
        rows = [
            {"jobType": j.job_type, "payload": j.payload, "userId": j.user_id, "backfillId": backfill_id,
             "enqueuedAt": now}
            for j in jobs
        ]
        # executemany with RETURNING: SQLAlchemy sends it as multi-row INSERTs ("insertmanyvalues").
        ids = session.execute(insert(JOBS).returning(JOBS.c.id, sort_by_parameter_order=True), rows).scalars()
        return list(ids)


# --- a run's transitions (workers) --------------------------------------------------------------


def claim(engine: Engine, job_id: str, lease_s: int) -> Claim:
    """Take the job for `lease_s` seconds, if it is runnable now. See `Claim`."""
    lease = text(f"(statement_timestamp() AT TIME ZONE 'UTC') + interval '{int(lease_s)} seconds'")
    runnable = ((JOBS.c.status == "pending") & (JOBS.c.notBefore.is_(None) | (JOBS.c.notBefore <= NOW))) | (
        (JOBS.c.status == "running") & (JOBS.c.leaseUntil < NOW)
    )
    with transaction(engine) as session:
        row = session.execute(
            update(JOBS)
            .where(JOBS.c.id == job_id, runnable)
            .values(
                {
                    "status": "running",
                    "leaseUntil": lease,
                    "notBefore": None,
                    "attempts": JOBS.c.attempts + 1,
                    # A running job whose lease ran out lost its worker: that run counts as a retry.
                    "retryCount": JOBS.c.retryCount + text("CASE WHEN status = 'running' THEN 1 ELSE 0 END"),
                    "startedAt": func.coalesce(JOBS.c.startedAt, NOW),
                    "updatedAt": NOW,
                }
            )
            .returning(*JOBS.c)
        ).first()
        if row is not None:
            return Claim(job=Job.from_row(row))
        current = session.execute(
            select(JOBS.c.status, JOBS.c.notBefore, JOBS.c.leaseUntil, NOW).where(JOBS.c.id == job_id)
        ).first()
    if current is None or current.status in FINISHED:
        return Claim()
    db_now = current[3]
    wait_until = current.notBefore if current.status == "pending" else current.leaseUntil
    return Claim(wait_until=wait_until or db_now, db_now=db_now)


def _run_update(engine: Engine, job: Job, values: dict, *, status: str = "running") -> bool:
    """Apply `values` if the row is still this run's (status and fencing token unchanged)."""
    with transaction(engine) as session:
        done = session.execute(
            update(JOBS)
            .where(JOBS.c.id == job.id, JOBS.c.status == status, JOBS.c.attempts == job.attempts)
            .values({**values, "updatedAt": NOW})
            .returning(JOBS.c.id)
        ).first()
    return done is not None


def renew_lease(engine: Engine, job: Job, lease_s: int, *, checkpoint: dict | None = None) -> bool:
    """Extend the lease (a long job calls this as it progresses), saving a checkpoint in `result`.

    False: the lease was lost (another worker took the job over, or an operator cancelled it);
    the caller should stop."""
    values: dict[str, Any] = {
        "leaseUntil": text(f"(statement_timestamp() AT TIME ZONE 'UTC') + interval '{int(lease_s)} seconds'")
    }
    if checkpoint is not None:
        values["result"] = func.coalesce(JOBS.c.result, text("'{}'::jsonb")).op("||")(
            bindparam("checkpoint", checkpoint, type_=JSONB)
        )
    return _run_update(engine, job, values)


def save_checkpoint(session: Session, job: Job, lease_s: int, checkpoint: dict) -> bool:
    """`renew_lease` inside the caller's transaction, so a page's rows and the checkpoint saying
    it was done commit together. False: the lease was lost (the caller rolls back and stops)."""
    done = session.execute(
        update(JOBS)
        .where(JOBS.c.id == job.id, JOBS.c.status == "running", JOBS.c.attempts == job.attempts)
        .values({
            "leaseUntil": text(f"(statement_timestamp() AT TIME ZONE 'UTC') + interval '{int(lease_s)} seconds'"),
            "result": func.coalesce(JOBS.c.result, text("'{}'::jsonb")).op("||")(
                bindparam("checkpoint", checkpoint, type_=JSONB)),
            "updatedAt": NOW,
        })
        .returning(JOBS.c.id)
    ).first()
    return done is not None


def renew_leases(engine: Engine, runs: Sequence[Job], lease_s: int) -> set[str]:
    """Extend the leases of these runs in one statement; returns the ids still held (a missing
    one was taken over or cancelled)."""
    if not runs:
        return set()
    with transaction(engine) as session:
        held = session.execute(
            text(
                "UPDATE spotify_sync_jobs j SET \"leaseUntil\" = (statement_timestamp() AT TIME ZONE 'UTC') "
                "+ make_interval(secs => :lease) "
                "FROM unnest(CAST(:ids AS text[]), CAST(:attempts AS int[])) AS r(id, attempts) "
                "WHERE j.id = r.id AND j.attempts = r.attempts AND j.status = 'running' RETURNING j.id"
            ),
            {"lease": lease_s, "ids": [r.id for r in runs], "attempts": [r.attempts for r in runs]},
        ).scalars()
        return set(held)


def complete(engine: Engine, job: Job, result: dict) -> bool:
    return _run_update(
        engine, job,
        {"status": "completed", "completedAt": NOW, "leaseUntil": None, "notBefore": None, "result": result,
         "error": None, "errorClass": None},
    )


def fail(engine: Engine, job: Job, error_class: str, message: str, *, result: dict | None = None) -> bool:
    values = {"status": "failed", "completedAt": NOW, "leaseUntil": None, "notBefore": None,
              "errorClass": error_class, "error": message[:2000]}
    if result is not None:
        values["result"] = result
    return _run_update(engine, job, values)


def park(engine: Engine, job: Job, not_before: datetime, error_class: str, message: str,
         *, count_retry: bool = False) -> bool:
    """Back to pending until `not_before` (a rate limit: count_retry False; a backoff: True).
    The error stays on the row so an operator sees why it waits."""
    values: dict[str, Any] = {"status": "pending", "leaseUntil": None, "notBefore": not_before,
                              "enqueuedAt": NOW, "errorClass": error_class, "error": message[:2000]}
    if count_retry:
        values["retryCount"] = JOBS.c.retryCount + 1
    return _run_update(engine, job, values)


def last_finished(engine: Engine, job: Job) -> str | None:
    """How the latest earlier finished job of this type for this job's user ended: completed,
    failed (cancelled included), or None when there was none."""
    with transaction(engine) as session:
        return session.execute(
            select(JOBS.c.status)
            .where(JOBS.c.jobType == job.job_type, JOBS.c.userId == job.user_id, JOBS.c.id != job.id,
                   JOBS.c.status.in_(FINISHED))
            .order_by(JOBS.c.completedAt.desc().nulls_last())
            .limit(1)
        ).scalar()


def db_now(engine: Engine) -> datetime:
    with engine.connect() as conn:
        return conn.execute(select(NOW)).scalar_one()


# --- operators ----------------------------------------------------------------------------------


def get_job(engine: Engine, job_id: str) -> Job | None:
    """By id, or by an unambiguous id prefix (at least 6 characters)."""
    with transaction(engine) as session:
        row = session.execute(select(JOBS).where(JOBS.c.id == job_id)).first()
        if row is None and len(job_id) >= 6:
            rows = session.execute(select(JOBS).where(JOBS.c.id.startswith(job_id, autoescape=True)).limit(2)).all()
            row = rows[0] if len(rows) == 1 else None
        return Job.from_row(row) if row else None


def list_jobs(engine: Engine, *, status: str | None = None, job_type: str | None = None,
              backfill_id: str | None = None, user_id: str | None = None, limit: int = 50) -> list[Job]:
    query = select(JOBS).order_by(JOBS.c.createdAt.desc(), JOBS.c.id).limit(limit)
    if status:
        query = query.where(JOBS.c.status == status)
    if job_type:
        query = query.where(JOBS.c.jobType == job_type)
    if backfill_id:
        query = query.where(JOBS.c.backfillId == backfill_id)
    if user_id:
        query = query.where(JOBS.c.userId == user_id)
    with transaction(engine) as session:
        return [Job.from_row(r) for r in session.execute(query)]


def counts(engine: Engine, *, backfill_id: str | None = None) -> dict[str, dict[str, int]]:
    """{job_type: {status: n}} (every status present, zeros included); `parked` counts pending
    jobs with a notBefore still ahead."""
    query = select(
        JOBS.c.jobType, JOBS.c.status,
        func.count(),
        func.count().filter((JOBS.c.status == "pending") & (JOBS.c.notBefore > NOW)),
    ).group_by(JOBS.c.jobType, JOBS.c.status)
    if backfill_id:
        query = query.where(JOBS.c.backfillId == backfill_id)
    found: dict[str, dict[str, int]] = {}
    with transaction(engine) as session:
        for job_type, status, n, parked in session.execute(query):
            by_status = found.setdefault(job_type, {s: 0 for s in (*JOB_STATUSES, "parked")})
            by_status[status] = n
            by_status["parked"] += parked
    return found


@dataclass(frozen=True)
class BackfillProgress:
    id: str
    job_type: str
    description: str | None
    state: str
    total_ids: int
    skipped_ids: int
    total_jobs: int
    by_status: dict[str, int]
    created_at: datetime

    @property
    def finished_jobs(self) -> int:
        return self.by_status.get("completed", 0) + self.by_status.get("failed", 0)

    @property
    def done(self) -> bool:
        return self.state == "enqueued" and self.finished_jobs >= self.total_jobs


def backfill_progress(engine: Engine, backfill_id: str) -> BackfillProgress | None:
    with transaction(engine) as session:
        row = session.execute(select(BACKFILLS).where(BACKFILLS.c.id == backfill_id)).first()
    if row is None:
        return None
    by_type = counts(engine, backfill_id=backfill_id)
    by_status = by_type.get(row.jobType, {s: 0 for s in (*JOB_STATUSES, "parked")})
    return BackfillProgress(
        id=row.id, job_type=row.jobType, description=row.description, state=row.state,
        total_ids=row.totalIds, skipped_ids=row.skippedIds, total_jobs=row.totalJobs,
        by_status=by_status, created_at=row.createdAt,
    )


def recent_backfills(engine: Engine, limit: int = 5) -> list[BackfillProgress]:
    with transaction(engine) as session:
        ids = session.execute(
            select(BACKFILLS.c.id).order_by(BACKFILLS.c.createdAt.desc()).limit(limit)
        ).scalars().all()
    return [p for p in (backfill_progress(engine, i) for i in ids) if p]


def cancel(engine: Engine, job_ids: Iterable[str]) -> list[str]:
    """Pending or running jobs become failed with errorClass 'Cancelled' (a running one's worker
    finds its lease gone and stops writing). Returns the ids cancelled."""
    with transaction(engine) as session:
        return list(session.execute(
            update(JOBS)
            .where(JOBS.c.id.in_(list(job_ids)), JOBS.c.status.in_(("pending", "running")))
            .values({"status": "failed", "errorClass": "Cancelled", "error": "cancelled by an operator",
                     "completedAt": NOW, "leaseUntil": None, "notBefore": None, "updatedAt": NOW})
            .returning(JOBS.c.id)
        ).scalars())


def reset_for_retry(engine: Engine, job_ids: Iterable[str]) -> list[tuple[str, str]]:
    """Failed jobs go back to pending with a fresh retry budget. Returns (id, jobType) to send."""
    with transaction(engine) as session:
        return [tuple(r) for r in session.execute(
            update(JOBS)
            .where(JOBS.c.id.in_(list(job_ids)), JOBS.c.status == "failed")
            .values({"status": "pending", "retryCount": 0, "error": None, "errorClass": None,
                     "completedAt": None, "notBefore": None, "leaseUntil": None, "enqueuedAt": NOW,
                     "updatedAt": NOW})
            .returning(JOBS.c.id, JOBS.c.jobType)
        )]


def failed_job_ids(engine: Engine, *, job_type: str | None = None, backfill_id: str | None = None,
                   limit: int = 10_000) -> list[str]:
    query = select(JOBS.c.id).where(JOBS.c.status == "failed").limit(limit)
    if job_type:
        query = query.where(JOBS.c.jobType == job_type)
    if backfill_id:
        query = query.where(JOBS.c.backfillId == backfill_id)
    with transaction(engine) as session:
        return list(session.execute(query).scalars())
