"""SPOTIFY_RATE_LIMIT=auto parsing, the two lanes of the limiter (in memory, on a fake clock) and
what the client does with each kind of 429 (over pytest-httpx)."""

from __future__ import annotations

import pytest

from pipeline.errors import PENALTY_BOX, RateLimited
from pipeline.ratecontrol.budget import FixedBudget
from pipeline.ratecontrol.limiter import BACKGROUND, INTERACTIVE, InMemoryLimiter, lane_limit
from pipeline.ratecontrol.pacer import InMemoryPacer
from pipeline.ratecontrol.penalty_box import InMemoryPenaltyBox
from shared.settings import Rate, Settings, SettingsError, parse_rate_limit
from tests.unit.spotify.conftest import track_json


@pytest.mark.parametrize(("raw", "expected"), [
    ("auto", Rate(50, 30, learn_up_to=3000)),
    ("AUTO:start=100,max=900", Rate(100, 30, learn_up_to=900)),
    ("auto: max=400 , window=10s", Rate(50, 10, learn_up_to=400)),
    ("300/30s", Rate(300, 30)),
])
def test_the_rate_limit_is_static_or_learned(raw, expected):
    assert parse_rate_limit(raw) == expected


@pytest.mark.parametrize(("raw", "named"), [
    ("auto:", "auto, or auto:start=N"), ("auto:start=0", "start must be above zero"),
    ("auto:speed=3", "'speed=3' is not one of them"), ("auto:start=500,max=100", "start <= max"),
    ("auto:window=soon", "window='soon' is not a number"), ("automatic", "auto, or"),
])
def test_a_bad_auto_rate_is_one_line_naming_what_is_wrong(raw, named):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"SPOTIFY_RATE_LIMIT": raw, "SPOTIFY_SYNC_STATE_DIR": "/tmp/none"})
    assert str(caught.value).startswith("SPOTIFY_RATE_LIMIT: expected auto") and named in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_learned_rate_reads_back_from_its_environment():
    settings = Settings(spotify_rate_limit=parse_rate_limit("auto:start=20,max=200,window=10s"))
    assert parse_rate_limit(settings.as_environ()["SPOTIFY_RATE_LIMIT"]) == settings.spotify_rate_limit


class Clock:
    def __init__(self) -> None:
        self.ms = 1_800_000_000_000

    def now_ms(self) -> int:
        return self.ms

    def sleep(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


def test_with_no_search_about_background_work_fills_the_whole_budget():
    clock = Clock()
    limiter = InMemoryLimiter(Rate(100, 10), clock_ms=clock.now_ms, sleep=clock.sleep)
    assert [limiter.try_acquire(BACKGROUND) for _ in range(100)] == [0.0] * 100
    assert limiter.try_acquire(BACKGROUND) > 0


def test_while_searches_are_about_background_work_leaves_the_reserved_share_and_they_take_it():
    clock = Clock()
    limiter = InMemoryLimiter(Rate(100, 10), clock_ms=clock.now_ms, sleep=clock.sleep)
    assert lane_limit(100, BACKGROUND) == 95 and lane_limit(100, INTERACTIVE) == 100
    assert limiter.try_acquire(INTERACTIVE) == 0.0  # a search came
    assert [limiter.try_acquire(BACKGROUND) for _ in range(94)] == [0.0] * 94
    assert limiter.try_acquire(BACKGROUND) > 0  # the background lane is full ...
    assert [limiter.try_acquire(INTERACTIVE) for _ in range(5)] == [0.0] * 5  # ... the reserve is not
    assert limiter.try_acquire(INTERACTIVE) > 0
    with pytest.raises(RateLimited) as caught:
        limiter.acquire(max_wait_s=2.0, lane=INTERACTIVE)  # a search waits two seconds at most
    assert caught.value.source == "budget"


def test_small_budgets_keep_no_reserve():
    assert lane_limit(19, BACKGROUND) == 19 and lane_limit(1, BACKGROUND) == 1 and lane_limit(20, BACKGROUND) == 19


class Teachable:
    learned = True
    window_s = 10

    def __init__(self) -> None:
        self.taught = 0

    def requests(self) -> int:
        return 100

    def rate_limited(self) -> None:
        self.taught += 1


def _429(httpx_mock, retry_after: str, reason: str | None = None) -> None:
    error = {"status": 429, "message": "Too many requests" if reason else "API rate limit exceeded"}
    if reason:
        error["reason"] = reason
    httpx_mock.add_response(status_code=429, headers={"Retry-After": retry_after}, json={"error": error})


@pytest.mark.parametrize(("retry_after", "reason"), [("40000", "QUOTA_EXCEEDED"), ("3600", None)])
def test_a_quota_429_shuts_the_quota_box_and_teaches_the_budget_nothing(fakes, httpx_mock, retry_after, reason):
    quota, budget = InMemoryPenaltyBox(), Teachable()
    client = fakes.client(quota_box=quota, budget=budget)
    _429(httpx_mock, retry_after, reason)
    with pytest.raises(RateLimited):
        client.get_track("4iV5W9uYEdYUVa79Axb7Rh")
    assert quota.remaining_s() > 3000 and fakes.box.remaining_s() == 0.0 and budget.taught == 0
    with pytest.raises(RateLimited) as held:  # nothing is sent while the quota is spent
        client.get_track("4iV5W9uYEdYUVa79Axb7Rh")
    assert held.value.source == PENALTY_BOX


def test_a_window_429_shuts_the_penalty_box_teaches_the_budget_and_takes_a_return_slot(fakes, httpx_mock):
    budget = Teachable()
    pacer = InMemoryPacer(FixedBudget(Rate(10, 1)), clock_s=lambda: 1000.0)
    client = fakes.client(quota_box=InMemoryPenaltyBox(), budget=budget, pacer=pacer)
    _429(httpx_mock, "2")
    with pytest.raises(RateLimited) as first:
        client.get_track("4iV5W9uYEdYUVa79Axb7Rh")
    with pytest.raises(RateLimited) as second:
        client.get_track("4iV5W9uYEdYUVa79Axb7Rh")
    assert budget.taught == 1 and fakes.box.remaining_s() > 1
    assert first.value.blocked_until == 1002.0 and second.value.blocked_until == pytest.approx(1002.1)


def test_an_interactive_call_asks_the_limiter_for_its_lane_with_a_short_wait(fakes, httpx_mock):
    asked: list[tuple] = []
    fakes.limiter.acquire = lambda max_wait_s=None, lane=BACKGROUND, boxes=(): asked.append((max_wait_s, lane)) or 0.0
    httpx_mock.add_response(json=track_json("4iV5W9uYEdYUVa79Axb7Rh"), is_reusable=True)
    client = fakes.client()
    client.get_track("4iV5W9uYEdYUVa79Axb7Rh")
    client.interactive().get_track("4iV5W9uYEdYUVa79Axb7Rh")
    assert asked == [(None, BACKGROUND), (2.0, INTERACTIVE)]
