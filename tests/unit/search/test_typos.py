"""The one-edit variants a short mistyped word is looked up by."""

from pipeline.search.typos import MAX_EDITED_WORD, one_edit


def test_every_kind_of_single_typo_is_undone():
    assert {"come", "came"} <= set(one_edit("cxme"))  # replaced
    assert "love" in one_edit("lvoe")  # swapped
    assert "love" in one_edit("lve")  # dropped
    assert "love" in one_edit("lovve")  # doubled
    assert "cxme" not in one_edit("cxme")


def test_a_non_latin_word_is_edited_in_its_own_script():
    assert "раза" in one_edit("раxа")
    assert "αβγ" in one_edit("αβδ")


def test_long_words_are_left_to_the_trigrams():
    assert one_edit("x" * (MAX_EDITED_WORD + 1)) == []
