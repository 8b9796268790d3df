"""The actors: one per job type of the registry (shared/jobtypes.py), named after it, on its queue
with its priority and time limit. Each runs its job through the ledger's protocol (workers/run.py)
around the type's work function (pipeline/sync.py); the messages carry only the job id."""

from __future__ import annotations

from collections.abc import Callable

import dramatiq

from shared.jobtypes import JOB_TYPES, JobType
from workers.run import run_job


def actor_function(job_type: JobType) -> Callable[[str], None]:
    """The function Dramatiq calls with a message's job id."""

    def run(job_id: str) -> None:
        work = job_type.work_function()
        run_job(job_id, job_type.name, lambda env, job: work(env.context, job))

    run.__name__ = run.__qualname__ = job_type.name
    run.__doc__ = job_type.summary
    return run


def declare_actors(broker: dramatiq.Broker) -> dict[str, dramatiq.Actor]:
    """Register one actor per job type on `broker` (actor name = job type). Dramatiq's own retries
    stay at 3 for what escapes the ledger (workers/broker.py)."""
    return {
        t.name: dramatiq.Actor(actor_function(t), broker=broker, actor_name=t.name, queue_name=t.queue,
                               priority=t.priority, options={"max_retries": 3, "time_limit": t.time_limit_s * 1000})
        for t in JOB_TYPES
    }
