"""What the fleet has learned about Spotify's limits for a client id, read and cleared in one place
(`spotify-sync status`, `spotify-sync ratelimit show|clear`): the penalty box, the quota box of
its developer account, the budget (fixed, or learned: Redis's copy, else PostgreSQL's), the return
line of parked work and the capability rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis as redis_lib
from sqlalchemy import Engine

from pipeline.errors import RateLimited, RedisUnavailable
from pipeline.ratecontrol.budget import decode
from pipeline.ratecontrol.learning import LearnedState
from pipeline.ratecontrol.penalty_box import RedisPenaltyBox
from shared.keys import RedisKeys
from shared.redis_conn import server_time_ms
from shared.settings import Settings

WHAT = ("penalty", "quota", "budget", "capabilities")


@dataclass(frozen=True)
class Box:
    blocked_for_s: float
    reason: str | None
    until: datetime | None  # UTC

    @property
    def shut(self) -> bool:
        return self.blocked_for_s > 0


@dataclass(frozen=True)
class BudgetView:
    requests: int  # per window, in force now
    window_s: int
    learned: bool  # SPOTIFY_RATE_LIMIT=auto
    kept_in: str | None  # learned: "redis", "postgres" (Redis lost it) or None (nothing learned yet)
    ceiling: float | None  # learned: where the last window 429 came
    used: int  # admitted in the last window


@dataclass(frozen=True)
class FleetLimits:
    client_id: str
    developer_account: str
    penalty: Box
    quota: Box
    budget: BudgetView


def _box(client: redis_lib.Redis, key: str) -> Box:
    try:
        RedisPenaltyBox(client, key).check()
    except RateLimited as limited:
        until = datetime.fromtimestamp(limited.blocked_until, UTC) if limited.blocked_until else None
        return Box(limited.retry_after_s, limited.reason, until)
    return Box(0.0, None, None)


def read(settings: Settings, client: redis_lib.Redis, engine: Engine | None) -> FleetLimits:
    """The fleet's limits for SPOTIFY_CLIENT_ID. Raises RedisUnavailable when Redis does not answer."""
    from pipeline.wiring import quota_account  # late: wiring imports the whole client

    client_id, _ = settings.require_client_credentials()
    keys, rate = RedisKeys(settings.redis_namespace), settings.spotify_rate_limit
    try:
        penalty = _box(client, keys.penalty_box(client_id))
        quota = _box(client, keys.quota_box(quota_account(settings)))
        used = int(client.zcount(keys.rate_bucket(client_id), server_time_ms(client) - rate.per_s * 1000, "+inf"))
        state: LearnedState | None = decode(client.hgetall(keys.learned_budget(client_id))) if rate.learned else None
    except redis_lib.exceptions.RedisError as exc:
        raise RedisUnavailable(f"Redis did not answer: {exc.__class__.__name__}") from exc
    kept_in = "redis" if state is not None else None
    if rate.learned and state is None and engine is not None:
        from pipeline.store.ratecontrol import PostgresBudgetRows

        state = PostgresBudgetRows(engine).load(client_id)
        kept_in = "postgres" if state is not None else None
    requests = state.requests if state is not None else rate.requests
    budget = BudgetView(requests, rate.per_s, rate.learned, kept_in, state.ceiling if state else None, used)
    return FleetLimits(client_id, quota_account(settings), penalty, quota, budget)


def clear(settings: Settings, client: redis_lib.Redis, engine: Engine | None, what: tuple[str, ...] = WHAT) -> dict:
    """Forget what the fleet learned (for when Spotify support lifts a block): the boxes open at
    once, a learned budget starts again, capabilities are learned again from Spotify's next answers.
    Returns, for each thing cleared, how many records went."""
    from pipeline.wiring import quota_account

    client_id, _ = settings.require_client_credentials()
    keys = RedisKeys(settings.redis_namespace)
    redis_keys = {"penalty": [keys.penalty_box(client_id), keys.return_line(client_id)],
                  "quota": [keys.quota_box(quota_account(settings))],
                  "budget": [keys.learned_budget(client_id), keys.rate_refused(client_id)],
                  "capabilities": []}
    cleared: dict[str, int] = {}
    try:
        for thing in what:
            cleared[thing] = int(client.delete(*redis_keys[thing])) if redis_keys[thing] else 0
        if "capabilities" in what:
            # A new version makes every process read the (now empty) rows again at its next call.
            import uuid

            client.set(keys.capabilities_version(client_id), uuid.uuid4().hex)
    except redis_lib.exceptions.RedisError as exc:
        raise RedisUnavailable(f"Redis did not answer: {exc.__class__.__name__}") from exc
    if engine is not None and "budget" in what:
        from pipeline.store.ratecontrol import PostgresBudgetRows

        cleared["budget"] += PostgresBudgetRows(engine).forget(client_id)
    if engine is not None and "capabilities" in what:
        from pipeline.store.capabilities import PostgresCapabilityRows

        cleared["capabilities"] += PostgresCapabilityRows(engine).forget(client_id)
    return cleared


def as_document(limits: FleetLimits) -> dict[str, Any]:
    """Stable keys for --json: client_id, developer_account, penalty_box, quota, budget."""
    def box(b: Box) -> dict[str, Any]:
        return {"shut": b.shut, "blocked_for_s": round(b.blocked_for_s, 1), "reason": b.reason,
                "until": b.until.isoformat() if b.until else None}

    b = limits.budget
    return {"client_id": limits.client_id, "developer_account": limits.developer_account,
            "penalty_box": box(limits.penalty), "quota": box(limits.quota),
            "budget": {"requests": b.requests, "window_s": b.window_s, "learned": b.learned, "kept_in": b.kept_in,
                       "limit_measured_at": b.ceiling, "used": b.used}}


def as_lines(limits: FleetLimits) -> list[str]:
    """One line per thing, for a person."""
    p, q, b = limits.penalty, limits.quota, limits.budget
    budget = f"budget: {b.requests} requests per {b.window_s}s, {b.used} used in the last window"
    if b.learned:
        learned = ("nothing learned yet: the start" if b.kept_in is None else
                   f"learned, kept in {b.kept_in}" + (f", a 429 came at {b.ceiling:.0f}" if b.ceiling else ""))
        budget += f" ({learned})"
    return [
        "penalty box: " + (f"shut for {p.blocked_for_s:.0f}s more ({p.reason})" if p.shut else "open"),
        f"quota ({limits.developer_account}): " + (
            f"spent ({q.reason}); comes back in {q.blocked_for_s:.0f}s, at {q.until:%Y-%m-%d %H:%M:%S} UTC"
            if q.shut and q.until else "not spent"),
        budget,
    ]
