"""What `spotify-sync status` shows, gathered in one place: jobs by type and status, recent
backfills, songs waiting for the search indexer, the fleet's penalty box and rate budget, and
what the app may call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import Engine

from pipeline.errors import PipelineError
from pipeline.store import ledger, search_index
from shared.settings import Settings


@dataclass
class Snapshot:
    counts: dict[str, dict[str, int]]
    backfills: list[ledger.BackfillProgress]
    client_id: str | None = None
    penalty_s: float | None = None
    penalty_reason: str | None = None
    rate_used: int | None = None
    rate_limit: str | None = None
    limits: Any = None  # pipeline.ratecontrol.report.FleetLimits: boxes and budget, when Redis answered
    capabilities: list[Any] = field(default_factory=list)
    search_queued: int | None = None  # song_search_queue's entries, up to SEARCH_QUEUE_COUNTED; None: no search
    problems: list[str] = field(default_factory=list)


# Counted up to this many: past it, the indexer is far behind a bulk load, and the exact figure
# would cost a scan of the whole queue.
SEARCH_QUEUE_COUNTED = 100_000


def snapshot(settings: Settings, engine: Engine, redis: Any | None, *, backfills: int = 5) -> Snapshot:
    snap = Snapshot(ledger.counts(engine), ledger.recent_backfills(engine, backfills))
    if search_index.installed(engine):
        snap.search_queued = search_index.queued(engine, at_most=SEARCH_QUEUE_COUNTED)
    client_id = snap.client_id = settings.spotify_client_id
    snap.rate_limit = str(settings.spotify_rate_limit)
    if not client_id:
        snap.problems.append("SPOTIFY_CLIENT_ID is not set: no penalty box, budget or capabilities to show")
        return snap
    from pipeline.store.capabilities import PostgresCapabilityRows

    snap.capabilities = sorted(PostgresCapabilityRows(engine).load(client_id).values(), key=lambda s: s.capability)
    if redis is None:
        return snap
    from pipeline.ratecontrol import report

    try:
        limits = snap.limits = report.read(settings, redis, engine)
    except (PipelineError, RedisError) as exc:  # show what we can
        snap.problems.append(f"Redis: {exc.__class__.__name__}: {exc}")
        return snap
    snap.penalty_s, snap.penalty_reason = limits.penalty.blocked_for_s, limits.penalty.reason
    snap.rate_used = limits.budget.used
    if settings.spotify_rate_limit.learned:
        snap.rate_limit = f"{limits.budget.requests}/{limits.budget.window_s}s (learned; {settings.spotify_rate_limit})"
    return snap
