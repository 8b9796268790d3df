"""Rate limiting over real sockets, with the emulator's clock frozen so window edges are exact."""

from __future__ import annotations

import pytest

T0 = 1_800_000_000.0


@pytest.fixture(autouse=True)
def frozen_clock(emu):
    """Tokens are issued on the frozen clock too, so moving it never expires them by surprise."""
    emu.clock(freeze_at=T0)


def _call(emu, token, track_id):
    return emu.get(f"/v1/tracks/{track_id}", token)


def test_rolling_window_at_its_edges(emu):
    emu.configure(rate_limit=3, rate_window_s=30)
    token, track = emu.app_token(), emu.ids(1)[0]
    emu.clock(freeze_at=T0)
    assert _call(emu, token, track).status_code == 200  # t = 0
    emu.clock(freeze_at=T0 + 10)
    assert _call(emu, token, track).status_code == 200  # t = 10
    assert _call(emu, token, track).status_code == 200  # t = 10: window full
    refused = _call(emu, token, track)
    assert refused.status_code == 429
    assert refused.json() == {"error": {"status": 429, "message": "API rate limit exceeded"}}
    assert refused.headers["retry-after"] == "20"  # the call of t = 0 leaves at t = 30

    emu.clock(freeze_at=T0 + 29.999)  # just inside: still full, wait rounds up to 1 s
    last_moment = _call(emu, token, track)
    assert last_moment.status_code == 429 and last_moment.headers["retry-after"] == "1"
    emu.clock(freeze_at=T0 + 30)  # the first call is out: one admitted, then full again
    assert _call(emu, token, track).status_code == 200
    again = _call(emu, token, track)
    assert again.status_code == 429 and again.headers["retry-after"] == "10"  # calls at t = 10 leave at 40
    emu.clock(freeze_at=T0 + 40)
    assert [_call(emu, token, track).status_code for _ in range(3)] == [200, 200, 429]
    assert "x-ratelimit-limit" not in {k.lower() for k in again.headers}


def test_window_is_per_client_id(emu):
    emu.configure(rate_limit=2)
    a, b, track = emu.app_token("app-a"), emu.app_token("app-b"), emu.ids(1)[0]
    assert [_call(emu, a, track).status_code for _ in range(3)] == [200, 200, 429]
    assert _call(emu, b, track).status_code == 200
    # two tokens of one client id share its window
    assert _call(emu, emu.app_token("app-a"), track).status_code == 429


def test_penalty_grows_while_a_limited_client_keeps_calling(emu):
    emu.configure(rate_limit=1, penalty_s=5)
    token, track = emu.app_token(), emu.ids(1)[0]
    emu.clock(freeze_at=T0)
    assert _call(emu, token, track).status_code == 200
    emu.clock(freeze_at=T0 + 20)
    waits = [int(_call(emu, token, track).headers["retry-after"]) for _ in range(4)]
    assert waits == [10, 15, 20, 25]
    emu.clock(freeze_at=T0 + 20 + 25)  # waited as told: admitted
    assert _call(emu, token, track).status_code == 200
    assert emu.stats()["rate_limited"] == {"window": 1, "penalty": 3}


def test_daily_quota_answers_quota_exceeded_with_hours_to_wait(emu):
    emu.configure(daily_quota=3, rate_limit=None, access_token_ttl_s=3 * 86400)
    token, track = emu.app_token(), emu.ids(1)[0]
    emu.clock(freeze_at=T0)
    assert _call(emu, token, track).status_code == 200
    emu.clock(freeze_at=T0 + 3600)
    assert [_call(emu, token, track).status_code for _ in range(2)] == [200, 200]
    refused = _call(emu, token, track)
    assert refused.status_code == 429
    assert refused.json() == {"error": {"status": 429, "message": "Too many requests", "reason": "QUOTA_EXCEEDED"}}
    assert refused.headers["retry-after"] == str(86400 - 3600)
    emu.clock(freeze_at=T0 + 86400)  # a new day from the first call
    assert _call(emu, token, track).status_code == 200


def test_dev_mode_quota_is_shared_by_a_developer_accounts_client_ids(emu):
    emu.configure(tier="dev-2026", rate_limit=2, client_accounts={"app-1": "dev-x", "app-2": "dev-x"})
    one, two, track = emu.app_token("app-1"), emu.app_token("app-2"), emu.ids(1)[0]
    assert _call(emu, one, track).status_code == 200
    assert _call(emu, two, track).status_code == 200
    assert _call(emu, one, track).status_code == 429
    emu.configure(tier="extended")  # extended quota stays per client id
    assert _call(emu, two, track).status_code == 200


def test_429_with_empty_body_or_without_retry_after(emu):
    emu.configure(rate_limit=0, p_429_empty_body=1.0)
    token, track = emu.app_token(), emu.ids(1)[0]
    empty = _call(emu, token, track)
    assert empty.status_code == 429 and empty.content == b"" and "retry-after" in empty.headers
    emu.configure(p_429_empty_body=0.0, p_429_no_retry_after=1.0)
    bare = _call(emu, token, track)
    assert bare.status_code == 429 and "retry-after" not in bare.headers
    assert bare.json()["error"]["status"] == 429


def test_forced_429_for_the_next_call_with_retry_after_3600(emu):
    token, track = emu.app_token(), emu.ids(1)[0]
    emu.configure(force_429={"count": 1, "retry_after_s": 3600})
    forced = _call(emu, token, track)
    assert forced.status_code == 429 and forced.headers["retry-after"] == "3600"
    assert forced.json() == {"error": {"status": 429, "message": "API rate limit exceeded"}}
    assert _call(emu, token, track).status_code == 200
    assert emu.stats()["rate_limited"] == {"forced": 1}


def test_forced_answers_by_client_endpoint_and_count(emu):
    a, b = emu.app_token("forced-a"), emu.app_token("forced-b")
    ids = emu.ids(2)
    rule = emu.http.post("/_emulator/force", json={"kind": "429", "count": 2, "retry_after_s": 120,
                                                    "client_id": "forced-a", "endpoint": "/v1/tracks"}).json()
    assert rule["kind"] == "429" and rule["id"]
    assert emu.get(f"/v1/tracks/{ids[0]}", a).status_code == 200  # another endpoint
    assert emu.get("/v1/tracks", b, ids=ids[0]).status_code == 200  # another client
    answers = [emu.get("/v1/tracks", a, ids=ids[0]) for _ in range(3)]
    assert [r.status_code for r in answers] == [429, 429, 200]
    assert answers[0].headers["retry-after"] == "120"
    emu.http.post("/_emulator/force", json={"kind": "quota", "retry_after_s": 79892})
    quota = emu.get(f"/v1/tracks/{ids[0]}", b)
    assert quota.json()["error"]["reason"] == "QUOTA_EXCEEDED" and quota.headers["retry-after"] == "79892"
    emu.http.post("/_emulator/force", json={"kind": "429", "body": "empty"})
    no_header = emu.get(f"/v1/tracks/{ids[0]}", b)
    assert no_header.status_code == 429 and no_header.content == b"" and "retry-after" not in no_header.headers


def test_refused_calls_do_not_fill_the_window(emu):
    emu.configure(rate_limit=2)
    token, track = emu.app_token(), emu.ids(1)[0]
    emu.clock(freeze_at=T0)
    statuses = [_call(emu, token, track).status_code for _ in range(10)]
    assert statuses == [200, 200] + [429] * 8
    emu.clock(freeze_at=T0 + 30)
    assert [_call(emu, token, track).status_code for _ in range(3)] == [200, 200, 429]


# --- a limit the fleet does not know (benchmarks of an adaptive limiter) ---
def test_the_window_limit_changes_while_running(emu):
    emu.configure(rate_limit=3)
    token, track = emu.app_token(), emu.ids(1)[0]
    assert [_call(emu, token, track).status_code for _ in range(4)] == [200, 200, 200, 429]
    emu.configure(rate_limit=5)  # the same window, a higher limit: two more fit in it
    assert [_call(emu, token, track).status_code for _ in range(3)] == [200, 200, 429]
    emu.configure(rate_limit=2)  # lower than what the window holds: refused until it drains
    refused = _call(emu, token, track)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) == 30
    emu.configure(rate_limit=None)
    assert _call(emu, token, track).status_code == 200
    assert emu.http.get("/_emulator/config").json()["rate_limit"] is None


def test_daily_quota_is_shared_by_every_client_id_of_a_developer_account(emu):
    emu.configure(tier="dev-2026", rate_limit=None, daily_quota=3, access_token_ttl_s=3 * 86400,
                  client_accounts={"team-a": "dev-1", "team-b": "dev-1", "other": "dev-2"})
    a, b, other, track = emu.app_token("team-a"), emu.app_token("team-b"), emu.app_token("other"), emu.ids(1)[0]
    assert [_call(emu, a, track).status_code, _call(emu, b, track).status_code] == [200, 200]
    emu.clock(freeze_at=T0 + 7200)
    assert _call(emu, a, track).status_code == 200  # the account's third
    for token in (a, b):
        refused = _call(emu, token, track)
        assert refused.status_code == 429
        assert refused.json() == {"error": {"status": 429, "message": "Too many requests", "reason": "QUOTA_EXCEEDED"}}
        assert refused.headers["retry-after"] == str(86400 - 7200)  # hours: until the account's day ends
    assert _call(emu, other, track).status_code == 200  # another developer account has its own
    emu.clock(freeze_at=T0 + 86400)
    assert _call(emu, b, track).status_code == 200


def test_stats_give_the_busiest_window_429s_by_reason_and_requests_per_second(emu):
    emu.configure(rate_limit=4, penalty_s=2)
    token, track = emu.app_token("bench-app"), emu.ids(1)[0]
    for second, calls in ((0, 3), (1, 2), (2, 0), (3, 1)):
        emu.clock(freeze_at=T0 + second)
        for _ in range(calls):
            _call(emu, token, track)
    emu.http.post("/_emulator/force", json={"kind": "quota", "retry_after_s": 80000})
    _call(emu, token, track)  # still at T0 + 3: a forced quota answer
    stats = emu.stats()
    assert stats["max_requests_in_window"]["by_client"] == {"bench-app": 7}
    assert stats["max_requests_in_window"]["max"] == 7 and stats["max_requests_in_window"]["window_s"] == 30
    # admitted: 3 at T0, 1 at T0+1; the window refuses the 5th, the penalty box the 6th, then the forced one
    assert stats["rate_limited"] == {"window": 1, "penalty": 1, "forced_quota": 1}
    assert stats["rate_limited_by_reason"] == {"rate_limit": 2, "quota_exceeded": 1, "total": 3}
    per_second = stats["requests_per_second"]
    assert per_second["series"] == [[int(T0), 3, 0], [int(T0) + 1, 2, 1], [int(T0) + 2, 0, 0], [int(T0) + 3, 2, 2]]
    assert per_second["seconds"] == 4 and per_second["peak"] == 3 and per_second["mean"] == 7 / 4
    assert stats["requests"]["/v1/tracks/{id}"] == {"200": 4, "429": 3}
