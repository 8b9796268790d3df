"""Spotify objects -> songs rows: pure functions, no I/O (pipeline/store/songs.py writes them).

`track_row`, `features_row` and `merge_rows` take Spotify's JSON objects or the client's
typed structs (pipeline/spotify/models.py) alike, and fill only what the object holds: a value
Spotify left out is None, and the upsert keeps what the row had (a stored value is never
overwritten by an absent one). The structs, what a worker maps all day, take a path of their own
that reads their fields as attributes: their types are known (decoding checked them), so no field
needs asking what it is; the generic path, field by field through a reader, cost about three times
as much (5 us a track).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pipeline.spotify.models import AudioFeatures, Track

# Song columns a track_sync writes, with their PostgreSQL types (the store's upsert binds them).
SONG_COLUMNS: dict[str, str] = {
    "spotifyId": "text",
    "title": "text",
    "artist": "text",
    "album": "text",
    "duration": "int",
    "spotifyPopularity": "int",
    "spotifyPreviewUrl": "text",
    "spotifyExternalUrl": "text",
    "spotifyLastSync": "timestamp",
    "lastPopularityUpdate": "timestamp",
    "danceability": "numeric",
    "energy": "numeric",
    "valence": "numeric",
    "acousticness": "numeric",
    "instrumentalness": "numeric",
    "speechiness": "numeric",
    "liveness": "numeric",
    "tempo": "numeric",
    "loudness": "numeric",
    "audioFeaturesSynced": "boolean",
}
UNIT_FEATURES = ("danceability", "energy", "valence", "acousticness", "instrumentalness", "speechiness", "liveness")
FEATURE_COLUMNS = (*UNIT_FEATURES, "tempo", "loudness")


def _reader(obj: Any) -> Callable[[str], Any]:
    """The fields of a JSON object or of a dataclass, by name (None when absent). Which it is is
    asked once an object, not once a field: isinstance against Mapping, an ABC, costs several
    times a getattr, and a job reads about 2,000 fields."""
    if obj is None:
        return _nothing
    if isinstance(obj, Mapping):
        return obj.get
    return lambda name: getattr(obj, name, None)


def _nothing(name: str) -> None:
    return None


def _clamped(value: Any, low: float, high: float) -> float | None:
    """A feature value fitted into its column's check and range. Not rounded: the columns are
    numeric(p, 2), and PostgreSQL rounds the value's shortest decimal form (the JSON orjson writes,
    the text a float's repr gives) half away from zero into them, which is what rounding
    Decimal(repr(value)) with ROUND_HALF_UP here did, at about 3 us a value (9 of 100 songs a job:
    a tenth of a worker's CPU)."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return low if number < low else high if number > high else number


def utc_naive(moment: datetime | str | None) -> datetime | None:
    """An aware datetime or an ISO-8601 string ('2026-01-02T03:04:05Z') -> naive UTC."""
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def track_row(track: Any, synced_at: datetime) -> dict[str, Any]:
    """A Spotify Track -> the songs columns it fills. Popularity is None when the app's tier
    leaves it out; the upsert then keeps what the row had."""
    if type(track) is Track:
        return _typed_track_row(track, synced_at)
    get = _reader(track)
    artists = [_reader(a)("name") for a in (get("artists") or [])]
    duration_ms = get("duration_ms")
    if duration_ms is not None and duration_ms < 0:  # a duration cannot be negative: unknown
        duration_ms = None
    popularity = get("popularity")
    if popularity is not None:
        popularity = min(max(int(popularity), 0), 100)
    external_url = get("external_url") or _reader(get("external_urls"))("spotify")
    return {
        "spotifyId": get("id"),
        "title": get("name") or None,
        "artist": ", ".join(a for a in artists if a) or None,
        "album": _reader(get("album"))("name"),
        "duration": round(duration_ms / 1000) if duration_ms is not None else None,
        "spotifyPopularity": popularity,
        "spotifyPreviewUrl": get("preview_url"),
        "spotifyExternalUrl": external_url,
        "spotifyLastSync": synced_at,
        "lastPopularityUpdate": synced_at if popularity is not None else None,
    }


def _typed_track_row(track: Track, synced_at: datetime) -> dict[str, Any]:
    """track_row of the client's Track: the same row, read as attributes (see the docstring above)."""
    duration_ms = track.duration_ms
    popularity = track.popularity
    if popularity is not None:
        popularity = min(max(popularity, 0), 100)
    links = track.external_urls
    return {
        "spotifyId": track.id,
        "title": track.name or None,
        "artist": ", ".join([a.name for a in track.artists if a.name]) or None,
        "album": track.album.name,
        "duration": round(duration_ms / 1000) if duration_ms >= 0 else None,
        "spotifyPopularity": popularity,
        "spotifyPreviewUrl": track.preview_url,
        "spotifyExternalUrl": links.spotify if links is not None else None,
        "spotifyLastSync": synced_at,
        "lastPopularityUpdate": synced_at if popularity is not None else None,
    }


def _fitted(value: float | None, low: float, high: float) -> float | None:
    """_clamped for a value already a float or None (a decoded AudioFeatures')."""
    if value is None:
        return None
    return low if value < low else high if value > high else value


def features_row(features: Any) -> dict[str, Any]:
    """Spotify AudioFeatures -> the songs columns. Values are clamped to what the columns' checks
    and precision allow (0..1 for the unit features); the columns round them to two places."""
    if type(features) is AudioFeatures:
        f = features
        return {"danceability": _fitted(f.danceability, 0.0, 1.0), "energy": _fitted(f.energy, 0.0, 1.0),
                "valence": _fitted(f.valence, 0.0, 1.0), "acousticness": _fitted(f.acousticness, 0.0, 1.0),
                "instrumentalness": _fitted(f.instrumentalness, 0.0, 1.0),
                "speechiness": _fitted(f.speechiness, 0.0, 1.0), "liveness": _fitted(f.liveness, 0.0, 1.0),
                "tempo": _fitted(f.tempo, 0.0, 9999.99), "loudness": _fitted(f.loudness, -999.99, 999.99),
                "audioFeaturesSynced": True}
    get = _reader(features)
    row: dict[str, Any] = {name: _clamped(get(name), 0.0, 1.0) for name in UNIT_FEATURES}
    row["tempo"] = _clamped(get("tempo"), 0.0, 9999.99)
    row["loudness"] = _clamped(get("loudness"), -999.99, 999.99)
    row["audioFeaturesSynced"] = True
    return row


def merge_rows(tracks: Iterable[Any], features: Mapping[str, Any] | None, synced_at: datetime,
               *, features_checked: bool = False) -> list[dict[str, Any]]:
    """Song rows for these tracks (None entries skipped), with their audio features when given.

    `features` maps a track id to its AudioFeatures or None (Spotify has no analysis for it).
    `features_checked` says the app asked for features: a track Spotify has none for is then
    marked synced too, so it is not asked for again."""
    rows: dict[str, dict[str, Any]] = {}
    for track in tracks:
        if track is None or not (track.id if type(track) is Track else _reader(track)("id")):
            continue
        row = track_row(track, synced_at)
        found = (features or {}).get(row["spotifyId"])
        if found is not None:
            row.update(features_row(found))
        elif features_checked:
            row["audioFeaturesSynced"] = True
        rows[row["spotifyId"]] = row  # a duplicate id in one batch: the last one wins
    return list(rows.values())
