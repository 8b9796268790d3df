"""The host's clock, for what is timed on one host only (a cached token's expiry, a capability's
recheck). Anything the fleet must agree on is timed by the database (pipeline/store/db.py) or
Redis (shared/redis_conn.py) instead."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Now in UTC, naive, as the database's TIMESTAMP WITHOUT TIME ZONE columns hold it."""
    return datetime.now(UTC).replace(tzinfo=None)
