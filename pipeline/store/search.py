"""All of search's SQL: local matches ranked in PostgreSQL, one song by its Spotify id, and the
readiness probe. The rules it applies are pipeline/search's (fold, tiers, thresholds); this
module only says them in SQL over migration 20261201_01's tables, kept in step with songs by a
trigger: song_search (`x`: each song's folded title, artist, album, document `doc`, tsvector
`words` and popularity; GIN (words), GIN (doc gin_trgm_ops), and, from 20261201_04, btree
(title text_pattern_ops, popularity DESC NULLS LAST, song_id) and btree (popularity DESC NULLS
LAST, title, song_id): BY_POPULARITY's order) and song_search_words (every word once, btree
(word) and GIN (word gin_trgm_ops): where typos are looked up). Nothing is folded per row at
query time; songs is read only for the page's rows.

Every value reaches PostgreSQL as a bound parameter; folded terms hold no LIKE wildcard (% and _
are separators, normalize.SEPARATORS) nor quote, so they are safe inside a LIKE pattern and a
tsquery as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine, TextClause, text

from pipeline.errors import StoreError
from pipeline.search.query import Query
from pipeline.search.ranking import FUZZY, FUZZY_THRESHOLD, MIN_INDEXED_WORD, fuzzy_threshold
from pipeline.search.typos import one_edit
from pipeline.store.db import autocommit, read

DOC = "x.doc"
FOLDED_TITLE = "x.title"
FOLDED_ARTIST = "x.artist"

# Every column of the songs contract, as the API returns it.
SONG_COLUMNS = (
    "id", "spotifyId", "title", "artist", "album", "duration", "spotifyPopularity", "spotifyPreviewUrl",
    "spotifyExternalUrl", "spotifyLastSync", "lastPopularityUpdate", "audioFeaturesSynced", "danceability",
    "energy", "valence", "acousticness", "instrumentalness", "speechiness", "liveness", "tempo", "loudness",
    "createdAt", "updatedAt",
)
_SELECTED = ", ".join(f's."{c}"' for c in SONG_COLUMNS)


class SearchUnavailable(StoreError):
    """The database lacks the search table and functions (no pg_trgm/unaccent when it was migrated)."""


@contextmanager
def _search_functions_present() -> Iterator[None]:
    try:
        yield
    except StoreError as exc:
        if ("spotify_search_" in exc.message or "song_search" in exc.message) and "does not exist" in exc.message:
            raise SearchUnavailable("search is not set up in this database: it needs PostgreSQL's pg_trgm and "
                                    "unaccent extensions, then the search migration (20261201_01) again") from exc
        raise


@dataclass(frozen=True)
class Found:
    """One page of local matches: the songs (with their tier) and how many matched in all."""

    songs: list[dict[str, Any]]
    total: int

    @property
    def best_tier(self) -> int | None:
        return min((s["tier"] for s in self.songs), default=None)


def _starts_a_word(param: str) -> str:
    """SQL: the bound term :param starts a word of the document (or is one)."""
    return f"(' ' || {DOC}) LIKE '% ' || :{param} || '%'"


def _conditions(query: Query, params: dict[str, Any]) -> list[str]:
    """WHERE conditions (ANDed) for a query, binding their values into `params`: the free words'
    and the filters' on the document (the trigram index serves them), then _extra_conditions."""
    conditions: list[str] = []
    short: list[str] = []
    for n, word in enumerate(query.words):
        params[f"w{n}"] = word
        if len(word) >= MIN_INDEXED_WORD:
            conditions.append(f"({DOC} LIKE '%' || :w{n} || '%' OR :w{n} <% {DOC})")
        else:
            short.append(_starts_a_word(f"w{n}"))
    if short and not conditions and len(query.compact) >= MIN_INDEXED_WORD:
        # Only short words ("ac dc"): their compact form may be one word of the document ("acdc").
        params["squeezed"] = query.compact
        conditions.append(f"({DOC} LIKE '%' || :squeezed || '%' OR ({' AND '.join(short)}))")
    else:
        conditions.extend(short)
    for name in _field_names(query):
        # The document condition is the one the index serves; the column's (extra) narrows it down.
        conditions.append(f"({DOC} LIKE '%' || :{name}_squeezed || '%' OR {DOC} LIKE '%' || :{name} || '%' "
                          f"OR :{name} <% {DOC})")
    return conditions + _extra_conditions(query, params)


def tier_sql(query: Query, params: dict[str, Any]) -> str:
    """pipeline.search.ranking.tier, in SQL over the row `s`."""
    params["text"] = query.text
    params["squeezed_text"] = query.compact
    params.update({f"w{n}": word for n, word in enumerate(query.words)})
    params.update({f"p{n}": phrase for n, phrase in enumerate(query.phrases)})
    title_artist = f"({FOLDED_TITLE} || ' ' || {FOLDED_ARTIST})"
    artist_title = f"({FOLDED_ARTIST} || ' ' || {FOLDED_TITLE})"
    words = [_starts_a_word(f"w{n}") for n in range(len(query.words))]
    words += [_starts_a_word(f"p{n}") for n in range(len(query.phrases))]
    exact = (f":text <> '' AND (:text IN ({FOLDED_TITLE}, {title_artist}, {artist_title}) OR :squeezed_text IN "
             f"(replace({FOLDED_TITLE}, ' ', ''), replace({title_artist}, ' ', ''), replace({artist_title}, ' ', ''))"
             ")")
    prefix = f":text <> '' AND ({FOLDED_TITLE} LIKE :text || '%' OR {title_artist} LIKE :text || '%')"
    return (f"CASE WHEN {exact} THEN 0 WHEN {prefix} THEN 1 "
            f"WHEN {' AND '.join(words) or 'true'} THEN 2 ELSE {FUZZY} END")


# Fuzzy rows ranked at most: they are ordered by a rounded similarity, then popularity, so the
# most similar few are not enough.
FUZZY_CANDIDATES = 300
# total_local counts at most this many (pages end at offset 1000 anyway): counting every match
# of a broad query would visit each of its rows.
MAX_COUNTED = 1050
# The planner's estimate of a word's songs is from a sample: past this many times MAX_COUNTED,
# there are surely more than MAX_COUNTED.
ESTIMATE_MARGIN = 3
# A prefix this short is broad: it starts many words, some of them common.
BROAD_PREFIX = MIN_INDEXED_WORD
WORDS_ONLY = "x.words @@ to_tsquery('simple', :tsquery)"
# Ties by popularity: every set and the page order alike, so a set's cut agrees with the page's.
BY_POPULARITY = "x.popularity DESC NULLS LAST, x.title, x.song_id"
# Once per pooled connection (connection.info remembers it; a new connection is set again), not
# once per search: a search is one round trip (two when it goes fuzzy), where BEGIN, a SET and
# COMMIT made it four or five, each a wait for a busy server's CPU. What they set:
# how close a word must be for `<%` (pg_trgm's default is 0.6); a plan made for these values
# every time (psycopg prepares a statement sent 5 times, and a generic plan cannot know whether a
# word is in 30% of the songs or in 3 of them); and no JIT, whose compile (tens of ms) a search's
# statement, a few thousand rows at most, never earns back; nor parallel workers, which
# the planner gave to a popularity-index branch that a one-time filter then skipped (their start
# was still paid: 10 ms of "Day Is A"'s 37), and which under 8 clients on 2 cores only add
# processes to the queue for the same cores. The connections are the API's and
# the other settings are pg_trgm's alone, so nothing else is changed by them.
SESSION = {"pg_trgm.word_similarity_threshold": str(FUZZY_THRESHOLD), "plan_cache_mode": "force_custom_plan",
           "jit": "off", "max_parallel_workers_per_gather": "0"}
_SESSION_SQL = text("SELECT " + ", ".join(f"set_config('{name}', '{value}', false)" for name, value in SESSION.items()))


def _session(conn: Connection) -> None:
    """The search's SESSION settings on this connection, if it has not got them yet."""
    info = conn.connection.info
    if info.get("search_session") != SESSION:
        conn.execute(_SESSION_SQL)
        info["search_session"] = SESSION


def search_songs(engine: Engine, query: Query, *, limit: int, offset: int) -> Found:
    """Songs matching the query, best first (ranking.py's tiers, then popularity), one page.

    One statement: each exact set (the query's words: tsvector; the title being, or starting
    with, the query: btree) brings its offset + limit most popular rows, enough for the page,
    since within a set a row is passed only by rows of its tier or better; the tiers rank them.
    A second only when they found nothing: the fuzzy set (_fuzzy_sets: a typo, a substring).
    Under exact matches those would only add look-alikes below them, for the dearest lookups of
    all (a short page is filled from Spotify: wants_enrichment). `total` counts the word matches
    up to MAX_COUNTED (see `count` below; fuzzy ones: the candidates). The word set reads its
    matches once (`matched`, up to MAX_COUNTED + 1: the count and, when that is all of them, the
    most popular), and not at all when one of the query's whole words is unknown (`known`). No
    transaction: the statements only read, and BEGIN and COMMIT would be two more round trips
    (SESSION); nor a pre-ping (store.db.read retries a read once on a dead connection instead).
    """
    wanted = offset + limit
    params: dict[str, Any] = {"limit": limit, "offset": offset, "wanted": wanted,
                              "fuzzy_cap": max(FUZZY_CANDIDATES, wanted), "count_cap": MAX_COUNTED,
                              "sure_past_cap": MAX_COUNTED * ESTIMATE_MARGIN, "text": query.text}
    extra = " AND ".join(_extra_conditions(query, params)) or "true"
    words_match = _words_match(_terms(query), params)
    # The word matches are read once: up to MAX_COUNTED + 1 of them (`matched`, no order, so the
    # planner cannot walk the popularity index through a rare match: measured 46,562 rows read for
    # 289 matches of "love you ko"), which are the count and, when that is all of them, the set's
    # most popular. Only past MAX_COUNTED (or a broad word: the planner's estimate alone says the
    # cap, without reading a list of 5% of the songs) are the most popular taken in popularity
    # order from the index. Before, the set and the count read the same matches twice.
    # (Other conditions only narrow the words' matches, which the estimate does not see.)
    estimate = ("song_search_estimate(to_tsquery('simple', :tsquery)) >= :sure_past_cap"
                if words_match == WORDS_ONLY and extra == "true" else "false")
    # A whole word of the query that no song holds (a typo, mostly) leaves the set empty: known
    # says so from the vocabulary's btree before the index is read, where a common last word's
    # prefix would read every list it starts for nothing ("man lucrxa (live": 'live':*, 11 ms).
    helpers = {
        "known": """SELECT coalesce((SELECT bool_and(EXISTS (SELECT FROM song_search_words v WHERE v.word = w))
                                     FROM unnest(tsvector_to_array(to_tsvector('simple', :whole_words))) AS w),
                                    true) AS yes""",
        "broad": f"SELECT (SELECT yes FROM known) AND {estimate} AS yes",
        "matched": f"""SELECT x.song_id, x.popularity, x.title FROM song_search x
                       WHERE (SELECT yes FROM known) AND NOT (SELECT yes FROM broad) AND {words_match} AND {extra}
                       LIMIT :count_cap + 1""",
    }
    if words_match.startswith(WORDS_ONLY) and params["whole_words"] and params["prefixes"]:
        # Whole words the planner expects in few songs, beside a prefix: the index looks up the
        # whole words alone (it skips through a common one's list) and the prefix is checked on
        # what they found; indexed, a prefix reads every list it starts, whole ('love':* beside
        # 'jindtes': 28-41 ms for one song). `|| ''` keeps that check out of the index.
        params["whole_tsquery"] = tsquery([(w, False) for w in params["whole_words"].split(" ")])
        rest = words_match[len(WORDS_ONLY):]
        # (numnode: a word the parser makes no lexeme of, "♥♥♥", would leave the whole words' query empty)
        helpers["rare_words"] = ("SELECT numnode(to_tsquery('simple', :whole_tsquery)) > 0 "
                                 "AND song_search_estimate(to_tsquery('simple', :whole_tsquery)) <= :count_cap AS yes")
        del helpers["matched"]  # after rare_words, which it reads
        helpers["matched"] = f"""
            (SELECT x.song_id, x.popularity, x.title FROM song_search x
             WHERE (SELECT yes FROM known) AND NOT (SELECT yes FROM broad) AND (SELECT yes FROM rare_words)
               AND x.words @@ to_tsquery('simple', :whole_tsquery)
               AND (x.words || ''::tsvector) @@ to_tsquery('simple', :tsquery){rest} AND {extra}
             LIMIT :count_cap + 1)
            UNION ALL
            (SELECT x.song_id, x.popularity, x.title FROM song_search x
             WHERE (SELECT yes FROM known) AND NOT (SELECT yes FROM broad) AND NOT (SELECT yes FROM rare_words)
               AND {words_match} AND {extra}
             LIMIT :count_cap + 1)"""
    exact = {"by_words": f"""(SELECT song_id FROM matched WHERE (SELECT count(*) FROM matched) <= :count_cap
                              ORDER BY popularity DESC NULLS LAST, title, song_id LIMIT :wanted)
                             UNION ALL
                             (SELECT x.song_id FROM song_search x
                              WHERE (SELECT yes FROM known)
                                AND ((SELECT yes FROM broad) OR (SELECT count(*) FROM matched) > :count_cap)
                                AND {words_match} AND {extra}
                              ORDER BY {BY_POPULARITY} LIMIT :wanted)"""}
    if query.text:
        params["title_prefix"] = query.text + "%"
        exact["by_title"] = f"""SELECT x.song_id FROM song_search x WHERE {FOLDED_TITLE} = :text AND {extra}
                                ORDER BY {BY_POPULARITY} LIMIT :wanted"""
        # Only when the exact titles fall short of the page: those come first, and a common
        # word's titles ("love%") are tens of thousands, sorted by popularity to keep a few.
        exact["by_title_prefix"] = f"""SELECT x.song_id FROM song_search x
                                       WHERE (SELECT count(*) FROM by_title) < :wanted
                                         AND {FOLDED_TITLE} LIKE :title_prefix AND {extra}
                                       ORDER BY {BY_POPULARITY} LIMIT :wanted"""
    # Fewer than a page: that is the count; a broad word: the cap; otherwise what `matched` read.
    count = """CASE WHEN (SELECT count(*) FROM by_words) < :wanted THEN (SELECT count(*) FROM by_words)
                WHEN (SELECT yes FROM broad) THEN :count_cap
                ELSE least((SELECT count(*) FROM matched), :count_cap) END"""
    def ranked(conn: Connection) -> list[dict[str, Any]]:
        _session(conn)
        rows = _ranked(conn, query, exact, params, count, helpers)
        if rows[0]["candidates"] == 0:  # a second statement: the first plans no fuzzy set it would not run
            rows = _ranked(conn, query, _fuzzy_sets(query, params, extra), params, "NULL")
            rows[0]["total"] = rows[0]["candidates"]
        return rows

    with _search_functions_present():  # read only (store.db.read): a statement needs no transaction
        rows = read(engine, ranked)
    hidden = ("candidates", "total")
    return Found([song_json({k: v for k, v in row.items() if k not in hidden}) for row in rows if row["id"]],
                 rows[0]["total"])


def _fuzzy_sets(query: Query, params: dict[str, Any], extra: str) -> dict[str, str]:
    """The fuzzy candidate set (SQL), for a query whose exact sets found nothing.

    With free text: the songs holding, for every word of the query, that word or a known word it
    looks like (_lookalikes), and whose document is similar enough to the whole text (the
    threshold grows with its length), most similar first. Each word's alternatives are a few
    words of the vocabulary, so the tsvector index finds the songs through the rarest of them:
    a mistyped word costs no scan of the songs a common one holds ("the"). Without free text
    (filters only): the filters' own conditions."""
    if not query.text:
        return {"by_typo": f"SELECT x.song_id FROM song_search x "
                           f"WHERE {' AND '.join(_conditions(query, params))} LIMIT :fuzzy_cap"}
    params["fuzzy"] = fuzzy_threshold(query.text)
    terms = [t for t in _terms(query)[:len(query.words)] if len(t[0]) >= MIN_INDEXED_WORD]
    # Asked before the similarity, which is then computed only on the rows they pass (CASE: a
    # plain AND would let the planner put the cheaper-looking similarity first).
    short_words = _short_words_stand(query, params) if terms else "true"
    terms = terms or [(query.text, True)]  # no word long enough to look up ("ac dc"): the whole text
    params["typed"] = [word for word, _ in terms]
    groups = [_lookalikes(n, word, prefix, params) for n, (word, prefix) in enumerate(terms)]
    every_word = " || ' & ' || ".join(groups)
    standing = [w for n, w in enumerate(query.words) if len(w) < MIN_INDEXED_WORD and n < len(query.words) - 1]
    if standing and short_words != "true":
        # The short whole words that stand for themselves (_short_words_stand) are looked up as
        # whole words too, so the index skips through the look-alikes' songs ("me wanxo": 16,197
        # songs of "want" and the like, read to keep the 330 with "me"); the check on the rows
        # stays, for a word of no lexeme.
        params["standing"] = tsquery([(w, False) for w in standing])
        every_word += f" || CASE WHEN {_EVERY_TYPED_KNOWN} THEN '' ELSE ' & ' || CAST(:standing AS text) END"
    return {"by_typo": f"""SELECT x.song_id FROM song_search x
                           WHERE x.words @@ to_tsquery('simple', {every_word})
                             AND CASE WHEN {short_words} THEN word_similarity(:text, {DOC}) >= :fuzzy END
                             AND {extra}
                           ORDER BY word_similarity(:text, {DOC}) DESC LIMIT :fuzzy_cap"""}


# A word's look-alikes kept at most (the likeliest), from the vocabulary's trigram index.
LOOKALIKE_WORDS = 50
# Shorter words have no trigram look-alikes worth their cost: "the" is inside 35,000 known words.
MIN_LOOKALIKE_WORD = 5
# SQL: is the query word :typo<n> unknown, or every one known (then any may be the typo)? Known
# words of a query that has an unknown one stand for themselves: a typo is one, most likely the
# unknown word, and a common word's alternatives ("the": they, then, she) would each list a
# large share of the songs.
_KNOWN = "EXISTS (SELECT FROM song_search_words WHERE word = :typo{n})"
_EVERY_TYPED_KNOWN = """NOT EXISTS (SELECT FROM unnest(CAST(:typed AS text[])) AS t(w)
                                     WHERE NOT EXISTS (SELECT FROM song_search_words WHERE word = t.w))"""
_MAY_BE_TYPO = f"(NOT EXISTS (SELECT FROM song_search_words WHERE word = :typo{{n}}) OR {_EVERY_TYPED_KNOWN})"


def _short_words_stand(query: Query, params: dict[str, Any]) -> str:
    """SQL: the query's short words (under MIN_INDEXED_WORD letters, which the look-alikes leave
    out) start words of the song, where a looked-up word is unknown: that one is the typo, and the
    others stand for themselves (as in _MAY_BE_TYPO). Without it a common look-alike's songs are
    all compared with the whole text ("donxt a me": "dont", 15,000 songs, 230 ms of similarity),
    where "a" and "me" leave a tenth of them. When every word is known any may be the typo, so
    nothing is asked."""
    short = [(n, w) for n, w in enumerate(query.words) if len(w) < MIN_INDEXED_WORD]
    if not short:
        return "true"
    params.update({f"w{n}": w for n, w in short})
    starts = " AND ".join(_starts_a_word(f"w{n}") for n, _ in short)
    return f"({_EVERY_TYPED_KNOWN} OR ({starts}))"


def _lookalikes(n: int, word: str, prefix: bool, params: dict[str, Any]) -> str:
    """SQL: the tsquery text "(word | alike | ...)" of a query word and, where it may be the typo
    (_MAY_BE_TYPO), the known words it may be a typo of: those one edit away (typos.one_edit, for
    short words, whose trigrams say little), or, when none is known, those it looks like (as a
    word or inside one: `<%`; from MIN_LOOKALIKE_WORD letters), the LOOKALIKE_WORDS likeliest."""
    # The edits as one text, split by PostgreSQL (a folded word holds no space): psycopg dumps a
    # list element by element in Python, hundreds of them a word (thousands for a word of another
    # script), where one text is a single copy. Each edit is probed in the vocabulary's btree on its own (a
    # scalar subquery, which the planner cannot turn into a join): `word = ANY(edits)` let it
    # choose a scan of the whole vocabulary for a long list (1,195 edits of the Greek "μιπαxε":
    # 26 ms, against 2.5 ms for the probes).
    params[f"typo{n}"], params[f"edits{n}"] = word, " ".join(one_edit(word))
    params[f"itself{n}"] = tsquery([(word, False)])
    itself = f"CAST(:itself{n} AS text)"
    if prefix:  # a prefix reads the list of every word it starts, whole (no skipping): only when no word is it
        params[f"prefix{n}"] = tsquery([(word, True)])
        itself = f"CASE WHEN {_KNOWN.format(n=n)} THEN {itself} ELSE CAST(:prefix{n} AS text) END"
    lookalikes = "false" if len(word) < MIN_LOOKALIKE_WORD else f":typo{n} <% word"
    # A known word one edit away is what a typo of a short word most likely was: then its trigram
    # look-alikes, mostly two or more edits away, are left out. They brought common words
    # ("wanxo": "want", "wand"; 16,197 songs to compare with the text, where its one edit away,
    # "wanno", holds 235). A longer word has no edits (typos.MAX_EDITED_WORD): trigrams only.
    return f"""('(' || concat_ws(' | ', {itself}, (
                   WITH edited AS MATERIALIZED (
                       SELECT e.w AS word FROM unnest(string_to_array(CAST(:edits{n} AS text), ' ')) AS e(w)
                       WHERE (SELECT true FROM song_search_words WHERE word = e.w LIMIT 1))
                   SELECT string_agg(quote_literal(v.word), ' | ') FROM (
                       (SELECT word FROM song_search_words WHERE {lookalikes} AND NOT EXISTS (SELECT FROM edited)
                        ORDER BY word_similarity(:typo{n}, word) DESC LIMIT {LOOKALIKE_WORDS})
                       UNION SELECT word FROM edited) AS v
                   WHERE {_MAY_BE_TYPO.format(n=n)}
               )) || ')')"""


def _ranked(conn: Connection, query: Query, sets: dict[str, str], params: dict[str, Any],
            count: str, helpers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The page of these candidate sets, ranked by tier, then popularity. Every row also says
    how many candidates there were and `count` (SQL over the sets); a page past the end is one
    row of NULL songs columns, with the counts. `helpers`: named statements the sets and the
    count read, themselves no candidates."""
    tier = tier_sql(query, params)
    similarity = f"word_similarity(:text, {DOC})" if query.text else "0"
    named = ",\n".join(f"{name} AS MATERIALIZED ({sql})" for name, sql in {**(helpers or {}), **sets}.items())
    statement = _statement(f"""
        WITH {named},
        candidates AS ({" UNION ".join(f"SELECT song_id FROM {name}" for name in sets)}),
        page AS (
            SELECT x.song_id, m.tier,
                   row_number() OVER (ORDER BY m.tier,
                       CASE WHEN m.tier = {FUZZY} THEN -round(({similarity})::numeric, 1) END,
                       {BY_POPULARITY}) AS n
            FROM song_search x JOIN candidates c ON c.song_id = x.song_id
            CROSS JOIN LATERAL (SELECT {tier} AS tier) m
            ORDER BY n LIMIT :limit OFFSET :offset)
        SELECT {_SELECTED}, page.tier, counted.total, counted.candidates
        FROM (SELECT {count} AS total, (SELECT count(*) FROM candidates) AS candidates) AS counted
        LEFT JOIN page ON true LEFT JOIN songs s ON s.id = page.song_id
        ORDER BY page.n
    """)
    return [dict(r._mapping) for r in conn.execute(statement, params)]


# A statement's text depends on the query's shape alone (how many words, phrases, filters; every
# value is bound), so its parsed form is kept: text() finds the bind parameters of a few
# kilobytes of SQL with a regular expression, measured 0.6 ms of the API process's CPU a statement.
# Its runs of whitespace (the indentation of the SQL here; no literal of it holds two spaces or a
# line break) are one space: psycopg keeps its own parsed form of a statement of at most 4,096
# characters only (MAX_CACHED_STATEMENT_LENGTH), and the search's were 3,900-4,600 as written,
# 3,200-3,900 without them, so psycopg split each one with its regular expression every time.
@lru_cache(maxsize=512)
def _statement(sql: str) -> TextClause:
    return text(_WHITESPACE.sub(" ", sql))


_WHITESPACE = re.compile(r"\s+")


def tsquery(terms: list[tuple[str, bool]]) -> str:
    """The tsquery text matching documents that hold every term, as a word or, where the term
    may be a prefix, as the start of one (folded terms hold no quote; one is doubled all the
    same, as tsquery quoting wants)."""
    return " & ".join("'" + t.replace("'", "''") + "'" + (":*" if prefix else "") for t, prefix in terms)


def _words_match(terms: list[tuple[str, bool]], params: dict[str, Any]) -> str:
    """SQL: every term is a word of the document, or starts one where it may be a prefix.

    The tsvector index looks up the terms of MIN_INDEXED_WORD characters or more, and beside
    them the shorter whole words ("a", "my": not the last word); a shorter prefix only filters
    what the others found, unless the short words are all there is ("ac dc"). A prefix makes
    the index read the lists of every word it starts, all of them, where a whole word lets the
    index skip through a common word's list along a rare one's."""
    long_enough = [t for t in terms if len(t[0]) >= MIN_INDEXED_WORD]
    indexed = long_enough or terms
    # A prefix reads the lists of every word it starts, whole: a short one is broad ("the":*, a
    # third of the songs), so beside a whole word, which the index skips through, it only filters
    # what that one found.
    indexed = [t for t in indexed if not (t[1] and len(t[0]) <= BROAD_PREFIX)] or indexed
    if long_enough:
        # A short whole word (not the last, so not being typed) is a whole word as a longer one
        # is, and is looked up as one beside them: the index skips through even a common one's
        # list ("my", "a") along theirs, where checking it on the rows read every song of the
        # others ("we my heart my ぬき": 19,000 songs of 'heart' for a few). Only beside them:
        # alone, "a" would be the list read ("a wxy": 'a' with 'wxy':* a filter).
        indexed = indexed + [t for t in terms if t not in long_enough and not t[1] and t not in indexed]
    params["tsquery"] = tsquery(indexed)
    params["whole_words"] = " ".join(term for term, prefix in indexed if not prefix)  # search_songs: known
    params["prefixes"] = " ".join(term for term, prefix in indexed if prefix)
    conditions = [WORDS_ONLY]
    # The short words are checked on the rows too: one the parser makes no lexeme of ("♥") is
    # left out of the tsquery, not matched by every song.
    for n, (term, _) in enumerate(t for t in terms if t not in indexed or (long_enough and t not in long_enough)):
        params[f"short{n}"] = term
        conditions.append(_starts_a_word(f"short{n}"))
    return " AND ".join(conditions)


def _terms(query: Query) -> list[tuple[str, bool]]:
    """Every word a song must hold to match without fuzz, and whether it may be the start of a
    longer word: the last free word (someone still typing it), and the words of phrases and
    filters (which their own conditions check)."""
    words = [(w, n == len(query.words) - 1) for n, w in enumerate(query.words)]
    words += [(w, True) for phrase in query.phrases for w in phrase.split(" ")]
    return words + [(w, True) for terms in query.fields.values() for term in terms for w in term.split(" ")]


def _extra_conditions(query: Query, params: dict[str, Any]) -> list[str]:
    """What the word index cannot say: phrases in one piece, field filters on their column."""
    conditions = []
    for n, phrase in enumerate(query.phrases):
        params[f"p{n}"] = phrase
        conditions.append(f"{DOC} LIKE '%' || :p{n} || '%'")
    for column, terms in query.fields.items():
        for name, term in zip(_field_names(query, column), terms, strict=True):
            params[name], params[name + "_squeezed"] = term, term.replace(" ", "")
            conditions.append(_field_condition(column, name))
    return conditions


def _field_names(query: Query, only: str | None = None) -> list[str]:
    """The parameter names of the filters' terms (of one column, or all): f_<column><n>."""
    return [f"f_{column}{n}" for column, terms in query.fields.items() if only in (None, column)
            for n in range(len(terms))]


def _field_condition(column: str, name: str) -> str:
    folded = f"x.{column}"  # song_search holds each column folded
    return (f"({folded} LIKE '%' || :{name} || '%' OR :{name} <% {folded} "
            f"OR replace({folded}, ' ', '') LIKE '%' || :{name}_squeezed || '%')")


def get_song(engine: Engine, spotify_id: str) -> dict[str, Any] | None:
    """The song with this (normalised) Spotify id, every contract column, or None."""
    row = read(engine, lambda conn: conn.execute(text(f'SELECT {_SELECTED} FROM songs s WHERE s."spotifyId" = :id'),
                                                 {"id": spotify_id}).first())
    return song_json(dict(row._mapping)) if row else None


def missing_spotify_ids(engine: Engine, spotify_ids: list[str]) -> list[str]:
    """Which of these Spotify ids songs does not hold yet, in the order given."""
    if not spotify_ids:
        return []
    known = set(read(engine, lambda conn: conn.execute(
        text('SELECT "spotifyId" FROM songs WHERE "spotifyId" = ANY(:ids)'), {"ids": spotify_ids}).scalars().all()))
    return [i for i in spotify_ids if i not in known]


def fold_in_sql(engine: Engine, values: list[str]) -> list[str]:
    """spotify_search_fold over each value, in order (for the parity tests and the benchmark)."""
    with autocommit(engine) as conn:
        rows = conn.execute(text("SELECT spotify_search_fold(v) FROM unnest(CAST(:v AS text[])) "
                                 "WITH ORDINALITY AS t(v, n) ORDER BY n"), {"v": values})
        return [r[0] for r in rows]


def ping(engine: Engine) -> None:
    """Raises StoreUnavailable unless PostgreSQL answers."""
    read(engine, lambda conn: conn.execute(text("SELECT 1")))


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
