"""Track ids as operators hand them over: arguments, a file, or stdin, one per line; bare ids,
`spotify:track:` URIs and open.spotify.com URLs alike. Blank lines and `#` comments are skipped;
a bad line is remembered with its number and the reading goes on (the good ones are enqueued).

Files are read as bytes and each line decoded on its own: a line that is not UTF-8 (a Latin-1
byte, random bytes) is one bad line, not an exception that stops the whole file half-way. A
UTF-8 byte order mark at the start (editors on Windows write one) is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from pipeline.errors import InvalidId
from pipeline.spotify.ids import normalize_track_id

KEEP_BAD_LINES = 1000  # reported one by one; beyond that only counted (memory stays bounded)
SHOWN_CHARS = 200  # of a bad line

NOT_AN_ID = "not a Spotify track id, URI or URL"
NOT_UTF8 = "not UTF-8 text"
_BOM = "\ufeff"


@dataclass(frozen=True)
class BadLine:
    where: str  # "line 12" / "argument 3"
    text: str  # the line (at most SHOWN_CHARS), decoded with replacement characters if it was not UTF-8
    reason: str = NOT_AN_ID


@dataclass
class IdReader:
    """Iterate it once to get normalised ids; then `bad`, `bad_count` and `good_count` tell how it went.

    `lines` may be str (arguments, text) or bytes (a file opened in binary); iterating never
    raises for what a line holds."""

    lines: Iterable[str | bytes]
    label: str = "line"
    bad: list[BadLine] = field(default_factory=list)
    bad_count: int = 0
    good_count: int = 0

    def __iter__(self) -> Iterator[str]:
        for number, raw in enumerate(self.lines, start=1):
            text, reason = _decode(raw)
            if number == 1:
                text = text.removeprefix(_BOM)
            text = text.strip()
            if reason is None and (not text or text.startswith("#")):
                continue
            if reason is None:
                try:
                    track_id = normalize_track_id(text)
                except InvalidId:
                    reason = NOT_AN_ID
                else:
                    self.good_count += 1
                    yield track_id
                    continue
            self._remember(BadLine(f"{self.label} {number}", text[:SHOWN_CHARS], reason))

    def _remember(self, line: BadLine) -> None:
        self.bad_count += 1
        if len(self.bad) < KEEP_BAD_LINES:
            self.bad.append(line)


def _decode(raw: str | bytes) -> tuple[str, str | None]:
    """The line as text, and why it is bad when it cannot be decoded (else None)."""
    if isinstance(raw, str):
        return raw, None
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return raw[: SHOWN_CHARS * 4].decode("utf-8", errors="replace"), NOT_UTF8
