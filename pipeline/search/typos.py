"""The words one typo away from a query word, for looking them up among the known words.

A trigram look-alike (pg_trgm) finds a long word with one letter wrong, but a short one shares
too few trigrams with its typo ("cxme" and "come" share 2 of 5), so short words are looked up by
their one-edit variants instead (Norvig's: a letter deleted, two swapped, one replaced or
inserted), each an equality lookup in the vocabulary's btree.

    one_edit("cxme") -> ["xme", "cme", ..., "came", "come", ...]
"""

from __future__ import annotations

from string import ascii_lowercase, digits

# Longer words are left to the trigrams (and a 12-letter word has about 2,000 variants).
MAX_EDITED_WORD = 8
_ASCII = ascii_lowercase + digits
# A non-ASCII letter brings the lowercase letters near it (its script: Cyrillic, Greek, ...).
_SCRIPT_SPAN = 48


def alphabet(word: str) -> str:
    """The letters a typo in `word` may have replaced: a-z, 0-9, the word's own, and the
    lowercase letters of the script of each non-ASCII letter in it."""
    letters = dict.fromkeys(_ASCII + word)
    for ch in {c for c in word if ord(c) > 127 and c.isalpha()}:
        for code in range(max(ord(ch) - _SCRIPT_SPAN, 128), ord(ch) + _SCRIPT_SPAN):
            near = chr(code)
            if near.isalpha() and near == near.lower():
                letters[near] = None
    return "".join(letters)


def one_edit(word: str) -> list[str]:
    """Every other word one edit away from `word` (folded), or none past MAX_EDITED_WORD letters."""
    if len(word) > MAX_EDITED_WORD:
        return []
    letters = alphabet(word)
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    edits = [a + b[1:] for a, b in splits if b]
    edits += [a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1]
    edits += [a + c + b[1:] for a, b in splits if b for c in letters]
    edits += [a + c + b for a, b in splits for c in letters]
    return [e for e in dict.fromkeys(edits) if e and e != word]
