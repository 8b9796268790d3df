"""All of search's SQL: local matches ranked in PostgreSQL, one song by its Spotify id, and the
readiness probe. The rules it applies are pipeline/search's (fold, tiers, thresholds); this
module only says them in SQL over the index of migration 20261201_01:

    GIN (spotify_search_doc(title, artist, album) gin_trgm_ops)

Every value reaches PostgreSQL as a bound parameter; folded terms hold no LIKE wildcard (% and _
are separators, normalize.SEPARATORS), so they are safe inside a LIKE pattern as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, text

from pipeline.search.query import Query
from pipeline.search.ranking import FUZZY, FUZZY_THRESHOLD, MIN_INDEXED_WORD
from pipeline.store.db import autocommit, transaction

DOC = "spotify_search_doc(s.title, s.artist, s.album)"
FOLDED_TITLE = "spotify_search_fold(s.title)"
FOLDED_ARTIST = "spotify_search_fold(s.artist)"

# Every column of the songs contract, as the API returns it.
SONG_COLUMNS = (
    "id", "spotifyId", "title", "artist", "album", "duration", "spotifyPopularity", "spotifyPreviewUrl",
    "spotifyExternalUrl", "spotifyLastSync", "lastPopularityUpdate", "audioFeaturesSynced", "danceability",
    "energy", "valence", "acousticness", "instrumentalness", "speechiness", "liveness", "tempo", "loudness",
    "createdAt", "updatedAt",
)
_SELECTED = ", ".join(f's."{c}"' for c in SONG_COLUMNS)


@dataclass(frozen=True)
class Found:
    """One page of local matches: the songs (with their tier) and how many matched in all."""

    songs: list[dict[str, Any]]
    total: int

    @property
    def best_tier(self) -> int | None:
        return min((s["tier"] for s in self.songs), default=None)


def _conditions(query: Query, params: dict[str, Any]) -> list[str]:
    """WHERE conditions (ANDed) for a query, binding their values into `params`."""
    conditions: list[str] = []
    short: list[str] = []
    for n, word in enumerate(query.words):
        params[f"w{n}"] = word
        if len(word) >= MIN_INDEXED_WORD:
            conditions.append(f"({DOC} LIKE '%' || :w{n} || '%' OR :w{n} <% {DOC})")
        else:
            short.append(f"(' ' || {DOC}) LIKE '% ' || :w{n} || '%'")
    if short and not conditions and len(query.compact) >= MIN_INDEXED_WORD:
        # Only short words ("ac dc"): their compact form may be one word of the document ("acdc").
        params["squeezed"] = query.compact
        conditions.append(f"({DOC} LIKE '%' || :squeezed || '%' OR ({' AND '.join(short)}))")
    else:
        conditions.extend(short)
    for n, phrase in enumerate(query.phrases):
        params[f"p{n}"] = phrase
        conditions.append(f"{DOC} LIKE '%' || :p{n} || '%'")
    for column, terms in query.fields.items():
        for n, term in enumerate(terms):
            name = f"f_{column}{n}"
            params[name] = term
            params[name + "_squeezed"] = term.replace(" ", "")
            folded = f"spotify_search_fold(s.{column})"
            # The document condition is the one the index serves; the column's narrows it down.
            conditions.append(f"({DOC} LIKE '%' || :{name}_squeezed || '%' OR {DOC} LIKE '%' || :{name} || '%' "
                              f"OR :{name} <% {DOC})")
            conditions.append(f"({folded} LIKE '%' || :{name} || '%' OR :{name} <% {folded} "
                              f"OR replace({folded}, ' ', '') LIKE '%' || :{name}_squeezed || '%')")
    return conditions


def tier_sql(query: Query, params: dict[str, Any]) -> str:
    """pipeline.search.ranking.tier, in SQL over the row `s`."""
    params["text"] = query.text
    params["squeezed_text"] = query.compact
    title_artist = f"({FOLDED_TITLE} || ' ' || {FOLDED_ARTIST})"
    artist_title = f"({FOLDED_ARTIST} || ' ' || {FOLDED_TITLE})"
    words = [f"(' ' || {DOC}) LIKE '% ' || :w{n} || '%'" for n in range(len(query.words))]
    words += [f"(' ' || {DOC}) LIKE '% ' || :p{n} || '%'" for n in range(len(query.phrases))]
    exact = (f":text <> '' AND (:text IN ({FOLDED_TITLE}, {title_artist}, {artist_title}) OR :squeezed_text IN "
             f"(replace({FOLDED_TITLE}, ' ', ''), replace({title_artist}, ' ', ''), replace({artist_title}, ' ', ''))"
             ")")
    prefix = f":text <> '' AND ({FOLDED_TITLE} LIKE :text || '%' OR {title_artist} LIKE :text || '%')"
    return (f"CASE WHEN {exact} THEN 0 WHEN {prefix} THEN 1 "
            f"WHEN {' AND '.join(words) or 'true'} THEN 2 ELSE {FUZZY} END")


def search_songs(engine: Engine, query: Query, *, limit: int, offset: int) -> Found:
    """Songs matching the query, best first (ranking.py's tiers, then popularity), one page."""
    params: dict[str, Any] = {"limit": limit, "offset": offset, "threshold": str(FUZZY_THRESHOLD)}
    where = " AND ".join(_conditions(query, params)) or "true"
    tier = tier_sql(query, params)
    similarity = f"word_similarity(:text, {DOC})" if query.text else "0"
    statement = text(f"""
        SELECT {_SELECTED}, m.tier, count(*) OVER () AS total
        FROM songs s
        CROSS JOIN LATERAL (SELECT {tier} AS tier) m
        WHERE {where}
        ORDER BY m.tier,
                 CASE WHEN m.tier = {FUZZY} THEN -round(({similarity})::numeric, 1) END,
                 s."spotifyPopularity" DESC NULLS LAST, s.title, s.id
        LIMIT :limit OFFSET :offset
    """)
    with transaction(engine) as conn:
        # Only for this transaction: how close a typo must be for `<%` (pg_trgm's default is 0.6).
        conn.execute(text("SELECT set_config('pg_trgm.word_similarity_threshold', :threshold, true)"), params)
        rows = [dict(r._mapping) for r in conn.execute(statement, params)]
    total = rows[0]["total"] if rows else 0
    if not rows and offset:
        total = count_songs(engine, query)
    songs = [song_json({k: v for k, v in row.items() if k != "total"}) for row in rows]
    return Found(songs, int(total))


def count_songs(engine: Engine, query: Query) -> int:
    """How many songs match (for a page past the end, where the window count has no row)."""
    params: dict[str, Any] = {"threshold": str(FUZZY_THRESHOLD)}
    where = " AND ".join(_conditions(query, params)) or "true"
    with transaction(engine) as conn:
        conn.execute(text("SELECT set_config('pg_trgm.word_similarity_threshold', :threshold, true)"), params)
        return int(conn.execute(text(f"SELECT count(*) FROM songs s WHERE {where}"), params).scalar_one())


def get_song(engine: Engine, spotify_id: str) -> dict[str, Any] | None:
    """The song with this (normalised) Spotify id, every contract column, or None."""
    with autocommit(engine) as conn:
        row = conn.execute(text(f'SELECT {_SELECTED} FROM songs s WHERE s."spotifyId" = :id'),
                           {"id": spotify_id}).first()
    return song_json(dict(row._mapping)) if row else None


def missing_spotify_ids(engine: Engine, spotify_ids: list[str]) -> list[str]:
    """Which of these Spotify ids songs does not hold yet, in the order given."""
    if not spotify_ids:
        return []
    with autocommit(engine) as conn:
        known = set(conn.execute(text('SELECT "spotifyId" FROM songs WHERE "spotifyId" = ANY(:ids)'),
                                 {"ids": spotify_ids}).scalars())
    return [i for i in spotify_ids if i not in known]


def fold_in_sql(engine: Engine, values: list[str]) -> list[str]:
    """spotify_search_fold over each value, in order (for the parity tests and the benchmark)."""
    with autocommit(engine) as conn:
        rows = conn.execute(text("SELECT spotify_search_fold(v) FROM unnest(CAST(:v AS text[])) "
                                 "WITH ORDINALITY AS t(v, n) ORDER BY n"), {"v": values})
        return [r[0] for r in rows]


def ping(engine: Engine) -> None:
    """Raises StoreUnavailable unless PostgreSQL answers."""
    with autocommit(engine) as conn:
        conn.execute(text("SELECT 1"))


def song_json(row: dict[str, Any]) -> dict[str, Any]:
    """A songs row as JSON values: numbers as numbers, times as ISO-8601 UTC."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, Decimal):
            value = float(value)
        elif isinstance(value, datetime):
            value = value.isoformat() + "Z"
        out[key] = value
    return out
