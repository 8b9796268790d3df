"""How local matches are ranked, and when a search is worth asking Spotify about.

Tiers, best first (ties by popularity, most popular first; within FUZZY by trigram similarity
first):
    EXACT   the title, or title + artist (either order), is the query (spaces aside: "acdc")
    PREFIX  the title, or title + artist, starts with the query (someone still typing)
    WORDS   every query word starts a word of title, artist or album, in any order
    FUZZY   the rest: a word matched inside another or through a typo (pg_trgm)

pipeline/store/search.py computes the same tier in SQL (`tier_sql`); the integration tests
compare the two on real rows.
"""

from __future__ import annotations

from pipeline.search.normalize import compact, fold
from pipeline.search.query import Query

EXACT, PREFIX, WORDS, FUZZY = 0, 1, 2, 3
TIER_NAMES = {EXACT: "exact", PREFIX: "prefix", WORDS: "words", FUZZY: "fuzzy"}
# pg_trgm's word_similarity a word needs to match through a typo ("beyonse" ~ "beyonce": 0.62).
FUZZY_THRESHOLD = 0.5
# The whole query against a document: a typo, or two letters swapped, costs up to about 7 of its
# trigrams (measured: "bohemain rhapsody" 0.64, "kraxow ocean sad" 0.70 to the right song), so a
# longer query may ask for more of them: fewer look-alikes pass, and the right one stays in.
TYPO_TRIGRAMS = 7.5
MAX_FUZZY_THRESHOLD = 0.7


def fuzzy_threshold(text: str) -> float:
    """The word_similarity a whole folded query needs to a song's document: FUZZY_THRESHOLD for a
    short one, up to MAX_FUZZY_THRESHOLD for a long one (a query of n characters has about n + 2
    trigrams, and one typo takes up to about TYPO_TRIGRAMS of them)."""
    return round(min(max(1 - TYPO_TRIGRAMS / (len(text) + 2), FUZZY_THRESHOLD), MAX_FUZZY_THRESHOLD), 2)


# Words shorter than a trigram cannot use the index; they only narrow what longer words found.
MIN_INDEXED_WORD = 3


def document(title: str, artist: str, album: str | None) -> str:
    """What a song is searched by: its folded title, artist and album, and the artist without
    spaces ("AC/DC" is found by "acdc" too). SQL: spotify_search_doc(title, artist, album)."""
    return " ".join(part for part in (fold(title), fold(artist), fold(album or ""), compact(artist)) if part)


def tier(query: Query, title: str, artist: str, album: str | None) -> int:
    """The tier of one matching song for this query (see the module docstring)."""
    ft, fa = fold(title), fold(artist)
    text, squeezed = query.text, query.compact
    if text:
        pairs = (ft, f"{ft} {fa}", f"{fa} {ft}")
        if text in pairs or squeezed in (p.replace(" ", "") for p in pairs):
            return EXACT
        if any(p.startswith(text) for p in pairs[:2]):
            return PREFIX
    doc = " " + document(title, artist, album)
    if all(f" {w}" in doc for w in query.words) and all(f" {p}" in doc for p in query.phrases):
        return WORDS
    return FUZZY


def wants_enrichment(mode: str, local_found: int, limit: int, best_tier: int | None) -> bool:
    """Should this search ask Spotify? `mode` is the caller's enrich=auto|never|always; auto
    asks when fewer local results than asked for came back, or the best is only a fuzzy match."""
    if mode == "never":
        return False
    if mode == "always":
        return True
    return local_found < limit or best_tier is None or best_tier >= FUZZY
