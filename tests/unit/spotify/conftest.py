"""A SpotifyClient wired to fakes (in-memory limiter, penalty box and capabilities, a static
token source) over an httpx client that pytest-httpx intercepts. Nothing sleeps for real."""

import httpx
import pytest

from pipeline.capabilities import Capabilities, InMemoryCapabilityRows
from pipeline.ratecontrol.limiter import InMemoryLimiter
from pipeline.ratecontrol.penalty_box import InMemoryPenaltyBox
from pipeline.spotify.client import SpotifyClient
from shared.settings import Rate

API = "https://api.test/v1"


class Tokens:
    def __init__(self, *tokens: str):
        self.tokens = list(tokens or ("token-1",))
        self.handed_out = 0
        self.invalidated: list[str] = []

    def token(self) -> str:
        self.handed_out += 1
        return self.tokens[0]

    def invalidate(self, token: str) -> None:
        self.invalidated.append(token)
        if len(self.tokens) > 1:
            self.tokens.pop(0)


class Fakes:
    def __init__(self):
        self.slept: list[float] = []
        self.tokens = Tokens("token-1", "token-2")
        self.box = InMemoryPenaltyBox()
        self.rows = InMemoryCapabilityRows()
        self.capabilities = Capabilities(self.rows, "client-a", recheck_s=86400)
        self.limiter = InMemoryLimiter(Rate(10_000, 1))

    def client(self, **kwargs) -> SpotifyClient:
        options = dict(
            http=httpx.Client(timeout=5), api_base_url=API, limiter=self.limiter, penalty_box=self.box,
            tokens=self.tokens, capabilities=self.capabilities, retry_after_default_s=30, retry_budget_s=8,
            attempts=4, sleep=self.slept.append,
        )
        options.update(kwargs)
        return SpotifyClient(**options)


@pytest.fixture
def fakes() -> Fakes:
    return Fakes()


def track_json(track_id: str, popularity: int | None = 50) -> dict:
    data = {"id": track_id, "name": f"Song {track_id[:4]}", "artists": [{"id": "a", "name": "Artist"}],
            "album": {"id": "al", "name": "Album"}, "duration_ms": 200_000, "explicit": False,
            "external_ids": {"isrc": "ISRC" + track_id[:4]}, "type": "track"}
    if popularity is not None:
        data["popularity"] = popularity
    return data


def make_ids(count: int) -> list[str]:
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [(alphabet[i % 62] + alphabet[(i // 62) % 62]) * 11 for i in range(count)]
