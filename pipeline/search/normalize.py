"""Folding text for search: case, accents and punctuation, the same way for songs and queries.

    fold("Beyoncé – Halo!")  -> "beyonce halo"
    fold("AC/DC")            -> "ac dc"        compact("AC/DC") -> "acdc"
    fold("Don't Stop")       -> "dont stop"

The SQL function `spotify_search_fold(text)` (migration 20261201_01) applies the same rules
inside PostgreSQL: unaccent, lower, apostrophes dropped, every other punctuation or space run
becomes one space. tests/integration/search/test_fold_parity.py holds both to the same output.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

# Dropped outright, so that "don't" folds like "dont".
APOSTROPHES = "'’‘`ʼ"
# Each run of these becomes one space. An explicit set, not a Unicode category, so that
# PostgreSQL's regex (whose classes depend on the database's locale) matches exactly the same.
SEPARATORS = (
    " \t\n\r\f\v\u00a0"
    + "!\"#$%&()*+,-./:;<=>?@[\\]^_{|}~"
    + "‐‑‒–—―…‚‛“”„‟«»‹›¡¿·•"
)
# Letters unaccent maps that canonical decomposition leaves alone (a subset of unaccent.rules).
_LETTERS = {
    "ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O",
    "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "TH", "ı": "i",
    "ŀ": "l", "Ŀ": "L", "ħ": "h", "Ħ": "H", "ŧ": "t", "Ŧ": "T", "ŉ": "'n", "ſ": "s",
    "¼": " 1/4", "½": " 1/2", "¾": " 3/4",
}
# Compatibility characters unaccent spells out: ligatures and the fullwidth ASCII forms.
_COMPAT = frozenset("ﬀﬁﬂﬃﬄﬅﬆĳĲǄǅǆǇǈǉǊǋǌ") | frozenset(map(chr, range(0xFF01, 0xFF5F)))
# Letters with a mark that unaccent keeps (it is a letter of its own in Russian).
_KEPT = frozenset("йЙ")
_SEPARATOR_SET = frozenset(SEPARATORS)
_APOSTROPHE_SET = frozenset(APOSTROPHES)


def unaccent(text: str) -> str:
    """Accents off, as PostgreSQL's unaccent does: "Beyoncé" -> "Beyonce", "Ørsted" -> "Orsted",
    "ß" -> "ss", "ё" -> "е"; signs that are no letters ("´", "②") stay as they are."""
    return "".join(_unaccent_char(ch) for ch in text)


@lru_cache(maxsize=4096)
def _unaccent_char(ch: str) -> str:
    if ch < "\u00bc" or ch in _KEPT:
        return ch
    if ch in _LETTERS:
        return _LETTERS[ch]
    if ch in _COMPAT:
        ch = unicodedata.normalize("NFKD", ch)
        return "".join(c for c in ch if not unicodedata.combining(c))
    decomposed = unicodedata.normalize("NFD", ch)
    if len(decomposed) > 1 and unicodedata.category(decomposed[0]).startswith("L"):
        return "".join(c for c in decomposed if not unicodedata.combining(c))
    return ch


def fold(text: str) -> str:
    """The searchable form: unaccented, lower case, words separated by single spaces."""
    out: list[str] = []
    pending_space = False
    # PostgreSQL's lower() makes every capital sigma "σ"; Python's, "ς" at a word's end: as SQL does.
    for ch in unaccent(text).replace("Σ", "σ").lower():
        if ch in _APOSTROPHE_SET:
            continue
        if ch in _SEPARATOR_SET:
            pending_space = bool(out)
            continue
        if pending_space:
            out.append(" ")
            pending_space = False
        out.append(ch)
    return "".join(out)


def compact(text: str) -> str:
    """The folded form without spaces: "AC/DC", "ac dc" and "acdc" all give "acdc"."""
    return fold(text).replace(" ", "")
