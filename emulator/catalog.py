"""The synthetic catalog: tracks, albums, artists and audio features computed from an index.

Nothing is stored: track i is a pure function of (catalog seed, i), so a catalog of 1,000,000
tracks costs no memory beyond bounded caches. Track i sits on album i // 10 (track number
i % 10 + 1); an album's primary artist is a function of the album.
Popularity drifts with the hour (a slow sine per track), deterministically.
The rendered JSON of a track is cached per (index, view, hour) as bytes, so a batch response
is a join of cached byte strings: that is what makes 1,000+ batch requests/s possible. Cached
renders are right-sized copies (`_right_sized`), and the ten tracks of an album share one album
object: full caches hold about 750 MB.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from emulator import names, search
from emulator.ids import IdCodec

TRACKS_PER_ALBUM = 10
TRACKS_PER_ARTIST = 40
MARKETS = ["AR", "AU", "BR", "CA", "DE", "ES", "FR", "GB", "IT", "JP", "MX", "NL", "SE", "US"]
API = "https://api.spotify.com/v1"
OPEN = "https://open.spotify.com"

def _digest(seed: bytes, kind: bytes, index: int) -> bytes:
    return hashlib.blake2b(index.to_bytes(8, "big"), key=seed, person=kind, digest_size=32).digest()


def _u16(digest: bytes, at: int) -> int:
    return int.from_bytes(digest[at : at + 2], "big")


def _right_sized(rendered: bytes) -> bytes:
    """A copy of exactly its length, for keeping in a cache: orjson (3.12+) hands back bytes
    whose allocation is rounded up and never shrunk, about 8 KB behind a 2 KB track, which
    turned 200,000 cached renders into gigabytes."""
    return bytes(memoryview(rendered))


class Catalog:
    """One catalog (size, seed). Build a new one when either changes."""

    def __init__(self, size: int, seed: str, audio_features_share: float = 0.9,
                 search_index_max_tracks: int = search.DEFAULT_MAX_TRACKS) -> None:
        self.size = size
        self.seed = seed
        self.audio_features_share = audio_features_share
        self._key = hashlib.blake2b(seed.encode(), digest_size=32).digest()
        self.tracks = IdCodec(seed, "track")
        self.albums = IdCodec(seed, "album")
        self.artists = IdCodec(seed, "artist")
        self.album_count = -(-size // TRACKS_PER_ALBUM)
        self.artist_count = max(1, size // TRACKS_PER_ARTIST)
        self._album = lru_cache(maxsize=10_000)(self.album)
        self._track_base = lru_cache(maxsize=100_000)(self._build_track_base)
        self.track_json = lru_cache(maxsize=200_000)(self._render_track)
        self.audio_features_json = lru_cache(maxsize=100_000)(self._render_audio_features)
        self._artist_name = lru_cache(maxsize=100_000)(self.artist_name)
        self._album_name = lru_cache(maxsize=10_000)(self.album_name)
        self._album_artist = lru_cache(maxsize=10_000)(self.album_artist_index)
        self._search_index = search.SearchIndex(size, self.names, search_index_max_tracks)

    # --- ids ---
    def track_index(self, track_id: str) -> int | None:
        """Index of a well-formed track id, or None when it is not in this catalog."""
        index = self.tracks.decode(track_id)
        if index is None or index >= self.size:
            return None
        return index

    def track_id(self, index: int) -> str:
        return self.tracks.encode(index)

    # --- artists and albums ---
    def artist(self, artist_index: int) -> dict[str, Any]:
        artist_id = self.artists.encode(artist_index)
        return {
            "external_urls": {"spotify": f"{OPEN}/artist/{artist_id}"},
            "href": f"{API}/artists/{artist_id}",
            "id": artist_id,
            "name": self.artist_name(artist_index),
            "type": "artist",
            "uri": f"spotify:artist:{artist_id}",
        }

    def artist_name(self, artist_index: int) -> str:
        return names.artist_name(artist_index, _digest(self._key, b"artist", artist_index))

    def album_name(self, album_index: int) -> str:
        artist = self.artist_name(self.album_artist_index(album_index))
        return names.album_name(_digest(self._key, b"album", album_index), artist)

    def featured_artist_index(self, index: int) -> int | None:
        """The second artist of track `index`, when it has one (about one track in six)."""
        return self._featured(_digest(self._key, b"track", index))

    def _featured(self, track_digest: bytes) -> int | None:
        d = track_digest
        return int.from_bytes(d[1:5], "big") % self.artist_count if d[0] < 40 else None

    def track_name(self, index: int) -> str:
        d = _digest(self._key, b"track", index)
        featured = self._featured(d)
        return names.track_name(d, None if featured is None else self._artist_name(featured))

    def album_artist_index(self, album_index: int) -> int:
        d = _digest(self._key, b"albumart", album_index)
        return int.from_bytes(d[:8], "big") % self.artist_count

    def album(self, album_index: int) -> dict[str, Any]:
        d = _digest(self._key, b"album", album_index)
        album_id = self.albums.encode(album_index)
        total = min(TRACKS_PER_ALBUM, self.size - album_index * TRACKS_PER_ALBUM)
        year = 1960 + _u16(d, 0) % 66
        month, day = 1 + d[2] % 12, 1 + d[3] % 28
        precision = "day" if d[4] < 220 else "year"
        release = f"{year}-{month:02d}-{day:02d}" if precision == "day" else str(year)
        image = d[8:28].hex()
        return {
            "album_type": "single" if total == 1 else ("compilation" if d[5] < 12 else "album"),
            "total_tracks": total,
            "available_markets": MARKETS,
            "external_urls": {"spotify": f"{OPEN}/album/{album_id}"},
            "href": f"{API}/albums/{album_id}",
            "id": album_id,
            "images": [
                {"url": f"https://i.scdn.co/image/ab67616d0000b273{image}", "height": 640, "width": 640},
                {"url": f"https://i.scdn.co/image/ab67616d00001e02{image}", "height": 300, "width": 300},
                {"url": f"https://i.scdn.co/image/ab67616d00004851{image}", "height": 64, "width": 64},
            ],
            "name": self.album_name(album_index),
            "release_date": release,
            "release_date_precision": precision,
            "type": "album",
            "uri": f"spotify:album:{album_id}",
            "artists": [self.artist(self.album_artist_index(album_index))],
        }

    # --- tracks ---
    def isrc(self, index: int, year: int) -> str:
        """ISRC that encodes the index: QZ + 'E' + 2 base36 chars + yy + 5 digits."""
        high, low = divmod(index, 100_000)
        reg = _b36(high).rjust(2, "0")
        return f"QZE{reg}{year % 100:02d}{low:05d}"

    def index_from_isrc(self, isrc: str) -> int | None:
        isrc = isrc.strip().upper()
        if len(isrc) != 12 or not isrc.startswith("QZE") or not isrc[7:].isdigit():
            return None
        try:
            index = int(isrc[3:5], 36) * 100_000 + int(isrc[7:])
        except ValueError:
            return None
        if index >= self.size or self.isrc(index, int(isrc[5:7])) != isrc:
            return None
        return index

    def _build_track_base(self, index: int) -> dict[str, Any]:
        d = _digest(self._key, b"track", index)
        album_index = index // TRACKS_PER_ALBUM
        album = self._album(album_index)
        track_id = self.tracks.encode(index)
        artists = list(album["artists"])
        featured = self.featured_artist_index(index)
        if featured is not None:  # a featured artist now and then
            artists.append(self.artist(featured))
        year = int(album["release_date"][:4])
        return {
            "album": album,
            "artists": artists,
            "available_markets": MARKETS,
            "disc_number": 1,
            "duration_ms": 90_000 + int.from_bytes(d[8:11], "big") % 330_000,
            "explicit": d[11] < 40,
            "external_ids": {"isrc": self.isrc(index, year)},
            "external_urls": {"spotify": f"{OPEN}/track/{track_id}"},
            "href": f"{API}/tracks/{track_id}",
            "id": track_id,
            "is_local": False,
            "name": self.track_name(index),
            "popularity": 0,  # filled per hour by popularity()
            "preview_url": None if d[12] < 50 else f"https://p.scdn.co/mp3-preview/{d[13:31].hex()}",
            "track_number": index % TRACKS_PER_ALBUM + 1,
            "type": "track",
            "uri": f"spotify:track:{track_id}",
        }

    def popularity(self, index: int, hour: int) -> int:
        """0..100; a base per track plus a slow sine (two-week period), a function of the hour."""
        d = _digest(self._key, b"pop", index)
        base = (d[0] * d[1]) % 101 if d[2] < 128 else d[0] % 101  # many obscure, some hits
        phase = d[3] / 255.0 * 2 * math.pi
        drift = 4.0 * math.sin(2 * math.pi * hour / (24 * 14) + phase)
        return max(0, min(100, int(round(base + drift))))

    def track(self, index: int, view: str = "full", market: bool = False, hour: int = 0) -> dict[str, Any]:
        """The Track object as an app of `view` ("full" or "dev-2026") sees it."""
        track = dict(self._track_base(index))
        if view == "dev-2026":
            # Left out for apps created from 2026-02-11 on (platform notes, "Access tiers").
            del track["popularity"], track["available_markets"]
            track["preview_url"] = None
        else:
            track["popularity"] = self.popularity(index, hour)
        if market:
            # With a market Spotify answers is_playable instead of available_markets. Every
            # track is playable everywhere here: no relinking, no restrictions (README).
            track.pop("available_markets", None)
            track["is_playable"] = True
        return track

    def _render_track(self, index: int, view: str, market: bool, hour: int) -> bytes:
        return _right_sized(orjson.dumps(self.track(index, view, market, hour)))

    # --- audio features ---
    def audio_features(self, index: int) -> dict[str, Any] | None:
        d = _digest(self._key, b"features", index)
        if _u16(d, 0) >= int(self.audio_features_share * 65536):
            return None  # no audio analysis for this track
        track_id = self.tracks.encode(index)
        unit = lambda at: round(_u16(d, at) / 65535, 4)  # noqa: E731
        return {
            "acousticness": unit(2),
            "analysis_url": f"{API}/audio-analysis/{track_id}",
            "danceability": unit(4),
            "duration_ms": self._track_base(index)["duration_ms"],
            "energy": unit(6),
            "id": track_id,
            "instrumentalness": round(unit(8) ** 3, 4),  # mostly vocal tracks
            "key": d[10] % 13 - 1,  # -1: no key detected
            "liveness": round(unit(11) ** 2, 4),
            "loudness": round(-60 + 60 * (1 - (_u16(d, 13) / 65535) ** 4), 3),  # mostly -20..0
            "mode": d[15] & 1,
            "speechiness": round(unit(16) ** 3, 4),
            "tempo": round(60 + _u16(d, 18) / 65535 * 140, 3),
            "time_signature": (3, 4, 4, 4, 4, 5, 6, 7)[d[20] % 8],
            "track_href": f"{API}/tracks/{track_id}",
            "type": "audio_features",
            "uri": f"spotify:track:{track_id}",
            "valence": unit(21),
        }

    def _render_audio_features(self, index: int) -> bytes:
        return _right_sized(orjson.dumps(self.audio_features(index)))  # b"null" when there are none

    # --- search ---
    def names(self, index: int) -> tuple[str, list[str], str]:
        """(track name, artist names, album name) of track `index`: what search matches, and
        the same names its Track object carries (one digest per track: the index is built from these)."""
        d = _digest(self._key, b"track", index)
        album_index = index // TRACKS_PER_ALBUM
        artists = [self._artist_name(self._album_artist(album_index))]
        featured = self._featured(d)
        if featured is not None:
            artists.append(self._artist_name(featured))
        name = names.track_name(d, None if featured is None else artists[1])
        return name, artists, self._album_name(album_index)

    def search(self, query: str, offset: int, limit: int) -> tuple[int, list[int]]:
        """(total, the indexes of one page) of the tracks matching `query` (see emulator.search)."""
        parsed = search.parse(query)
        if parsed.isrc is not None:
            found = self.index_from_isrc(parsed.isrc)
            hits = [] if found is None else [found]
            if parsed.terms and hits:
                hits = [i for i in hits if i in set(self._search_index.search(parsed))]
        else:
            hits = self._search_index.search(parsed)
        return len(hits), hits[offset : offset + limit]


def _b36(number: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while number:
        number, rem = divmod(number, 36)
        out = digits[rem] + out
    return out or "0"


def iso_utc(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
