"""Search logic without I/O: folding, the query language, the index and its order."""

from __future__ import annotations

import pytest

from emulator.catalog import Catalog
from emulator.search import SearchIndex, Term, fold, index_terms, parse, words

NAMES = [  # index -> (track, artists, album)
    ("Crazy in Love", ["Beyoncé", "Jay-Z"], "Dangerously in Love"),
    ("Hoppípolla", ["Sigur Rós"], "Takk..."),
    ("Back In Black", ["AC/DC"], "Back In Black"),
    ("Sweet Child O' Mine", ["Guns N' Roses"], "Appetite for Destruction"),
    ("Love in Crazy Times", ["The Love"], "In Love"),
    ("夜に駆ける", ["YOASOBI"], "THE BOOK"),
    ("Группа крови", ["Кино"], "Группа крови"),
    ("Σ' αγαπώ", ["Πυξ Λαξ"], "Ζωή"),
]


@pytest.fixture
def index() -> SearchIndex:
    return SearchIndex(len(NAMES), lambda i: NAMES[i])


def hits(index: SearchIndex, query: str) -> list[int]:
    return index.search(parse(query))


def test_fold_removes_case_accents_and_apostrophes():
    assert fold("Beyoncé") == "beyonce" and fold("Sigur Rós") == "sigur ros"
    assert fold("Guns N' Roses") == "guns n roses" and fold("Røyksopp") == "royksopp"
    assert fold("Mötley Crüe") == "motley crue" and fold("ΣΟΦΊΑ") == "σοφια"
    assert words("AC/DC (feat. will.i.am)") == ("ac", "dc", "feat", "will", "i", "am")
    assert words("夜に駆ける") == ("夜", "に", "駆", "け", "る")
    assert {"acdc", "ac", "dc"} <= index_terms("AC/DC") and "jayz" in index_terms("Jay-Z")


def test_parse_fields_phrases_and_isrc():
    query = parse('crazy artist:"sigur rós" track:Love album:takk genre:rock isrc:QZE0019000001')
    assert query.isrc == "QZE0019000001"
    assert query.terms == (
        Term(("crazy",)), Term(("sigur", "ros"), "artist", phrase=True), Term(("love",), "track"),
        Term(("takk",), "album"), Term(("genre", "rock")),  # an unknown filter is plain words
    )
    assert parse('"unclosed phrase').terms == (Term(("unclosed", "phrase"), phrase=True),)
    assert parse("!!! ...").terms == ()


def test_words_in_any_order_and_any_field(index):
    assert hits(index, "beyonce") == [0]
    assert sorted(hits(index, "LOVE crazy")) == [0, 4]  # both words in the track name of each
    assert hits(index, "crazy jay z") == [0]  # track name + artist
    assert hits(index, "black back acdc") == [2] and hits(index, "ac dc") == [2]
    assert hits(index, "guns n' roses") == [3] and hits(index, "GUNS N ROSES") == [3]
    assert hits(index, "sigur ros hoppipolla") == [1]
    assert hits(index, "кино") == [6] and hits(index, "крови") == [6]
    assert hits(index, "αγαπω") == [7] and hits(index, "駆ける") == [5]
    assert hits(index, "nothing like this") == [] and hits(index, "") == []


def test_field_filters_and_phrases(index):
    assert hits(index, "artist:love") == [4]
    assert hits(index, "track:love") == [0, 4]
    assert hits(index, "album:love") == [0, 4]
    assert hits(index, 'track:"crazy in love"') == [0]
    assert sorted(hits(index, '"in love"')) == [0, 4]  # 4 by its album "In Love"
    assert hits(index, '"love in"') == [4]
    assert hits(index, 'artist:"ros sigur"') == []
    assert hits(index, "album:black track:back") == [2]


def test_order_puts_track_name_matches_first(index):
    assert hits(index, "love") == [4, 0]  # 4: in track, artist and album names; 0: track and album
    assert hits(index, "crazy") == [0, 4]  # a tie (track names only): by catalog index
    assert hits(index, "in") == [0, 2, 4]  # track and album names alike
    assert hits(index, "black acdc") == [2]
    assert hits(index, "crazy jay") == [0]


def test_the_catalog_has_the_names_search_must_cope_with():
    catalog = Catalog(20_000, "variety")
    names = [catalog.names(i) for i in range(20_000)]
    every = " ".join(t + " " + " ".join(a) + " " + al for t, a, al in names)
    for needle in ("Beyoncé", "Sigur Rós", "AC/DC", "Guns N' Roses", "feat.", "Love", "The "):
        assert needle in every, needle
    scripts = {"japanese": "\u3040", "cyrillic": "\u0400", "greek": "\u0370"}
    for script, low in scripts.items():
        assert any(low <= ch <= chr(ord(low) + 0xFF) for ch in every), script
    assert catalog.names(1234) == Catalog(20_000, "variety").names(1234)  # deterministic
    track = catalog.track(1234)
    assert catalog.names(1234) == (track["name"], [a["name"] for a in track["artists"]], track["album"]["name"])


def test_catalog_search_finds_a_track_by_its_names_first():
    catalog = Catalog(20_000, "variety")
    for index in (5, 777, 19_999):
        track, artists, album = catalog.names(index)
        total, page = catalog.search(f'track:"{track}" artist:"{artists[0]}" album:"{album}"', 0, 50)
        assert index in page and total >= 1
        assert all(catalog.names(i)[0] == track for i in page)


def test_the_index_is_built_once_on_the_first_search_and_bounded():
    calls = []

    def names(i):
        calls.append(i)
        return NAMES[i % len(NAMES)]

    index = SearchIndex(1_000, names, max_tracks=16)
    assert calls == []  # lazy
    assert index.search(parse("beyonce")) == [0, 8]  # only the first 16 tracks are indexed
    built = len(calls)
    assert built == 16
    index.search(parse("beyonce"))
    index.search(parse("kino"))
    assert len(calls) == built
