"""Reading a search query: Spotify's field filters, quoted phrases, plain words.

    parse('artist:"daft punk" one more')  -> Query(words=("one", "more"),
                                                   fields={"artist": ("daft punk",)})

Every term is folded (pipeline/search/normalize.py). A bad query raises QueryError naming the
parameter, ready to show a caller.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from pipeline.errors import InputError
from pipeline.search.normalize import compact, fold

MAX_QUERY_CHARS = 200
FIELDS = {"artist": "artist", "track": "title", "album": "album"}  # Spotify's filter -> songs column
# field:"a phrase" | field:word | "a phrase" | word
_TOKEN = re.compile(r'(?:(?P<field>[A-Za-z]+):)?(?:"(?P<phrase>[^"]*)"?|(?P<word>\S+))')


class QueryError(InputError):
    """The query cannot be searched; the message starts with the parameter's name."""


@dataclass(frozen=True)
class Query:
    words: tuple[str, ...] = ()  # folded words that may match anywhere (title, artist, album)
    phrases: tuple[str, ...] = ()  # folded phrases that must appear as they are
    fields: dict[str, tuple[str, ...]] = field(default_factory=dict)  # songs column -> folded terms
    text: str = ""  # the folded free text (words and phrases), for exact and prefix matching

    @property
    def compact(self) -> str:
        """The free text without spaces ("ac dc" -> "acdc")."""
        return self.text.replace(" ", "")

    def is_empty(self) -> bool:
        return not (self.words or self.phrases or any(self.fields.values()))


def parse(raw: str, *, param: str = "q") -> Query:
    """The query a caller typed -> Query. Raises QueryError for an empty, too long or
    control-character-bearing query."""
    if len(raw) > MAX_QUERY_CHARS:
        raise QueryError(f"{param}: at most {MAX_QUERY_CHARS} characters, got {len(raw)}")
    for position, ch in enumerate(raw):
        if unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\t":
            raise QueryError(f"{param}: control character U+{ord(ch):04X} at position {position}")
    words: list[str] = []
    phrases: list[str] = []
    free: list[str] = []
    fields: dict[str, list[str]] = {}
    for match in _TOKEN.finditer(raw):
        name, phrase, word = match.group("field"), match.group("phrase"), match.group("word")
        column = FIELDS.get(name.lower()) if name else None
        if name and column is None:  # "foo:bar" that is no filter: plain words
            phrase, word = None, match.group(0)
        term = fold(phrase if phrase is not None else word or "")
        if not term:
            continue
        if column is not None:
            fields.setdefault(column, []).append(term)
        elif phrase is not None and " " in term:
            phrases.append(term)
            free.append(term)
        else:
            words.extend(term.split(" "))
            free.append(term)
    query = Query(tuple(words), tuple(phrases), {k: tuple(v) for k, v in fields.items()}, " ".join(free))
    if query.is_empty():
        raise QueryError(f"{param}: nothing to search for in {raw[:40]!r}")
    return query


__all__ = ["MAX_QUERY_CHARS", "Query", "QueryError", "compact", "parse"]
