"""The CLI's OAuth callback server over real sockets: a half-sent request cannot hold it, only the redirect
with the flow's state ends it, a refusal ends it too, [::1] works, and nothing of the query is logged."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from pipeline.auth.callback_server import CallbackServer
from shared.settings import Settings, SettingsError

STATE = "st-the-right-one"


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def redirect_uri(host: str = "127.0.0.1") -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{free_port(host)}/callback"


def test_a_half_sent_request_held_open_neither_blocks_the_redirect_nor_outlives_its_timeout(capfd):
    uri = redirect_uri()
    with CallbackServer(uri, STATE, request_timeout_s=1.0) as server:
        idle = socket.create_connection(("127.0.0.1", int(uri.split(":")[2].split("/")[0])))
        idle.sendall(b"GET /callback?code=half-a-secret&sta")  # no end of line: the server waits for more
        response = httpx.get(uri, params={"code": "the-code", "state": STATE}, timeout=5)
        assert response.status_code == 200 and "connected" in response.text
        assert server.wait(5) == {"code": "the-code", "state": STATE}

        idle.settimeout(10)
        started = time.monotonic()
        assert idle.recv(1024) == b""  # the server dropped the idle connection: its socket timed out
        assert time.monotonic() - started < 5
        idle.close()
    captured = capfd.readouterr()
    assert "the-code" not in captured.err + captured.out and "half-a-secret" not in captured.err + captured.out


def test_shutdown_does_not_wait_for_a_connection_still_open():
    uri = redirect_uri()
    server = CallbackServer(uri, STATE, request_timeout_s=60)
    with server:
        idle = socket.create_connection(("127.0.0.1", int(uri.split(":")[2].split("/")[0])))
        idle.sendall(b"GET /call")
        assert server.wait(0.2) is None
        started = time.monotonic()
    assert time.monotonic() - started < 2
    idle.close()


def test_a_wrong_state_or_an_empty_redirect_is_refused_and_the_flow_waits_for_the_right_one():
    uri = redirect_uri()
    with CallbackServer(uri, STATE) as server:
        forged = httpx.get(uri, params={"code": "forged-code", "state": "st-someone-else"})
        assert forged.status_code == 400 and "connected" not in forged.text
        no_state = httpx.get(uri, params={"code": "forged-code"})
        assert no_state.status_code == 400
        empty = httpx.get(uri, params={"state": STATE})
        assert empty.status_code == 400 and "neither a code nor an error" in empty.text
        elsewhere = httpx.get(uri.replace("/callback", "/elsewhere"), params={"state": STATE, "code": "x"})
        assert elsewhere.status_code == 404
        assert server.wait(0.3) is None  # none of those ended the flow

        right = httpx.get(uri, params={"code": "the-code", "state": STATE})
        assert right.status_code == 200 and "Spotify is connected" in right.text
        assert server.wait(1) == {"code": "the-code", "state": STATE}
        late = httpx.get(uri, params={"code": "another-code", "state": STATE})
        assert late.status_code == 400 and server.wait(1) == {"code": "the-code", "state": STATE}


def test_a_refusal_with_the_right_state_ends_the_flow_with_the_error():
    uri = redirect_uri()
    with CallbackServer(uri, STATE) as server:
        response = httpx.get(uri, params={"error": "access_denied", "state": STATE})
        assert response.status_code == 200 and "did not connect" in response.text
        assert server.wait(1) == {"error": "access_denied", "state": STATE}


def test_ipv6_loopback_is_served():
    uri = redirect_uri("::1")
    with CallbackServer(uri, STATE) as server:
        assert httpx.get(uri, params={"code": "c6", "state": STATE}).status_code == 200
        assert server.wait(1) == {"code": "c6", "state": STATE}


@pytest.mark.parametrize("uri", ["http://127.0.0.1:8888/callback", "http://127.3.2.1:8888/cb",
                                 "http://[::1]:8888/callback", "https://app.example.com/callback"])
def test_loopback_http_and_any_https_redirect_uris_are_accepted(uri):
    assert Settings.from_env({"SPOTIFY_REDIRECT_URI": uri}).spotify_redirect_uri == uri


@pytest.mark.parametrize("uri", ["http://0.0.0.0:8888/callback", "http://[::]:8888/callback",
                                 "http://192.168.1.20:8888/callback", "http://example.com/callback",
                                 "http://127.0.0.1:port/callback"])
def test_a_non_loopback_http_redirect_uri_is_one_clear_error(uri):
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"SPOTIFY_REDIRECT_URI": uri})
    message = str(refused.value)
    assert message.startswith("SPOTIFY_REDIRECT_URI: expected ") and message.endswith(f"got {uri!r}")
    assert "\n" not in message


def test_an_https_redirect_uri_cannot_be_served_by_the_cli():
    with pytest.raises(ValueError, match="serves no https"):
        CallbackServer("https://app.example.com/callback", STATE)
