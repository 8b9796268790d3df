"""Users connect Spotify through the API, end to end over sockets: `spotify-sync serve` processes,
the emulator as a server (its consent page answered over HTTP as a browser would), real
PostgreSQL and Redis. The browser itself is in test_browser_connect.py."""

from __future__ import annotations

import secrets
from datetime import timedelta

import httpx
import pytest
import redis

from pipeline.store.connections import load_tokens
from shared.crypto import TokenCipher
from tests.e2e.api_harness import Server
from tests.e2e.connect_harness import (
    OTHER_RETURN_URL,
    RETURN_URL,
    ApiPorts,
    assert_nowhere,
    callback_path,
    code_exchanges,
    connect_env,
    connection_rows,
    consent,
    library_jobs,
    query_of,
    redis_verifiers,
)
from tests.e2e.pipeline_harness import emulator, wait_until  # noqa: F401 - a fixture


def listener() -> str:
    """A Spotify user of this test's own (the emulator is shared by the module)."""
    return f"listener-{secrets.token_hex(3)}"


@pytest.fixture
def ports():
    return ApiPorts(2)


@pytest.fixture
def env(settings, emulator, ports, clean_db):  # noqa: F811
    emulator.reset()
    return connect_env(settings, emulator, ports)


@pytest.fixture
def redis_client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def authorize(server: Server, user_id: str, **body) -> str:
    response = server.http.post(f"/v1/connections/{user_id}/authorize", json=body or None)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.json()["authorize_url"]


def test_authorize_on_one_instance_callback_on_another_stores_the_tokens_once(
        env, ports, settings, emulator, engine, redis_client):  # noqa: F811
    spotify_user = listener()
    with Server(env, port=ports.ports[0]) as first, Server(env, port=ports.ports[1]) as second:
        url = authorize(first, "user-1")
        assert query_of(url)["redirect_uri"] == ports.redirect_uri
        assert query_of(url)["code_challenge_method"] == "S256"
        verifiers = redis_verifiers(redis_client, settings)
        assert len(verifiers) == 1

        callback = consent(url, user=spotify_user)
        assert callback.startswith(ports.redirect_uri + "?")
        code, state = query_of(callback)["code"], query_of(callback)["state"]
        answer = second.http.get(callback_path(callback))
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == RETURN_URL + "?connected=1"
        assert answer.headers["referrer-policy"] == "no-referrer"

        rows = connection_rows(engine)
        assert [(r["userId"], r["spotifyUserId"], r["status"]) for r in rows] == [("user-1", spotify_user, "active")]
        tokens = load_tokens(engine, TokenCipher(settings.spotify_token_keys), "user-1")
        assert tokens is not None and tokens.refresh_token
        assert tokens.access_token not in rows[0]["accessToken"]  # encrypted at rest
        assert code_exchanges(emulator, settings.spotify_client_id) == 1
        assert [j["status"] for j in library_jobs(engine, "user-1")] == ["pending"]
        assert redis_verifiers(redis_client, settings) == []  # consumed

        # A replayed callback, on either instance: refused, nothing stored again, no second exchange.
        for server in (first, second):
            replay = server.http.get(callback_path(callback))
            assert replay.status_code == 400 and 'data-reason="invalid_state"' in replay.text
        assert connection_rows(engine) == rows
        assert code_exchanges(emulator, settings.spotify_client_id) == 1

        status = first.http.get("/v1/connections/user-1")
        assert status.status_code == 200
        body = status.json()
        assert body["connected"] is True and body["spotify_user_id"] == spotify_user
        assert body["needs_reauth"] is False and body["status"] == "active"
        assert set(body["scopes"]) >= {"user-library-read"}
        assert body["library_sync"]["status"] == "pending"
        assert tokens.authorized_at + timedelta(days=180) == _parse(body["refresh_token_expires_at"])

        logs = first.log() + second.log()
        assert "GET /auth/spotify/callback 303" in logs and "POST /v1/connections/{userId}/authorize 200" in logs
        bodies = [answer.text, answer.headers["location"], status.text, replay.text]
        assert_nowhere({"code": code, "state": state, "verifier": verifiers[0], "access token": tokens.access_token,
                        "refresh token": tokens.refresh_token}, logs, *bodies)


def _parse(iso: str):
    from datetime import datetime

    return datetime.fromisoformat(iso).replace(tzinfo=None)


def test_refusals_store_nothing(env, ports, settings, emulator, engine, redis_client):  # noqa: F811
    with Server(env, port=ports.ports[1]) as server:
        # A return page that is not configured: refused before anything starts.
        wrong = server.http.post("/v1/connections/user-1/authorize", json={"return_url": "https://evil.example/"})
        assert wrong.status_code == 422 and wrong.json()["error"]["message"].startswith("return_url:")
        assert redis_verifiers(redis_client, settings) == []

        # A forged state (a real id, another secret) is refused and does not spoil the real one.
        url = authorize(server, "user-1", return_url=OTHER_RETURN_URL)
        callback = consent(url, user=listener())
        state = query_of(callback)["state"]
        forged = callback.replace(state, state.split(".")[0] + "." + secrets.token_urlsafe(32))
        answer = server.http.get(callback_path(forged))
        assert answer.status_code == 400 and 'data-reason="invalid_state"' in answer.text
        assert server.http.get("/auth/spotify/callback", params={"code": "x"}).status_code == 400  # no state at all
        assert connection_rows(engine) == []
        real = server.http.get(callback_path(callback))
        assert real.status_code == 303 and real.headers["location"] == OTHER_RETURN_URL + "&connected=1"

        # Cancel on the consent page: back with the reason, nothing stored.
        callback = consent(authorize(server, "user-2"), user=listener(), decision="cancel")
        answer = server.http.get(callback_path(callback))
        assert answer.status_code == 303 and answer.headers["location"] == RETURN_URL + "?error=access_denied"

        # A callback without a code: the state is used up, nothing stored.
        callback = consent(authorize(server, "user-2"), user=listener())
        answer = server.http.get("/auth/spotify/callback", params={"state": query_of(callback)["state"]})
        assert answer.headers["location"] == RETURN_URL + "?error=missing_code"
        assert server.http.get(callback_path(callback)).status_code == 400  # used up

        # Expired: Redis lets the entry go after its ten minutes (here made one millisecond).
        callback = consent(authorize(server, "user-2"), user=listener())
        for key in redis_client.scan_iter(match=f"{settings.redis_namespace}:oauth-state:*"):
            assert 590 < redis_client.ttl(key) <= 600
            redis_client.pexpire(key, 1)
        wait_until(lambda: redis_verifiers(redis_client, settings) == [], 5, "the state to expire")
        answer = server.http.get(callback_path(callback))
        assert answer.status_code == 400 and 'data-reason="invalid_state"' in answer.text

        # A Spotify account already connected to another user.
        taken = connection_rows(engine)[0]["spotifyUserId"]
        callback = consent(authorize(server, "user-2"), user=taken)
        answer = server.http.get(callback_path(callback))
        assert answer.headers["location"] == RETURN_URL + "?error=spotify_account_in_use"
        assert [r["userId"] for r in connection_rows(engine)] == ["user-1"]
        assert library_jobs(engine, "user-2") == []


def test_reconnecting_replaces_the_tokens_and_delete_cancels_the_jobs(env, ports, settings, engine):
    cipher = TokenCipher(settings.spotify_token_keys)
    spotify_user = listener()
    with Server(env, port=ports.ports[1]) as server:
        server.http.get(callback_path(consent(authorize(server, "user-1"), user=spotify_user)))
        before = load_tokens(engine, cipher, "user-1")
        server.http.get(callback_path(consent(authorize(server, "user-1"), user=spotify_user)))
        after = load_tokens(engine, cipher, "user-1")
        assert before is not None and after is not None
        assert len(connection_rows(engine)) == 1 and after.access_token != before.access_token
        assert after.spotify_user_id == spotify_user
        assert len(library_jobs(engine, "user-1")) == 1  # the pending sync covers the reconnect too

        deleted = server.http.delete("/v1/connections/user-1")
        assert deleted.status_code == 200
        assert deleted.json() == {"user_id": "user-1", "deleted": True, "cancelled_jobs": 1}
        assert connection_rows(engine) == []
        assert [(j["status"], j["errorClass"]) for j in library_jobs(engine, "user-1")] == [("failed", "Cancelled")]
        status = server.http.get("/v1/connections/user-1").json()
        assert status["connected"] is False and status["library_sync"]["status"] == "failed"
        again = server.http.delete("/v1/connections/user-1").json()
        assert again == {"user_id": "user-1", "deleted": False, "cancelled_jobs": 0}


def test_bad_input_and_missing_configuration_are_named(settings, emulator, ports, clean_db):  # noqa: F811
    env = connect_env(settings, emulator, ports)
    with Server(env, port=ports.ports[1]) as server:
        bad = server.http.get("/v1/connections/has space")
        assert bad.status_code == 422 and bad.json()["error"]["message"].startswith("userId:")
        wrong_token = {"Authorization": "Bearer nope-nope-nope-nope"}
        unauthorised = server.http.get("/v1/connections/user-1", headers=wrong_token)
        assert unauthorised.status_code == 401
    del env["API_REDIRECT_URI"]
    with Server(env) as server:
        answer = server.http.post("/v1/connections/user-1/authorize")
        assert answer.status_code == 503 and "API_REDIRECT_URI" in answer.json()["error"]["message"]
    with Server({**env, "API_REDIRECT_URI": "http://127.0.0.1:9/elsewhere"}) as server:
        answer = server.http.post("/v1/connections/user-1/authorize")
        assert answer.status_code == 503
        assert "API_REDIRECT_URI" in answer.json()["error"]["message"] and "does not end in" in answer.text
    with pytest.raises(AssertionError, match="API_REDIRECT_URI: expected"):  # malformed: serve does not start
        Server({**env, "API_REDIRECT_URI": "http://192.0.2.1/auth/spotify/callback"})


def test_the_connect_page_flow_is_bound_to_the_browser_that_started_it(env, ports, engine):
    spotify_user = listener()
    with Server(env, port=ports.ports[1]) as server:
        link = server.http.post("/v1/connections/user-1/connect-link").json()
        assert link["url"].startswith(f"http://127.0.0.1:{ports.ports[1]}/connect?")
        page = httpx.get(link["url"])
        assert page.status_code == 200 and 'id="connect"' in page.text
        with httpx.Client(base_url=server.base_url) as browser:
            started = browser.post("/connect/start", data=query_of(link["url"]))
            assert started.status_code == 303
            cookie = started.cookies.get("spotify_sync_connect")
            assert cookie and "HttpOnly" in started.headers["set-cookie"]
            assert "SameSite=lax" in started.headers["set-cookie"]
            callback = callback_path(consent(started.headers["location"], user=spotify_user))
            # The same callback from another browser (no cookie): refused, and left for the right one.
            other = httpx.get(server.base_url + callback)
            assert other.status_code == 400 and 'data-reason="invalid_state"' in other.text
            answer = browser.get(callback)
            assert answer.status_code == 303 and answer.headers["location"].startswith(server.base_url + "/connect?")
            assert query_of(answer.headers["location"])["connected"] == "1"
            back = browser.get(answer.headers["location"])
            assert back.status_code == 200 and f'<span id="connected-as">{spotify_user}</span>' in back.text
        assert [r["userId"] for r in connection_rows(engine)] == ["user-1"]
        # A forged or foreign link neither starts a sign-in nor shows the user.
        forged = {**query_of(link["url"]), "user": "user-2"}
        assert httpx.post(server.base_url + "/connect/start", data=forged).status_code == 403
        assert httpx.get(server.base_url + "/connect", params=forged).status_code == 403
