"""The freshness rule, once, in SQL: what a track_sync need not fetch again (docs/architecture.md,
decision 6). The producers cut backfills with `track_work_due`, and a track_sync job asks
`freshness` which of its ids to fetch; both read the same definition, `track_fresh`.

Track data lives TRACK_TTL (a day); an id Spotify answered null for is as fresh as a sync at that
time; a song whose audio features were never asked for still has work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, text

from pipeline.store.db import NOW, transaction


def track_fresh(id_sql: str, ttl_param: str = ":ttl_s") -> str:
    """SQL: Spotify's track data for the id `id_sql` is fresh, so it is not fetched again: its
    song was synced within the TTL (bound as `ttl_param` seconds), or Spotify answered null for
    it within the TTL (an id it does not know is as fresh as a sync at that time)."""
    horizon = f"({NOW} - make_interval(secs => {ttl_param}))"
    return (f'(EXISTS (SELECT 1 FROM songs s WHERE s."spotifyId" = {id_sql} AND s."spotifyLastSync" > {horizon})'
            f' OR EXISTS (SELECT 1 FROM spotify_unknown_tracks u WHERE u."spotifyId" = {id_sql}'
            f' AND u."checkedAt" > {horizon}))')


def features_due(id_sql: str) -> str:
    """SQL: the id's song exists and its audio features were never asked for."""
    return f'EXISTS (SELECT 1 FROM songs s WHERE s."spotifyId" = {id_sql} AND NOT coalesce(s."audioFeaturesSynced", false))'


def track_work_due(id_sql: str, ttl_param: str = ":ttl_s") -> str:
    """SQL: a track_sync job has work for this id: its track data is stale, or its song still
    lacks audio features (a library page cut short: the job asks for the features alone)."""
    return f"(NOT {track_fresh(id_sql, ttl_param)} OR {features_due(id_sql)})"


@dataclass(frozen=True)
class Freshness:
    track_fresh: bool
    song_exists: bool
    features_due: bool


def freshness(engine: Engine, spotify_ids: Sequence[str], ttl_s: int) -> dict[str, Freshness]:
    """For each of these ids, the freshness rule's verdict (see `track_fresh`)."""
    if not spotify_ids:
        return {}
    with transaction(engine) as conn:
        rows = conn.execute(
            text(f"""SELECT i, {track_fresh("i")}, EXISTS (SELECT 1 FROM songs s WHERE s."spotifyId" = i),
                            {features_due("i")}
                     FROM unnest(CAST(:ids AS text[])) AS t(i)"""),
            {"ids": list(dict.fromkeys(spotify_ids)), "ttl_s": ttl_s},
        )
        return {i: Freshness(bool(fresh), bool(exists), bool(due)) for i, fresh, exists, due in rows}
