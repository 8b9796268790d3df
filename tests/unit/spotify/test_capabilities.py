"""Capabilities are learned once, obeyed, and looked at again after the recheck time."""

from datetime import datetime, timedelta

from pipeline.capabilities import AUDIO_FEATURES, BATCH_TRACKS, Capabilities, InMemoryCapabilityRows


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
