"""The web flow's pending authorisations in real Redis: single use across racing callbacks, bound
to the user, a forged secret refused without spoiling the real one, ten minutes and gone."""

from __future__ import annotations

import threading

import pytest
import redis

from pipeline.auth.flow import new_pkce, s256
from pipeline.auth.web_flow import STATE_TTL_S, WebFlow
from pipeline.errors import RedisUnavailable
from shared.crypto import TokenCipher, generate_key
from shared.keys import RedisKeys
from tests.e2e.pipeline_harness import wait_until

SCOPES = ("user-library-read",)


@pytest.fixture
def client(redis_url):
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


@pytest.fixture
def cipher() -> TokenCipher:
    return TokenCipher([generate_key()])


@pytest.fixture
def flow(client, redis_namespace, cipher) -> WebFlow:
    return WebFlow(client, RedisKeys(redis_namespace), cipher)


def test_a_state_gives_back_its_user_and_verifier_once(flow):
    started = flow.begin("user-1", SCOPES, return_url="https://app.example/a")
    pending = flow.consume(started.state)
    assert pending is not None
    assert (pending.user_id, pending.scopes, pending.return_url) == ("user-1", SCOPES, "https://app.example/a")
    assert s256(pending.verifier) == started.challenge
    assert pending.verifier not in repr(pending) and started.state not in repr(started)
    assert flow.consume(started.state) is None


def test_racing_callbacks_with_one_state_get_it_once(flow):
    started = flow.begin("user-1", SCOPES)
    barrier = threading.Barrier(8)
    won = []

    def callback() -> None:
        barrier.wait()
        if flow.consume(started.state) is not None:
            won.append(1)

    threads = [threading.Thread(target=callback) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert won == [1]


def test_forged_and_malformed_states_are_refused_and_leave_the_real_one(flow):
    started = flow.begin("user-1", SCOPES)
    state_id, _, secret = started.state.partition(".")
    for forged in (f"{state_id}.{secret[:-1]}x", f"{state_id}.", state_id, "", None, "a.b", f"{state_id}!.{secret}"):
        assert flow.consume(forged) is None
    assert flow.consume(started.state) is not None


def test_only_a_digest_of_the_secret_and_a_sealed_verifier_are_kept_and_expire_in_ten_minutes(
        flow, client, redis_namespace, monkeypatch):
    made = []
    monkeypatch.setattr("pipeline.auth.web_flow.new_pkce", lambda: made.append(new_pkce()) or made[-1])
    started = flow.begin("user-1", SCOPES)
    state_id, _, secret = started.state.partition(".")
    key = RedisKeys(redis_namespace).oauth_state(state_id)
    stored = client.get(key)
    assert secret.encode() not in stored
    assert made[0].verifier.encode() not in stored and made[0].challenge == started.challenge
    assert STATE_TTL_S - 5 < client.ttl(key) <= STATE_TTL_S == 600
    client.pexpire(key, 1)
    wait_until(lambda: not client.exists(key), 5, "the entry to expire")
    assert flow.consume(started.state) is None


def test_redis_down_is_redis_unavailable(redis_namespace):
    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    with pytest.raises(RedisUnavailable):
        WebFlow(down, RedisKeys(redis_namespace), TokenCipher([generate_key()])).begin("user-1", SCOPES)


def test_a_state_bound_to_a_browser_is_finished_only_by_that_browser(flow):
    started = flow.begin("user-1", SCOPES, to_connect_page=True, browser_secret="the-browser-cookie-value")
    assert flow.consume(started.state) is None  # no cookie: another browser
    assert flow.consume(started.state, "another-browser-cookie") is None
    pending = flow.consume(started.state, "the-browser-cookie-value")
    assert pending is not None and pending.to_connect_page


def test_a_verifier_sealed_with_a_key_since_dropped_is_refused(client, redis_namespace, flow):
    started = flow.begin("user-1", SCOPES)
    other_keys = WebFlow(client, RedisKeys(redis_namespace), TokenCipher([generate_key()]))
    assert other_keys.consume(started.state) is None
