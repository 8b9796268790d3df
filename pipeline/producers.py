"""Producers: turn an operator's request into job rows, commit, then send one message per job
carrying only its id (docs/architecture.md, decision 1). Policy only: every statement is the
ledger's (pipeline/store/ledger.py).

A backfill of a million ids runs in bounded memory: the ids stream into PostgreSQL, which drops
duplicates and what needs no work (the freshness rule) and cuts the rest into full jobs of 100,
and the job ids come back a chunk at a time while their messages are sent. If the producer dies
after the commit, the reconciler sends what it did not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import Engine

from pipeline.store import ledger
from pipeline.store.ledger import Enqueued, NewJob

# A track_sync job of 100 ids makes two full /tracks requests (50 each) and one full /audio-features
# request (100), in flight together (pipeline/sync.py). Jobs of 50 left every /audio-features
# request to pair two jobs in one process: a backfill ending on one odd job in each of two
# processes sent two half requests where one would do, and 601 requests at 300 a window need a
# third window (issue 16.5). Cut by 100, a backfill of N ids needs no more than ceil(N / 100).
TRACKS_PER_JOB = 100
POPULARITY_PER_JOB = 50  # GET /tracks?ids= takes 50, and a popularity refresh asks for nothing else
SEND_CHUNK = 1000  # job ids read at a time while sending
PRODUCER_LOCK_TIMEOUT_S = 60.0  # how long a producer waits for another of its job type

Send = Callable[[str, str], None]  # (job type, job id): enqueue its message
Progress = Callable[[str, int, int], None]  # (stage, done, total)

__all__ = ["Enqueued", "enqueue_track_sync", "enqueue_user_library", "enqueue_popularity_update"]


def _no_progress(stage: str, done: int, total: int) -> None:
    pass


def enqueue_track_sync(engine: Engine, send: Send, ids: Iterable[str], *, force: bool, track_ttl_s: int,
                       description: str = "track-sync", progress: Progress = _no_progress) -> Enqueued:
    """Jobs of up to 100 ids (full but the last) for the ids that have work to do (the
    freshness rule, pipeline/store/freshness.py), or for all of them when forced.

    `ids` must be normalised already; it is consumed once, as a stream. Should it raise part way
    (an unreadable file), nothing is created."""
    enqueued = ledger.create_track_backfill(engine, ids, description=description, force=force, ttl_s=track_ttl_s,
                                            per_job=TRACKS_PER_JOB,
                                            on_read=lambda n: progress("reading ids", n, 0))
    progress("reading ids", enqueued.total_ids, enqueued.total_ids)
    if enqueued.backfill_id is not None:
        _send_backfill(engine, send, enqueued, "track_sync", progress)
    return enqueued


def _send_backfill(engine: Engine, send: Send, enqueued: Enqueued, job_type: str, progress: Progress) -> None:
    """Send a message per pending job of the backfill, a chunk of ids at a time, then mark it enqueued."""
    assert enqueued.backfill_id is not None
    sent, after = 0, ""
    progress("sending messages", 0, enqueued.jobs)
    while chunk := ledger.pending_job_ids(engine, enqueued.backfill_id, after=after, limit=SEND_CHUNK):
        for job_id in chunk:
            send(job_type, job_id)
        sent += len(chunk)
        after = chunk[-1]
        progress("sending messages", sent, enqueued.jobs)
    ledger.mark_backfill_enqueued(engine, enqueued.backfill_id)


def enqueue_user_library(engine: Engine, send: Send, *, user_ids: list[str] | None, full: bool,
                         progress: Progress = _no_progress) -> tuple[Enqueued, list[str]]:
    """A user_library job per user (None: every user with an active connection).

    Users who already have one pending or running are left alone (returned second), and so are
    users without a connection (a UsageProblem for the CLI: they are returned second as well).

    Producers that skip work an unfinished job already covers check, then insert: two at once
    (cron and an operator, two hosts) would both see nothing and both insert, so they take turns
    (`ledger.producer_turn`), around the check and the job rows only. Once the rows are committed
    the next producer's check sees them, so the messages are sent after the turn (a hanging
    broker then holds up no other producer)."""
    with ledger.producer_turn(engine, "user_library", timeout_s=PRODUCER_LOCK_TIMEOUT_S):
        found = ledger.library_candidates(engine, user_ids)
        wanted = [u for u, busy in found.items() if not busy]
        left_alone = [u for u in (user_ids or found) if u not in wanted]
        description = "user-library " + ("--all" if user_ids is None else " ".join(user_ids)) + (" --full" if full else "")
        enqueued = ledger.create_job_group(engine, [NewJob("user_library", {"full": full}, user_id=u) for u in wanted],
                                           description)
    if enqueued.backfill_id is not None:
        _send_backfill(engine, send, enqueued, "user_library", progress)
    return enqueued, left_alone


def enqueue_popularity_update(engine: Engine, send: Send, *, older_than_s: int, limit: int,
                              progress: Progress = _no_progress) -> Enqueued:
    """Jobs of 50 for the `limit` songs whose popularity is stalest (never refreshed first),
    leaving out songs an unfinished popularity job already covers (taking turns like
    `enqueue_user_library`)."""
    with ledger.producer_turn(engine, "popularity_update", timeout_s=PRODUCER_LOCK_TIMEOUT_S):
        ids = ledger.stalest_popularity(engine, older_than_s=older_than_s, limit=limit)
        new_jobs = [NewJob("popularity_update", {"ids": ids[i : i + POPULARITY_PER_JOB]})
                    for i in range(0, len(ids), POPULARITY_PER_JOB)]
        enqueued = ledger.create_job_group(engine, new_jobs, f"popularity-update older than {older_than_s}s")
    if enqueued.backfill_id is not None:
        _send_backfill(engine, send, enqueued, "popularity_update", progress)
    return enqueued
