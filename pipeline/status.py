"""What `spotify-sync status` shows, gathered in one place: jobs by type and status, recent
backfills, the fleet's penalty box and rate budget, and what the app may call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import Engine

from pipeline.errors import PipelineError
from pipeline.store import ledger
from shared.keys import RedisKeys
from shared.redis_conn import server_time_ms
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
    capabilities: list[Any] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def snapshot(settings: Settings, engine: Engine, redis: Any | None, *, backfills: int = 5) -> Snapshot:
    snap = Snapshot(ledger.counts(engine), ledger.recent_backfills(engine, backfills))
    client_id = snap.client_id = settings.spotify_client_id
    snap.rate_limit = str(settings.spotify_rate_limit)
    if not client_id:
        snap.problems.append("SPOTIFY_CLIENT_ID is not set: no penalty box, budget or capabilities to show")
        return snap
    from pipeline.store.capabilities import PostgresCapabilityRows

    snap.capabilities = sorted(PostgresCapabilityRows(engine).load(client_id).values(), key=lambda s: s.capability)
    if redis is None:
        return snap
    keys = RedisKeys(settings.redis_namespace)
    try:
        from pipeline.errors import RateLimited
        from pipeline.ratecontrol.penalty_box import RedisPenaltyBox

        try:
            RedisPenaltyBox(redis, keys.penalty_box(client_id)).check()
            snap.penalty_s = 0.0
        except RateLimited as limited:
            snap.penalty_s, snap.penalty_reason = limited.retry_after_s, limited.reason
        now_ms = server_time_ms(redis)
        window_ms = settings.spotify_rate_limit.per_s * 1000
        snap.rate_used = int(redis.zcount(keys.rate_bucket(client_id), now_ms - window_ms, "+inf"))
    except (PipelineError, RedisError) as exc:  # show what we can
        snap.problems.append(f"Redis: {exc.__class__.__name__}: {exc}")
    return snap
