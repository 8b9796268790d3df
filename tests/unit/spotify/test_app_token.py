"""The client-credentials token: one request for the fleet, renewed ahead by one process."""

import base64
import json
import threading

import fakeredis
import httpx
import pytest

from pipeline import errors
from pipeline.auth.app_token import AppToken
from pipeline.auth.token_endpoint import TokenEndpoint
from shared.crypto import TokenCipher, generate_key
from shared.keys import RedisKeys

ACCOUNTS = "https://accounts.test"
KEYS = RedisKeys("test")


def make(server, http=None, **kwargs):
    endpoint = TokenEndpoint(http or httpx.Client(), ACCOUNTS, "client-a", "secret-a", retry_budget_s=0.5)
    return AppToken(fakeredis.FakeRedis(server=server, decode_responses=True), KEYS, endpoint, **kwargs)


def grant(token="app-token-1", expires_in=3600):
    return httpx.Response(200, json={"access_token": token, "token_type": "Bearer", "expires_in": expires_in})


def test_one_token_request_serves_every_process(httpx_mock):
    httpx_mock.add_response(url=f"{ACCOUNTS}/api/token", method="POST", json=json.loads(grant().content))
    server = fakeredis.FakeServer()
    processes = [make(server) for _ in range(4)]
    assert {p.token() for p in processes for _ in range(3)} == {"app-token-1"}
    (request,) = httpx_mock.get_requests()
    assert request.content == b"grant_type=client_credentials"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"client-a:secret-a").decode()


def test_concurrent_threads_of_many_processes_make_one_request(httpx_mock):
    httpx_mock.add_callback(lambda request: grant(), is_reusable=True)
    server = fakeredis.FakeServer()
    processes = [make(server) for _ in range(3)]
    barrier = threading.Barrier(12)
    seen = []

    def run(process):
        barrier.wait()
        seen.append(process.token())

    threads = [threading.Thread(target=run, args=(processes[i % 3],)) for i in range(12)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert seen == ["app-token-1"] * 12 and len(httpx_mock.get_requests()) == 1


def test_it_is_renewed_ahead_of_expiry_while_others_keep_the_valid_one(httpx_mock):
    httpx_mock.add_callback(lambda request: grant("short-lived", expires_in=200))
    httpx_mock.add_callback(lambda request: grant("renewed"))
    server = fakeredis.FakeServer()
    first = make(server, renew_ahead_s=300)
    assert first.token() == "short-lived"  # fetched
    # 200 s left < 300 s ahead: the next caller renews it. While another process holds the
    # renewal lock, callers get the still-valid token instead of waiting.
    client = fakeredis.FakeRedis(server=server)
    lock = client.lock(KEYS.app_token_lock("client-a"), timeout=5)
    lock.acquire()
    assert make(server, renew_ahead_s=300).token() == "short-lived"
    lock.release()
    assert make(server, renew_ahead_s=300).token() == "renewed"
    assert len(httpx_mock.get_requests()) == 2


def test_a_refused_token_is_dropped_for_everyone(httpx_mock):
    httpx_mock.add_callback(lambda request: grant("first"))
    httpx_mock.add_callback(lambda request: grant("second"))
    server = fakeredis.FakeServer()
    one, other = make(server), make(server)
    assert one.token() == "first" and other.token() == "first"
    one.invalidate("first")
    assert make(server).token() == "second"


def test_it_is_stored_encrypted_when_keys_are_configured(httpx_mock):
    httpx_mock.add_callback(lambda request: grant("plain-app-token"))
    server = fakeredis.FakeServer()
    cipher = TokenCipher((generate_key(),))
    assert make(server, cipher=cipher).token() == "plain-app-token"
    stored = fakeredis.FakeRedis(server=server).get(KEYS.app_token("client-a"))
    assert b"plain-app-token" not in stored
    assert make(server, cipher=cipher).token() == "plain-app-token"


def test_bad_credentials_are_a_permanent_error(httpx_mock):
    httpx_mock.add_response(status_code=400, json={"error": "invalid_client", "error_description": "Invalid client"})
    with pytest.raises(errors.InvalidClient) as caught:
        make(fakeredis.FakeServer()).token()
    assert not caught.value.transient


def test_a_429_from_the_token_endpoint_is_not_retried_and_keeps_its_retry_after(httpx_mock):
    httpx_mock.add_response(url=f"{ACCOUNTS}/api/token", method="POST", status_code=429,
                            headers={"Retry-After": "90"}, json={"error": {"status": 429, "message": "Too many"}})
    with pytest.raises(errors.RateLimited) as caught:
        make(fakeredis.FakeServer()).token()
    assert (caught.value.retry_after_s, caught.value.reason) == (90.0, "rate_limit")
    assert len(httpx_mock.get_requests()) == 1
