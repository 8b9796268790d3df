"""Producers: turn an operator's request into job rows, commit, then send one message per job
carrying only its id (design.md, decision 1).

A backfill of a million ids runs in bounded memory: the ids stream into a temporary table with
COPY, PostgreSQL drops duplicates and fresh ids and cuts the rest into full batches of 50 in one
INSERT ... SELECT, and the job ids stream back out of a server-side cursor while their messages
are sent. If the producer dies after the commit, the reconciler sends what it did not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from psycopg.errors import LockNotAvailable
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from pipeline import jobs
from pipeline.jobs import NewJob
from shared.db import transaction

TRACKS_PER_JOB = 50  # GET /tracks?ids= takes 50
SEND_CHUNK = 1000  # job ids read from the cursor at a time while sending

Send = Callable[[str, str], None]  # (job type, job id): enqueue its message
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class Enqueued:
    backfill_id: str | None
    total_ids: int
    skipped_ids: int
    jobs: int

    def summary(self) -> str:
        return (f"{self.jobs} job(s) enqueued for {self.total_ids - self.skipped_ids} id(s)"
                f" ({self.skipped_ids} skipped: duplicate or fresh)"
                + (f", backfill {self.backfill_id}" if self.backfill_id else ""))


def _no_progress(stage: str, done: int, total: int) -> None:
    pass


def enqueue_track_sync(engine: Engine, send: Send, ids: Iterable[str], *, force: bool, track_ttl_s: int,
                       description: str = "track-sync", progress: Progress = _no_progress) -> Enqueued:
    """Jobs of up to 50 ids (full batches but the last) for the ids that are not fresh (a song
    is fresh when synced within the TTL with its audio features asked for; an id Spotify answered
    null for within the TTL is skipped too).

    `ids` must be normalised already; it is consumed once, as a stream."""
    backfill_id = jobs.create_backfill(engine, "track_sync", description, force=force)
    total = 0
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            cursor.execute("CREATE TEMP TABLE backfill_ids (pos bigserial, id text NOT NULL) ON COMMIT DROP")
            with cursor.copy("COPY backfill_ids (id) FROM STDIN") as copy:
                for spotify_id in ids:
                    copy.write_row((spotify_id,))
                    total += 1
                    if total % 100_000 == 0:
                        progress("reading ids", total, 0)
            progress("reading ids", total, total)
            if total == 0:  # nothing to do: leave no empty backfill behind
                cursor.execute("DELETE FROM spotify_backfills WHERE id = %(b)s", {"b": backfill_id})
                raw.commit()
                return Enqueued(None, 0, 0, 0)
            cursor.execute(
                """
                INSERT INTO spotify_sync_jobs ("jobType", payload, "backfillId", "enqueuedAt")
                SELECT 'track_sync', jsonb_build_object('ids', jsonb_agg(id ORDER BY pos), 'force', %(force)s),
                       %(backfill)s, statement_timestamp() AT TIME ZONE 'UTC'
                FROM (
                    SELECT id, pos, (row_number() OVER (ORDER BY pos) - 1) / %(per_job)s AS chunk
                    FROM (SELECT DISTINCT ON (id) id, pos FROM backfill_ids ORDER BY id, pos) AS unique_ids
                    WHERE %(force)s OR (
                        NOT EXISTS (
                            SELECT 1 FROM songs
                            WHERE songs."spotifyId" = unique_ids.id
                              AND songs."spotifyLastSync" > (statement_timestamp() AT TIME ZONE 'UTC')
                                                             - make_interval(secs => %(ttl)s)
                              -- tracks fresh but features never asked for (a library page cut
                              -- short): the job asks for the features alone
                              AND songs."audioFeaturesSynced")
                        -- and ids Spotify answered null for within the TTL are not asked again
                        AND NOT EXISTS (
                            SELECT 1 FROM spotify_unknown_tracks unknown
                            WHERE unknown."spotifyId" = unique_ids.id
                              AND unknown."checkedAt" > (statement_timestamp() AT TIME ZONE 'UTC')
                                                        - make_interval(secs => %(ttl)s)))
                ) AS wanted
                GROUP BY chunk
                ORDER BY chunk
                """,
                {"force": force, "backfill": backfill_id, "per_job": TRACKS_PER_JOB, "ttl": track_ttl_s},
            )
            job_count = cursor.rowcount
            cursor.execute(
                """
                UPDATE spotify_backfills SET "totalIds" = %(total)s, "totalJobs" = %(jobs)s,
                    "skippedIds" = %(total)s - (SELECT coalesce(sum(jsonb_array_length(payload->'ids')), 0)
                                                FROM spotify_sync_jobs WHERE "backfillId" = %(backfill)s),
                    "updatedAt" = statement_timestamp() AT TIME ZONE 'UTC'
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
    _send_backfill(engine, send, backfill_id, "track_sync", job_count, progress)
    return Enqueued(backfill_id, total, skipped, job_count)


def _send_backfill(engine: Engine, send: Send, backfill_id: str, job_type: str, job_count: int,
                   progress: Progress) -> None:
    """Send a message per job of the backfill, reading ids a chunk at a time (keyset paging)."""
    sent, after = 0, ""
    progress("sending messages", 0, job_count)
    while True:
        with transaction(engine) as session:
            chunk = session.execute(
                text('SELECT id FROM spotify_sync_jobs WHERE "backfillId" = :b AND id > :after '
                     "AND status = 'pending' ORDER BY id LIMIT :n"),
                {"b": backfill_id, "after": after, "n": SEND_CHUNK},
            ).scalars().all()
        if not chunk:
            break
        for job_id in chunk:
            send(job_type, job_id)
        sent += len(chunk)
        after = chunk[-1]
        progress("sending messages", sent, job_count)
    jobs.mark_backfill_enqueued(engine, backfill_id)


def _create_jobs(engine: Engine, new_jobs: list[NewJob], description: str) -> Enqueued:
    """A small group of jobs (a library sweep, a popularity refresh): the backfill and job rows,
    committed. The caller sends their messages (_send_backfill) once it has let go of its lock."""
    if not new_jobs:
        return Enqueued(None, 0, 0, 0)
    backfill_id = jobs.create_backfill(engine, new_jobs[0].job_type, description)
    ids = jobs.create_jobs(engine, new_jobs, backfill_id=backfill_id)
    total_ids = sum(len(j.payload.get("ids", [])) or 1 for j in new_jobs)
    with transaction(engine) as session:
        session.execute(
            text('UPDATE spotify_backfills SET "totalIds" = :ids, "totalJobs" = :jobs WHERE id = :b'),
            {"ids": total_ids, "jobs": len(ids), "b": backfill_id},
        )
    return Enqueued(backfill_id, total_ids, 0, len(ids))


PRODUCER_LOCK_TIMEOUT_S = 60.0  # how long a producer waits for another of its job type


class ProducerBusy(Exception):
    """Another producer of the same job type held the lock longer than PRODUCER_LOCK_TIMEOUT_S."""


@contextmanager
def _one_producer_at_a_time(engine: Engine, job_type: str) -> Iterator[None]:
    """Producers that skip work an unfinished job already covers (a user's library, a song's
    popularity) check, then insert: two at once (cron and an operator, two hosts) would both see
    nothing and both insert. A PostgreSQL advisory lock per job type makes them take turns.

    Hold it around the check and the job rows only: once the rows are committed the next
    producer's check sees them, so the messages are sent after it is released (a hanging broker
    then holds up no other producer). The wait is bounded (lock_timeout): a producer stuck
    behind another gives up with ProducerBusy instead of queueing up behind it without limit."""
    # A transaction-level lock: released when this transaction ends, however the block ends, and
    # the lock_timeout set for it does not stay on the pooled connection.
    with engine.begin() as connection:
        connection.execute(text("SELECT set_config('lock_timeout', :ms, true)"),
                           {"ms": f"{max(1, int(PRODUCER_LOCK_TIMEOUT_S * 1000))}ms"})
        try:
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                               {"key": f"spotify-sync producer: {job_type}"})
        except OperationalError as exc:
            if isinstance(exc.orig, LockNotAvailable):
                raise ProducerBusy(f"another {job_type} producer is running (waited {PRODUCER_LOCK_TIMEOUT_S:g}s "
                                   "for it); try again when it has finished") from None
            raise
        yield


def enqueue_user_library(engine: Engine, send: Send, *, user_ids: list[str] | None, full: bool,
                         progress: Progress = _no_progress) -> tuple[Enqueued, list[str]]:
    """A user_library job per user (None: every user with an active connection).

    Users who already have one pending or running are left alone (returned second), and so are
    users without a connection (a UsageProblem for the CLI: they are returned second as well)."""
    with _one_producer_at_a_time(engine, "user_library"):
        with transaction(engine) as session:
            query = (
                'SELECT c."userId", EXISTS (SELECT 1 FROM spotify_sync_jobs j WHERE j."userId" = c."userId" '
                "AND j.\"jobType\" = 'user_library' AND j.status IN ('pending', 'running')) AS busy "
                "FROM spotify_connections c WHERE c.status = 'active'"
            )
            params: dict = {}
            if user_ids is not None:
                query += ' AND c."userId" = ANY(:users)'
                params["users"] = user_ids
            found = {user: busy for user, busy in session.execute(text(query + ' ORDER BY c."userId"'), params)}
        wanted = [u for u, busy in found.items() if not busy]
        left_alone = [u for u in (user_ids or found) if u not in wanted]
        new_jobs = [NewJob("user_library", {"full": full}, user_id=u) for u in wanted]
        description = "user-library " + ("--all" if user_ids is None else " ".join(user_ids)) + (" --full" if full else "")
        enqueued = _create_jobs(engine, new_jobs, description)
    if new_jobs:  # after the lock: the rows are committed, the next producer sees them
        _send_backfill(engine, send, enqueued.backfill_id, "user_library", enqueued.jobs, progress)
    return enqueued, left_alone


def enqueue_popularity_update(engine: Engine, send: Send, *, older_than_s: int, limit: int,
                              progress: Progress = _no_progress) -> Enqueued:
    """Jobs of 50 for the `limit` songs whose popularity is stalest (never refreshed first),
    leaving out songs an unfinished popularity job already covers."""
    with _one_producer_at_a_time(engine, "popularity_update"):
        with transaction(engine) as session:
            ids = session.execute(
                text(
                    'SELECT "spotifyId" FROM songs WHERE "spotifyId" IS NOT NULL AND ("lastPopularityUpdate" IS NULL '
                    "OR \"lastPopularityUpdate\" < (statement_timestamp() AT TIME ZONE 'UTC') - make_interval(secs => :age)) "
                    "AND NOT EXISTS (SELECT 1 FROM spotify_sync_jobs j WHERE j.\"jobType\" = 'popularity_update' "
                    "AND j.status IN ('pending', 'running') AND j.payload->'ids' ? songs.\"spotifyId\") "
                    'ORDER BY "lastPopularityUpdate" ASC NULLS FIRST LIMIT :limit'
                ),
                {"age": older_than_s, "limit": limit},
            ).scalars().all()
        new_jobs = [NewJob("popularity_update", {"ids": ids[i : i + TRACKS_PER_JOB]})
                    for i in range(0, len(ids), TRACKS_PER_JOB)]
        enqueued = _create_jobs(engine, new_jobs, f"popularity-update older than {older_than_s}s")
    if new_jobs:  # after the lock: the rows are committed, the next producer sees them
        _send_backfill(engine, send, enqueued.backfill_id, "popularity_update", enqueued.jobs, progress)
    return enqueued
