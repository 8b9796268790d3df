"""The tsquery text search builds: whole words, and a prefix only where a word may be one."""

from pipeline.search.query import parse
from pipeline.store.search import _terms, tsquery


def test_only_the_last_free_word_and_the_filters_words_are_prefixes():
    terms = _terms(parse('love the bohem "back in" artist:acdc'))
    assert terms == [("love", False), ("the", False), ("bohem", True), ("back", True), ("in", True),
                     ("acdc", True)]
    assert tsquery(terms[:3]) == "'love' & 'the' & 'bohem':*"


def test_a_quote_is_doubled():
    assert tsquery([("it's", False)]) == "'it''s'"
