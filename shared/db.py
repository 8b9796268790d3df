"""The database engine. SQL and transactions live in the store layer (pipeline/store/db.py);
nothing else holds a connection.

A pooled connection can have died while it sat in the pool (PostgreSQL restarted, a firewall
dropped it): SQLAlchemy's `pool_pre_ping` asks every connection at every checkout, a round trip
before each store call (4 of the 10 a track_sync job made). Instead a connection is pinged at
checkout only when it sat idle in the pool longer than `ping_idle_s`: a restart takes longer than
that, so a connection used before it and handed out after it has always been idle long enough to
be asked, while a busy worker's connections, back in the pool for milliseconds, are not. A
connection that dies between two quick uses (a backend killed) fails its statement; the driver's
error invalidates the pool (every connection of that generation is replaced at its next checkout)
and the store's callers retry (workers/run.py waits out blips around a run's transitions; the
retry policy retries the work). The pool is LIFO, so the connections in use stay the hot few and
the spare ones are the ones that idle long enough to be pinged.
"""

from __future__ import annotations

import time

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url

from shared.settings import Settings

PING_IDLE_S = 1.0
_CHECKED_IN = "spotify_sync_checked_in_at"


def sqlalchemy_url(url: str) -> str:
    """postgresql://... -> postgresql+psycopg://... (psycopg 3, not the psycopg2 default)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(settings_or_url: Settings | str, *, ping_idle_s: float = PING_IDLE_S, **options) -> Engine:
    url = settings_or_url if isinstance(settings_or_url, str) else settings_or_url.require_database_url()
    options.setdefault("pool_size", 5)
    options.setdefault("pool_use_lifo", True)
    # A host that drops packets fails the connection in seconds instead of hanging the caller, and
    # keepalives find a pooled connection whose peer went away (a host cut off, then back).
    options.setdefault("connect_args", {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 10,
                                        "keepalives_interval": 5, "keepalives_count": 3})
    engine = create_engine(sqlalchemy_url(url), **options)
    if not options.get("pool_pre_ping"):
        _ping_when_idle(engine, ping_idle_s)
    return engine


def _ping_when_idle(engine: Engine, idle_s: float) -> None:
    @event.listens_for(engine, "connect")
    def connected(dbapi_connection, record) -> None:
        record.info[_CHECKED_IN] = time.monotonic()  # just made: alive

    @event.listens_for(engine, "checkin")
    def checked_in(dbapi_connection, record) -> None:
        record.info[_CHECKED_IN] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def checked_out(dbapi_connection, record, proxy) -> None:
        if time.monotonic() - record.info.get(_CHECKED_IN, float("-inf")) <= idle_s:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # noqa: BLE001 - any failure: this one is dead, the pool connects anew
            # SQLAlchemy's documented answer: the pool drops this connection and checks out another.
            raise exc.DisconnectionError() from error
