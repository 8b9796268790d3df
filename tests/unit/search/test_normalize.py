import pytest

from pipeline.search.normalize import compact, fold, unaccent


@pytest.mark.parametrize(("raw", "folded"), [
    ("Beyoncé", "beyonce"),
    ("BEYONCÉ – Halo!", "beyonce halo"),
    ("AC/DC", "ac dc"),
    ("Don't Stop Me Now", "dont stop me now"),
    ("Guns N’ Roses", "guns n roses"),
    ("  --Hello,   World!! ", "hello world"),
    ("Sigur Rós", "sigur ros"),
    ("Motörhead", "motorhead"),
    ("Ørsted Æon ß", "orsted aeon ss"),
    ("naïve_x%y", "naive x y"),  # LIKE's wildcards are separators: a folded term holds none
    ("ﬁne Ｆｕｌｌ", "fine full"),
    ("Мумий Тролль", "мумий тролль"),  # й is a letter of its own (as unaccent keeps it)
    ("ёлка", "елка"),
    ("東京事変", "東京事変"),
    ("", ""),
    ("?!", ""),
])
def test_fold(raw, folded):
    assert fold(raw) == folded


def test_compact_joins_the_words():
    assert compact("AC/DC") == compact("ac dc") == compact("acdc") == "acdc"


def test_unaccent_keeps_signs_that_are_no_letters():
    assert unaccent("´②™") == "´②™"
    assert unaccent("Ǆ") == "DZ"


def test_fold_is_idempotent():
    for raw in ("Beyoncé – Halo!", "AC/DC", "Ørsted ß", "R.E.M."):
        assert fold(fold(raw)) == fold(raw)
