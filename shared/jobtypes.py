"""The job types, in one place: what each is called, where its messages go, how long a run may
take, what it does and how operators name it. The schema's check constraint, the broker's queues,
the actors, the CLI's choices and `status` all read this list.

`work` names the function (in "module:function" form) that does a job of the type, given the
worker's Context and the claimed Job; it is resolved when a worker first needs it. A name, not
the function itself: the schema (shared/models.py) reads this registry, and the work functions
import the store, which imports the schema.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any


@dataclass(frozen=True)
class JobType:
    name: str  # the jobType column, the actor's name
    cli_label: str  # how operators name it: `spotify-sync enqueue track-sync`
    queue: str
    priority: int  # lower runs first within a worker process (Dramatiq)
    time_limit_s: int  # a run past this is interrupted by Dramatiq (and retried later)
    work: str  # "module:function" (see the module docstring)
    summary: str

    def work_function(self) -> Callable[[Any, Any], dict]:
        return _resolve(self.work)


@cache
def _resolve(dotted: str) -> Callable[[Any, Any], dict]:
    module, _, function = dotted.partition(":")
    return getattr(importlib.import_module(module), function)


# Library syncs first in every worker process, then popularity, then backfills: a flood of
# backfill never starves a user's library (workers/broker.py).
JOB_TYPES: tuple[JobType, ...] = (
    JobType("track_sync", "track-sync", queue="tracks", priority=20, time_limit_s=600,
            work="pipeline.sync:sync_tracks",
            summary="Up to 100 tracks: metadata, popularity and (where the app may) audio features."),
    JobType("user_library", "user-library", queue="library", priority=0, time_limit_s=3600,
            work="pipeline.sync:sync_library",
            summary="A user's saved tracks, page by page from the job's checkpoint."),
    JobType("popularity_update", "popularity-update", queue="popularity", priority=10, time_limit_s=600,
            work="pipeline.sync:update_popularity",
            summary="Up to 50 songs' popularity, with a history row each."),
)
BY_NAME: dict[str, JobType] = {t.name: t for t in JOB_TYPES}
JOB_TYPE_NAMES: tuple[str, ...] = tuple(BY_NAME)
QUEUES: tuple[str, ...] = tuple(dict.fromkeys(t.queue for t in JOB_TYPES))
