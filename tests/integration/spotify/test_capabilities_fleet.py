"""What one process learns about the app's access tier, every process knows from its next call:
the rows are in Postgres, their version in Redis (pipeline/capabilities.py)."""

import multiprocessing
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pipeline.capabilities import AUDIO_FEATURES, BATCH_TRACKS, Capabilities
from pipeline.errors import CapabilityForbidden
from pipeline.store.capabilities import PostgresCapabilityRows
from pipeline.wiring import build_client
from shared.keys import RedisKeys
from shared.redis_conn import connect
from shared.settings import Rate
from tests.integration.spotify.conftest import free_port, pointed_at
from tests.integration.spotify.fleet import capability_follower

pytestmark = pytest.mark.integration

THREADS = 4


def test_a_403_one_process_learns_is_obeyed_by_another_process_at_its_next_call(settings, clean_db, start_emulator):
    emulator = start_emulator(rate_limit=None)  # the extended tier first: batch calls are allowed
    settings = pointed_at(settings, emulator, spotify_rate_limit=Rate(10_000, 1))
    ids = emulator.ids(50 + 50 + 50 * THREADS)
    warm, learn, follow = ids[:50], ids[50:100], ids[100:]
    ctx = multiprocessing.get_context("spawn")
    ready, go, results = ctx.Event(), ctx.Event(), ctx.Queue()
    follower = ctx.Process(target=capability_follower, args=(settings, warm, follow, THREADS, ready, go, results))
    follower.start()
    try:
        assert ready.wait(60), "the follower process did not start"
        client = build_client(settings, engine=clean_db)
        client.get_tracks(warm)
        client.get_audio_features(warm)

        emulator.configure(tier="dev-2026")
        client.get_tracks(learn)  # meets the 403 on batch /tracks, learns it, falls back
        with pytest.raises(CapabilityForbidden):
            client.get_audio_features(learn)
        go.set()
        outcome = results.get(timeout=60)
    finally:
        go.set()
        follower.join(30)

    assert outcome["cached_before"] == {BATCH_TRACKS: True, AUDIO_FEATURES: True}
    # Within the old per-process cache TTL (10 s), which is what let the follower call again.
    assert outcome["waited_s"] < 10
    assert outcome["met_403"] == []
    assert outcome["outcomes"] == ["tracks+features forbidden"] * THREADS
    requests = emulator.stats()["requests"]
    assert requests["/v1/tracks"]["403"] == 1 and requests["/v1/audio-features"]["403"] == 1
    assert requests["/v1/tracks/{id}"] == {"200": len(learn) + len(follow)}


class CountingRows(PostgresCapabilityRows):
    """The table, counting how often it is read."""

    def __init__(self, engine):
        super().__init__(engine)
        self.loads = 0

    def load(self, client_id):
        self.loads += 1
        return super().load(client_id)


def _capabilities(settings, engine, redis_client, rows=None, **kwargs) -> Capabilities:
    rows = rows if rows is not None else PostgresCapabilityRows(engine)
    return Capabilities(rows, settings.spotify_client_id, recheck_s=3600,
                        redis=redis_client, keys=RedisKeys(settings.redis_namespace), **kwargs)


def test_two_instances_share_what_they_learn_and_the_probe_through_real_redis(settings, clean_db):
    client = connect(settings)
    now = [datetime(2026, 11, 22, 12, 0)]
    mine = _capabilities(settings, clean_db, client, now=lambda: now[0])
    theirs_rows = CountingRows(clean_db)
    theirs = _capabilities(settings, clean_db, client, rows=theirs_rows, now=lambda: now[0])
    mine.allow(BATCH_TRACKS)
    assert theirs.allowed(BATCH_TRACKS)
    mine.forbid(BATCH_TRACKS, "403")
    assert not theirs.allowed(BATCH_TRACKS)

    # A Redis that lost its data: the version is gone, and with it (say) the bump of a row written
    # meanwhile. The missing version is new to theirs: the table is read once, then followed again.
    keys = RedisKeys(settings.redis_namespace)
    forbidden = theirs.state(BATCH_TRACKS)
    PostgresCapabilityRows(clean_db).save(settings.spotify_client_id, replace(forbidden, reason="underneath"))
    client.delete(keys.capabilities_version(settings.spotify_client_id))
    loads = theirs_rows.loads
    assert theirs.state(BATCH_TRACKS).reason == "underneath" and theirs.state(BATCH_TRACKS).reason == "underneath"
    assert theirs_rows.loads == loads + 1  # read once, not on every call while the version is missing
    mine.allow(BATCH_TRACKS)  # a write after the loss sets a version again
    assert theirs.allowed(BATCH_TRACKS) and theirs_rows.loads == loads + 2
    mine.forbid(BATCH_TRACKS, "403")

    # After the recheck time, one of them probes; the answer ends the probe for both.
    now[0] += timedelta(hours=1, seconds=1)
    answers = [mine.allowed(BATCH_TRACKS), theirs.allowed(BATCH_TRACKS), mine.allowed(BATCH_TRACKS)]
    assert answers == [True, False, False]
    probe = keys.capability_probe(settings.spotify_client_id, BATCH_TRACKS)
    assert 0 < client.pttl(probe) <= 60_000
    mine.allow(BATCH_TRACKS)
    assert not client.exists(probe)
    assert theirs.allowed(BATCH_TRACKS)
    client.close()


def test_with_redis_unreachable_the_table_is_still_written_and_read_on_the_ttl(settings, clean_db):
    # No retries: each refused call returns at once (the default client retries for seconds).
    dead = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1, decode_responses=True,
                       retry=Retry(NoBackoff(), 0))
    mine = _capabilities(settings, clean_db, dead)
    assert mine.allowed(AUDIO_FEATURES)
    mine.forbid(AUDIO_FEATURES, "403")  # no error: recorded in Postgres
    assert not mine.allowed(AUDIO_FEATURES)
    fresh = _capabilities(settings, clean_db, dead)
    assert not fresh.allowed(AUDIO_FEATURES)
    assert not PostgresCapabilityRows(clean_db).load(settings.spotify_client_id)[AUDIO_FEATURES].allowed
