"""One contract for the fleet's budget, run against the Redis limiter (fakeredis) and the
in-memory fake, on a fake clock: nothing sleeps for real."""

import fakeredis
import pytest

from pipeline.errors import RateLimited, RedisUnavailable
from pipeline.ratecontrol.budget import FixedBudget
from pipeline.ratecontrol.limiter import InMemoryLimiter, RedisLimiter
from shared.settings import Rate


class FakeClock:
    def __init__(self):
        self.ms = 1_800_000_000_000
        self.slept: list[float] = []

    def now_ms(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return self.ms / 1000

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.ms += int(seconds * 1000)


@pytest.fixture(params=["redis", "memory"])
def make_limiter(request):
    clock = FakeClock()
    server = fakeredis.FakeServer()

    def make(rate: Rate, **kwargs):
        if request.param == "redis":
            client = fakeredis.FakeRedis(server=server, decode_responses=True)
            return RedisLimiter(client, "test:rate:client", rate, clock_ms=clock.now_ms, sleep=clock.sleep,
                                monotonic=clock.monotonic, margin_ms=0, **kwargs)
        return InMemoryLimiter(rate, clock_ms=clock.now_ms, sleep=clock.sleep, monotonic=clock.monotonic, **kwargs)

    make.clock = clock
    make.server = server
    make.kind = request.param
    return make


def test_the_budget_admits_its_rate_at_once(make_limiter):
    limiter = make_limiter(Rate(5, 10))
    assert [limiter.acquire() for _ in range(5)] == [0.0] * 5
    assert make_limiter.clock.slept == []


def test_spent_holds_from_a_refusal_until_the_unit_frees_with_no_put_after_it(make_limiter):
    """A process whose last put was refused and which puts nothing more (the end of a backfill)
    must not see the budget spent forever: a coalesced half request was held for 60 s so."""
    limiter = make_limiter(Rate(2, 10))
    limiter.acquire(), limiter.acquire()
    assert not limiter.spent()
    wait_s = limiter.try_acquire()
    assert 10.0 <= wait_s <= 10.01 and limiter.spent()
    make_limiter.clock.ms += int(wait_s * 1000) - 1
    assert limiter.spent()
    make_limiter.clock.ms += 1
    assert not limiter.spent()  # no put since the refusal
    assert limiter.try_acquire() == 0.0 and not limiter.spent()


def test_the_next_request_waits_until_the_oldest_leaves_the_window(make_limiter):
    limiter = make_limiter(Rate(5, 10))
    for _ in range(5):
        limiter.acquire()
    make_limiter.clock.ms += 3000
    waited = limiter.acquire()
    assert 7.0 <= waited <= 7.1  # the first of the five leaves the 10 s window 7 s from now (+ jitter)


class RaisedAfterNaps(FixedBudget):
    """A learned budget being raised (learning.py releases a step over its window): one more
    request after the waiting thread has napped three times."""

    def __init__(self, clock: FakeClock):
        super().__init__(Rate(5, 10))
        self.clock, self.from_ms = clock, clock.ms

    def requests(self) -> int:
        return 6 if self.clock.ms - self.from_ms >= 1500 else 5

    def nap_s(self) -> float:
        return 0.5


def test_a_waiting_thread_naps_and_takes_a_request_the_budget_releases_before_the_log_frees_one(make_limiter):
    clock = make_limiter.clock
    limiter = make_limiter(Rate(5, 10), budget=RaisedAfterNaps(clock))
    for _ in range(5):
        limiter.acquire()
    waited = limiter.acquire()  # the log frees one 10 s from now; the budget releases one in 1.5 s
    assert waited == pytest.approx(1.5) and clock.slept == [0.5, 0.5, 0.5]


def test_a_sliding_window_never_holds_more_than_the_rate(make_limiter):
    limiter = make_limiter(Rate(5, 10))
    admitted = []
    for _ in range(40):
        limiter.acquire()
        admitted.append(make_limiter.clock.ms)
        make_limiter.clock.ms += 300
    for start in admitted:
        assert sum(1 for t in admitted if start <= t < start + 10_000) <= 5
    elapsed_s = (admitted[-1] - admitted[0]) / 1000
    assert 35 / elapsed_s >= 0.9 * 5 / 10  # and the budget is used, not wasted


def test_a_wait_longer_than_the_bound_raises_instead_of_sleeping(make_limiter):
    limiter = make_limiter(Rate(2, 60), max_wait_s=5)
    limiter.acquire()
    limiter.acquire()
    with pytest.raises(RateLimited) as caught:
        limiter.acquire()
    assert caught.value.reason == "local_budget" and 59 <= caught.value.retry_after_s <= 61
    assert make_limiter.clock.slept == []


def test_two_redis_limiters_on_one_redis_share_one_budget():
    server = fakeredis.FakeServer()
    first, second = (RedisLimiter(fakeredis.FakeRedis(server=server), "test:rate:shared", Rate(3, 10), max_wait_s=0)
                     for _ in range(2))
    first.acquire(), second.acquire(), first.acquire()
    with pytest.raises(RateLimited):
        second.acquire()


def test_the_redis_limiter_survives_a_flushed_script_cache():
    client = fakeredis.FakeRedis(decode_responses=True)
    limiter = RedisLimiter(client, "test:rate:flush", Rate(10, 10))
    limiter.acquire()
    client.script_flush()  # what a Redis restart or failover does to the script cache
    limiter.acquire()
    assert client.zcard("test:rate:flush") == 2


def test_the_redis_limiter_uses_the_redis_clock():
    client = fakeredis.FakeRedis(decode_responses=True)
    limiter = RedisLimiter(client, "test:rate:clock", Rate(10, 10))
    limiter.acquire()
    (member, score), = client.zrange("test:rate:clock", 0, -1, withscores=True)
    seconds, micros = client.time()
    assert abs(score - (seconds * 1000 + micros // 1000)) < 1000


def test_redis_down_is_a_transient_error():
    server = fakeredis.FakeServer()
    limiter = RedisLimiter(fakeredis.FakeRedis(server=server), "test:rate:down", Rate(10, 10))
    server.connected = False
    with pytest.raises(RedisUnavailable) as caught:
        limiter.acquire()
    assert caught.value.transient


def test_a_process_that_read_the_clock_earlier_but_inserts_later_still_sees_the_other_entry():
    """Two processes read Redis time 1 ms apart and insert in the opposite order. pyrate's own
    script counts only up to the item's timestamp and would admit both: 2 in a window of 1."""
    server = fakeredis.FakeServer()
    early, late = FakeClock(), FakeClock()
    late.ms += 1
    first = RedisLimiter(fakeredis.FakeRedis(server=server), "test:rate:race", Rate(1, 10), max_wait_s=0,
                         clock_ms=late.now_ms, margin_ms=0)
    second = RedisLimiter(fakeredis.FakeRedis(server=server), "test:rate:race", Rate(1, 10), max_wait_s=0,
                          clock_ms=early.now_ms, margin_ms=0)
    first.acquire()
    with pytest.raises(RateLimited):
        second.acquire()


def test_the_margin_is_three_percent_of_the_window_between_a_quarter_second_and_a_second():
    from pipeline.ratecontrol.limiter import default_margin_ms
    from shared.settings import Rate

    assert [default_margin_ms(Rate(50, s)) for s in (1, 10, 30, 60, 3600)] == [250, 300, 900, 1000, 1000]


def _boxes(make_limiter, limiter):
    """The request's box and a peer's view of the same box: on the limiter's own Redis client (read
    in its admission's script) for the Redis limiter, one shared fake for the in-memory one."""
    from pipeline.ratecontrol.penalty_box import InMemoryPenaltyBox, RedisPenaltyBox

    if make_limiter.kind == "redis":
        peer_client = fakeredis.FakeRedis(server=make_limiter.server, decode_responses=True)
        return (RedisPenaltyBox(limiter.bucket.redis, "test:penalty:client"),
                RedisPenaltyBox(peer_client, "test:penalty:client"))
    box = InMemoryPenaltyBox(clock_s=lambda: make_limiter.clock.ms / 1000)
    return box, box


def test_no_permit_is_taken_while_a_box_holds(make_limiter):
    """A permit taken is a request sent: a request whose box holds takes none (the Redis limiter
    reads its boxes in the script that would take it)."""
    limiter = make_limiter(Rate(1, 10))
    box, peer = _boxes(make_limiter, limiter)
    peer.block(60, "rate_limit")
    with pytest.raises(RateLimited) as caught:
        limiter.acquire(boxes=(None, box))
    assert caught.value.source == "penalty_box" and caught.value.reason == "rate_limit"
    assert 50 < caught.value.retry_after_s <= 60
    assert limiter.acquire() == 0.0 and make_limiter.clock.slept == []  # the window's one permit was left


def test_a_box_shut_by_a_peer_while_a_call_waits_for_the_budget_stops_it_before_its_permit(make_limiter):
    limiter = make_limiter(Rate(1, 10))
    box, peer = _boxes(make_limiter, limiter)
    limiter.acquire(boxes=(box,))
    clock_sleep = limiter._sleep

    def sleep_while_a_peer_meets_a_429(seconds):
        peer.block(60, "rate_limit")
        clock_sleep(seconds)

    limiter._sleep = sleep_while_a_peer_meets_a_429
    with pytest.raises(RateLimited) as caught:
        limiter.acquire(boxes=(box,))
    assert caught.value.source == "penalty_box" and len(make_limiter.clock.slept) == 1
