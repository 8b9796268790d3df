"""Enriching a search from Spotify without ever making the caller wait past SEARCH_ENRICH_WAIT.

    outcome = enricher.enrich(raw_query, limit)       # Outcome(status, reason, added)
    asked = enricher.ask(raw_query, limit)            # begun; search locally meanwhile, then
    outcome = asked.outcome(deadline)                 # waits for Spotify until `deadline` at most

- A cached answer (api/cache.py) makes no Spotify call; a stale one is served and refreshed in
  the background.
- Otherwise the search goes to Spotify through the project's client (the fleet's limiter,
  penalty box and tier rules hold) on a bounded thread pool: at most `max_in_flight` at once per
  process (more are "skipped"), identical searches in flight share one call. The caller waits
  until its deadline at most (the API's: `wait_s` after the search began, local search included);
  past it the answer is "pending" and the call finishes in the background.
- Tracks Spotify returns that songs lacks are upserted, with their search rows in the same
  transaction (not left to the search indexer), and get track_sync jobs (audio features), so the
  next search finds them locally.
- Spotify down, slow, rate limited, forbidden, or the shared circuit open; Redis down: "degraded"
  with the reason, never an error.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from loguru import logger
from sqlalchemy import Engine

from api.cache import HIT, MISS, STALE, SearchCache, query_digest
from api.circuit import Circuit
from api.metrics import CACHE, ENRICHMENT
from pipeline import errors
from pipeline.mapping import merge_rows
from pipeline.store.db import translated
from pipeline.store.search import missing_spotify_ids
from pipeline.store.songs import write_songs

SPOTIFY_SEARCH_LIMIT = 10  # dev-2026 apps get no more (docs/spotify-platform.md, "Access tiers")

FRESH, CACHED, PENDING, DEGRADED, SKIPPED, OFF = "fresh", "cached", "pending", "degraded", "skipped", "off"

_RATE_LIMITED = (errors.RateLimited,)
_FORBIDDEN = (errors.Forbidden,)
_FAULTS = errors.TRANSIENT_SPOTIFY
_REDIS = (errors.RedisUnavailable,)


class Searcher(Protocol):
    def search(self, query: str, *, limit: int = 10, offset: int = 0) -> Any: ...


@dataclass(frozen=True)
class Outcome:
    status: str
    reason: str | None = None
    added: int = 0

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status, "added": self.added}
        if self.reason:
            body["reason"] = self.reason
        return body


@dataclass(frozen=True)
class Asked:
    """An enrichment begun (Enricher.ask): its outcome known already, or a Spotify call under way."""

    known: Outcome | None = None
    call: Future[int] | None = None

    def outcome(self, deadline: float) -> Outcome:
        """The outcome, waiting for the call at most until `deadline` (time.monotonic()); past it
        "pending", and the call goes on in the background."""
        outcome = self.known or self._wait(deadline)
        ENRICHMENT.labels(outcome.status).inc()
        return outcome

    def _wait(self, deadline: float) -> Outcome:
        assert self.call is not None
        try:
            return Outcome(FRESH, added=self.call.result(timeout=max(0.0, deadline - time.monotonic())))
        except FutureTimeout:
            return Outcome(PENDING)
        except Degraded as exc:
            return Outcome(DEGRADED, exc.reason)


class Degraded(Exception):
    """Spotify could not help this time; `reason` says why (it goes to the caller)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Enricher:
    def __init__(self, *, engine: Engine, cache: SearchCache, circuit: Circuit, spotify: Callable[[], Searcher],
                 send_track_sync: Callable[[Sequence[str]], None], wait_s: float, max_in_flight: int):
        self._engine = engine
        self._cache = cache
        self._circuit = circuit
        self._spotify = spotify
        self._send_track_sync = send_track_sync
        self.wait_s = wait_s
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="search-enrich")
        self._in_flight: dict[str, Future[int]] = {}
        self._lock = threading.Lock()

    def enrich(self, raw_query: str, limit: int) -> Outcome:
        """ask(), then its outcome within wait_s from now."""
        return self.ask(raw_query, limit).outcome(time.monotonic() + self.wait_s)

    def ask(self, raw_query: str, limit: int) -> Asked:
        """This search's enrichment, begun: the cache or the circuit decides at once, or a Spotify
        call starts (or one in flight for the same search is joined). The caller collects the
        outcome by a deadline (Asked.outcome) and may search locally meanwhile."""
        spotify_limit = min(limit, SPOTIFY_SEARCH_LIMIT)
        digest = query_digest(raw_query, spotify_limit)
        try:
            result, _ = self._cache.get(digest)
            CACHE.labels(result).inc()
            if result == HIT:
                return Asked(Outcome(CACHED))
            if self._circuit.is_open():
                return Asked(Outcome(CACHED) if result == STALE else Outcome(DEGRADED, "circuit_open"))
        except errors.RedisUnavailable:
            return Asked(Outcome(DEGRADED, "redis_unavailable"))
        future = self._start(raw_query, digest, spotify_limit)
        if result == STALE:
            return Asked(Outcome(CACHED))  # served now; `future` (if a slot was free) refreshes it
        assert result == MISS
        if future is None:
            return Asked(Outcome(SKIPPED, "too_many_in_flight"))
        return Asked(call=future)

    def _start(self, raw_query: str, digest: str, spotify_limit: int) -> Future[int] | None:
        """The call for this search: one already in flight, a new one, or None (no free slot)."""
        with self._lock:
            running = self._in_flight.get(digest)
            if running is not None:
                return running
            if not self._slots.acquire(blocking=False):
                return None
            future = self._pool.submit(self._fetch, raw_query, digest, spotify_limit)
            self._in_flight[digest] = future

        def finished(done: Future[int]) -> None:
            with self._lock:
                self._in_flight.pop(digest, None)
            self._slots.release()
            if not done.cancelled() and isinstance(done.exception(), Degraded):
                logger.info("search enrichment degraded: {}", done.exception())

        future.add_done_callback(finished)
        return future

    def _fetch(self, raw_query: str, digest: str, spotify_limit: int) -> int:
        """Ask Spotify, store what is new, cache the answer; how many songs were added."""
        try:
            page = self._spotify().search(raw_query, limit=spotify_limit)
        except _RATE_LIMITED as exc:
            raise Degraded("rate_limited") from exc
        except _FORBIDDEN as exc:
            raise Degraded("forbidden") from exc
        except _REDIS as exc:
            raise Degraded("redis_unavailable") from exc
        except _FAULTS as exc:
            self._count_failure()
            raise Degraded("spotify_unavailable") from exc
        except errors.PipelineError as exc:
            raise Degraded(f"spotify_error: {type(exc).__name__}") from exc
        try:
            self._circuit.succeeded()
        except errors.RedisUnavailable:
            pass
        rows = merge_rows([t for t in page.items if t is not None], None, datetime.now(UTC).replace(tzinfo=None))
        ids = [row["spotifyId"] for row in rows]
        try:
            missing = set(missing_spotify_ids(self._engine, ids))
            if missing:
                with translated():
                    write_songs(self._engine, [row for row in rows if row["spotifyId"] in missing], searchable_now=True)
                    self._send_track_sync([i for i in ids if i in missing])
        except errors.StoreError as exc:
            raise Degraded("database_unavailable") from exc
        try:
            self._cache.put(digest, ids, rows)
        except errors.RedisUnavailable:
            logger.info("search answer not cached: Redis did not answer")
        return len(missing)

    def _count_failure(self) -> None:
        try:
            if self._circuit.failed():
                logger.warning("Spotify search failed {} times in a row: circuit open for {}s",
                               self._circuit.failures_to_open, self._circuit.open_s)
        except errors.RedisUnavailable:
            pass

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait for the calls in flight (tests, shutdown); True when none is left."""
        with self._lock:
            running = list(self._in_flight.values())
        for future in running:
            # Their outcome was handled where they ran; here only their end matters.
            with contextlib.suppress(Exception):
                future.result(timeout=timeout_s)
        with self._lock:
            return not self._in_flight

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
