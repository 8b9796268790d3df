import pytest

from pipeline.search.query import MAX_QUERY_CHARS, QueryError, parse


def test_plain_words_are_folded():
    query = parse("Beyoncé  HALO")
    assert query.words == ("beyonce", "halo")
    assert query.text == "beyonce halo"
    assert query.fields == {}


def test_field_filters_and_phrases():
    query = parse('artist:"Daft Punk" track:one "more time" album:Discovery x')
    assert query.fields == {"artist": ("daft punk",), "title": ("one",), "album": ("discovery",)}
    assert query.phrases == ("more time",)
    assert query.words == ("x",)
    assert query.text == "more time x"


def test_an_unknown_filter_is_plain_text():
    assert parse("genre:rock").words == ("genre", "rock")


def test_punctuation_splits_words_and_compact_joins_them():
    query = parse("AC/DC")
    assert query.words == ("ac", "dc")
    assert query.compact == "acdc"


def test_sql_metacharacters_are_only_text():
    query = parse("x'; DROP TABLE songs; -- %_")
    assert query.words == ("x", "drop", "table", "songs")


@pytest.mark.parametrize(("raw", "message"), [
    ("", "q: nothing to search for"),
    ("   ", "q: nothing to search for"),
    ("?!", "q: nothing to search for"),
    ("a" * (MAX_QUERY_CHARS + 1), f"q: at most {MAX_QUERY_CHARS} characters"),
    ("abc\x00def", "q: control character U+0000 at position 3"),
    ("abc\u200edef", "q: control character U+200E"),
])
def test_bad_queries_name_the_parameter(raw, message):
    with pytest.raises(QueryError) as caught:
        parse(raw)
    assert str(caught.value).startswith(message)
