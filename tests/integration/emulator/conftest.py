"""An emulator per test, on a free port, spoken to over real sockets with httpx."""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import redis

from emulator.config import EmulatorConfig
from emulator.server import ServerHandle, start_in_thread

REDIRECT_URI = "http://127.0.0.1:8765/callback"


class Emu:
    """A test's view of one running emulator: the HTTP calls tests make again and again."""

    def __init__(self, handle: ServerHandle) -> None:
        self.handle = handle
        self.base_url = handle.base_url
        self.http = httpx.Client(base_url=handle.base_url, timeout=10)

    # --- control API ---
    def configure(self, **changes) -> dict:
        response = self.http.post("/_emulator/config", json=changes)
        assert response.status_code == 200, response.text
        return response.json()

    def stats(self) -> dict:
        return self.http.get("/_emulator/stats").json()

    def ids(self, count: int, offset: int = 0) -> list[str]:
        return self.http.get("/_emulator/ids", params={"count": count, "offset": offset}).json()["ids"]

    def clock(self, **body) -> dict:
        response = self.http.post("/_emulator/clock", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    # --- accounts ---
    def app_token(self, client_id: str | None = None, secret: str = "secret") -> str:
        client_id = client_id or new_client_id()
        response = self.http.post("/api/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def authorize(self, client_id: str, scope: str = "user-library-read user-read-private user-read-email",
                  user: str = "demo", redirect_uri: str = REDIRECT_URI, **extra) -> httpx.Response:
        params = {"client_id": client_id, "response_type": "code", "redirect_uri": redirect_uri,
                  "state": "st-" + uuid.uuid4().hex[:6], "scope": scope, "emulated_user": user, **extra}
        return self.http.get("/authorize", params=params)

    def code(self, client_id: str, **kwargs) -> str:
        response = self.authorize(client_id, **kwargs)
        assert response.status_code in (302, 303), response.text
        query = parse_qs(urlsplit(response.headers["location"]).query)
        assert "code" in query, response.headers["location"]
        return query["code"][0]

    def user_tokens(self, client_id: str | None = None, secret: str = "secret", user: str = "demo",
                    scope: str = "user-library-read user-read-private user-read-email") -> dict:
        """A confidential client's token response for `user`."""
        client_id = client_id or new_client_id()
        code = self.code(client_id, scope=scope, user=user)
        response = self.http.post("/api/token", auth=(client_id, secret), data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI})
        assert response.status_code == 200, response.text
        return response.json() | {"client_id": client_id}

    def pkce_tokens(self, client_id: str | None = None, user: str = "demo", scope: str = "user-library-read") -> dict:
        client_id = client_id or new_client_id()
        verifier = secrets.token_urlsafe(64)[:96]
        code = self.code(client_id, scope=scope, user=user, code_challenge=s256(verifier), code_challenge_method="S256")
        response = self.http.post("/api/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
            "client_id": client_id, "code_verifier": verifier})
        assert response.status_code == 200, response.text
        return response.json() | {"client_id": client_id}

    # --- API ---
    def get(self, path: str, token: str | None, **params) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.get(path, params=params or None, headers=headers)


def new_client_id() -> str:
    return "client-" + uuid.uuid4().hex[:12]


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@pytest.fixture
def emu_config() -> EmulatorConfig:
    """Override in a test module to start its emulators with another config."""
    return EmulatorConfig(catalog_size=10_000)


@pytest.fixture
def emu(emu_config) -> Iterator[Emu]:
    handle = start_in_thread(emu_config)
    client = Emu(handle)
    try:
        yield client
    finally:
        client.http.close()
        handle.stop()


@pytest.fixture
def redis_prefix(redis_url) -> Iterator[str]:
    """A key prefix of our own in the test Redis; every key under it is deleted afterwards."""
    prefix = "emulator-test:" + uuid.uuid4().hex[:10]
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + ":*", count=500))
    if keys:
        client.delete(*keys)
    client.close()
