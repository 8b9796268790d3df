"""The emulator served over a socket (in a thread of the test process), real Redis and Postgres,
and settings that point the client at them."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import httpx
import pytest

from emulator.config import EmulatorConfig
from emulator.server import ServerHandle, start_in_thread
from shared.settings import Settings


class Emulator:
    def __init__(self, handle: ServerHandle):
        self.handle = handle
        self.base_url = handle.base_url
        self.http = httpx.Client(base_url=handle.base_url, timeout=10)

    def post(self, path: str, body: dict) -> dict:
        response = self.http.post(path, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def configure(self, **changes) -> dict:
        return self.post("/_emulator/config", changes)

    def stats(self) -> dict:
        return self.http.get("/_emulator/stats").json()

    def ids(self, count: int, offset: int = 0) -> list[str]:
        return self.http.get("/_emulator/ids", params={"count": count, "offset": offset}).json()["ids"]

    def requests(self, endpoint: str, status: str | None = None) -> int:
        by_status = self.stats()["requests"].get(endpoint, {})
        return by_status.get(status, 0) if status else sum(by_status.values())

    def api_requests(self) -> int:
        return sum(sum(s.values()) for e, s in self.stats()["requests"].items() if e.startswith("/v1/"))


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., Emulator]]:
    started: list[Emulator] = []

    def start(**config) -> Emulator:
        emulator = Emulator(start_in_thread(EmulatorConfig(**config)))
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.http.close()
        emulator.handle.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pointed_at(settings: Settings, emulator: Emulator, **changes) -> Settings:
    return settings.replace(
        spotify_api_base_url=emulator.base_url + "/v1",
        spotify_accounts_base_url=emulator.base_url,
        spotify_redirect_uri=f"http://127.0.0.1:{free_port()}/callback",
        **changes,
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a `spotify-sync` command needs to see these settings."""
    return {
        "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
        "REDIS_NAMESPACE": settings.redis_namespace, "SPOTIFY_CLIENT_ID": settings.spotify_client_id,
        "SPOTIFY_CLIENT_SECRET": settings.spotify_client_secret,
        "SPOTIFY_TOKEN_KEYS": ",".join(settings.spotify_token_keys),
        "SPOTIFY_API_BASE_URL": settings.spotify_api_base_url,
        "SPOTIFY_ACCOUNTS_BASE_URL": settings.spotify_accounts_base_url,
        "SPOTIFY_REDIRECT_URI": settings.spotify_redirect_uri,
        "SPOTIFY_RATE_LIMIT": f"{settings.spotify_rate_limit.requests}/{settings.spotify_rate_limit.per_s}s",
    }
