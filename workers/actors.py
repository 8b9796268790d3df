"""The three actors. Each loads its job through the ledger, calls the core, and finishes; the
messages carry only the job id. Queues and priorities: workers/broker.py."""

from __future__ import annotations

import dramatiq

from pipeline import sync
from workers.broker import ROUTES
from workers.middleware import run_job

# What a run may take at most before Dramatiq interrupts it (the job is then retried later).
TIME_LIMITS_MS = {"track_sync": 10 * 60_000, "popularity_update": 10 * 60_000, "user_library": 60 * 60_000}


def track_sync(job_id: str) -> None:
    """Up to 50 tracks: metadata, popularity and (where the app may) audio features."""
    run_job(job_id, "track_sync", lambda env, job: sync.sync_tracks(env.context, job))


def user_library(job_id: str) -> None:
    """A user's saved tracks, page by page from the job's checkpoint."""
    run_job(job_id, "user_library", lambda env, job: sync.sync_library(env.context, job))


def popularity_update(job_id: str) -> None:
    """Up to 50 songs' popularity, with a history row each."""
    run_job(job_id, "popularity_update", lambda env, job: sync.update_popularity(env.context, job))


FUNCTIONS = {"track_sync": track_sync, "user_library": user_library, "popularity_update": popularity_update}


def declare_actors(broker: dramatiq.Broker) -> dict[str, dramatiq.Actor]:
    """Register the three actors on `broker` (actor name = job type)."""
    declared = {}
    for job_type, fn in FUNCTIONS.items():
        queue, priority = ROUTES[job_type]
        declared[job_type] = dramatiq.actor(
            fn, actor_name=job_type, queue_name=queue, priority=priority, broker=broker,
            max_retries=3, time_limit=TIME_LIMITS_MS[job_type],
        )
    return declared
