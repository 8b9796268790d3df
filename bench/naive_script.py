"""The baseline: the script a user would write without this system.

One process loops over the ids in batches of 50, GETs /v1/tracks and /v1/audio-features for them
with httpx, and merges each track into the songs table one by one with the SQLAlchemy ORM (look
the song up, update or add, commit per batch). It is honest code, not a straw man: pooled client,
one transaction per batch. It fetches and writes what a track_sync job does (metadata,
popularity, audio features), so the two are compared on the same work.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db import make_engine
from shared.models import Song

# The audio-feature columns of songs (two decimal places each).
FEATURES = ("danceability", "energy", "valence", "acousticness", "instrumentalness", "speechiness", "liveness",
            "tempo", "loudness")


def run(ids: list[str], api_base_url: str, access_token: str, database_url: str) -> tuple[int, float]:
    """Sync `ids`; return (rows written, seconds)."""
    engine = make_engine(database_url)
    started = time.perf_counter()
    written = 0
    with httpx.Client(base_url=api_base_url, headers={"Authorization": f"Bearer {access_token}"}) as http:
        for start in range(0, len(ids), 50):
            batch = ids[start:start + 50]
            response = http.get("/tracks", params={"ids": ",".join(batch)})
            response.raise_for_status()
            analysis = http.get("/audio-features", params={"ids": ",".join(batch)})
            analysis.raise_for_status()
            features = {f["id"]: f for f in analysis.json()["audio_features"] if f is not None}
            with Session(engine) as session:
                for track in response.json()["tracks"]:
                    if track is None:
                        continue
                    song = session.scalars(select(Song).where(Song.spotify_id == track["id"])).first()
                    if song is None:
                        song = Song(spotify_id=track["id"])
                        session.add(song)
                    song.title = track["name"]
                    song.artist = ", ".join(a["name"] for a in track["artists"])
                    song.album = track["album"]["name"]
                    song.duration = round(track["duration_ms"] / 1000)
                    song.spotify_popularity = track.get("popularity")
                    song.spotify_preview_url = track.get("preview_url")
                    song.spotify_external_url = track["external_urls"].get("spotify")
                    song.spotify_last_sync = datetime.now(UTC).replace(tzinfo=None)
                    found = features.get(track["id"])
                    if found is not None:
                        for name in FEATURES:
                            setattr(song, name, round(Decimal(str(found[name])), 2))
                    song.audio_features_synced = True
                    written += 1
                session.commit()
    engine.dispose()
    return written, time.perf_counter() - started
