"""Typed results, built from Spotify's JSON by `from_json`.

Tolerant of every field an access tier leaves out (popularity, available_markets, preview_url,
/me's country/email/product...): such a field reads None. Strict about what Spotify always sends
for a track (a string `id` and `name`, a list of `artists` with names, an `album` with a name, an
integer `duration_ms`): an object without it is a MalformedResponse (retried like a 5xx, then the
job fails with the reason), never a track of empty fields written over a stored song.
Unknown fields are ignored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs, urlsplit

from pipeline.errors import MalformedResponse

T = TypeVar("T")


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _opt_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _required(data: dict, key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        shown = data.get("id") if isinstance(data.get("id"), str) else "?"
        raise MalformedResponse(f"a {what} ({shown}) without a valid {key!r}: {type(value).__name__}")
    return value


def parse_timestamp(value: Any) -> datetime | None:
    """ISO-8601 (with Z) -> an aware UTC datetime."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Artist:
    id: str | None
    name: str

    @classmethod
    def from_json(cls, data: dict) -> Artist:
        return cls(id=_opt_str(data.get("id")), name=_opt_str(data.get("name")) or "")


@dataclass(frozen=True)
class Album:
    id: str | None
    name: str
    album_type: str | None
    release_date: str | None
    release_date_precision: str | None
    image_url: str | None

    @classmethod
    def from_json(cls, data: dict) -> Album:
        images = data.get("images") if isinstance(data.get("images"), list) else []
        first = images[0] if images and isinstance(images[0], dict) else {}
        return cls(
            id=_opt_str(data.get("id")),
            name=_opt_str(data.get("name")) or "",
            album_type=_opt_str(data.get("album_type")),
            release_date=_opt_str(data.get("release_date")),
            release_date_precision=_opt_str(data.get("release_date_precision")),
            image_url=_opt_str(first.get("url")),
        )


@dataclass(frozen=True)
class Track:
    id: str
    name: str
    artists: tuple[Artist, ...]
    album: Album | None
    duration_ms: int | None
    explicit: bool | None
    popularity: int | None  # None: the access tier leaves it out
    preview_url: str | None
    external_url: str | None
    isrc: str | None
    uri: str | None
    is_local: bool

    @property
    def artist_names(self) -> str:
        return ", ".join(a.name for a in self.artists)

    @property
    def duration_s(self) -> int | None:
        return None if self.duration_ms is None else round(self.duration_ms / 1000)

    @classmethod
    def from_json(cls, data: dict) -> Track:
        """A Track, or MalformedResponse when `data` lacks what Spotify always sends (see above)."""
        if not isinstance(data, dict):
            raise MalformedResponse(f"a track that is not a JSON object: {type(data).__name__}")
        track_id = _required(data, "id", str, "track")
        _required(data, "name", str, "track")
        artists = _required(data, "artists", list, "track")
        if not artists or not all(isinstance(a, dict) and isinstance(a.get("name"), str) for a in artists):
            raise MalformedResponse(f"a track ({track_id}) whose 'artists' are not named objects")
        album = _required(data, "album", dict, "track")
        _required(album, "name", str, "track's album")
        _required(data, "duration_ms", int, "track")
        external_ids = _dict(data.get("external_ids"))
        external_urls = _dict(data.get("external_urls"))
        explicit = data.get("explicit")
        return cls(
            id=track_id,
            name=data["name"],
            artists=tuple(Artist.from_json(a) for a in artists),
            album=Album.from_json(album),
            duration_ms=_opt_int(data.get("duration_ms")),
            explicit=explicit if isinstance(explicit, bool) else None,
            popularity=_opt_int(data.get("popularity")),
            preview_url=_opt_str(data.get("preview_url")),
            external_url=_opt_str(external_urls.get("spotify")),
            isrc=_opt_str(external_ids.get("isrc")),
            uri=_opt_str(data.get("uri")),
            is_local=data.get("is_local") is True,
        )


@dataclass(frozen=True)
class AudioFeatures:
    id: str
    acousticness: float | None
    danceability: float | None
    energy: float | None
    instrumentalness: float | None
    liveness: float | None
    speechiness: float | None
    valence: float | None
    loudness: float | None  # dB
    tempo: float | None  # BPM
    key: int | None
    mode: int | None
    time_signature: int | None
    duration_ms: int | None

    @classmethod
    def from_json(cls, data: dict) -> AudioFeatures:
        f = {name: _opt_float(data.get(name)) for name in (
            "acousticness", "danceability", "energy", "instrumentalness", "liveness", "speechiness",
            "valence", "loudness", "tempo")}
        return cls(
            id=str(data.get("id") or ""),
            key=_opt_int(data.get("key")),
            mode=_opt_int(data.get("mode")),
            time_signature=_opt_int(data.get("time_signature")),
            duration_ms=_opt_int(data.get("duration_ms")),
            **f,
        )


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
