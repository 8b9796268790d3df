"""The API application: `create_app(settings)` builds it with its services (engine, Redis,
enricher); `spotify-sync serve` runs it under uvicorn (`app_from_env` in each worker process).

Routes (all but /health, /ready, /metrics, /docs and /openapi.json need a bearer token):
    GET /v1/search?q=&limit=&offset=&enrich=   local results, enriched from Spotify
    GET /v1/songs/{spotify_id}                  one song, every contract column
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
import redis
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from loguru import logger
from sqlalchemy import Engine
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import errors
from api.auth import token_allowed
from api.cache import SearchCache
from api.circuit import Circuit
from api.connections import Connector
from api.connections import router as connections_router
from api.enrichment import OFF, Enricher, Outcome
from api.metrics import REQUEST_SECONDS, exposition
from pipeline.search import query as search_query
from pipeline.search.ranking import wants_enrichment
from pipeline.search_indexer import SearchIndexer
from pipeline.store import search as store
from shared.keys import RedisKeys
from shared.settings import Settings

MAX_LIMIT = 50
MAX_OFFSET = 1000
SEARCH_READ_TIMEOUT_S = 5.0  # a search answered in the background still ends in bounded time
_bearer = HTTPBearer(auto_error=False, description="One of API_TOKENS")


@dataclass
class Services:
    settings: Settings
    engine: Engine
    redis: redis.Redis  # short timeouts: a Redis that does not answer must not hold a search up
    enricher: Enricher | None  # None: no Spotify credentials, searches stay local
    indexer: SearchIndexer | None = None  # what the application writes to songs directly, searchable within a tick

    def close(self) -> None:
        if self.indexer is not None:
            self.indexer.stop()
        if self.enricher is not None:
            self.enricher.close()
        self.redis.close()
        self.engine.dispose()


def build_services(settings: Settings) -> Services:
    from shared.db import make_engine
    from shared.redis_conn import connect

    # No `SELECT 1` before every search (make_engine pings only a connection that sat idle: a
    # round trip, a wait for a busy server's CPU each time); a connection found dead by its
    # statement invalidates the pool, and the store's reads run once more on a new one
    # (pipeline/store/db.py: read).
    engine = make_engine(settings, pool_size=10, connect_args={"connect_timeout": 2})
    fast_redis = connect(settings, socket_connect_timeout=0.25, socket_timeout=0.5, health_check_interval=0)
    keys = RedisKeys(settings.redis_namespace)
    enricher = None
    if settings.spotify_client_id and settings.spotify_client_secret:
        enricher = Enricher(
            engine=engine,
            cache=SearchCache(fast_redis, keys, track_ttl_s=settings.track_ttl_s, fresh_s=settings.popularity_ttl_s),
            circuit=Circuit(fast_redis, keys, settings.spotify_client_id),
            spotify=_lazy_spotify(settings, engine),
            send_track_sync=_track_sync_sender(settings, engine),
            wait_s=settings.search_enrich_wait_s,
            max_in_flight=settings.search_enrich_max_in_flight,
        )
    indexer = SearchIndexer(engine)
    if settings.search_indexer:
        indexer.start()
    return Services(settings, engine, fast_redis, enricher, indexer)


def _lazy_spotify(settings: Settings, engine: Engine):
    """The Spotify client, built on first use (with its own Redis: the limiter may wait)."""
    made: list[Any] = []

    # A search is interactive: its in-call retries of 5xx and timeouts (of the app token's request,
    # then of the search's) stop well within the wait, not at SPOTIFY_RETRY_BUDGET (a backfill's),
    # so that Spotify down reads as "degraded" in time.
    budget_s = max(settings.search_enrich_wait_s / 4, 0.02)
    interactive = settings.replace(retry_budget_s=min(settings.retry_budget_s, budget_s),
                                   read_timeout_s=min(settings.read_timeout_s, SEARCH_READ_TIMEOUT_S),
                                   connect_timeout_s=min(settings.connect_timeout_s, 2.0))

    def client() -> Any:
        if not made:
            from pipeline.wiring import build_client
            from shared.redis_conn import connect

            # The interactive lane: a search does not queue behind a backfill that fills the budget.
            made.append(build_client(interactive, connect(interactive), engine).interactive())
        return made[0]

    return client


def _track_sync_sender(settings: Settings, engine: Engine):
    """Enqueues track_sync jobs (audio features) for songs a search added."""
    made: list[Any] = []

    def send(ids: Sequence[str]) -> None:
        from pipeline.producers import enqueue_track_sync

        if not made:
            from workers.actors import declare_actors
            from workers.broker import build_broker
            from workers.sender import JobSender

            broker = build_broker(settings)
            declare_actors(broker)
            made.append(JobSender(broker))
        enqueue_track_sync(engine, made[0], ids, force=False, track_ttl_s=settings.track_ttl_s,
                           description="search enrichment")

    return send


class SongsJSON(JSONResponse):
    """A page of songs as JSON, encoded by orjson as built: its values are JSON values already
    (song_json), and FastAPI's own encoding walks every value of every song first, about 1 ms of a
    page of 10 (3 ms on a busy host). (FastAPI's ORJSONResponse did this; it is deprecated.)"""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def arrived_at(request: Request) -> float:
    """When the request reached the application (time.monotonic(), set by RequestLog): a search's
    SEARCH_ENRICH_WAIT counts from here, so that time spent queued before the route (the thread
    pool, the other requests' work on a busy host) is inside the wait, not added to it."""
    return getattr(request.state, "arrived", None) or time.monotonic()


class RequestLog:
    """Notes each request's arrival (arrived_at), times every request into
    spotify_api_request_seconds{route,method,status} (the route template, never the raw path) and
    logs one line per request, without its query string (queries are what users typed, and
    uvicorn's own access log is off)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        scope.setdefault("state", {})["arrived"] = started
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            elapsed = time.monotonic() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            REQUEST_SECONDS.labels(route, scope["method"], str(status[0])).observe(elapsed)
            logger.info("{} {} {} {:.1f}ms", scope["method"], route, status[0], elapsed * 1000)


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    """The application. `services` defaults to ones built from `settings` (closed on shutdown)."""
    settings.require_api_tokens()
    built = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if services is None:
            built.close()

    app = FastAPI(title="spotify-sync", version="1", lifespan=lifespan,
                  description="Hybrid search over the enriched songs table.")
    app.state.services = built
    errors.install(app)
    app.add_middleware(RequestLog)

    # async: a few constant-time compares, no I/O; a plain def would cost every request a hop to
    # the thread pool and back before the route's own (measured: see bench/README.md, search).
    async def authorised(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
        if credentials is None or not token_allowed(credentials.credentials, settings.api_tokens):
            raise HTTPException(401, "Authorization: a bearer token from API_TOKENS is required",
                                headers={"WWW-Authenticate": 'Bearer realm="spotify-sync"'})

    @app.get("/health", tags=["operations"])
    def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["operations"])
    def ready() -> JSONResponse:
        """Readiness: PostgreSQL and Redis answer (503 names the one that does not)."""
        checks: dict[str, str] = {}
        try:
            store.ping(built.engine)
            checks["postgresql"] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            checks["postgresql"] = f"unavailable: {type(exc).__name__}"
        try:
            built.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["redis"] = f"unavailable: {type(exc).__name__}"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ok else "unavailable", "checks": checks},
                            status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"])
    def metrics() -> Response:
        """Prometheus text format."""
        body, content_type = exposition()
        return Response(body, media_type=content_type)

    @app.get("/v1/search", dependencies=[Depends(authorised)], tags=["search"], response_class=SongsJSON)
    def search(
        q: Annotated[str, Query(description="What to look for; Spotify's artist:, track:, album: filters and "
                                            "\"quoted phrases\" work", max_length=10_000)],
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        enrich: Annotated[Literal["auto", "never", "always"], Query()] = "auto",
        *,
        request: Request,
    ) -> SongsJSON:
        """Local songs best first (exact, prefix, all words, fuzzy; ties by popularity), enriched
        from Spotify when the local ones fall short, answered within SEARCH_ENRICH_WAIT of the
        search's arrival (past it, "pending": Spotify's answer lands in the background)."""
        began = arrived_at(request)
        parsed = search_query.parse(q)
        enricher = built.enricher
        # The search answers within SEARCH_ENRICH_WAIT of its arrival, local search included; with
        # enrich=always, which needs no local answer to decide, Spotify is asked first and the
        # local search runs while it answers.
        asked = enricher.ask(q, limit) if enricher is not None and enrich == "always" else None
        found = store.search_songs(built.engine, parsed, limit=limit, offset=offset)
        outcome = Outcome(OFF, "never" if enrich == "never" else "not_needed")
        if enricher is None and enrich != "never":
            outcome = Outcome(OFF, "spotify_not_configured")
        elif enricher is not None and wants_enrichment(enrich, len(found.songs), limit, found.best_tier):
            outcome = (asked or enricher.ask(q, limit)).outcome(began + enricher.wait_s)
            if outcome.added:
                found = store.search_songs(built.engine, parsed, limit=limit, offset=offset)
        return SongsJSON({"items": found.songs, "total_local": found.total, "limit": limit, "offset": offset,
                          "enrichment": outcome.as_json()})

    @app.get("/v1/songs/{spotify_id}", dependencies=[Depends(authorised)], tags=["songs"])
    def song(spotify_id: str) -> dict[str, Any]:
        """One song by its Spotify id (bare, spotify:track: URI or open.spotify.com URL)."""
        from pipeline.spotify import normalize_track_id

        try:
            normalised = normalize_track_id(spotify_id)
        except ValueError as exc:
            raise errors.ParameterError(f"spotifyId: {exc}") from None
        found = store.get_song(built.engine, normalised)
        if found is None:
            raise HTTPException(404, f"spotifyId: no song {normalised}")
        return found

    app.include_router(connections_router(Connector(settings, built.engine, built.redis), authorised))
    return app


def app_from_env() -> FastAPI:
    """For uvicorn's worker processes (`spotify-sync serve --workers N`): settings and logging
    of their own, read from the environment the command prepared."""
    from shared.logging import setup_logging
    from workers.setup import route_stdlib_logging

    settings = Settings.from_env()
    setup_logging(settings)
    route_stdlib_logging(settings.log_level)  # uvicorn's own lines, through our masking sinks
    return create_app(settings)
