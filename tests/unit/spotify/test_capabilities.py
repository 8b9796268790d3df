"""Capabilities are learned once, obeyed, and looked at again after the recheck time; with Redis,
what one process learns every other knows from its next call."""

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import fakeredis
import pytest
from loguru import logger

from pipeline.capabilities import AUDIO_FEATURES, BATCH_TRACKS, POPULARITY, Capabilities, InMemoryCapabilityRows
from pipeline.overlap import Overlap
from shared.keys import RedisKeys

KEYS = RedisKeys("test")


class Clock:
    def __init__(self):
        self.now = datetime(2026, 11, 22, 12, 0)
        self.mono = 0.0


def make(rows=None, clock=None, **kwargs):
    clock = clock or Clock()
    rows = rows if rows is not None else InMemoryCapabilityRows()
    caps = Capabilities(rows, "client-a", recheck_s=86400, now=lambda: clock.now, monotonic=lambda: clock.mono, **kwargs)
    return caps, rows, clock


def test_unknown_is_allowed():
    caps, _, _ = make()
    assert caps.allowed(BATCH_TRACKS) and caps.state(BATCH_TRACKS) is None


def test_a_forbidden_capability_is_recorded_once_with_its_recheck_time():
    caps, rows, clock = make()
    first = caps.forbid(BATCH_TRACKS, "403 Forbidden")
    clock.now += timedelta(minutes=5)
    again = caps.forbid(BATCH_TRACKS, "403 Forbidden")
    assert again == first and first.recheck_after == datetime(2026, 11, 23, 12, 0)
    assert rows.rows[("client-a", BATCH_TRACKS)].learned_at == datetime(2026, 11, 22, 12, 0)
    assert not caps.allowed(BATCH_TRACKS) and caps.allowed(AUDIO_FEATURES)


def test_after_the_recheck_time_one_call_is_let_through_and_its_answer_recorded():
    caps, rows, clock = make()
    caps.forbid(AUDIO_FEATURES, "403")
    clock.now += timedelta(days=1, seconds=1)
    assert caps.allowed(AUDIO_FEATURES)
    caps.forbid(AUDIO_FEATURES, "403 again")
    assert rows.rows[("client-a", AUDIO_FEATURES)].recheck_after == clock.now + timedelta(days=1)
    clock.now += timedelta(days=1, seconds=1)
    caps.allow(AUDIO_FEATURES)
    assert rows.rows[("client-a", AUDIO_FEATURES)].allowed and caps.allowed(AUDIO_FEATURES)


def test_other_processes_learn_it_when_their_cache_expires():
    rows, clock = InMemoryCapabilityRows(), Clock()
    mine, _, _ = make(rows, clock, cache_ttl_s=10)
    theirs, _, _ = make(rows, clock, cache_ttl_s=10)
    assert theirs.allowed(BATCH_TRACKS)  # read (nothing) and cached
    mine.forbid(BATCH_TRACKS, "403")
    assert theirs.allowed(BATCH_TRACKS)  # still the cached answer
    clock.mono += 10
    assert not theirs.allowed(BATCH_TRACKS)


def test_allow_writes_only_news():
    caps, rows, _ = make()
    caps.allow(BATCH_TRACKS)
    rows.rows.clear()
    caps.allow(BATCH_TRACKS)
    assert rows.rows == {}


def test_what_is_not_yet_known_is_looked_up_again_after_a_second_what_is_known_after_the_cache_ttl():
    rows, clock = InMemoryCapabilityRows(), Clock()
    mine, _, _ = make(rows, clock, cache_ttl_s=10)
    theirs, _, _ = make(rows, clock, cache_ttl_s=10)
    mine.allow(AUDIO_FEATURES)
    assert theirs.allowed(BATCH_TRACKS) and theirs.allowed(AUDIO_FEATURES)  # both read now
    mine.forbid(BATCH_TRACKS, "403")
    mine.forbid(AUDIO_FEATURES, "403")
    clock.mono += 1
    assert not theirs.allowed(BATCH_TRACKS)  # was unknown: read again after a second
    assert not theirs.allowed(AUDIO_FEATURES)  # that read brought the rest along


# --- with Redis: the version counter ---------------------------------------------------------


class CountingRows(InMemoryCapabilityRows):
    """The fake table, counting how often it is read."""

    def __init__(self):
        super().__init__()
        self.loads = 0

    def load(self, client_id):
        self.loads += 1
        return super().load(client_id)


class Fleet:
    """Processes (Capabilities objects) sharing one table and one Redis, on one clock."""

    def __init__(self, **kwargs):
        self.rows, self.clock = CountingRows(), Clock()
        self.server = fakeredis.FakeServer()
        self.redis = fakeredis.FakeRedis(server=self.server, decode_responses=True)
        self.kwargs = kwargs

    def process(self, redis=None, **kwargs) -> Capabilities:
        options = {"cache_ttl_s": 10, "backstop_ttl_s": 60, **self.kwargs, **kwargs}
        return make(self.rows, self.clock, redis=redis if redis is not None else self.redis, keys=KEYS, **options)[0]

    def version(self):
        return self.redis.get(KEYS.capabilities_version("client-a"))


@pytest.fixture
def fleet() -> Fleet:
    return Fleet()


def test_a_403_learned_by_one_process_is_obeyed_by_another_at_its_very_next_call(fleet):
    mine, theirs = fleet.process(), fleet.process()
    mine.allow(BATCH_TRACKS)
    mine.allow(AUDIO_FEATURES)
    assert theirs.allowed(BATCH_TRACKS) and theirs.allowed(AUDIO_FEATURES)  # cached as allowed
    mine.forbid(BATCH_TRACKS, "403")
    mine.forbid(AUDIO_FEATURES, "403")
    # No time passes: no TTL, the version told it.
    assert not theirs.allowed(BATCH_TRACKS) and not theirs.allowed(AUDIO_FEATURES)
    assert theirs.state(BATCH_TRACKS).reason == "403"
    mine.allow(BATCH_TRACKS)  # and back
    assert theirs.allowed(BATCH_TRACKS)


def test_every_write_bumps_the_version_after_the_row_is_saved(fleet):
    caps = fleet.process()
    assert fleet.version() is None
    caps.forbid(BATCH_TRACKS, "403")
    first = fleet.version()
    assert first is not None and fleet.rows.rows[("client-a", BATCH_TRACKS)].allowed is False
    caps.forbid(BATCH_TRACKS, "403")  # a standing record: nothing written, no bump
    assert fleet.version() == first
    caps.allow(POPULARITY)
    assert fleet.version() not in (None, first)


def test_the_table_is_read_again_only_when_the_version_moves(fleet):
    mine, theirs = fleet.process(), fleet.process()
    for _ in range(20):
        theirs.allowed(BATCH_TRACKS)
        fleet.clock.mono += 1  # 20 s: twice the old cache TTL, within the backstop
    assert fleet.rows.loads == 1
    mine.forbid(BATCH_TRACKS, "403")  # mine reads once (its first call) and writes
    loads = fleet.rows.loads
    assert not theirs.allowed(BATCH_TRACKS) and not theirs.allowed(BATCH_TRACKS)
    assert fleet.rows.loads == loads + 1


def test_a_missing_version_after_a_redis_restart_is_read_once(fleet):
    mine, theirs = fleet.process(), fleet.process()
    mine.forbid(BATCH_TRACKS, "403")
    assert not theirs.allowed(BATCH_TRACKS)
    loads = fleet.rows.loads
    fleet.redis.delete(KEYS.capabilities_version("client-a"))  # what a restart without persistence leaves
    assert not theirs.allowed(BATCH_TRACKS) and not theirs.allowed(BATCH_TRACKS)
    assert fleet.rows.loads == loads + 1


def test_a_version_is_never_written_twice_even_after_redis_lost_the_key(fleet):
    # A counter (INCR) starts again at 1 after the key is lost: a process that loaded "1" before
    # the loss and made no call while the key was missing would take the new "1" for its own.
    mine, theirs = fleet.process(), fleet.process()
    mine.allow(BATCH_TRACKS)
    assert theirs.allowed(BATCH_TRACKS)  # loaded at the first version written
    fleet.redis.delete(KEYS.capabilities_version("client-a"))  # Redis lost it; theirs makes no call
    mine.forbid(BATCH_TRACKS, "403")  # the first version written after the loss
    loads = fleet.rows.loads
    assert not theirs.allowed(BATCH_TRACKS)  # no time passed: only the version can have told it
    assert fleet.rows.loads == loads + 1


def test_a_lost_version_bump_is_caught_by_the_backstop_reload(fleet):
    mine, theirs = fleet.process(), fleet.process()
    assert theirs.allowed(BATCH_TRACKS)
    fleet.server.connected = False  # Redis down while mine writes: the row is saved, the version write lost
    mine.forbid(BATCH_TRACKS, "403")
    fleet.server.connected = True
    assert theirs.allowed(BATCH_TRACKS)  # its version has not moved
    fleet.clock.mono += 60
    assert not theirs.allowed(BATCH_TRACKS)


def test_redis_errors_fall_back_to_the_ttl_with_one_warning_and_no_failed_call(fleet):
    warnings = []
    sink = logger.add(lambda m: warnings.append(m.record), level="WARNING", format="{message}")
    try:
        mine, theirs = fleet.process(), fleet.process()
        mine.allow(BATCH_TRACKS)
        assert theirs.allowed(BATCH_TRACKS)
        fleet.server.connected = False
        mine.forbid(BATCH_TRACKS, "403")  # saved in the table all the same
        assert fleet.rows.rows[("client-a", BATCH_TRACKS)].allowed is False
        assert not mine.allowed(BATCH_TRACKS)
        assert theirs.allowed(BATCH_TRACKS)  # cached, as without Redis...
        fleet.clock.mono += 10
        assert not theirs.allowed(BATCH_TRACKS)  # ...until the cache TTL
        fleet.clock.mono += 1
        assert theirs.allowed(AUDIO_FEATURES)  # not yet known: read again after a second
    finally:
        logger.remove(sink)
    # One warning per process and outage, naming the error class only.
    assert len(warnings) == 2
    assert all("Redis did not answer" in w["message"] and w["extra"]["error"] == "ConnectionError" for w in warnings)


class CountingRedis:
    def __init__(self, redis):
        self.redis, self.calls = redis, 0

    def __getattr__(self, name):
        self.calls += 1
        return getattr(self.redis, name)


def test_after_a_redis_error_reads_leave_redis_alone_for_a_while_then_follow_the_version_again(fleet):
    # A Redis that does not answer costs a connect timeout and retries per call: not on every call.
    counting = CountingRedis(fleet.redis)
    mine, theirs = fleet.process(), fleet.process(redis=counting)
    fleet.server.connected = False
    assert theirs.allowed(BATCH_TRACKS)
    fleet.server.connected = True
    mine.forbid(BATCH_TRACKS, "403")
    calls = counting.calls
    assert theirs.allowed(BATCH_TRACKS) and theirs.allowed(BATCH_TRACKS)  # the TTL's cached answer
    assert counting.calls == calls
    fleet.clock.mono += 5
    assert not theirs.allowed(BATCH_TRACKS)  # Redis asked again: the version moved
    assert counting.calls == calls + 1


def test_within_a_job_the_version_is_read_at_the_first_look_and_again_after_the_recheck(fleet):
    counting = CountingRedis(fleet.redis)
    mine, theirs = fleet.process(redis=counting), fleet.process()
    mine.allowed(BATCH_TRACKS)
    with mine.once_per_job():
        calls = counting.calls
        assert mine.allowed(BATCH_TRACKS)  # the run's first look reads the version
        assert counting.calls == calls + 1
        mine.allow(BATCH_TRACKS)
        mine.allow(POPULARITY)
        assert mine.allowed(AUDIO_FEATURES)
        assert counting.calls == calls + 3  # one read, and the two news announced; no more reads
        theirs.forbid(AUDIO_FEATURES, "403")
        assert mine.allowed(AUDIO_FEATURES)  # another process's news waits for the next run...
        fleet.clock.mono += 1
        assert not mine.allowed(AUDIO_FEATURES)  # ...or the recheck, in a long one
    with mine.once_per_job():
        theirs.allow(AUDIO_FEATURES)
        assert mine.allowed(AUDIO_FEATURES)  # a new run reads it at once
    theirs.forbid(BATCH_TRACKS, "403")
    assert not mine.allowed(BATCH_TRACKS)  # outside a run: every look reads it


def test_the_calls_a_job_starts_on_the_overlap_pool_share_its_look_at_the_version(fleet):
    # A track_sync's other /tracks request and its /audio-features run on the pool's threads
    # (pipeline/overlap.py): they are the same run, and read the version no more than it does.
    counting = CountingRedis(fleet.redis)
    mine = fleet.process(redis=counting)
    mine.allowed(BATCH_TRACKS)
    with ThreadPoolExecutor(max_workers=2) as pool:
        overlap = Overlap(pool)
        with mine.once_per_job():
            calls = counting.calls
            assert mine.allowed(BATCH_TRACKS)
            beside = [overlap.start(lambda: mine.allowed(AUDIO_FEATURES)) for _ in range(4)]
            assert all(later.result() for later in beside)
            assert counting.calls == calls + 1
        assert overlap.start(lambda: mine.allowed(AUDIO_FEATURES)).result()  # outside a run: read again
        assert counting.calls == calls + 2


def test_a_403_met_within_a_job_reads_the_version_so_a_standing_record_is_not_written_again(fleet):
    mine, theirs = fleet.process(), fleet.process()
    with mine.once_per_job():
        assert mine.allowed(AUDIO_FEATURES)
        recorded = theirs.forbid(AUDIO_FEATURES, "403")
        assert mine.forbid(AUDIO_FEATURES, "403 again") == recorded  # theirs stands; no second write


def test_redis_without_keys_is_refused():
    # A default namespace would ignore REDIS_NAMESPACE: the keys come from the settings.
    with pytest.raises(ValueError, match="keys"):
        Capabilities(InMemoryCapabilityRows(), "client-a", redis=fakeredis.FakeRedis())


def test_the_fake_table_works_with_no_redis_at_all():
    caps, rows, _ = make(redis=None)
    caps.forbid(BATCH_TRACKS, "403")
    assert not caps.allowed(BATCH_TRACKS) and rows.rows[("client-a", BATCH_TRACKS)].allowed is False


# --- the probe after the recheck time: one caller ----------------------------------------------


def test_after_the_recheck_time_one_caller_of_the_fleet_probes_the_others_wait_for_its_answer(fleet):
    prober, sibling = fleet.process(), fleet.process()
    prober.forbid(AUDIO_FEATURES, "403")
    fleet.clock.now += timedelta(days=1, seconds=1)
    assert prober.allowed(AUDIO_FEATURES)  # claims the probe
    assert not prober.allowed(AUDIO_FEATURES)  # another thread of the same process
    assert not sibling.allowed(AUDIO_FEATURES) and not sibling.allowed(AUDIO_FEATURES)  # another process
    probe_key = KEYS.capability_probe("client-a", AUDIO_FEATURES)
    assert 0 < fleet.redis.pttl(probe_key) <= 60_000

    prober.forbid(AUDIO_FEATURES, "403 again")  # the answer: recorded, the probe ended
    assert not fleet.redis.exists(probe_key)
    assert not sibling.allowed(AUDIO_FEATURES)
    assert sibling.state(AUDIO_FEATURES).recheck_after == fleet.clock.now + timedelta(days=1)

    fleet.clock.now += timedelta(days=1, seconds=1)
    assert sibling.allowed(AUDIO_FEATURES)  # this time the sibling probes
    assert not prober.allowed(AUDIO_FEATURES)
    sibling.allow(AUDIO_FEATURES)
    assert prober.allowed(AUDIO_FEATURES) and prober.allowed(AUDIO_FEATURES) and sibling.allowed(AUDIO_FEATURES)


def test_a_probe_that_never_answers_is_taken_over_when_its_claim_runs_out(fleet):
    prober, sibling = fleet.process(), fleet.process()
    prober.forbid(BATCH_TRACKS, "403")
    fleet.clock.now += timedelta(days=1, seconds=1)
    assert prober.allowed(BATCH_TRACKS)  # and then its worker dies, or the call fails with a 5xx
    assert not sibling.allowed(BATCH_TRACKS)
    fleet.redis.delete(KEYS.capability_probe("client-a", BATCH_TRACKS))  # the Redis claim expires
    fleet.clock.mono += 60  # and so does the sibling's own memory of it
    assert sibling.allowed(BATCH_TRACKS)
    assert not sibling.allowed(BATCH_TRACKS)


def test_without_redis_one_caller_per_process_probes():
    caps, _, clock = make()
    caps.forbid(BATCH_TRACKS, "403")
    clock.now += timedelta(days=1, seconds=1)
    assert [caps.allowed(BATCH_TRACKS) for _ in range(3)] == [True, False, False]
    clock.mono += 60  # the prober never answered: after the claim's time, one more
    assert [caps.allowed(BATCH_TRACKS) for _ in range(2)] == [True, False]
    caps.allow(BATCH_TRACKS)
    assert caps.allowed(BATCH_TRACKS)


def test_with_redis_down_one_caller_per_process_probes(fleet):
    prober, sibling = fleet.process(), fleet.process()
    prober.forbid(BATCH_TRACKS, "403")
    fleet.clock.now += timedelta(days=1, seconds=1)
    fleet.server.connected = False
    assert prober.allowed(BATCH_TRACKS) and not prober.allowed(BATCH_TRACKS)
    assert sibling.allowed(BATCH_TRACKS) and not sibling.allowed(BATCH_TRACKS)
