import pytest

from pipeline.search.query import parse
from pipeline.search.ranking import (
    EXACT,
    FUZZY,
    FUZZY_THRESHOLD,
    MAX_FUZZY_THRESHOLD,
    PREFIX,
    WORDS,
    document,
    fuzzy_threshold,
    tier,
    wants_enrichment,
)


def test_document_holds_every_field_and_the_compact_artist():
    assert document("Highway to Hell", "AC/DC", "Highway to Hell") == "highway to hell ac dc highway to hell acdc"
    assert document("Halo", "Beyoncé", None) == "halo beyonce beyonce"


@pytest.mark.parametrize(("q", "title", "artist", "album", "expected"), [
    ("halo", "Halo", "Beyoncé", "I Am", EXACT),
    ("beyonce halo", "Halo", "Beyoncé", "I Am", EXACT),
    ("halo beyonce", "Halo", "Beyoncé", "I Am", EXACT),
    ("acdc highway to hell", "Highway to Hell", "AC/DC", None, EXACT),
    ("highway to", "Highway to Hell", "AC/DC", None, PREFIX),
    ("highway to hell ac", "Highway to Hell", "AC/DC", None, PREFIX),
    ("hell highway", "Highway to Hell", "AC/DC", None, WORDS),
    ("beyonce", "Halo", "Beyoncé", "I Am", WORDS),
    ("sasha", "Halo", "Beyoncé", "I Am Sasha Fierce", WORDS),
    ("beyonse", "Halo", "Beyoncé", "I Am", FUZZY),
    ("ighway", "Highway to Hell", "AC/DC", None, FUZZY),
])
def test_tiers(q, title, artist, album, expected):
    assert tier(parse(q), title, artist, album) == expected


def test_tiers_order_exact_before_prefix_before_words_before_fuzzy():
    assert EXACT < PREFIX < WORDS < FUZZY


@pytest.mark.parametrize(("mode", "found", "limit", "best", "expected"), [
    ("never", 0, 10, None, False),
    ("always", 10, 10, EXACT, True),
    ("auto", 3, 10, EXACT, True),  # fewer than asked for
    ("auto", 10, 10, FUZZY, True),  # the best is a weak match
    ("auto", 10, 10, WORDS, False),
    ("auto", 0, 10, None, True),
])
def test_wants_enrichment(mode, found, limit, best, expected):
    assert wants_enrichment(mode, found, limit, best) is expected


def test_longer_queries_ask_for_more_of_their_trigrams():
    assert fuzzy_threshold("abc") == FUZZY_THRESHOLD
    assert fuzzy_threshold("beyonse") < 0.6  # it is 0.62 to "beyonce": still found
    assert FUZZY_THRESHOLD < fuzzy_threshold("kraxow ocean sad") < MAX_FUZZY_THRESHOLD
    # below what one typo leaves of these (measured in PostgreSQL against the right song)
    assert fuzzy_threshold("kraxow ocean sad") < 0.70 - 0.05
    assert fuzzy_threshold("bohemain rhapsody") < 0.636 - 0.02
    assert fuzzy_threshold("a much longer query with many words in it") == MAX_FUZZY_THRESHOLD

