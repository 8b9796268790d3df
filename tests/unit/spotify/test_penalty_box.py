"""The penalty box: one contract for Redis (fakeredis) and the in-memory fake."""

import time
from types import SimpleNamespace

import fakeredis
import pytest

from pipeline.errors import RateLimited, RedisUnavailable
from pipeline.ratecontrol.penalty_box import InMemoryPenaltyBox, RedisPenaltyBox, check_open


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


def test_the_box_opens_when_its_deadline_passes(monkeypatch):
    """On frozen clocks (Redis's and the process's), moved by hand across the deadline."""
    from fakeredis.commands_mixins import server_mixin

    redis_now, local_now = [1_800_000_000.0], [0.0]
    monkeypatch.setattr(server_mixin, "time", SimpleNamespace(time=lambda: redis_now[0]))
    box = RedisPenaltyBox(fakeredis.FakeRedis(decode_responses=True), "test:penalty:open",
                          monotonic=lambda: local_now[0])
    assert box.block(30, "rate_limit") == pytest.approx(redis_now[0] + 30)
    for clock in (redis_now, local_now):
        clock[0] += 29.9
    with pytest.raises(RateLimited) as caught:
        box.check()
    assert caught.value.retry_after_s == pytest.approx(0.1, abs=0.01)
    for clock in (redis_now, local_now):
        clock[0] += 0.2
    box.check()  # open again: no RateLimited
    assert box.remaining_s() == 0.0
    memory = InMemoryPenaltyBox(clock_s=lambda: redis_now[0])
    memory.block(5, "rate_limit")
    assert memory.remaining_s() == pytest.approx(5)
    redis_now[0] += 5.01
    memory.check()
    assert memory.remaining_s() == 0.0


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


@pytest.mark.parametrize("kind", ["redis", "memory"])
def test_boxes_checked_together_raise_for_the_first_that_holds_in_the_order_given(kind):
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    make = (lambda key: RedisPenaltyBox(client, key)) if kind == "redis" else (lambda key: InMemoryPenaltyBox())
    quota, penalty = make("test:quota:account"), make("test:penalty:client")
    check_open(quota, penalty, None)  # all open
    penalty.block(60, "rate_limit")
    with pytest.raises(RateLimited) as caught:
        check_open(None, quota, penalty)
    assert caught.value.reason == "rate_limit" and 58 < caught.value.retry_after_s <= 60
    quota.block(3600, "quota_exceeded")
    with pytest.raises(RateLimited) as caught:
        check_open(quota, penalty)
    assert caught.value.reason == "quota_exceeded"


def test_two_redis_boxes_on_one_client_are_read_in_one_script_call_each_learning_its_own_deadline():
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    seen_quota, seen_penalty = [], []
    quota = RedisPenaltyBox(client, "test:quota:account", on_change=seen_quota.append)
    penalty = RedisPenaltyBox(client, "test:penalty:client", on_change=seen_penalty.append)
    check_open(quota, penalty)  # open (and the script loaded)
    RedisPenaltyBox(client, "test:penalty:client").block(60, "rate_limit")  # another process's 429
    calls = []
    original = client.evalsha
    client.evalsha = lambda *args, **kwargs: calls.append(args) or original(*args, **kwargs)
    with pytest.raises(RateLimited):
        check_open(quota, penalty)
    assert len(calls) == 1
    assert seen_quota == [0.0, 0.0] and 58 < seen_penalty[-1] <= 60
    with pytest.raises(RateLimited):  # remembered in this process: no round trip
        check_open(quota, penalty)
    assert len(calls) == 1
