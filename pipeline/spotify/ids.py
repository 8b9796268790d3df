"""Spotify track ids as users paste them: the bare id, `spotify:track:<id>`, or an open.spotify.com URL."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from pipeline.errors import InvalidId

_ID = re.compile(r"^[0-9A-Za-z]{22}$")
_BARE_IDS = re.compile(r"[0-9A-Za-z]{22}(?:,[0-9A-Za-z]{22})*")
_URI = re.compile(r"^spotify:track:([0-9A-Za-z]{22})$")
# https://open.spotify.com/track/<id>, also with a locale segment (/intl-de/track/<id>)
_PATH = re.compile(r"^/(?:intl-[A-Za-z-]+/)?track/([0-9A-Za-z]{22})/?$")


def normalize_track_id(raw: str) -> str:
    """The 22-character base62 id in `raw`, or InvalidId naming the input."""
    if not isinstance(raw, str):
        raise InvalidId(raw)
    text = raw.strip()
    if _ID.match(text):
        return text
    match = _URI.match(text)
    if match:
        return match.group(1)
    parts = urlsplit(text)
    if parts.scheme in ("http", "https") and parts.hostname == "open.spotify.com":
        match = _PATH.match(parts.path)
        if match:
            return match.group(1)
    raise InvalidId(raw)


def normalize_track_ids(raw: Iterable[str]) -> list[str]:
    """Normalised ids, first occurrence order, duplicates dropped; InvalidId on the first bad one.
    Ids already bare (a worker's every batch: the producer normalised them) are checked by one
    match over them joined, not one by one (200 calls of normalize_track_id a job)."""
    items = raw if isinstance(raw, list) else list(raw)
    try:
        joined = ",".join(items)
    except TypeError:  # not all strings: normalize_track_id names the first that is not
        joined = ""
    # As many ids in the join as items (none holds a comma, each is one id of 22 characters).
    if len(joined) == 23 * len(items) - 1 and _BARE_IDS.fullmatch(joined):
        return list(dict.fromkeys(items))
    return list(dict.fromkeys(normalize_track_id(r) for r in items))


def is_track_id(raw: str) -> bool:
    return isinstance(raw, str) and bool(_ID.match(raw))


def batches(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]
