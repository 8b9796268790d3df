"""What a job's failure means: rate limits park without using retries, permanent errors fail at
once, transient ones back off until the retries run out, and anything outside the error tree is a
bug that fails at once, its traceback kept."""

from datetime import datetime, timedelta

import pytest

from pipeline.errors import (
    BadJob,
    BadRequest,
    CapabilityForbidden,
    Forbidden,
    InvalidGrant,
    InvalidId,
    NetworkError,
    NotConnected,
    NotFound,
    RateLimited,
    RedisUnavailable,
    ServerError,
    StoreConflict,
    StoreUnavailable,
    WorkerInterrupted,
)
from pipeline.retry_policy import BACKOFF_CAP_S, Fail, Park, backoff_s, decide

NOW = datetime(2026, 11, 22, 12, 0, 0)


def no_jitter():
    return 0.0


def test_a_rate_limit_parks_until_retry_after_without_counting_a_retry():
    decision = decide(RateLimited(120), retry_count=4, max_retries=5, now=NOW, rand=no_jitter)
    assert decision == Park(NOW + timedelta(seconds=120), 120.0, "RateLimited",
                            "Spotify answered 429 (rate_limit), retry after 120.0s", counts_as_retry=False)


def test_a_rate_limit_parks_even_when_the_retries_are_used_up_and_for_a_day():
    decision = decide(RateLimited(86_400, "quota_exceeded"), retry_count=5, max_retries=5, now=NOW, rand=no_jitter)
    assert isinstance(decision, Park) and not decision.counts_as_retry
    assert decision.until == NOW + timedelta(days=1)


def test_a_parked_job_gets_only_a_little_jitter_the_return_line_spreads_them():
    decision = decide(RateLimited(120), retry_count=0, max_retries=5, now=NOW, rand=lambda: 1.0)
    assert decision.delay_s == pytest.approx(120.25)
    decision = decide(RateLimited(10), retry_count=0, max_retries=5, now=NOW, rand=lambda: 1.0)
    assert decision.delay_s == pytest.approx(10.1)


def test_a_park_without_a_request_of_its_own_is_quiet_a_real_429_is_not():
    def park(source: str) -> Park:
        decision = decide(RateLimited(5, source=source), retry_count=0, max_retries=5, now=NOW, rand=no_jitter)
        assert isinstance(decision, Park)
        return decision

    assert not park("spotify").quiet
    assert park("penalty_box").quiet and park("budget").quiet
    assert "no request sent" in park("penalty_box").message


@pytest.mark.parametrize("error", [
    InvalidGrant("Refresh token revoked"), NotConnected("no connection"), Forbidden("/me/tracks"),
    CapabilityForbidden("audio_features", "/audio-features"), NotFound("non existing id"),
    BadRequest("too many ids requested"), InvalidId("nope"), BadJob("payload has no ids"),
])
def test_permanent_errors_fail_at_once(error):
    decision = decide(error, retry_count=0, max_retries=5, now=NOW)
    assert decision == Fail(type(error).__name__, str(error))


@pytest.mark.parametrize("error", [
    ServerError("HTTP 503"), NetworkError("timed out"), RedisUnavailable("redis down"), StoreUnavailable("db down"),
    StoreConflict("lock timeout"), WorkerInterrupted("time limit"),
])
def test_transient_errors_back_off_and_count_a_retry(error):
    decision = decide(error, retry_count=2, max_retries=5, now=NOW, rand=no_jitter)
    assert decision == Park(NOW + timedelta(seconds=10), 10.0, type(error).__name__, str(error), counts_as_retry=True)


@pytest.mark.parametrize("error", [RuntimeError("a bug"), KeyError("x"), ConnectionError("a raw driver error")])
def test_an_exception_outside_the_tree_is_a_bug_that_fails_at_once(error):
    decision = decide(error, retry_count=0, max_retries=5, now=NOW)
    assert decision == Fail(type(error).__name__, str(error), bug=True)


def test_a_parked_job_says_whether_it_met_a_429_or_found_the_fleets_box_shut():
    met = decide(RateLimited(30, source="spotify"), retry_count=0, max_retries=5, now=NOW, rand=no_jitter)
    shut = decide(RateLimited(30, "rate_limit", source="penalty_box"), retry_count=0, max_retries=5, now=NOW,
                  rand=no_jitter)
    assert met.message.startswith("Spotify answered 429")
    assert shut.message.startswith("the fleet's penalty box is shut") and "no request sent" in shut.message


def test_transient_errors_fail_with_the_error_when_the_retries_are_used_up():
    decision = decide(ServerError("HTTP 502"), retry_count=5, max_retries=5, now=NOW)
    assert decision == Fail("ServerError", "HTTP 502 (gave up after 5 retries)")


def test_backoff_doubles_with_jitter_and_is_capped():
    assert [backoff_s(n, rand=lambda: 1.0) for n in range(4)] == [5.0, 10.0, 20.0, 40.0]
    assert backoff_s(1, rand=no_jitter) == 5.0
    assert backoff_s(30, rand=lambda: 1.0) == BACKOFF_CAP_S
