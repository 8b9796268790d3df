"""What each job does, between the ledger's claim and its finish: load, fetch, map, write.

The actors (workers/actors.py) call these with a claimed job; each returns the result the job row
keeps (what it wrote, what it skipped, why a column stays empty) or raises: the retry policy then
decides (park, retry later, fail). Nothing here sleeps, sends messages or touches job status,
except the library sync's checkpoint, which commits with each page's rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine

from pipeline import freshness, jobs, songs
from pipeline.capabilities import POPULARITY
from pipeline.jobs import Job
from pipeline.retry_policy import PermanentJobError
from pipeline.spotify.errors import CapabilityForbidden
from shared.db import transaction


class LeaseLost(Exception):
    """Another worker took the job over, or an operator cancelled it: stop without writing."""


class Client(Protocol):  # what we use of pipeline.spotify.SpotifyClient
    capabilities: Any

    def get_tracks(self, ids: list[str]) -> dict: ...
    def get_audio_features(self, ids: list[str]) -> dict: ...
    def for_user(self, user_id: str) -> Client: ...
    def saved_tracks(self, offset: int = 0, limit: int = 50) -> Any: ...


@dataclass(frozen=True)
class Context:
    engine: Engine
    client: Client
    track_ttl_s: int
    lease_s: int
    # Audio features by id; a worker process hands in a Coalescer (pipeline/batching.py) so that
    # two jobs of 50 share one request of 100. Default: the client's own call.
    audio_features: Callable[[list[str]], dict] | None = None

    def get_audio_features(self, ids: list[str]) -> dict:
        return (self.audio_features or self.client.get_audio_features)(ids)


def _ids(job: Job) -> list[str]:
    ids = job.payload.get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise PermanentJobError("the job's payload names no track ids")
    return ids


def sync_tracks(ctx: Context, job: Job) -> dict:
    """track_sync: fetch the tracks that are not fresh (all when forced) and write them at once;
    then the audio features of the songs that lack them, where the app may.

    Tracks are written before their features are asked for, so a run parked between the two (a
    429) does not fetch the tracks again: the next run sees fresh tracks without features and
    asks for the features alone. Likewise the tracks fetched before an error part way through
    (`.partial`: a 429 on the 20th of 50 one-by-one requests) are written, and the ids among them
    Spotify answered null for remembered, before it is raised."""
    ids = _ids(job)
    with transaction(ctx.engine) as session:
        state = songs.sync_state(session, ids)
        unknown = songs.unknown_since(session, ids)
    now = jobs.db_now(ctx.engine)
    last_sync = {i: at for i, (at, _) in state.items()}
    for track_id, checked_at in unknown.items():  # a null answer is as fresh as a sync at that time
        if last_sync.get(track_id) is None or checked_at > last_sync[track_id]:
            last_sync[track_id] = checked_at
    wanted = freshness.stale_ids(ids, last_sync, now, ctx.track_ttl_s, force=bool(job.payload.get("force")))
    result: dict[str, Any] = {"requested": len(ids), "skipped_fresh": len(set(ids)) - len(wanted), "fetched": 0,
                              "upserted": 0}
    found: list[str] = []
    if wanted:
        try:
            tracks = ctx.client.get_tracks(wanted)
        except BaseException as exc:  # a worker's interrupt too: what was fetched is kept
            if getattr(exc, "partial", None):
                _write_tracks(ctx, exc.partial, now)
            raise
        found = [track_id for track_id, track in tracks.items() if track is not None]
        upserted, not_found = _write_tracks(ctx, tracks, now)
        result.update(fetched=len(found), upserted=len(upserted), inserted=sum(u.inserted for u in upserted),
                      not_found=not_found)
        if found and all(tracks[i].popularity is None for i in found):
            result["popularity"] = "unavailable"
    features_synced = {i: synced for i, (_, synced) in state.items() if i not in wanted or not job.payload.get("force")}
    need_features = [i for i in freshness.features_missing(ids, features_synced) if i in set(found) or i in state]
    result.update(_sync_features(ctx, need_features))
    return result


def _write_tracks(ctx: Context, tracks: dict[str, Any], now: datetime) -> tuple[list[songs.UpsertedSong], list[str]]:
    """The fetched tracks as songs, and the ids Spotify answered null for remembered (so they are
    not asked again within the TTL): after a whole fetch, and after one cut short alike."""
    upserted = songs.write_songs(ctx.engine, songs.merge_rows(tracks.values(), None, now))
    not_found = [track_id for track_id, track in tracks.items() if track is None]
    if not_found:
        with transaction(ctx.engine) as session:
            songs.remember_unknown(session, not_found, now)
    return upserted, not_found


def _sync_features(ctx: Context, ids: list[str]) -> dict[str, Any]:
    """Audio features onto these songs, where the app may ask for them (the job's result says)."""
    if not ids:
        return {}
    try:
        features = ctx.get_audio_features(ids)
    except CapabilityForbidden as exc:
        return {"audio_features": "unavailable", "audio_features_reason": exc.message}
    with transaction(ctx.engine) as session:
        return {"audio_features": "synced", "features_written": songs.write_features(session, features, ids)}


def sync_library(ctx: Context, job: Job) -> dict:
    """user_library: page through the user's saved tracks (newest first) from the job's checkpoint.

    Each page's songs, links and the checkpoint (the next offset) commit together, so a job cut
    short resumes after the last page it wrote and fetches no page twice. Incremental (default):
    stop at the first page holding a track the user's links already have (unless the user's last
    library sync failed part way: then full). Full: read to the end, then drop the links to tracks
    no longer saved."""
    if not job.user_id:
        raise PermanentJobError("a user_library job needs a user")
    checkpoint = job.result or {}
    full = bool(job.payload.get("full") or checkpoint.get("full"))
    if not checkpoint and not full and jobs.last_finished(ctx.engine, job) == "failed":
        # The last sync stopped part way: tracks saved before the last page it read were never
        # read, and stopping at the first known track would skip them for good. Read to the end.
        full = True
    # A run cut short after its last page (say, by a 429 on the features) has nothing left to read.
    paging_done = "next_offset" in checkpoint and checkpoint["next_offset"] is None
    offset = int(checkpoint.get("next_offset") or 0)
    started = checkpoint.get("run_started") or jobs.db_now(ctx.engine).isoformat()
    totals = {k: int(checkpoint.get(k) or 0) for k in ("pages", "tracks", "new_links")}
    user = ctx.client.for_user(job.user_id)
    stopped_at_known = bool(checkpoint.get("stopped_at_known"))
    features: dict[str, Any] = {}
    while not paging_done:
        page = user.saved_tracks(offset)
        now = jobs.db_now(ctx.engine)
        items = [item for item in page.items if item.track is not None and item.track.id]
        with transaction(ctx.engine) as session:
            known = songs.known_saved(session, job.user_id, [item.track.id for item in items])
            upserted = songs.upsert_songs(session, songs.merge_rows([i.track for i in items], None, now))
            song_ids = {u.spotify_id: u.song_id for u in upserted}
            songs.link_saved_tracks(
                session, job.user_id,
                [(song_ids[i.track.id], i.track.id, songs.utc_naive(i.added_at)) for i in items], now)
            totals["pages"] += 1
            totals["tracks"] += len(items)
            totals["new_links"] += len(items) - len(known)
            stopped_at_known = bool(known) and not full
            next_offset = page.next_offset if not stopped_at_known else None
            checkpoint = {**totals, "next_offset": next_offset, "run_started": started, "full": full,
                          "stopped_at_known": stopped_at_known}
            if not jobs.save_checkpoint(session, job, ctx.lease_s, checkpoint):
                raise LeaseLost(job.id)
        # After the page's commit (no request inside a transaction). A run cut short here leaves
        # these songs without features; a track-sync of them fills them in (producers.py).
        if features.get("audio_features") != "unavailable":
            with transaction(ctx.engine) as session:
                state = songs.sync_state(session, [item.track.id for item in items])
            features = _sync_features(ctx, freshness.features_missing(list(state), {i: s for i, (_, s) in state.items()}))
        paging_done, offset = next_offset is None, next_offset
    result: dict[str, Any] = {**checkpoint, **({"audio_features": features["audio_features"]} if features else {})}
    if full:
        with transaction(ctx.engine) as session:
            result["removed_links"] = songs.remove_unseen_links(session, job.user_id, songs.utc_naive(started))
    return result


def update_popularity(ctx: Context, job: Job) -> dict:
    """popularity_update: refresh spotifyPopularity and add a history row per song. Where the
    app's tier leaves popularity out, record why and finish without failing (and stamp the songs,
    so the hourly refresh does not ask again before the capability is looked at again).

    But while another caller probes popularity (its recheck is due), the songs are not stamped:
    nothing was learned about them, and the probe may find popularity available again. Stamped,
    they would go to the back of the stalest-first refresh as if refreshed; unstamped, the next
    refresh takes them first, with the probe's answer known (forbidden: stamped then, still
    without a request). Simpler than parking the job until the probe answers, and no request is
    wasted either way."""
    ids = _ids(job)
    capabilities = ctx.client.capabilities
    if not capabilities.allowed(POPULARITY):
        if capabilities.known_forbidden(POPULARITY):
            return _popularity_unavailable(ctx, ids, capabilities.state(POPULARITY))
        return {"requested": len(ids), "updated": 0, "popularity": "rechecking",
                "reason": "another job is rechecking whether the app's tier has popularity; "
                          "these songs are left for the next refresh"}
    probe: list[str] = []
    if capabilities.state(POPULARITY) is None:
        # Never seen: one track tells whether the tier has popularity before we fetch fifty.
        probe = ids[:1]
        first = ctx.client.get_tracks(probe)
        if all(t is None or t.popularity is None for t in first.values()) and any(first.values()):
            return _popularity_unavailable(ctx, ids, capabilities.state(POPULARITY))
    tracks = ctx.client.get_tracks(ids) if len(ids) > len(probe) else {}
    if probe:
        tracks = {**first, **tracks}
    observed = [(tid, t.popularity) for tid, t in tracks.items() if t is not None and t.popularity is not None]
    if not observed and any(tracks.values()):
        return _popularity_unavailable(ctx, ids, capabilities.state(POPULARITY))
    now = jobs.db_now(ctx.engine)
    with transaction(ctx.engine) as session:
        recorded = songs.record_popularity(session, observed, now, job.id)
    return {"requested": len(ids), "updated": recorded,
            "not_found": [tid for tid, t in tracks.items() if t is None]}


def _popularity_unavailable(ctx: Context, ids: list[str], state: Any) -> dict:
    now = jobs.db_now(ctx.engine)
    with transaction(ctx.engine) as session:
        songs.touch_popularity_checked(session, ids, now)
    reason = (state.reason if state is not None else None) or "the app's access tier leaves popularity out"
    result: dict[str, Any] = {"requested": len(ids), "updated": 0, "popularity": "unavailable", "reason": reason}
    if state is not None and state.recheck_after is not None:
        result["recheck_after"] = state.recheck_after.isoformat()
    return result
