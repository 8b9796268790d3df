"""Track search by name, as `/v1/search?type=track` does it: an inverted index of folded words.

Query language (Spotify's, for tracks):
  words              every word must occur in the track's, an artist's or the album's name,
                     in any order: `beyonce love`
  "a phrase"         those words, adjacent and in that order, within one name
  track:W  artist:W  album:W   the word (or `field:"a phrase"`) must be in that field
  isrc:CODE          that track (the catalog decodes it; no index needed)
Words are folded (`fold`): case and accents removed ("Beyoncé" = "beyonce", "Rós" = "ros"),
apostrophes dropped ("Guns N' Roses" = "guns n roses"), other punctuation splits words; a word
written with inner punctuation is also indexed joined ("AC/DC" answers "ac dc" and "acdc").
Japanese, Chinese and Korean have no spaces between words: each of their characters is a word.

Order: the tracks whose own name holds most of the query's words first, then those where the
artist and the album do, ties by catalog index, so paging is stable.

The index is built on the first search (about 2 s per 100,000 tracks on one core), over at
most `max_tracks` tracks (default 1,000,000: about 40 MB of 4-byte postings; the vocabulary
of the synthetic names is small). Results of the last `RESULT_CACHE` queries are kept, so
paging through one query does not search again.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from array import array
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

FIELDS = ("track", "artist", "album")
RESULT_CACHE = 256
DEFAULT_MAX_TRACKS = 1_000_000
FIELD_WEIGHT = {"track": 4, "artist": 2, "album": 1}  # for the order of results only

# Letters that Unicode does not decompose into a base letter and an accent.
_UNDECOMPOSED = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "æ": "ae", "œ": "oe", "þ": "th", "ı": "i", "ð": "d"})
_APOSTROPHES = re.compile(r"['\u2019\u02bc`]")
_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_WORD = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+")
_JOINED = re.compile(rf"[^\W_{_CJK}]+(?:[/.&\-+][^\W_{_CJK}]+)+")
_TERM = re.compile(r'(?:(\w+):)?(?:"([^"]*)"?|(\S+))')


def fold(text: str) -> str:
    """Lower case, without accents or apostrophes: "Beyoncé" -> "beyonce", "Guns N' Roses" -> "guns n roses"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _APOSTROPHES.sub("", bare).translate(_UNDECOMPOSED)


@lru_cache(maxsize=65_536)
def words(text: str) -> tuple[str, ...]:
    """The folded words of a name, in order (what a phrase must match)."""
    return tuple(_WORD.findall(fold(text)))


@lru_cache(maxsize=65_536)
def index_terms(text: str) -> frozenset[str]:
    """What a name is found by: its words, and its punctuated words joined ("acdc")."""
    folded = fold(text)
    joined = {re.sub(r"\W", "", m) for m in _JOINED.findall(folded)}
    return frozenset(_WORD.findall(folded)) | joined


@dataclass(frozen=True)
class Term:
    """One part of a query: words that must all be found, in `field` (None: any), as a phrase or not."""

    words: tuple[str, ...]
    field: str | None = None
    phrase: bool = False


@dataclass(frozen=True)
class Query:
    terms: tuple[Term, ...]
    isrc: str | None = None


def parse(query: str) -> Query:
    """`beyonce artist:"sigur ros" track:love isrc:X` -> terms. Unknown `field:` prefixes are words."""
    terms: list[Term] = []
    isrc = None
    for match in _TERM.finditer(query):
        field, quoted, bare = match.group(1), match.group(2), match.group(3)
        field = field.lower() if field else None
        if field == "isrc":
            isrc = (quoted if quoted is not None else bare or "").strip()
            continue
        if field is not None and field not in FIELDS:
            field, quoted, bare = None, None, match.group(0)
        text = quoted if quoted is not None else bare or ""
        found = words(text)
        if found:
            terms.append(Term(found, field, phrase=quoted is not None and len(found) > 1))
    return Query(tuple(terms), isrc)


class SearchIndex:
    """Inverted index over the first `size` tracks: field -> folded word -> track indexes (ascending).

    `names(index)` gives a track's (track name, artist names, album name). Thread-safe; built
    once, on the first search.
    """

    def __init__(self, size: int, names: Callable[[int], tuple[str, list[str], str]],
                 max_tracks: int = DEFAULT_MAX_TRACKS) -> None:
        self.size = min(size, max_tracks)
        self._names = names
        self._postings: dict[str, dict[str, array]] | None = None
        self._lock = threading.Lock()
        self._results: OrderedDict[tuple[Term, ...], list[int]] = OrderedDict()

    def _build(self) -> dict[str, dict[str, array]]:
        postings: dict[str, dict[str, array]] = {field: {} for field in FIELDS}
        for index in range(self.size):
            track, artists, album = self._names(index)
            for field, texts in (("track", (track,)), ("artist", artists), ("album", (album,))):
                seen: set[str] = set()
                for text in texts:
                    seen |= index_terms(text)
                table = postings[field]
                for word in seen:
                    table.setdefault(word, array("I")).append(index)
        return postings

    def _index(self) -> dict[str, dict[str, array]]:
        with self._lock:
            if self._postings is None:
                self._postings = self._build()
            return self._postings

    def _field_hits(self, field: str, word: str) -> Iterable[int]:
        return self._index()[field].get(word, ())

    def _term_hits(self, term: Term) -> set[int]:
        fields = FIELDS if term.field is None else (term.field,)
        hits: set[int] | None = None
        for word in term.words:
            found: set[int] = set()
            for field in fields:
                found.update(self._field_hits(field, word))
            hits = found if hits is None else hits & found
            if not hits:
                return set()
        hits = hits or set()
        if term.phrase:
            hits = {i for i in hits if self._has_phrase(i, term.words, fields)}
        return hits

    def _has_phrase(self, index: int, phrase: tuple[str, ...], fields: tuple[str, ...]) -> bool:
        track, artists, album = self._names(index)
        texts = {"track": [track], "artist": artists, "album": [album]}
        n = len(phrase)
        for field in fields:
            for text in texts[field]:
                seq = words(text)
                if any(seq[k : k + n] == phrase for k in range(len(seq) - n + 1)):
                    return True
        return False

    def search(self, query: Query) -> list[int]:
        """Every matching track index, best first (see the module docstring)."""
        if not query.terms:
            return []
        key = query.terms
        with self._lock:
            if key in self._results:
                self._results.move_to_end(key)
                return self._results[key]
        hits: set[int] | None = None
        for term in sorted(query.terms, key=lambda t: -len(t.words)):  # the narrowest first
            found = self._term_hits(term)
            hits = found if hits is None else hits & found
            if not hits:
                break
        ranked = self._rank(hits or set(), query)
        with self._lock:
            self._results[key] = ranked
            while len(self._results) > RESULT_CACHE:
                self._results.popitem(last=False)
        return ranked

    def _rank(self, hits: set[int], query: Query) -> list[int]:
        score: Counter[int] = Counter()
        for term in query.terms:
            for field in FIELDS if term.field is None else (term.field,):
                for word in term.words:
                    weight = FIELD_WEIGHT[field]
                    for index in self._field_hits(field, word):
                        if index in hits:
                            score[index] += weight
        return sorted(hits, key=lambda i: (-score[i], i))
