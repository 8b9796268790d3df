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

from pipeline.store.db import NOW, autocommit


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

    def features_due_after_write(self, written: bool) -> bool:
        """The rule (`features_due`) after this run wrote the id's track (`written`) or not: a
        song written just now that did not exist before has no features yet; a track write never
        changes the features of a song that existed."""
        return self.features_due or (written and not self.song_exists)


def verdicts_sql(ids_sql: str, ttl_param: str = ":ttl_s") -> str:
    """SQL: the freshness verdicts of the ids in the text[] `ids_sql`, as one JSON array of
    [id, track fresh, song exists, features due]; `from_verdicts` reads it. A claim returns it
    for its job's ids in the same statement (pipeline/store/ledger.py)."""
    return (f"(SELECT coalesce(json_agg(json_build_array(i, {track_fresh('i', ttl_param)}, "
            f'EXISTS (SELECT 1 FROM songs s WHERE s."spotifyId" = i), {features_due("i")})), \'[]\') '
            f"FROM unnest({ids_sql}) AS t(i))")


def from_verdicts(verdicts: list) -> dict[str, Freshness]:
    return {i: Freshness(bool(fresh), bool(exists), bool(due)) for i, fresh, exists, due in verdicts}


def freshness(engine: Engine, spotify_ids: Sequence[str], ttl_s: int) -> dict[str, Freshness]:
    """For each of these ids, the freshness rule's verdict (see `track_fresh`)."""
    if not spotify_ids:
        return {}
    with autocommit(engine) as conn:
        verdicts = conn.execute(text(f"SELECT {verdicts_sql('CAST(:ids AS text[])')}"),
                                {"ids": list(dict.fromkeys(spotify_ids)), "ttl_s": ttl_s}).scalar_one()
    return from_verdicts(verdicts)
