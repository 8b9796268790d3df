"""The baseline of the finish-time benchmark (bench/finish.py): what a user writes with spotipy.

`python -m bench.spotipy_script API_BASE_URL TOKEN DATABASE_URL IDS_FILE [PART PARTS]`: one process
fetches its share of the ids (part PART of PARTS) with spotipy, 100 at a time (two /tracks of 50,
one /audio-features of 100: the fewest requests there are), and upserts them into songs with
psycopg, one transaction per 100. On a 429 spotipy sleeps its Retry-After and tries again
(urllib3's Retry), which is what users of it get. Prints, as the last line of JSON, its seconds
from its first request to its last commit, that stretch's start and end (time.time()) and the
CPU seconds it spent in it (bench/throughput.py's CPU figures).

spotipy is a bench extra (`pip install spotipy`), not a dependency of the pipeline.
"""

from __future__ import annotations

import json
import sys
import time

import psycopg

UPSERT = """
INSERT INTO songs ("spotifyId", title, artist, album, duration, "spotifyPopularity", "spotifyLastSync",
                   danceability, energy, valence, "audioFeaturesSynced", "createdAt", "updatedAt")
VALUES (%s, %s, %s, %s, %s, %s, now(), %s, %s, %s, true, now(), now())
ON CONFLICT ("spotifyId") DO UPDATE SET title = EXCLUDED.title, "spotifyPopularity" = EXCLUDED."spotifyPopularity",
    "spotifyLastSync" = now(), danceability = EXCLUDED.danceability, energy = EXCLUDED.energy,
    valence = EXCLUDED.valence, "audioFeaturesSynced" = true, "updatedAt" = now()
"""


def _feature(features: dict | None, name: str) -> float | None:
    return round(float(features[name]), 2) if features and features.get(name) is not None else None


def run(api_base_url: str, token: str, database_url: str, ids: list[str]) -> dict[str, float]:
    import spotipy

    sp = spotipy.Spotify(auth=token, retries=20, status_retries=20, backoff_factor=0.1, requests_timeout=30)
    sp.prefix = api_base_url.rstrip("/") + "/"
    started, started_at, cpu_started = time.perf_counter(), time.time(), time.process_time()
    with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        for start in range(0, len(ids), 100):
            batch = ids[start:start + 100]
            tracks = [t for half in (batch[:50], batch[50:]) if half for t in sp.tracks(half)["tracks"]]
            features = {f["id"]: f for f in sp.audio_features(batch) if f}
            rows = [(t["id"], t["name"], ", ".join(a["name"] for a in t["artists"]), t["album"]["name"],
                     round(t["duration_ms"] / 1000), t.get("popularity"),
                     *(_feature(features.get(t["id"]), n) for n in ("danceability", "energy", "valence")))
                    for t in tracks if t]
            with conn.cursor() as cur:
                cur.executemany(UPSERT, rows)
            conn.commit()
    return {"seconds": time.perf_counter() - started, "started_at": started_at, "ended_at": time.time(),
            "cpu_s": time.process_time() - cpu_started}


if __name__ == "__main__":
    base, token, database_url, ids_file = sys.argv[1:5]
    part, parts = (int(sys.argv[5]), int(sys.argv[6])) if len(sys.argv) > 6 else (0, 1)
    all_ids = open(ids_file).read().split()
    share = all_ids[part * len(all_ids) // parts:(part + 1) * len(all_ids) // parts]
    print(json.dumps(run(base, token, database_url, share)))
