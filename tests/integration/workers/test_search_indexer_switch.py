"""SEARCH_INDEXER: a worker process drains the search queue unless it is switched off (real
PostgreSQL and Redis, the environment WorkerSetup builds)."""

from __future__ import annotations

import time

import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import text

from pipeline.store import search_index
from workers.setup import WorkerEnv


def _queue_a_song(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE song_search_queue"))
        conn.execute(text("""INSERT INTO songs (title, artist, "spotifyId") VALUES ('Halo', 'Beyoncé', :id)"""),
                     {"id": "4iV5W9uYEdYUVa79Axb7Rh"})


@pytest.mark.parametrize("switched_on", [True, False])
def test_a_worker_drains_the_search_queue_only_when_its_indexer_is_on(settings, clean_db, switched_on):
    _queue_a_song(clean_db)
    env = WorkerEnv.build(settings.replace(search_indexer=switched_on), StubBroker())
    try:
        indexer = env.extras["indexer"]
        assert indexer.running is switched_on
        if switched_on:  # its first tick is at once
            deadline = time.monotonic() + 10
            while search_index.queued(clean_db) and time.monotonic() < deadline:
                time.sleep(0.05)
        assert search_index.queued(clean_db) == (0 if switched_on else 1)
    finally:
        env.close()
