"""The baseline: the script a user would write without this system.

One process loops over the ids in batches of 50, GETs /v1/tracks with httpx, and merges each
track into the songs table one by one with the SQLAlchemy ORM (look the song up, update or add,
commit per batch). It is honest code, not a straw man: pooled client, one transaction per batch.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db import make_engine
from shared.models import Song


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
                    song.spotify_last_sync = datetime.now(timezone.utc).replace(tzinfo=None)
                    written += 1
                session.commit()
    engine.dispose()
    return written, time.perf_counter() - started
