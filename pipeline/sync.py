"""What each job does, between the ledger's claim and its finish: load, fetch, map, write.

The actors (workers/actors.py) call these with a claimed job; each returns the result the job row
keeps (what it wrote, what it skipped, why a column stays empty) or raises: the retry policy then
decides (park, retry later, fail). Nothing here sleeps, sends messages, touches job status or
holds a database session: what to do is decided here, every read and write is a store call.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Protocol

from loguru import logger
from sqlalchemy import Engine

from pipeline.batching import CoalescedRequestLost
from pipeline.capabilities import POPULARITY
from pipeline.errors import BadJob, CapabilityForbidden, LeaseLost, PipelineError
from pipeline.mapping import merge_rows, utc_naive
from pipeline.overlap import Later, Overlap
from pipeline.spotify.client import TRACKS_PER_REQUEST, TrackFetch
from pipeline.spotify.ids import batches
from pipeline.store import freshness, ledger, songs
from pipeline.store.ledger import Job


class Client(Protocol):  # what we use of pipeline.spotify.SpotifyClient
    capabilities: Any

    def get_tracks(self, ids: list[str]) -> dict: ...
    def fetch_tracks(self, ids: list[str]) -> TrackFetch: ...
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
    # two short requests (a job cut short, two library pages) share one of 100. Default: the
    # client's own call.
    audio_features: Callable[[list[str]], dict] | None = None
    # A job's independent requests in flight together (pipeline/overlap.py); a worker process hands
    # in its pool. Default: one after another.
    overlap: Overlap = Overlap()

    def get_audio_features(self, ids: list[str]) -> dict:
        return (self.audio_features or self.client.get_audio_features)(ids)


def _ids(job: Job) -> list[str]:
    ids = job.payload.get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise BadJob("the job's payload names no track ids")
    return ids


def sync_tracks(ctx: Context, job: Job) -> dict:
    """track_sync: fetch the tracks that are not fresh (all when forced) and write them; and the
    audio features of the songs that lack them, where the app may.

    The requests need nothing of each other's answers, so they are in flight together (a job of
    100 ids: two /tracks and one /audio-features, pipeline/overlap.py); which ids need features is
    known from the freshness verdicts before any answer: a song that lacks them, or one this run
    creates (or, forced, fetches again). A fetched track and its features are written together, in
    one upsert: each song is written once, not created and then updated (the features' answer
    comes beside the tracks', so waiting for it costs nothing); features of songs whose track was
    not fetched (fresh) land on the rows that exist. A run stopped by an error (a 429 on the 20th
    of 50 one-by-one requests, or on the features) writes what it fetched before it raises, and
    the ids among them Spotify answered null for are remembered: the next run fetches only what is
    left (the features alone, if they are)."""
    ids = list(dict.fromkeys(_ids(job)))
    force = bool(job.payload.get("force"))
    # The claim brought the verdicts and its clock when the worker asked for them (workers/run.py).
    run = job if isinstance(job, ledger.Run) else ledger.Run(**vars(job))
    verdicts = run.freshness if run.freshness is not None else freshness.freshness(ctx.engine, ids, ctx.track_ttl_s)
    wanted = [i for i in ids if force or not verdicts[i].track_fresh]
    fetching = set(wanted)
    # Decided before any answer, as if every fetched track is written (freshness.py's rule); a
    # forced sync asks for the features of every song it fetches again, too.
    need_features = [i for i in ids if verdicts[i].features_due_after_write(i in fetching) or (force and i in fetching)]
    features = ctx.overlap.start(lambda: _fetch_features(ctx, need_features)) if need_features else Later.done(({}, None))
    result: dict[str, Any] = {"requested": len(_ids(job)), "skipped_fresh": len(ids) - len(wanted), "fetched": 0,
                              "upserted": 0}
    if not wanted:
        result.update(_write_features(ctx, features.result(), need_features))
        return result
    fetched = _fetch_tracks(ctx, wanted)
    if fetched.stopped_by is not None:
        _write_tracks(ctx, fetched.found, run.claimed_at)
        _write_features_if_fetched(ctx, features, need_features)
        raise fetched.stopped_by
    try:
        answered = features.result()
    except Exception:
        _write_tracks(ctx, fetched.found, run.claimed_at)  # fetched: kept, whatever stopped the features
        raise
    with_features = answered[0]
    upserted, not_found = _write_tracks(ctx, fetched.found, run.claimed_at,
                                        features=with_features, features_of=set(need_features))
    found = [track_id for track_id, track in fetched.found.items() if track is not None]
    result.update(fetched=len(found), upserted=len(upserted), inserted=sum(u.inserted for u in upserted),
                  not_found=not_found)
    if found and all(getattr(fetched.found[i], "popularity", None) is None for i in found):
        result["popularity"] = "unavailable"
    if with_features is None:
        result.update(_write_features(ctx, answered, need_features))
        return result
    if need_features:
        # Features of songs this upsert did not write (their track was fresh, or answered null).
        written = {u.spotify_id for u in upserted}
        rest = [i for i in need_features if i not in written]
        result.update(_write_features(ctx, answered, rest))
        result.update(audio_features="synced",
                      features_written=result.get("features_written", 0) + sum(i in written for i in need_features))
    return result


def _fetch_tracks(ctx: Context, ids: list[str]) -> TrackFetch:
    """The tracks in requests of 50, in flight together: the first in this thread. What came before
    an error is kept beside the first error met (see `SpotifyClient.fetch_tracks`)."""
    first, *others = batches(ids, TRACKS_PER_REQUEST)
    started = [ctx.overlap.start(partial(ctx.client.fetch_tracks, batch)) for batch in others]
    fetches = [ctx.client.fetch_tracks(first), *(later.result() for later in started)]
    found = {track_id: track for fetch in fetches for track_id, track in fetch.found.items()}
    return TrackFetch(found, next((f.stopped_by for f in fetches if f.stopped_by is not None), None))


def _write_tracks(ctx: Context, tracks: dict[str, Any], now: datetime | None, *,
                  features: dict[str, Any] | None = None,
                  features_of: Collection[str] = ()) -> tuple[list[songs.UpsertedSong], list[str]]:
    """The fetched tracks as songs, and the ids Spotify answered null for remembered (so they are
    not asked again within the TTL): after a whole fetch, and after one cut short alike. Stamped
    `now` (the run's claim, on the database's clock), else the database's clock read now. The
    songs of `features_of` get their `features` (id -> AudioFeatures, or None: Spotify has none,
    and the song is marked as asked) in the same row."""
    now = now or ledger.db_now(ctx.engine)
    not_found = [track_id for track_id, track in tracks.items() if track is None]
    if features is None or not features_of:
        rows = merge_rows(tracks.values(), None, now)
    else:
        checked = [t for i, t in tracks.items() if i in features_of]
        rows = (merge_rows(checked, {i: features.get(i) for i in features_of}, now, features_checked=True)
                + merge_rows([t for i, t in tracks.items() if i not in features_of], None, now))
    return songs.write_tracks(ctx.engine, rows, not_found, now), not_found


_Features = tuple[dict[str, Any] | None, str | None]  # (features by id, or None and why they are unavailable)


def _fetch_features(ctx: Context, ids: list[str]) -> _Features:
    """Audio features of these ids, where the app may ask for them."""
    if not ids:
        return {}, None
    try:
        return ctx.get_audio_features(ids), None
    except CapabilityForbidden as exc:
        return None, exc.message


def _write_features(ctx: Context, fetched: _Features, ids: list[str]) -> dict[str, Any]:
    """The features onto the songs of these ids that exist (the job's result says what came of them)."""
    features, unavailable = fetched
    if features is None:
        return {"audio_features": "unavailable", "audio_features_reason": unavailable}
    if not ids:
        return {}
    return {"audio_features": "synced", "features_written": songs.write_features(ctx.engine, features, ids)}


def _write_features_if_fetched(ctx: Context, features: Later[_Features], ids: list[str]) -> None:
    """A run the tracks' error stops: features already asked for are written (their request is
    spent; they land on the songs that exist); a call not made yet is not made. Its own error is
    not raised: the tracks' error decides what becomes of the job."""
    if features.started:
        try:
            _write_features(ctx, features.result(), ids)
        except (PipelineError, CoalescedRequestLost) as exc:
            logger.debug("audio features not written after the tracks' error: {}", exc)


def _sync_features(ctx: Context, ids: list[str]) -> dict[str, Any]:
    """Audio features onto these songs, where the app may ask for them (the job's result says)."""
    return _write_features(ctx, _fetch_features(ctx, ids), ids)


def sync_library(ctx: Context, job: Job) -> dict:
    """user_library: page through the user's saved tracks (newest first) from the job's checkpoint.

    Each page's songs, links and the checkpoint (the next offset) commit together, so a job cut
    short resumes after the last page it wrote and fetches no page twice. Incremental (default):
    stop at the first page holding a track the user's links already have (unless the user's last
    library sync failed part way: then full). Full: read to the end, then drop the links to tracks
    no longer saved."""
    if not job.user_id:
        raise BadJob("a user_library job needs a user")
    checkpoint = job.result or {}
    full = bool(job.payload.get("full") or checkpoint.get("full"))
    if not checkpoint and not full and ledger.last_finished(ctx.engine, job) == "failed":
        # The last sync stopped part way: tracks saved before the last page it read were never
        # read, and stopping at the first known track would skip them for good. Read to the end.
        full = True
    # A run cut short after its last page (say, by a 429 on the features) has nothing left to read.
    paging_done = "next_offset" in checkpoint and checkpoint["next_offset"] is None
    offset = int(checkpoint.get("next_offset") or 0)
    started = checkpoint.get("run_started") or ledger.db_now(ctx.engine).isoformat()
    totals = {k: int(checkpoint.get(k) or 0) for k in ("pages", "tracks", "new_links")}
    user = ctx.client.for_user(job.user_id)
    features: dict[str, Any] = {}
    while not paging_done:
        page = user.saved_tracks(offset)
        now = ledger.db_now(ctx.engine)
        items = [item for item in page.items if item.track is not None]
        rows = songs.LibraryPage(merge_rows([i.track for i in items], None, now),
                                 [(i.track.id, utc_naive(i.added_at)) for i in items])

        def next_checkpoint(known: int, page: Any = page, count: int = len(items), before: dict = totals) -> dict:
            stopped_at_known = bool(known) and not full
            return {"pages": before["pages"] + 1, "tracks": before["tracks"] + count,
                    "new_links": before["new_links"] + count - known,
                    "next_offset": None if stopped_at_known else page.next_offset, "run_started": started,
                    "full": full, "stopped_at_known": stopped_at_known}

        known, held = songs.save_library_page(ctx.engine, job, ctx.lease_s, job.user_id, rows, next_checkpoint)
        if not held:
            raise LeaseLost(job.id)
        checkpoint = next_checkpoint(known)
        totals = {k: checkpoint[k] for k in totals}
        # After the page's commit (no request inside a transaction). A run cut short here leaves
        # these songs without features; a track-sync of them fills them in (producers.py).
        if features.get("audio_features") != "unavailable":
            features = _sync_features(ctx, songs.features_pending(ctx.engine, [s for s, _ in rows.links]))
        paging_done, offset = checkpoint["next_offset"] is None, checkpoint["next_offset"]
    result: dict[str, Any] = {**checkpoint, **({"audio_features": features["audio_features"]} if features else {})}
    if full:
        result["removed_links"] = songs.remove_unseen_links(ctx.engine, job.user_id, _as_datetime(started))
    return result


def _as_datetime(moment: str) -> datetime:
    parsed = utc_naive(moment)
    assert parsed is not None
    return parsed


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
    first: dict[str, Any] = {}
    if capabilities.state(POPULARITY) is None:
        # Never seen: one track tells whether the tier has popularity before we fetch fifty.
        probe = ids[:1]
        first = ctx.client.get_tracks(probe)
        if all(t is None or t.popularity is None for t in first.values()) and any(first.values()):
            return _popularity_unavailable(ctx, ids, capabilities.state(POPULARITY))
    tracks = {**first, **(ctx.client.get_tracks(ids) if len(ids) > len(probe) else {})}
    observed = [(tid, t.popularity) for tid, t in tracks.items() if t is not None and t.popularity is not None]
    if not observed and any(tracks.values()):
        return _popularity_unavailable(ctx, ids, capabilities.state(POPULARITY))
    recorded = songs.record_popularity(ctx.engine, observed, job.id)
    return {"requested": len(ids), "updated": recorded,
            "not_found": [tid for tid, t in tracks.items() if t is None]}


def _popularity_unavailable(ctx: Context, ids: list[str], state: Any) -> dict:
    songs.touch_popularity_checked(ctx.engine, ids)
    reason = (state.reason if state is not None else None) or "the app's access tier leaves popularity out"
    result: dict[str, Any] = {"requested": len(ids), "updated": 0, "popularity": "unavailable", "reason": reason}
    if state is not None and state.recheck_after is not None:
        result["recheck_after"] = state.recheck_after.isoformat()
    return result
