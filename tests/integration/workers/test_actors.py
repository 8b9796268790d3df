"""The actors on a StubBroker with a real ledger and a fake Spotify client: what each failure
does to the job row and to its message. Each job runs through the actor Dramatiq declared from the
job-type registry (and, in the first test, through a Dramatiq worker consuming the queue)."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name
from dramatiq.message import Message
from dramatiq.worker import Worker
from sqlalchemy import text

from pipeline import producers
from pipeline.capabilities import POPULARITY, Capabilities, InMemoryCapabilityRows
from pipeline.errors import CapabilityForbidden, InvalidGrant, PipelineError, RateLimited, ServerError
from pipeline.spotify.client import TrackFetch
from pipeline.spotify.models import Page, SavedTrack, Track
from pipeline.store import freshness, ledger, songs
from pipeline.store.capabilities import CapabilityState
from shared.clock import utc_now
from workers import actors
from workers.leases import LeaseKeeper
from workers.sender import JobSender
from workers.setup import WorkerEnv, install_env

IDS = [f"{i:022d}" for i in range(50)]


def track_json(track_id, popularity=50):
    return {"id": track_id, "name": f"Song {track_id[-3:]}", "artists": [{"name": "A"}], "album": {"name": "B"},
            "duration_ms": 180_000, "popularity": popularity}


class FakeSpotify:
    """Scripted answers: `errors` are raised, one per call, before any data is served."""

    def __init__(self, *, popularity=True, features=True, library=0):
        self.capabilities = Capabilities(InMemoryCapabilityRows(), "client")
        self.errors: list[Exception] = []
        self.calls: list[tuple[str, int]] = []
        self.popularity, self.features, self.library = popularity, features, library
        self.together: threading.Barrier | None = None  # set: every call waits for the others in flight

    def _call(self, name, n):
        self.calls.append((name, n))
        if self.together is not None:
            self.together.wait()
        if self.errors:
            raise self.errors.pop(0)

    def fetch_tracks(self, ids):
        try:
            return TrackFetch(self.get_tracks(ids))
        except PipelineError as exc:
            return TrackFetch({}, exc)

    def get_tracks(self, ids):
        self._call("tracks", len(ids))
        tracks = {i: Track.from_json(track_json(i, 50 if self.popularity else None)) for i in ids}
        if not self.popularity:
            self.capabilities.forbid(POPULARITY, "tracks come without popularity")
        return tracks

    def get_audio_features(self, ids):
        self._call("audio_features", len(ids))
        if not self.features:
            raise CapabilityForbidden("audio_features", "/audio-features", reason="403 Forbidden")
        return {i: {"id": i, "danceability": 0.5} for i in ids}

    def for_user(self, user_id):
        return self

    def saved_tracks(self, offset=0, limit=50):
        self._call("saved_tracks", offset)
        items = [{"added_at": f"2026-01-01T00:{k // 60 % 60:02d}:{k % 60:02d}Z", "track": track_json(f"L{k:021d}")}
                 for k in range(offset, min(offset + limit, self.library))]
        nxt = f"/me/tracks?offset={offset + limit}" if offset + limit < self.library else None
        return Page.from_json({"items": items, "offset": offset, "limit": limit, "total": self.library, "next": nxt},
                              SavedTrack.from_json)


@pytest.fixture
def world(settings, clean_db):
    broker = StubBroker()
    declared = actors.declare_actors(broker)
    spotify = FakeSpotify()
    env = WorkerEnv(settings, clean_db, spotify, JobSender(broker), LeaseKeeper(clean_db, settings.job_lease_s))
    yield broker, declared, spotify, env, clean_db
    broker.close()


def enqueue(env, ids=IDS):
    producers.enqueue_track_sync(env.engine, env.send, iter(ids), force=False, track_ttl_s=86400)
    return ledger.list_jobs(env.engine)[0]


def run(job_type, job_id, env):
    """What a worker thread does with a message for `job_id`: call the declared actor."""
    install_env(env)
    try:
        env.send.broker.get_actor(job_type).fn(job_id)
    finally:
        install_env(None)


def messages(broker, queue):
    return [Message.decode(data) for data in broker.queues[queue].queue]


def delayed(broker, queue):
    return messages(broker, dq_name(queue))


def songs_count(engine):
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*), count(danceability) FROM songs")).one()


def add_user(engine, user_id):
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id) VALUES (:u)"), {"u": user_id})


def library_job(engine, user_id):
    """A new incremental (not --full) library job for the user: its id."""
    [job_id] = ledger.create_jobs(engine, [ledger.NewJob("user_library", {"full": False}, user_id=user_id)])
    return job_id


def release_parked_jobs(engine):
    """What waiting out a parked job's notBefore would do."""
    with engine.begin() as conn:
        conn.execute(text('UPDATE spotify_sync_jobs SET "notBefore" = NULL'))


def saved_tracks_of(engine, user_id):
    with engine.connect() as conn:
        return conn.execute(text('SELECT count(*) FROM spotify_saved_tracks WHERE "userId" = :u'), {"u": user_id}).scalar()


def test_a_track_sync_fetches_upserts_and_completes_with_what_it_wrote(world):
    broker, _, spotify, env, engine = world
    job = enqueue(env)
    assert [m.args for m in messages(broker, "tracks")] == [(job.id,)]
    run("track_sync", job.id, env)
    done = ledger.get_job(engine, job.id)
    assert done.status == "completed"
    assert done.result == {"requested": 50, "skipped_fresh": 0, "audio_features": "synced", "fetched": 50,
                           "upserted": 50, "inserted": 50, "not_found": [], "features_written": 50}
    assert spotify.calls == [("tracks", 50), ("audio_features", 50)]
    assert tuple(songs_count(engine)) == (50, 50)
    # The message again (at-least-once): nothing is fetched, nothing changes.
    run("track_sync", job.id, env)
    assert spotify.calls == [("tracks", 50), ("audio_features", 50)]


def test_a_job_of_a_hundred_ids_has_its_three_requests_in_flight_together(world):
    """Two /tracks of 50 and one /audio-features of 100, none waiting for another's answer (issue
    16.5); the features land on the songs the tracks made."""
    _, _, spotify, env, engine = world
    spotify.together = threading.Barrier(3, timeout=10)
    env.extras["overlap"] = ThreadPoolExecutor(4)
    job = enqueue(env, [f"{i:022d}" for i in range(100)])
    run("track_sync", job.id, env)
    done = ledger.get_job(engine, job.id)
    assert (done.status, done.result["upserted"], done.result["features_written"]) == ("completed", 100, 100)
    assert sorted(spotify.calls) == [("audio_features", 100), ("tracks", 50), ("tracks", 50)]
    assert tuple(songs_count(engine)) == (100, 100)


def test_a_job_does_not_ask_again_for_ids_spotify_answered_null_for_within_the_ttl(world):
    _, _, spotify, env, engine = world
    songs.write_tracks(engine, [], IDS[:10], ledger.db_now(engine))  # Spotify answered null for them
    [job_id] = ledger.create_jobs(engine, [ledger.NewJob("track_sync", {"ids": IDS})])  # made before it was known
    run("track_sync", job_id, env)
    assert spotify.calls == [("tracks", 40), ("audio_features", 40)]
    assert ledger.get_job(engine, job_id).result["skipped_fresh"] == 10


def test_a_rate_limit_parks_the_job_on_its_row_and_keeps_its_retries(world):
    broker, _, spotify, env, engine = world
    job = enqueue(env)
    messages(broker, "tracks").clear()
    spotify.errors = [RateLimited(120)]
    run("track_sync", job.id, env)
    parked = ledger.get_job(engine, job.id)
    assert (parked.status, parked.retry_count, parked.error_class) == ("pending", 0, "RateLimited")
    wait = parked.not_before - ledger.db_now(engine)
    assert timedelta(seconds=115) < wait <= timedelta(seconds=126)
    # No message is out for a parked job: the ledger says when it runs, and nothing is due yet.
    assert parked.enqueued_at is None and delayed(broker, "tracks") == []
    assert ledger.take_due(engine, limit=10) == []
    # A message that comes back early (a duplicate) is dropped: the job is the dispatcher's.
    run("track_sync", job.id, env)
    assert ledger.get_job(engine, job.id).status == "pending" and delayed(broker, "tracks") == []
    # The deadline passes: the dispatcher takes the job once and its message runs it.
    with engine.begin() as conn:
        conn.execute(text('UPDATE spotify_sync_jobs SET "notBefore" = "notBefore" - interval \'1 hour\''))
    assert ledger.take_due(engine, limit=10) == [(job.id, "track_sync")]
    assert ledger.take_due(engine, limit=10) == []
    run("track_sync", job.id, env)
    assert ledger.get_job(engine, job.id).status == "completed"


def test_a_job_parked_between_tracks_and_features_asks_only_for_the_features_next_time(world):
    _, _, spotify, env, engine = world
    job = enqueue(env)
    real = spotify.get_audio_features
    spotify.get_audio_features = lambda ids: (_ for _ in ()).throw(RateLimited(5))
    run("track_sync", job.id, env)
    assert ledger.get_job(engine, job.id).status == "pending"
    assert tuple(songs_count(engine)) == (50, 0)  # the tracks are written already
    spotify.get_audio_features = real
    release_parked_jobs(engine)
    run("track_sync", job.id, env)
    done = ledger.get_job(engine, job.id)
    assert (done.status, done.result["skipped_fresh"], done.result["features_written"]) == ("completed", 50, 50)
    assert spotify.calls == [("tracks", 50), ("audio_features", 50)]
    assert tuple(songs_count(engine)) == (50, 50)


def test_transient_errors_retry_with_backoff_then_fail_with_the_error(world):
    broker, _, spotify, env, engine = world
    env.settings = env.settings.replace(job_max_retries=2)
    job = enqueue(env)
    spotify.errors = [ServerError("HTTP 503")] * 3
    for expected_retries in (1, 2):
        run("track_sync", job.id, env)
        row = ledger.get_job(engine, job.id)
        assert (row.status, row.retry_count, row.error_class) == ("pending", expected_retries, "ServerError")
        release_parked_jobs(engine)
    run("track_sync", job.id, env)
    failed = ledger.get_job(engine, job.id)
    assert (failed.status, failed.error_class, failed.error) == (
        "failed", "ServerError", "HTTP 503 (gave up after 2 retries)")
    assert delayed(broker, "tracks") == []  # a backoff parks on the row, like a rate limit


def test_a_run_whose_job_was_taken_over_while_it_failed_says_its_failure_was_not_recorded(world):
    from loguru import logger

    _, _, spotify, env, engine = world
    job = enqueue(env)

    def taken_over_during_the_call(name, n):
        with engine.begin() as conn:  # meanwhile another worker took the job over
            conn.execute(text("UPDATE spotify_sync_jobs SET attempts = attempts + 1"))
        raise ServerError("HTTP 503")

    spotify._call = taken_over_during_the_call
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(message.record["message"]), level="WARNING")
    try:
        run("track_sync", job.id, env)
    finally:
        logger.remove(sink)
    row = ledger.get_job(engine, job.id)
    assert (row.status, row.retry_count) == ("running", 0)  # the other run's to finish, uncharged by this one
    assert any("lost its lease" in line and "ServerError was not recorded" in line for line in lines), lines


def test_a_permanent_error_fails_at_once(world):
    _, _, spotify, env, engine = world
    job = enqueue(env)
    spotify.errors = [InvalidGrant("Refresh token revoked")]
    run("track_sync", job.id, env)
    failed = ledger.get_job(engine, job.id)
    assert (failed.status, failed.retry_count, failed.error_class) == ("failed", 0, "InvalidGrant")


def test_without_audio_features_the_songs_are_written_and_the_reason_kept(world):
    _, _, spotify, env, engine = world
    spotify.features = False
    job = enqueue(env)
    run("track_sync", job.id, env)
    done = ledger.get_job(engine, job.id)
    assert (done.status, done.result["audio_features"], done.result["audio_features_reason"]) == (
        "completed", "unavailable", "403 Forbidden")
    assert tuple(songs_count(engine)) == (50, 0)


def test_a_job_leased_to_a_live_worker_is_not_run_twice(world):
    broker, _, spotify, env, engine = world
    job = enqueue(env)
    ledger.claim(engine, job.id, 60, max_retries=5)  # another worker has it
    run("track_sync", job.id, env)
    assert spotify.calls == [] and len(delayed(broker, "tracks")) == 1


def test_popularity_update_records_history_or_why_it_is_unavailable(world):
    _, _, spotify, env, engine = world
    enqueue(env)
    run("track_sync", ledger.list_jobs(engine)[0].id, env)
    result = producers.enqueue_popularity_update(engine, env.send, older_than_s=0, limit=50)
    [job_id] = [j.id for j in ledger.list_jobs(engine, job_type="popularity_update")]
    run("popularity_update", job_id, env)
    assert ledger.get_job(engine, job_id).result == {"requested": 50, "updated": 50, "not_found": []}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM song_popularity_history")).scalar() == 50

    spotify.popularity = False
    spotify.capabilities = Capabilities(InMemoryCapabilityRows(), "dev-2026-client")
    calls = len(spotify.calls)
    producers.enqueue_popularity_update(engine, env.send, older_than_s=0, limit=50)
    job_id = ledger.list_jobs(engine, job_type="popularity_update", status="pending")[0].id
    run("popularity_update", job_id, env)
    done = ledger.get_job(engine, job_id)
    assert done.status == "completed" and done.result["popularity"] == "unavailable"
    assert done.result["reason"] == "tracks come without popularity"
    assert spotify.calls[calls:] == [("tracks", 1)]  # one probe, not fifty
    assert result.jobs == 1


def last_popularity_updates(engine):
    with engine.connect() as conn:
        return set(conn.execute(text('SELECT "lastPopularityUpdate" FROM songs')).scalars())


def test_popularity_jobs_waiting_on_another_callers_probe_leave_their_songs_for_the_next_refresh(world):
    """Popularity was forbidden and its recheck is due; another job holds the probe. The jobs
    meanwhile ask nothing and stamp nothing, so when the probe finds popularity available the
    next hourly refresh takes their songs; when it finds it forbidden, they are stamped then."""
    _, _, spotify, env, engine = world
    run("track_sync", enqueue(env).id, env)
    with engine.begin() as conn:  # their popularity, from the track sync, is two hours old
        conn.execute(text('UPDATE songs SET "lastPopularityUpdate" = "lastPopularityUpdate" - interval \'2 hours\''))
    two_hours_old = last_popularity_updates(engine)
    rows = InMemoryCapabilityRows()
    an_hour_ago = utc_now() - timedelta(hours=1)
    rows.save("client", CapabilityState(POPULARITY, False, "tracks come without popularity", an_hour_ago - timedelta(days=1),
                                        an_hour_ago))
    spotify.capabilities = Capabilities(rows, "client")
    assert spotify.capabilities.allowed(POPULARITY)  # the other job: it probes
    calls = len(spotify.calls)

    def refresh():
        producers.enqueue_popularity_update(engine, env.send, older_than_s=3600, limit=1000)
        [job] = ledger.list_jobs(engine, job_type="popularity_update", status="pending")
        run("popularity_update", job.id, env)
        return ledger.get_job(engine, job.id)

    waiting = refresh()
    assert (waiting.status, waiting.result["popularity"], waiting.result["updated"]) == ("completed", "rechecking", 0)
    assert spotify.calls[calls:] == [] and last_popularity_updates(engine) == two_hours_old

    spotify.capabilities.allow(POPULARITY)  # the probe's answer
    assert refresh().result == {"requested": 50, "updated": 50, "not_found": []}

    # Forbidden again and not yet due: the songs are stamped, without a request.
    with engine.begin() as conn:
        conn.execute(text('UPDATE songs SET "lastPopularityUpdate" = "lastPopularityUpdate" - interval \'2 hours\''))
    spotify.capabilities.forbid(POPULARITY, "tracks come without popularity")
    calls = len(spotify.calls)
    unavailable = refresh()
    assert (unavailable.result["popularity"], spotify.calls[calls:]) == ("unavailable", [])
    assert producers.enqueue_popularity_update(engine, env.send, older_than_s=3600, limit=1000).jobs == 0


def test_a_library_sync_checkpoints_every_page_and_stops_at_known_tracks(world, settings):
    _, _, spotify, env, engine = world
    spotify.library = 120
    add_user(engine, "u1")
    job_id = library_job(engine, "u1")

    def flaky_pages(offset=0, limit=50, _real=spotify.saved_tracks):
        if offset == 100 and not getattr(flaky_pages, "failed", False):
            flaky_pages.failed = True
            raise ServerError("HTTP 502")
        return _real(offset, limit)

    spotify.saved_tracks = flaky_pages  # the third page fails once
    run("user_library", job_id, env)
    row = ledger.get_job(engine, job_id)
    assert (row.status, row.result["next_offset"], row.result["pages"]) == ("pending", 100, 2)
    release_parked_jobs(engine)
    run("user_library", job_id, env)
    done = ledger.get_job(engine, job_id)
    assert (done.status, done.result["pages"], done.result["tracks"], done.result["new_links"]) == ("completed", 3, 120, 120)
    assert [c for c in spotify.calls if c[0] == "saved_tracks"] == [("saved_tracks", 0), ("saved_tracks", 50),
                                                                    ("saved_tracks", 100)]
    # Again: the first page holds known tracks, so one page is read.
    again = library_job(engine, "u1")
    run("user_library", again, env)
    assert ledger.get_job(engine, again).result["pages"] == 1
    assert saved_tracks_of(engine, "u1") == 120


def test_a_library_run_cut_short_after_its_last_page_reads_no_page_again(world, settings):
    _, _, spotify, env, engine = world
    spotify.library = 60
    add_user(engine, "u1")
    job_id = library_job(engine, "u1")
    real_features = spotify.get_audio_features

    def limited_on_the_last_page(ids):  # the last page's features meet a 429
        if any(i.startswith("L00000000000000000005") for i in ids):
            raise RateLimited(1, "rate_limit")
        return real_features(ids)

    spotify.get_audio_features = limited_on_the_last_page
    run("user_library", job_id, env)
    parked = ledger.get_job(engine, job_id)
    assert (parked.status, parked.retry_count, parked.result["next_offset"], parked.result["pages"]) == (
        "pending", 0, None, 2)
    release_parked_jobs(engine)
    run("user_library", job_id, env)
    done = ledger.get_job(engine, job_id)
    assert (done.status, done.result["pages"], done.result["tracks"]) == ("completed", 2, 60)
    assert [c for c in spotify.calls if c[0] == "saved_tracks"] == [("saved_tracks", 0), ("saved_tracks", 50)]


def test_after_a_library_sync_that_failed_part_way_the_next_one_reads_to_the_end(world, settings):
    _, _, spotify, env, engine = world
    spotify.library = 150
    add_user(engine, "u1")
    failed = library_job(engine, "u1")
    real_pages = spotify.saved_tracks

    def revoked_after_the_first_page(offset=0, limit=50):
        if offset > 0:
            raise InvalidGrant("the user revoked access")
        return real_pages(offset, limit)

    spotify.saved_tracks = revoked_after_the_first_page
    run("user_library", failed, env)
    assert (ledger.get_job(engine, failed).status, ledger.get_job(engine, failed).result["pages"]) == ("failed", 1)

    # Reconnected: page one holds only known tracks, yet pages two and three were never read.
    spotify.saved_tracks = real_pages
    again = library_job(engine, "u1")
    run("user_library", again, env)
    done = ledger.get_job(engine, again)
    assert (done.status, done.result["pages"], done.result["full"]) == ("completed", 3, True)
    assert saved_tracks_of(engine, "u1") == 150
    # That one finished: the next stops at the first known page again.
    third = library_job(engine, "u1")
    run("user_library", third, env)
    assert ledger.get_job(engine, third).result["pages"] == 1


def one_by_one_client(spotify_api):
    """A real SpotifyClient over a fake HTTP API for a dev-2026 app: batch /tracks and
    /audio-features are forbidden, so tracks come one by one. Returns it and its clock."""
    import httpx

    from pipeline.ratecontrol.limiter import InMemoryLimiter
    from pipeline.ratecontrol.penalty_box import InMemoryPenaltyBox
    from pipeline.spotify import SpotifyClient
    from shared.settings import Rate

    def handler(request):
        if request.url.path in ("/v1/tracks", "/v1/audio-features"):
            return httpx.Response(403, json={"error": {"status": 403, "message": "Forbidden"}})
        return spotify_api(request.url.path.rsplit("/", 1)[1])

    class Token:
        def token(self):
            return "app-token"

        def invalidate(self, token):
            pass

    clock = [1_000_000.0]
    client = SpotifyClient(
        http=httpx.Client(transport=httpx.MockTransport(handler)), api_base_url="https://api.test/v1",
        limiter=InMemoryLimiter(Rate(10_000, 1)), penalty_box=InMemoryPenaltyBox(lambda: clock[0]), tokens=Token(),
        capabilities=Capabilities(InMemoryCapabilityRows(), "dev-2026-client"), sleep=lambda s: None)
    return client, clock


def rate_limited_on_the_20th_request(asked, missing=()):
    """One /tracks/{id} answer: 404 for the `missing` ids, a 429 for the 20th request."""
    import httpx

    def spotify_api(track_id):
        asked.append(track_id)
        if len(asked) == 20:
            return httpx.Response(429, headers={"Retry-After": "60"},
                                  json={"error": {"status": 429, "message": "API rate limit exceeded"}})
        if track_id in missing:
            return httpx.Response(404, json={"error": {"status": 404, "message": "Non existing id"}})
        return httpx.Response(200, json=track_json(track_id))

    return spotify_api


def test_a_429_part_way_through_one_by_one_tracks_keeps_what_was_fetched(world):
    """dev-2026: batch /tracks is forbidden, so a job's 50 tracks come one by one. A 429 on the
    20th request parks the job with the 19 fetched tracks written; the re-run asks for the 31 others."""
    _, _, _, env, engine = world
    asked: list[str] = []
    env.client, clock = one_by_one_client(rate_limited_on_the_20th_request(asked))
    job = enqueue(env)
    run("track_sync", job.id, env)
    parked = ledger.get_job(engine, job.id)
    assert (parked.status, parked.retry_count, parked.error_class) == ("pending", 0, "RateLimited")
    assert asked == IDS[:20]
    with engine.connect() as conn:
        stored = conn.execute(text('SELECT "spotifyId" FROM songs ORDER BY "spotifyId"')).scalars().all()
    assert stored == IDS[:19]

    clock[0] += 61  # the penalty box opens, and so does the job
    release_parked_jobs(engine)
    run("track_sync", job.id, env)
    done = ledger.get_job(engine, job.id)
    assert asked[20:] == IDS[19:] and len(asked[20:]) == 31
    assert (done.status, done.result["skipped_fresh"], done.result["fetched"], done.result["audio_features"]) == (
        "completed", 19, 31, "unavailable")
    assert tuple(songs_count(engine)) == (50, 0)


def test_ids_answered_404_before_a_429_part_way_are_not_asked_again(world):
    """Two of the 19 ids fetched before the 429 have no track (404): they are remembered with
    the 17 tracks written, so the re-run asks for neither."""
    _, _, _, env, engine = world
    asked: list[str] = []
    env.client, clock = one_by_one_client(rate_limited_on_the_20th_request(asked, missing={IDS[5], IDS[6]}))
    job = enqueue(env)
    run("track_sync", job.id, env)
    assert ledger.get_job(engine, job.id).error_class == "RateLimited" and asked == IDS[:20]
    assert {i for i, f in freshness.freshness(engine, IDS, 86400).items() if f.track_fresh and not f.song_exists} == {
        IDS[5], IDS[6]}  # remembered as unknown

    clock[0] += 61
    release_parked_jobs(engine)
    run("track_sync", job.id, env)
    done = ledger.get_job(engine, job.id)
    assert asked[20:] == IDS[19:]  # not IDS[5] or IDS[6] again
    assert (done.status, done.result["skipped_fresh"], done.result["fetched"]) == ("completed", 19, 31)
    assert tuple(songs_count(engine)) == (48, 0)


def test_a_dramatiq_worker_consuming_the_queue_runs_the_job_through_its_declared_actor(world):
    broker, _, spotify, env, engine = world
    job = enqueue(env)
    install_env(env)
    worker = Worker(broker, worker_timeout=50, worker_threads=1)
    worker.start()
    try:
        broker.join("tracks", timeout=30_000)
        worker.join()
    finally:
        worker.stop()
        install_env(None)
    assert ledger.get_job(engine, job.id).status == "completed"
    assert tuple(songs_count(engine)) == (50, 50) and spotify.calls == [("tracks", 50), ("audio_features", 50)]
