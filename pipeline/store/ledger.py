"""The job ledger: every statement on `spotify_sync_jobs` and `spotify_backfills`. Every unit of
work is a row before its message is sent (docs/architecture.md, decision 1).

A job's life, every step a compare-and-set on its row (one UPDATE ... WHERE <expected state>):

    pending ──claim──> running ──complete──> completed
       ^                  │  └──fail──────> failed
       └──park / retry────┘
                 (notBefore set; park keeps retryCount, retry adds one)

- `claim` takes a pending job whose notBefore has passed, or a running one whose lease ran out
  (its worker died: that counts as a retry, unless PostgreSQL restarted since the run last wrote
  its row: `_lost_worker_charge`). It bumps `attempts`, the run's fencing token: every
  later transition of that run names it, so a run that lost its lease can no longer write.
- A worker is lost when its running job's lease ran out (`LEASE_RAN_OUT`, the one definition):
  `claim` takes such a job over and the reconciler takes it back, both through `_TAKE_OVER`, which
  charges the run to the job's retries (not after a database restart) and fails it (WorkerLost)
  once they are spent.
- Times come from PostgreSQL (one clock for every host, `pipeline/store/db.py`), stored as UTC
  without a time zone like the seed's columns.
- Nothing here sends messages: callers send one after the row says so (row first, then message).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from sqlalchemy import Connection, Engine, Table, TextClause, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import JSONB, insert

from pipeline.errors import ProducerBusy, StoreConflict
from pipeline.store.db import (
    NOW,
    NOW_SQL,
    autocommit,
    driver_autocommit,
    placeholder,
    seconds_ago,
    seconds_from_now,
    transaction,
    translated,
)
from pipeline.store.freshness import Freshness, from_verdicts, track_work_due, verdicts_sql
from shared.jobtypes import JOB_TYPE_NAMES
from shared.models import JOB_STATUSES, SpotifyBackfill, SpotifySyncJob

JOBS = cast(Table, SpotifySyncJob.__table__)
BACKFILLS = cast(Table, SpotifyBackfill.__table__)
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
        return Job.from_mapping(row._mapping)

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> Job:
        """From the row's columns by name (a SQLAlchemy Row's mapping, or a psycopg dict row)."""
        return Job(
            id=m["id"], job_type=m["jobType"], status=m["status"], payload=m["payload"] or {},
            user_id=m["userId"], backfill_id=m["backfillId"], retry_count=m["retryCount"],
            attempts=m["attempts"], lease_until=m["leaseUntil"], not_before=m["notBefore"],
            enqueued_at=m["enqueuedAt"], error_class=m["errorClass"], error=m["error"],
            result=m["result"], started_at=m["startedAt"], completed_at=m["completedAt"],
            created_at=m["createdAt"], updated_at=m["updatedAt"],
        )


@dataclass(frozen=True)
class Run(Job):
    """A job as its claim hands it to a worker: the row, the database's clock at the claim (the
    run's "now": its writes are stamped with it, so the run reads no clock of its own), and, when
    asked for, the freshness verdicts of the payload's ids as of the claim (a track_sync's first
    question). Not part of a job's JSON document (`spotify-sync jobs show`): that is a Job's."""

    claimed_at: datetime | None = None
    freshness: dict[str, Freshness] | None = None

    @classmethod
    def from_row(cls, row: Any) -> Run:
        return Run.from_mapping(row._mapping)

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> Run:
        verdicts = m["freshness"]
        return Run(**vars(Job.from_mapping(m)), claimed_at=m["claimedAt"],
                   freshness=from_verdicts(verdicts) if verdicts is not None else None)


@dataclass(frozen=True)
class Claim:
    """What a worker holding a message for a job may do.

    Exactly one of: `job` (it is yours, run it: a Run), `wait_until` (not yet: leased to another worker,
    or a message sent early; send the message again for then), or neither (finished or gone;
    parked, its message the dispatcher's to send; or failed just now as `gave_up`: drop it).
    """

    job: Job | None = None
    wait_until: datetime | None = None
    db_now: datetime | None = None
    gave_up: Job | None = None  # its worker was lost once too often: the claim failed it (WorkerLost)

    @property
    def finished(self) -> bool:
        return self.job is None and self.wait_until is None


@dataclass(frozen=True)
class NewJob:
    job_type: str
    payload: dict
    user_id: str | None = None

    def __post_init__(self) -> None:
        if self.job_type not in JOB_TYPE_NAMES:
            raise ValueError(f"job type must be one of {', '.join(JOB_TYPE_NAMES)}, got {self.job_type!r}")


# --- creating -----------------------------------------------------------------------------------


def create_backfill(engine: Engine, job_type: str, description: str, *, force: bool = False) -> str:
    with transaction(engine) as conn:
        return conn.execute(
            insert(BACKFILLS)
            .values({"jobType": job_type, "description": description, "force": force})
            .returning(BACKFILLS.c.id)
        ).scalar_one()


def mark_backfill_enqueued(engine: Engine, backfill_id: str) -> None:
    with transaction(engine) as conn:
        conn.execute(
            update(BACKFILLS)
            .where(BACKFILLS.c.id == backfill_id)
            .values({"state": "enqueued", "enqueuedAt": NOW_SQL, "updatedAt": NOW_SQL})
        )


def create_jobs(engine: Engine, jobs: Sequence[NewJob], *, backfill_id: str | None = None) -> list[str]:
    """Insert the rows in one multi-row statement and commit; returns their ids in order."""
    if not jobs:
        return []
    with transaction(engine) as conn:
        return _insert_jobs(conn, jobs, backfill_id)


def _insert_jobs(conn: Connection, jobs: Sequence[NewJob], backfill_id: str | None) -> list[str]:
    now = conn.execute(select(NOW_SQL)).scalar_one()
    rows = [
        {"jobType": j.job_type, "payload": j.payload, "userId": j.user_id, "backfillId": backfill_id,
         "enqueuedAt": now}
        for j in jobs
    ]
    # executemany with RETURNING: SQLAlchemy sends it as multi-row INSERTs ("insertmanyvalues").
    return list(conn.execute(insert(JOBS).returning(JOBS.c.id, sort_by_parameter_order=True), rows).scalars())


# --- the lost-worker rule -----------------------------------------------------------------------

WORKER_LOST = "WorkerLost"


def lease_ran_out(j: str = "j") -> str:
    """SQL: the job (alias `j`) is running but its lease ran out, so its worker was lost (killed,
    out of memory, a host gone, or cut off from the database longer than JOB_LEASE), or PostgreSQL
    itself was down while the lease ran (see `_lost_worker_charge`). The one definition: `claim`
    takes such a job over, the reconciler takes it back."""
    return f"({j}.status = 'running' AND {j}.\"leaseUntil\" < {NOW})"


# When PostgreSQL itself started, on the clock of NOW (UTC without a time zone).
_DB_STARTED = "(pg_postmaster_start_time() AT TIME ZONE 'UTC')"


def _lost_worker_charge(j: str) -> str:
    """SQL: what taking over this job costs its retries, 1 or 0. A run writes its row at least
    every third of JOB_LEASE while its worker lives (the lease keeper's renewals, checkpoints, its
    claim), each write stamping "updatedAt". When PostgreSQL has started since the run's last write,
    the database was down while the lease ran out: a worker that could not record anything is not
    to blame, and the takeover is free. The database cannot tell that worker from one that died
    during or just before the restart, so such a death goes free too: at most one free takeover
    per job per restart (the new run's writes come after it). A worker cut off by the network
    while PostgreSQL stayed up looks like a dead one, and is charged."""
    return f'(CASE WHEN {_DB_STARTED} > {j}."updatedAt" THEN 0 ELSE 1 END)'


def _retries_spent(j: str) -> str:
    return f'{j}."retryCount" + {_lost_worker_charge(j)} > :max_retries'


def _charge_lost_worker(j: str, running_status: str) -> str:
    """SQL SET clauses for taking over a job whose worker was lost: that run counts as a retry
    (unless the database was down meanwhile: `_lost_worker_charge`), and once the retries
    (:max_retries) are spent the job fails with WorkerLost. `running_status` is what the job
    becomes otherwise ('running' for a claim, 'pending' for the reconciler)."""
    spent = _retries_spent(j)
    return f"""
        status = CASE WHEN {spent} THEN 'failed' ELSE '{running_status}' END,
        "completedAt" = CASE WHEN {spent} THEN {NOW} END,
        "retryCount" = {j}."retryCount" + {_lost_worker_charge(j)},
        "errorClass" = '{WORKER_LOST}',
        error = CASE WHEN {_lost_worker_charge(j)} = 0
            THEN 'its lease ran out while PostgreSQL was down (not counted as a retry)'
            ELSE 'its worker stopped before finishing (the lease ran out)' END"""


# --- a run's transitions (workers) --------------------------------------------------------------

_LEASE = seconds_from_now("lease_s")


def _run_fence(j: str, id_sql: str, attempts_sql: str) -> str:
    """SQL: the row `j` is still this run's: the job `id_sql`, running, its fencing token
    (attempts, bumped by every claim) still `attempts_sql`. Every transition of a run after its
    claim names it (complete, fail, park, lease renewals, checkpoints), so a run whose lease was
    taken over, or whose job was cancelled, writes nothing."""
    return f"{j}.id = {id_sql} AND {j}.status = 'running' AND {j}.attempts = {attempts_sql}"


def _claimed(freshness: bool, *, driver: bool = False) -> str:
    """What a claim returns: the row, the database's clock, and (`freshness`) the verdicts of the
    payload's ids (none for a payload without a list of ids: the work says it is a bad job)."""
    ids = "ARRAY(SELECT jsonb_array_elements_text(j.payload->'ids'))"
    verdicts = (f"CASE WHEN jsonb_typeof(j.payload->'ids') = 'array' "
                f"THEN {verdicts_sql(ids, placeholder('ttl_s', driver=driver))} END"
                if freshness else "NULL::json")
    return f'RETURNING j.*, {NOW} AS "claimedAt", {verdicts} AS freshness'


def _claim_pending(freshness: bool) -> str:
    """The claim of a pending job that is due: psycopg's placeholders, for the driver's connection.
    Every job starts here: built once, and run without SQLAlchemy's execution around it (its
    execution context, its Row), which cost a worker about 0.25 ms of CPU a claim, half of it."""
    return f"""
        UPDATE spotify_sync_jobs j SET status = 'running', "leaseUntil" = {seconds_from_now("lease_s", driver=True)},
            "notBefore" = NULL, attempts = j.attempts + 1, "startedAt" = coalesce(j."startedAt", {NOW}),
            "updatedAt" = {NOW}
        WHERE j.id = %(id)s AND j.status = 'pending' AND (j."notBefore" IS NULL OR j."notBefore" <= {NOW})
        {_claimed(freshness, driver=True)}"""


def _take_over(freshness: bool) -> TextClause:
    return text(f"""
        UPDATE spotify_sync_jobs j SET {_charge_lost_worker("j", "running")},
            "leaseUntil" = CASE WHEN {_retries_spent("j")} THEN NULL ELSE {_LEASE} END,
            "notBefore" = NULL, attempts = j.attempts + 1, "updatedAt" = {NOW}
        WHERE j.id = :id AND {lease_ran_out("j")}
        {_claimed(freshness)}""")


_CLAIM_PENDING = {f: _claim_pending(f) for f in (False, True)}
_TAKE_OVER = {f: _take_over(f) for f in (False, True)}


def claim(engine: Engine, job_id: str, lease_s: int, *, max_retries: int,
          freshness_ttl_s: int | None = None) -> Claim:
    """Take the job for `lease_s` seconds, if it is runnable now: pending and due, or running
    with its worker lost (charged to its retries; past `max_retries` the job fails instead and
    `Claim.gave_up` holds it). See `Claim`. With `freshness_ttl_s` the job comes with the
    freshness verdicts of its ids (`Run.freshness`, that TTL) from the same statement.

    A pending job (the usual message) is claimed in one statement, its own transaction: one
    round trip. Only when that finds nothing are the take-over and the read of the row tried."""
    params = {"id": job_id, "lease_s": lease_s, "max_retries": max_retries, "ttl_s": freshness_ttl_s}
    wants = freshness_ttl_s is not None
    with driver_autocommit(engine) as driver, driver.cursor(row_factory=dict_row) as cursor:
        cursor.execute(_CLAIM_PENDING[wants], params)
        claimed = cursor.fetchone()
    if claimed is not None:
        return Claim(job=Run.from_mapping(claimed))
    with transaction(engine) as conn:
        row = conn.execute(_TAKE_OVER[wants], params).first()
        if row is not None:
            job = Run.from_row(row)
            return Claim(gave_up=job) if job.status == "failed" else Claim(job=job)
        current = conn.execute(
            select(JOBS.c.status, JOBS.c.notBefore, JOBS.c.leaseUntil, JOBS.c.enqueuedAt, NOW_SQL)
            .where(JOBS.c.id == job_id)
        ).first()
    if current is None or current.status in FINISHED:
        return Claim()
    if current.status == "pending" and current.enqueuedAt is None:
        return Claim()  # parked: the dispatcher sends its message when it is due (`take_due`)
    db_now = current[4]
    wait_until = current.notBefore if current.status == "pending" else current.leaseUntil
    return Claim(wait_until=wait_until or db_now, db_now=db_now)


def _this_run(job: Job) -> TextClause:
    """The row, if it is still this run's (`_run_fence`)."""
    return text(_run_fence(JOBS.name, ":run_id", ":run_attempts")).bindparams(run_id=job.id,
                                                                              run_attempts=job.attempts)


def _run_update(engine: Engine, job: Job, values: dict) -> bool:
    with autocommit(engine) as conn:  # one statement: its own transaction, one round trip
        return _update_run(conn, job, values)


def _update_run(conn: Connection, job: Job, values: dict) -> bool:
    done = conn.execute(
        update(JOBS).where(_this_run(job)).values({**values, "updatedAt": NOW_SQL}).returning(JOBS.c.id)
    ).first()
    return done is not None


def _lease_values(lease_s: int, checkpoint: dict | None) -> dict[str, Any]:
    """A renewed lease, and the checkpoint merged into `result` when there is one."""
    values: dict[str, Any] = {"leaseUntil": text(seconds_from_now("lease_s")).bindparams(lease_s=lease_s)}
    if checkpoint is not None:
        values["result"] = func.coalesce(JOBS.c.result, text("'{}'::jsonb")).op("||")(
            bindparam("checkpoint", checkpoint, type_=JSONB)
        )
    return values


def renew_lease(engine: Engine, job: Job, lease_s: int, *, checkpoint: dict | None = None) -> bool:
    """Extend the lease (a long job calls this as it progresses), saving a checkpoint in `result`.

    False: the lease was lost (another worker took the job over, or an operator cancelled it);
    the caller should stop."""
    return _run_update(engine, job, _lease_values(lease_s, checkpoint))


def save_checkpoint(conn: Connection, job: Job, lease_s: int, checkpoint: dict) -> bool:
    """`renew_lease` inside another store function's transaction, so that a page's rows and the
    checkpoint saying it was done commit together (pipeline/store/songs.py). False: the lease
    was lost (the caller rolls back and stops)."""
    return _update_run(conn, job, _lease_values(lease_s, checkpoint))


def renew_leases(engine: Engine, runs: Sequence[Job], lease_s: int) -> set[str]:
    """Extend the leases of these runs in one statement; returns the ids still held (a missing
    one was taken over or cancelled)."""
    if not runs:
        return set()
    with autocommit(engine) as conn:
        held = conn.execute(
            text(
                f'UPDATE spotify_sync_jobs j SET "leaseUntil" = {_LEASE}, "updatedAt" = {NOW} '
                "FROM unnest(CAST(:ids AS text[]), CAST(:attempts AS int[])) AS r(id, attempts) "
                f"WHERE {_run_fence('j', 'r.id', 'r.attempts')} RETURNING j.id"
            ),
            {"lease_s": lease_s, "ids": [r.id for r in runs], "attempts": [r.attempts for r in runs]},
        ).scalars()
        return set(held)


# Built once, bound per job, and run on the driver's own connection (db.driver_autocommit): every
# job ends here, and building the statement anew (the values' coercion, the cache key of a new
# tree) cost a worker more CPU than the rest of its ledger calls; SQLAlchemy's execution around
# the built one (0.4-0.5 ms, with the JSONB result's bind) was still most of what is left.
_COMPLETE = f"""
    UPDATE spotify_sync_jobs j SET status = 'completed', "completedAt" = {NOW}, "leaseUntil" = NULL,
        "notBefore" = NULL, result = %(result)s, error = NULL, "errorClass" = NULL, "updatedAt" = {NOW}
    WHERE {_run_fence("j", "%(run_id)s", "%(run_attempts)s")}
    RETURNING j.id"""


def complete(engine: Engine, job: Job, result: dict) -> bool:
    with driver_autocommit(engine) as driver, driver.cursor() as cursor:  # one statement, one round trip
        cursor.execute(_COMPLETE, {"run_id": job.id, "run_attempts": job.attempts, "result": Jsonb(result)})
        return cursor.fetchone() is not None


def fail(engine: Engine, job: Job, error_class: str, message: str, *, result: dict | None = None) -> bool:
    values = {"status": "failed", "completedAt": NOW_SQL, "leaseUntil": None, "notBefore": None,
              "errorClass": error_class, "error": message[:2000]}
    if result is not None:
        values["result"] = result
    return _run_update(engine, job, values)


def park(engine: Engine, job: Job, not_before: datetime, error_class: str, message: str,
         *, count_retry: bool = False) -> bool:
    """Back to pending until `not_before` (a rate limit: count_retry False; a backoff: True).
    The error stays on the row so an operator sees why it waits. No message is out for a parked
    job (enqueuedAt NULL): `take_due` hands it to the dispatcher once `not_before` has passed,
    so the ledger alone knows when it runs again, whatever the broker lost meanwhile."""
    values: dict[str, Any] = {"status": "pending", "leaseUntil": None, "notBefore": not_before,
                              "enqueuedAt": None, "errorClass": error_class, "error": message[:2000]}
    if count_retry:
        values["retryCount"] = JOBS.c.retryCount + 1
    return _run_update(engine, job, values)


def last_finished(engine: Engine, job: Job) -> str | None:
    """How the latest earlier finished job of this type for this job's user ended: completed,
    failed (cancelled included), or None when there was none."""
    with transaction(engine) as conn:
        return conn.execute(
            select(JOBS.c.status)
            .where(JOBS.c.jobType == job.job_type, JOBS.c.userId == job.user_id, JOBS.c.id != job.id,
                   JOBS.c.status.in_(FINISHED))
            .order_by(JOBS.c.completedAt.desc().nulls_last())
            .limit(1)
        ).scalar()


def db_now(engine: Engine) -> datetime:
    """The database's clock (UTC), the one every host's jobs are timed by."""
    with autocommit(engine) as conn:
        return conn.execute(select(NOW_SQL)).scalar_one()


# --- operators ----------------------------------------------------------------------------------


def get_job(engine: Engine, job_id: str) -> Job | None:
    """By id, or by an unambiguous id prefix (at least 6 characters)."""
    with transaction(engine) as conn:
        row = conn.execute(select(JOBS).where(JOBS.c.id == job_id)).first()
        if row is None and len(job_id) >= 6:
            rows = conn.execute(select(JOBS).where(JOBS.c.id.startswith(job_id, autoescape=True)).limit(2)).all()
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
    with transaction(engine) as conn:
        return [Job.from_row(r) for r in conn.execute(query)]


def counts(engine: Engine, *, backfill_id: str | None = None) -> dict[str, dict[str, int]]:
    """{job_type: {status: n}} (every status present, zeros included); `parked` counts pending
    jobs with a notBefore still ahead."""
    query = select(
        JOBS.c.jobType, JOBS.c.status,
        func.count(),
        func.count().filter((JOBS.c.status == "pending") & (JOBS.c.notBefore > NOW_SQL)),
    ).group_by(JOBS.c.jobType, JOBS.c.status)
    if backfill_id:
        query = query.where(JOBS.c.backfillId == backfill_id)
    found: dict[str, dict[str, int]] = {}
    with transaction(engine) as conn:
        for job_type, status, n, parked in conn.execute(query):
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
    with transaction(engine) as conn:
        row = conn.execute(select(BACKFILLS).where(BACKFILLS.c.id == backfill_id)).first()
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
    with transaction(engine) as conn:
        ids = conn.execute(
            select(BACKFILLS.c.id).order_by(BACKFILLS.c.createdAt.desc()).limit(limit)
        ).scalars().all()
    return [p for p in (backfill_progress(engine, i) for i in ids) if p]


def cancel(engine: Engine, job_ids: Iterable[str]) -> list[str]:
    """Pending or running jobs become failed with errorClass 'Cancelled' (a running one's worker
    finds its lease gone and stops writing). Returns the ids cancelled."""
    with transaction(engine) as conn:
        return list(conn.execute(
            update(JOBS)
            .where(JOBS.c.id.in_(list(job_ids)), JOBS.c.status.in_(("pending", "running")))
            .values({"status": "failed", "errorClass": "Cancelled", "error": "cancelled by an operator",
                     "completedAt": NOW_SQL, "leaseUntil": None, "notBefore": None, "updatedAt": NOW_SQL})
            .returning(JOBS.c.id)
        ).scalars())


def reset_for_retry(engine: Engine, job_ids: Iterable[str]) -> list[tuple[str, str]]:
    """Failed jobs go back to pending with a fresh retry budget. Returns (id, jobType) to send."""
    with transaction(engine) as conn:
        return [tuple(r) for r in conn.execute(
            update(JOBS)
            .where(JOBS.c.id.in_(list(job_ids)), JOBS.c.status == "failed")
            .values({"status": "pending", "retryCount": 0, "error": None, "errorClass": None,
                     "completedAt": None, "notBefore": None, "leaseUntil": None, "enqueuedAt": NOW_SQL,
                     "updatedAt": NOW_SQL})
            .returning(JOBS.c.id, JOBS.c.jobType)
        )]


def failed_job_ids(engine: Engine, *, job_type: str | None = None, backfill_id: str | None = None,
                   limit: int = 10_000) -> list[str]:
    query = select(JOBS.c.id).where(JOBS.c.status == "failed").limit(limit)
    if job_type:
        query = query.where(JOBS.c.jobType == job_type)
    if backfill_id:
        query = query.where(JOBS.c.backfillId == backfill_id)
    with transaction(engine) as conn:
        return list(conn.execute(query).scalars())


# --- producers: backfills of many jobs ----------------------------------------------------------


@dataclass(frozen=True)
class Enqueued:
    """What a producer made: a backfill of `jobs` jobs for `total_ids` ids, `skipped_ids` of them
    left out (duplicates, or fresh)."""

    backfill_id: str | None
    total_ids: int
    skipped_ids: int
    jobs: int

    def summary(self) -> str:
        return (f"{self.jobs} job(s) enqueued for {self.total_ids - self.skipped_ids} id(s)"
                f" ({self.skipped_ids} skipped: duplicate or fresh)"
                + (f", backfill {self.backfill_id}" if self.backfill_id else ""))


def create_track_backfill(engine: Engine, ids: Iterable[str], *, description: str, force: bool, ttl_s: int,
                          per_job: int, on_read: Callable[[int], None] = lambda n: None) -> Enqueued:
    """A track_sync backfill for a stream of ids, in bounded memory, committed in one transaction:
    the ids go into a temporary table with COPY, and one INSERT ... SELECT drops duplicates and
    what needs no work (songs.track_work_due, the freshness rule) and cuts the rest into jobs of
    `per_job` ids in input order. `on_read(n)` is called every 100,000 ids read. Nothing is left
    behind when the stream raises (the backfill row included) or holds no id."""
    total = 0
    with translated():
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cursor:  # type: ignore[attr-defined]  # psycopg's cursor is a context manager
                cursor.execute(
                    "INSERT INTO spotify_backfills (\"jobType\", description, force) VALUES ('track_sync', %s, %s) "
                    "RETURNING id", (description, force))
                backfill_id = cursor.fetchone()[0]
                cursor.execute("CREATE TEMP TABLE backfill_ids (pos bigserial, id text NOT NULL) ON COMMIT DROP")
                with cursor.copy("COPY backfill_ids (id) FROM STDIN") as copy:
                    for spotify_id in ids:
                        copy.write_row((spotify_id,))
                        total += 1
                        if total % 100_000 == 0:
                            on_read(total)
                if total == 0:  # nothing to do: leave no empty backfill behind
                    raw.rollback()
                    return Enqueued(None, 0, 0, 0)
                due = track_work_due("unique_ids.id", ttl_param="%(ttl)s")
                cursor.execute(
                    f"""
                    INSERT INTO spotify_sync_jobs ("jobType", payload, "backfillId", "enqueuedAt")
                    SELECT 'track_sync', jsonb_build_object('ids', jsonb_agg(id ORDER BY pos), 'force', %(force)s),
                           %(backfill)s, {NOW}
                    FROM (
                        SELECT id, pos, (row_number() OVER (ORDER BY pos) - 1) / %(per_job)s AS chunk
                        FROM (SELECT DISTINCT ON (id) id, pos FROM backfill_ids ORDER BY id, pos) AS unique_ids
                        WHERE %(force)s OR {due}
                    ) AS wanted
                    GROUP BY chunk
                    ORDER BY chunk
                    """,
                    {"force": force, "backfill": backfill_id, "per_job": per_job, "ttl": ttl_s},
                )
                job_count = cursor.rowcount
                cursor.execute(
                    f"""
                    UPDATE spotify_backfills SET "totalIds" = %(total)s, "totalJobs" = %(jobs)s,
                        "skippedIds" = %(total)s - (SELECT coalesce(sum(jsonb_array_length(payload->'ids')), 0)
                                                    FROM spotify_sync_jobs WHERE "backfillId" = %(backfill)s),
                        "updatedAt" = {NOW}
                    WHERE id = %(backfill)s
                    RETURNING "skippedIds"
                    """,
                    {"total": total, "jobs": job_count, "backfill": backfill_id},
                )
                skipped = cursor.fetchone()[0]
            raw.commit()
        except BaseException:
            raw.rollback()
            raise
        finally:
            raw.close()
    return Enqueued(backfill_id, total, skipped, job_count)


def create_job_group(engine: Engine, new_jobs: Sequence[NewJob], description: str) -> Enqueued:
    """A small group of jobs (a library sweep, a popularity refresh) under one backfill row, all
    committed together. The caller sends their messages (`pending_job_ids`)."""
    if not new_jobs:
        return Enqueued(None, 0, 0, 0)
    total_ids = sum(len(j.payload.get("ids", [])) or 1 for j in new_jobs)
    with transaction(engine) as conn:
        backfill_id = conn.execute(
            insert(BACKFILLS).values({"jobType": new_jobs[0].job_type, "description": description,
                                      "totalIds": total_ids, "totalJobs": len(new_jobs)})
            .returning(BACKFILLS.c.id)
        ).scalar_one()
        _insert_jobs(conn, new_jobs, backfill_id)
    return Enqueued(backfill_id, total_ids, 0, len(new_jobs))


def pending_job_ids(engine: Engine, backfill_id: str, *, after: str, limit: int) -> list[str]:
    """The backfill's pending job ids after `after`, in id order (keyset paging for the sends)."""
    with transaction(engine) as conn:
        return list(conn.execute(
            text('SELECT id FROM spotify_sync_jobs WHERE "backfillId" = :b AND id > :after '
                 "AND status = 'pending' ORDER BY id LIMIT :n"),
            {"b": backfill_id, "after": after, "n": limit},
        ).scalars())


@contextmanager
def producer_turn(engine: Engine, job_type: str, *, timeout_s: float) -> Iterator[None]:
    """Producers of one job type take turns: a transaction-level advisory lock, held for the
    block, waited for at most `timeout_s` (then ProducerBusy). The block's own statements run in
    transactions of their own, so what it commits is seen by the next producer at once."""
    with transaction(engine) as conn:
        conn.execute(text("SELECT set_config('lock_timeout', :ms, true)"),
                     {"ms": f"{max(1, int(timeout_s * 1000))}ms"})
        try:
            with translated():
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                             {"key": f"spotify-sync producer: {job_type}"})
        except StoreConflict:
            raise ProducerBusy(f"another {job_type} producer is running (waited {timeout_s:g}s for it); "
                               "try again when it has finished") from None
        yield


def library_candidates(engine: Engine, user_ids: Sequence[str] | None) -> dict[str, bool]:
    """{user id: has an unfinished library job} for the users with an active connection (all of
    them, or those of `user_ids`)."""
    query = (
        'SELECT c."userId", EXISTS (SELECT 1 FROM spotify_sync_jobs j WHERE j."userId" = c."userId" '
        "AND j.\"jobType\" = 'user_library' AND j.status IN ('pending', 'running')) AS busy "
        "FROM spotify_connections c WHERE c.status = 'active'"
    )
    params: dict[str, Any] = {}
    if user_ids is not None:
        query += ' AND c."userId" = ANY(:users)'
        params["users"] = list(user_ids)
    with transaction(engine) as conn:
        return {user: busy for user, busy in conn.execute(text(query + ' ORDER BY c."userId"'), params)}


def stalest_popularity(engine: Engine, *, older_than_s: int, limit: int) -> list[str]:
    """Spotify ids of the `limit` songs whose popularity is older than `older_than_s` (never
    refreshed first), leaving out songs an unfinished popularity job already covers."""
    with transaction(engine) as conn:
        return list(conn.execute(
            text(
                'SELECT "spotifyId" FROM songs WHERE "spotifyId" IS NOT NULL AND ("lastPopularityUpdate" IS NULL '
                f'OR "lastPopularityUpdate" < {seconds_ago("age")}) '
                "AND NOT EXISTS (SELECT 1 FROM spotify_sync_jobs j WHERE j.\"jobType\" = 'popularity_update' "
                "AND j.status IN ('pending', 'running') AND j.payload->'ids' ? songs.\"spotifyId\") "
                'ORDER BY "lastPopularityUpdate" ASC NULLS FIRST LIMIT :limit'
            ),
            {"age": older_than_s, "limit": limit},
        ).scalars())


# --- the dispatcher -----------------------------------------------------------------------------


def take_due(engine: Engine, *, limit: int) -> list[tuple[str, str]]:
    """Parked jobs whose not-before time has passed, the longest due first, at most `limit`: each
    is marked sent (enqueuedAt now) in the same statement, so of several hosts one takes each
    job. Returns (id, jobType) for the caller to send."""
    with transaction(engine) as conn:
        return [(r[0], r[1]) for r in conn.execute(
            text(f"""
                WITH due AS (
                    SELECT id FROM spotify_sync_jobs
                    WHERE status = 'pending' AND "enqueuedAt" IS NULL AND "notBefore" <= {NOW}
                    ORDER BY "notBefore" LIMIT :n FOR UPDATE SKIP LOCKED)
                UPDATE spotify_sync_jobs j SET "enqueuedAt" = {NOW}, "updatedAt" = {NOW}
                FROM due WHERE j.id = due.id
                RETURNING j.id, j."jobType"
                """),
            {"n": limit},
        )]


def parked_count(engine: Engine) -> int:
    """Parked jobs with no message out (due or not): the dispatcher's backlog."""
    with transaction(engine) as conn:
        return conn.execute(text('SELECT count(*) FROM spotify_sync_jobs WHERE status = \'pending\' '
                                 'AND "enqueuedAt" IS NULL')).scalar_one()


# --- the reconciler -----------------------------------------------------------------------------


def take_back_lost(engine: Engine, *, max_retries: int, limit: int) -> list[tuple[str, str, str]]:
    """Jobs whose worker was lost go back to pending (or fail, retries spent): the same rule as a
    claim's take-over. Rows locked by another host are skipped. Returns (id, jobType, status)."""
    with transaction(engine) as conn:
        return [tuple(r) for r in conn.execute(
            text(f"""
                WITH lost AS (
                    SELECT id FROM spotify_sync_jobs j WHERE {lease_ran_out("j")}
                    ORDER BY "leaseUntil" LIMIT :n FOR UPDATE SKIP LOCKED)
                UPDATE spotify_sync_jobs j SET {_charge_lost_worker("j", "pending")},
                    "leaseUntil" = NULL, "notBefore" = NULL, "enqueuedAt" = {NOW}, "updatedAt" = {NOW}
                FROM lost WHERE j.id = lost.id
                RETURNING j.id, j."jobType", j.status"""),
            {"n": limit, "max_retries": max_retries},
        )]


def pending_sent_before(engine: Engine, moment: datetime, *, after: str, limit: int) -> list[str]:
    """Ids of pending jobs whose last message was sent before `moment`, after `after` in id order
    (parked jobs, which have no message out, are the dispatcher's: `take_due`)."""
    with transaction(engine) as conn:
        return list(conn.execute(
            text('SELECT id FROM spotify_sync_jobs WHERE status = \'pending\' AND id > :after '
                 'AND "enqueuedAt" < :moment ORDER BY id LIMIT :n'),
            {"after": after, "moment": moment, "n": limit},
        ).scalars())


def mark_resent(engine: Engine, job_ids: Sequence[str], sent_before: datetime) -> list[tuple[str, str, float]]:
    """Move `enqueuedAt` of these pending jobs to now, if it is still before `sent_before` (a
    compare-and-set: of several hosts, one wins each job). Returns (id, jobType, seconds until
    it may run) of the jobs this call moved: the caller sends their messages."""
    if not job_ids:
        return []
    with transaction(engine) as conn:
        return [(r[0], r[1], float(r[2] or 0)) for r in conn.execute(
            text(f"""
                UPDATE spotify_sync_jobs SET "enqueuedAt" = {NOW}, "updatedAt" = {NOW}
                WHERE id = ANY(:ids) AND status = 'pending' AND "enqueuedAt" < :before
                RETURNING id, "jobType", greatest(0, extract(epoch FROM "notBefore" - {NOW}))"""),
            {"ids": list(job_ids), "before": sent_before},
        )]


def close_abandoned_backfills(engine: Engine, created_before: datetime) -> None:
    """A producer that died while sending left its backfill 'enqueuing'; once its jobs are re-sent
    (the reconciler) its progress counts them as enqueued."""
    with transaction(engine) as conn:
        conn.execute(
            text(f"""UPDATE spotify_backfills SET state = 'enqueued', "enqueuedAt" = {NOW}, "updatedAt" = {NOW}
                     WHERE state = 'enqueuing' AND "createdAt" < :before"""),
            {"before": created_before},
        )


@dataclass(frozen=True)
class JobsSince:
    total: int
    finished: int
    failed: int
    parked: int  # pending with a notBefore still ahead


def jobs_since(engine: Engine, since: datetime) -> JobsSince:
    """How the jobs created since `since` stand (the demo's progress line)."""
    with transaction(engine) as conn:
        row = conn.execute(text(f"""
            SELECT count(*), count(*) FILTER (WHERE status IN ('completed', 'failed')),
                   count(*) FILTER (WHERE status = 'failed'),
                   count(*) FILTER (WHERE status = 'pending' AND "notBefore" > {NOW})
            FROM spotify_sync_jobs WHERE "createdAt" >= :since"""), {"since": since}).one()
    return JobsSince(*row)


# --- users' connections (api/connections.py) -------------------------------------------------------


def latest_user_job(engine: Engine, user_id: str, job_type: str) -> Job | None:
    """The user's most recently created job of this type, whatever its status."""
    with transaction(engine) as conn:
        row = conn.execute(select(JOBS).where(JOBS.c.userId == user_id, JOBS.c.jobType == job_type)
                           .order_by(JOBS.c.createdAt.desc(), JOBS.c.id.desc()).limit(1)).first()
    return Job.from_row(row) if row else None


def cancel_user_jobs(engine: Engine, user_id: str, reason: str) -> list[str]:
    """The user's pending and running jobs become failed with errorClass 'Cancelled' and `reason`
    (a running one's worker finds its lease gone and stops writing). Returns the ids cancelled."""
    with transaction(engine) as conn:
        return list(conn.execute(
            update(JOBS)
            .where(JOBS.c.userId == user_id, JOBS.c.status.in_(("pending", "running")))
            .values({"status": "failed", "errorClass": "Cancelled", "error": reason, "completedAt": NOW_SQL,
                     "leaseUntil": None, "notBefore": None, "updatedAt": NOW_SQL})
            .returning(JOBS.c.id)
        ).scalars())
