"""The search route's own logic inside the process (the ASGI app under httpx's ASGI transport, real
PostgreSQL and Redis): from when a search's SEARCH_ENRICH_WAIT counts. The served API, the
emulator and the wait as a caller sees it are in tests/e2e/test_api_search.py."""

from __future__ import annotations

import asyncio
import time
from typing import cast

import httpx
import redis
from fastapi.security import HTTPAuthorizationCredentials

from api.app import Services, _bearer, create_app
from api.enrichment import PENDING, Enricher, Outcome
from shared.db import make_engine

TOKEN = "route-test-token-0123456789abcdef"
QUEUED_S = 1.0  # what the route's dependencies take here, as a busy host's queue would


class RecordingEnricher:
    """Asks nothing: records the deadline each search's enrichment is given."""

    wait_s = 0.5

    def __init__(self) -> None:
        self.deadlines: list[float] = []

    def ask(self, raw_query: str, limit: int) -> RecordingEnricher:
        return self

    def outcome(self, deadline: float) -> Outcome:
        self.deadlines.append(deadline)
        return Outcome(PENDING)

    def close(self) -> None:
        pass


async def queued_bearer() -> HTTPAuthorizationCredentials:
    await asyncio.sleep(QUEUED_S)
    return HTTPAuthorizationCredentials(scheme="Bearer", credentials=TOKEN)


def test_the_wait_counts_from_the_requests_arrival_not_the_routes_start(settings, songs):
    settings = settings.replace(api_tokens=(TOKEN,))
    enricher = RecordingEnricher()
    services = Services(settings, make_engine(settings), redis.Redis.from_url(settings.redis_url),
                        cast(Enricher, enricher))
    app = create_app(settings, services)
    app.dependency_overrides[_bearer] = queued_bearer

    async def search() -> tuple[float, dict]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            sent = time.monotonic()
            response = await client.get("/v1/search", params={"q": "halo", "enrich": "always"},
                                        headers={"Authorization": f"Bearer {TOKEN}"})
            return sent, response.json()

    try:
        sent, body = asyncio.run(search())
    finally:
        services.close()
    assert body["enrichment"]["status"] == "pending"
    assert body["items"][0]["title"] == "Halo"  # the local search ran meanwhile
    # Counted from the route's start, the deadline would be QUEUED_S later than this.
    assert sent <= enricher.deadlines[0] - enricher.wait_s < sent + QUEUED_S / 2
