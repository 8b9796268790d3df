"""The search indexer: every `every_s` it drains song_search_queue (pipeline/store/search_index.py)
until it is empty or `budget_s` is spent, so a song written to songs, by us or by the application
directly, is searchable within about a tick (plus the backlog's drain time under a bulk load).

Every worker process and every API process runs one; the database gives the turn to one drain
at a time (the others return at once), so more processes mean no more CPU spent on it.
"""

from __future__ import annotations

import threading
import time

from loguru import logger
from sqlalchemy import Engine

from pipeline.errors import PipelineError
from pipeline.store import search_index

INDEX_EVERY_S = 1.0
BUDGET_S = 0.5  # of a tick at most: a backlog drains over several ticks, leaving the rest to the pipeline


class SearchIndexer:
    def __init__(self, engine: Engine, *, every_s: float = INDEX_EVERY_S, budget_s: float = BUDGET_S,
                 batch: int = search_index.DRAIN_BATCH):
        self._engine = engine
        self.every_s = every_s
        self._budget_s = budget_s
        self._batch = batch
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="search-indexer", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop, and wait for a drain under way to end (its connection back in the pool before the
        engine is disposed)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        try:
            if not search_index.installed(self._engine):
                return  # no search tables on this database (no pg_trgm/unaccent): nothing to keep
        except PipelineError as exc:
            logger.debug("search indexer: not started: {}", exc)
        while not self._stop.is_set():  # a first tick at once: what was queued while nothing ran
            try:
                self.tick()
            except PipelineError as exc:  # the database is away: the next tick tries again
                logger.debug("search indexer: tick skipped: {}", exc)
            self._stop.wait(self.every_s)

    def tick(self) -> int:
        """Drain batches until the queue is empty or the budget is spent; how many entries."""
        deadline = time.monotonic() + self._budget_s
        total = 0
        while True:
            removed = search_index.drain(self._engine, self._batch)
            total += removed
            if removed < self._batch or time.monotonic() >= deadline:
                return total
