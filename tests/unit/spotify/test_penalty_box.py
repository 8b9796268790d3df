"""The penalty box: one contract for Redis (fakeredis) and the in-memory fake."""

import time

import fakeredis
import pytest

from pipeline.errors import RateLimited, RedisUnavailable
from pipeline.ratecontrol.penalty_box import InMemoryPenaltyBox, RedisPenaltyBox


@pytest.fixture(params=["redis", "memory"])
def make_box(request):
    server = fakeredis.FakeServer()

    def make():
        if request.param == "redis":
            return RedisPenaltyBox(fakeredis.FakeRedis(server=server, decode_responses=True), "test:penalty:client")
        return InMemoryPenaltyBox()

    return make


def test_an_empty_box_lets_requests_through(make_box):
    box = make_box()
    box.check()
    assert box.remaining_s() == 0.0


def test_a_block_holds_for_its_retry_after_with_reason_and_deadline(make_box):
    box = make_box()
    deadline = box.block(3600, "rate_limit")
    assert abs(deadline - (time.time() + 3600)) < 2
    with pytest.raises(RateLimited) as caught:
        box.check()
    assert caught.value.reason == "rate_limit" and caught.value.blocked_until == pytest.approx(deadline, abs=0.01)
    assert 3598 < caught.value.retry_after_s <= 3600


def test_a_shorter_block_never_shortens_the_deadline(make_box):
    box = make_box()
    long_deadline = box.block(3600, "quota_exceeded")
    assert box.block(5, "rate_limit") == pytest.approx(long_deadline, abs=0.01)
    with pytest.raises(RateLimited) as caught:
        box.check()
    assert caught.value.reason == "quota_exceeded" and caught.value.retry_after_s > 3500


def test_a_longer_block_extends_it(make_box):
    box = make_box()
    short = box.block(5, "rate_limit")
    assert box.block(60, "rate_limit") > short + 50


def test_the_box_opens_when_its_deadline_passes():
    box = RedisPenaltyBox(fakeredis.FakeRedis(decode_responses=True), "test:penalty:open")
    box.block(0.05, "rate_limit")
    deadline = time.monotonic() + 2
    while box.remaining_s() > 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    box.check()


def test_every_process_sees_a_block_set_by_another():
    server = fakeredis.FakeServer()
    one, other = (RedisPenaltyBox(fakeredis.FakeRedis(server=server), "test:penalty:shared") for _ in range(2))
    one.block(120, "rate_limit")
    with pytest.raises(RateLimited):
        other.check()


def test_a_process_remembers_a_deadline_without_asking_redis_again():
    server = fakeredis.FakeServer()
    box = RedisPenaltyBox(fakeredis.FakeRedis(server=server), "test:penalty:memory")
    box.block(120, "rate_limit")
    server.connected = False  # no Redis now: the known deadline still holds
    with pytest.raises(RateLimited):
        box.check()


def test_redis_down_with_nothing_known_is_a_transient_error():
    server = fakeredis.FakeServer()
    box = RedisPenaltyBox(fakeredis.FakeRedis(server=server), "test:penalty:down")
    server.connected = False
    with pytest.raises(RedisUnavailable):
        box.check()


def test_the_scripts_survive_a_flushed_script_cache():
    client = fakeredis.FakeRedis(decode_responses=True)
    box = RedisPenaltyBox(client, "test:penalty:flush")
    box.check()
    client.script_flush()
    box.block(30, "rate_limit")
    with pytest.raises(RateLimited):
        RedisPenaltyBox(client, "test:penalty:flush").check()


def test_the_gauge_counts_down_while_the_deadline_is_held_in_memory():
    from pipeline.metrics import PENALTY_BOX_SECONDS

    gauge = PENALTY_BOX_SECONDS.labels("test-gauge-client")
    now = [1000.0]
    box = RedisPenaltyBox(fakeredis.FakeRedis(), "test:penalty:gauge", monotonic=lambda: now[0],
                          on_change=gauge.set)
    box.block(3600, "rate_limit")
    assert gauge._value.get() == pytest.approx(3600, abs=1)
    now[0] += 600  # checked from memory, without Redis: the gauge follows all the same
    with pytest.raises(RateLimited):
        box.check()
    assert gauge._value.get() == pytest.approx(3000, abs=1)
