"""What is stale: pure decisions over timestamps and TTLs (design.md, decision 6).

Track data lives TRACK_TTL (24 h), popularity POPULARITY_TTL (1 h); what is younger is not
fetched again unless forced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta


def is_fresh(synced_at: datetime | None, now: datetime, ttl_s: int) -> bool:
    return synced_at is not None and now - synced_at < timedelta(seconds=ttl_s)


def stale_ids(requested: Iterable[str], synced_at: Mapping[str, datetime | None], now: datetime, ttl_s: int,
              *, force: bool = False) -> list[str]:
    """The requested ids to fetch, in order, duplicates dropped: all of them when forced, else
    those never synced or synced longer ago than the TTL."""
    unique = list(dict.fromkeys(requested))
    if force:
        return unique
    return [i for i in unique if not is_fresh(synced_at.get(i), now, ttl_s)]


def features_missing(requested: Iterable[str], features_synced: Mapping[str, bool | None]) -> list[str]:
    """The requested ids whose song has no audio features yet (or no row at all), in order."""
    return [i for i in dict.fromkeys(requested) if not features_synced.get(i)]


def chunks(items: Sequence, size: int) -> list[list]:
    """Full batches first, the remainder last (a request is never emptier than it must be)."""
    if size < 1:
        raise ValueError("size must be at least 1")
    return [list(items[i : i + size]) for i in range(0, len(items), size)]
