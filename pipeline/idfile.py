"""Track ids as operators hand them over: arguments, a file, or stdin, one per line; bare ids,
`spotify:track:` URIs and open.spotify.com URLs alike. Blank lines and `#` comments are skipped;
a bad line is remembered with its number and the reading goes on (the good ones are enqueued)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from pipeline.errors import InvalidId
from pipeline.spotify.ids import normalize_track_id

KEEP_BAD_LINES = 1000  # reported one by one; beyond that only counted (memory stays bounded)


@dataclass(frozen=True)
class BadLine:
    where: str  # "line 12" / "argument 3"
    text: str


@dataclass
class IdReader:
    """Iterate it once to get normalised ids; then `bad`, `bad_count` and `good_count` tell how it went."""

    lines: Iterable[str]
    label: str = "line"
    bad: list[BadLine] = field(default_factory=list)
    bad_count: int = 0
    good_count: int = 0

    def __iter__(self) -> Iterator[str]:
        for number, raw in enumerate(self.lines, start=1):
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            try:
                track_id = normalize_track_id(text)
            except InvalidId:
                self.bad_count += 1
                if len(self.bad) < KEEP_BAD_LINES:
                    self.bad.append(BadLine(f"{self.label} {number}", text[:200]))
                continue
            self.good_count += 1
            yield track_id
