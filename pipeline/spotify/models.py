"""Typed results, decoded from Spotify's JSON by msgspec: straight from a response's bytes
(`decode_batch`, the batch answers a worker reads all day) or from an object already parsed
(`from_json`).

Tolerant of every field an access tier leaves out (popularity, available_markets, preview_url,
/me's country/email/product...): such a field is missing or null, and reads None. Strict about
what Spotify always sends for a track (a string `id` and `name`, a non-empty list of `artists`
with names, an `album` with a name, an integer `duration_ms`) and about the type of every field
read: an answer that breaks either is a MalformedResponse (retried like a 5xx, then the job fails
with the reason), never a track of empty fields written over a stored song. The reason is
msgspec's: what was wrong and where (`Expected `str`, got `null` - at `$.tracks[3].name``), with
the id asked for at that position. Unknown fields are skipped unread.

Structs, not dataclasses parsed from dicts: decoding a 50-track answer (about 100 KB, most of it
fields we never read) into them skips what is not declared without building it, where orjson's
dicts and then one frozen dataclass each took about five times the CPU (and freeing those dicts
more again). `gc=False`: they hold no cycles, and the cyclic collector need not track them."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar
from urllib.parse import parse_qs, urlsplit

import msgspec

from pipeline.errors import MalformedResponse

T = TypeVar("T")
S = TypeVar("S", bound=msgspec.Struct)


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_timestamp(value: Any) -> datetime | None:
    """ISO-8601 (with Z) -> an aware UTC datetime."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _converted(data: Any, kind: type[S], what: str) -> S:
    """`data` (parsed JSON) as a `kind`, or MalformedResponse saying what was wrong and where."""
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        shown = data.get("id") if isinstance(data, dict) and isinstance(data.get("id"), str) else "?"
        raise MalformedResponse(f"a {what} ({shown}) is malformed: {exc}") from None


class Artist(msgspec.Struct, frozen=True, gc=False):
    name: str
    id: str | None = None


class Image(msgspec.Struct, frozen=True, gc=False):
    url: str | None = None


class Album(msgspec.Struct, frozen=True, gc=False):
    name: str
    id: str | None = None
    album_type: str | None = None
    release_date: str | None = None
    release_date_precision: str | None = None
    images: tuple[Image, ...] | None = None

    @property
    def image_url(self) -> str | None:
        return self.images[0].url if self.images else None


class ExternalUrls(msgspec.Struct, frozen=True, gc=False):
    spotify: str | None = None


class ExternalIds(msgspec.Struct, frozen=True, gc=False):
    isrc: str | None = None


class Track(msgspec.Struct, frozen=True, gc=False):
    id: str
    name: str
    artists: Annotated[tuple[Artist, ...], msgspec.Meta(min_length=1)]
    album: Album
    duration_ms: int
    explicit: bool | None = None
    popularity: int | None = None  # None: the access tier leaves it out
    preview_url: str | None = None
    external_urls: ExternalUrls | None = None
    external_ids: ExternalIds | None = None
    uri: str | None = None
    is_local: bool | None = None

    @property
    def artist_names(self) -> str:
        return ", ".join(a.name for a in self.artists)

    @property
    def duration_s(self) -> int:
        return round(self.duration_ms / 1000)

    @property
    def external_url(self) -> str | None:
        return self.external_urls.spotify if self.external_urls is not None else None

    @property
    def isrc(self) -> str | None:
        return self.external_ids.isrc if self.external_ids is not None else None

    @classmethod
    def from_json(cls, data: Any) -> Track:
        """A Track, or MalformedResponse when `data` lacks what Spotify always sends (see above)."""
        return _converted(data, cls, "track")


class AudioFeatures(msgspec.Struct, frozen=True, gc=False):
    id: str | None = None
    acousticness: float | None = None
    danceability: float | None = None
    energy: float | None = None
    instrumentalness: float | None = None
    liveness: float | None = None
    speechiness: float | None = None
    valence: float | None = None
    loudness: float | None = None  # dB
    tempo: float | None = None  # BPM
    key: int | None = None
    mode: int | None = None
    time_signature: int | None = None
    duration_ms: int | None = None

    @classmethod
    def from_json(cls, data: Any) -> AudioFeatures:
        return _converted(data, cls, "audio features object")


class TracksAnswer(msgspec.Struct, gc=False):
    """GET /tracks?ids=: one entry per id asked, in order, null for an unknown one."""

    tracks: list[Track | None]


class AudioFeaturesAnswer(msgspec.Struct, gc=False):
    """GET /audio-features?ids=: one entry per id asked, in order, null where there is no analysis."""

    audio_features: list[AudioFeatures | None]


_DECODERS: dict[type, msgspec.json.Decoder] = {kind: msgspec.json.Decoder(kind)
                                               for kind in (TracksAnswer, AudioFeaturesAnswer)}
_POSITION = re.compile(r"`\$\.\w+\[(\d+)\]")


def decode_batch(body: bytes, kind: type[TracksAnswer] | type[AudioFeaturesAnswer], asked: Sequence[str],
                 endpoint: str) -> dict[str, Any]:
    """A batch answer's bytes -> {id asked: its object or None}, by position (batch answers keep
    the order asked). MalformedResponse when the body is not JSON, breaks the types above, or
    does not hold one entry per id asked; the message names the entry and the id asked there."""
    try:
        answer = _DECODERS[kind].decode(body)
    except msgspec.DecodeError as exc:  # ValidationError included
        at = _POSITION.search(str(exc))
        asked_there = f" (the entry for {asked[int(at.group(1))]})" if at and int(at.group(1)) < len(asked) else ""
        raise MalformedResponse(f"{endpoint}: the answer is malformed: {exc}{asked_there}", endpoint=endpoint) from None
    items: list[Any] = answer.tracks if isinstance(answer, TracksAnswer) else answer.audio_features
    if len(items) != len(asked):
        raise MalformedResponse(f"{endpoint}: the answer holds {len(items)} entries for the {len(asked)} ids asked",
                                endpoint=endpoint)
    return dict(zip(asked, items, strict=True))


@dataclass(frozen=True)
class SavedTrack:
    added_at: datetime | None
    track: Track | None

    @classmethod
    def from_json(cls, data: dict) -> SavedTrack:
        """`track` is None for an entry whose track is gone from the catalog (Spotify sends null)."""
        track = data.get("track")
        return cls(added_at=parse_timestamp(data.get("added_at")),
                   track=None if track is None else Track.from_json(track))


@dataclass(frozen=True)
class Page(Generic[T]):
    """A Spotify paging object. `next` is followed verbatim (`client.next_page(page)`);
    `next_offset` is the offset that `next` names, for callers that keep a checkpoint."""

    items: tuple[T, ...]
    offset: int
    limit: int
    total: int | None
    next: str | None
    previous: str | None
    href: str | None

    @property
    def next_offset(self) -> int | None:
        """The `offset` in the `next` URL; None at the end. Never counted from the items: a page
        may hold nulls (tracks gone from the catalog) that are not parsed into items. A `next`
        without a readable offset means the page after this one: offset + limit."""
        if self.next is None:
            return None
        values = parse_qs(urlsplit(self.next).query).get("offset", [])
        try:
            return max(0, int(values[0]))
        except (IndexError, ValueError):
            return self.offset + self.limit

    @classmethod
    def from_json(cls, data: dict, item: Callable[[dict], T]) -> Page[T]:
        items = data["items"] if isinstance(data.get("items"), list) else []
        return cls(
            items=tuple(item(i) for i in items if isinstance(i, dict)),
            offset=_opt_int(data.get("offset")) or 0,
            limit=_opt_int(data.get("limit")) or len(items),
            total=_opt_int(data.get("total")),
            next=_opt_str(data.get("next")),
            previous=_opt_str(data.get("previous")),
            href=_opt_str(data.get("href")),
        )


@dataclass(frozen=True)
class SpotifyUser:
    id: str
    display_name: str | None
    country: str | None  # left out in development mode since 2026
    email: str | None
    product: str | None
    account_id: str | None  # added May 2026

    @classmethod
    def from_json(cls, data: dict) -> SpotifyUser:
        return cls(
            id=str(data.get("id") or ""),
            display_name=_opt_str(data.get("display_name")),
            country=_opt_str(data.get("country")),
            email=_opt_str(data.get("email")),
            product=_opt_str(data.get("product")),
            account_id=_opt_str(data.get("account_id")),
        )
