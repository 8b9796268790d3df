"""The database engine. SQL and transactions live in the store layer (pipeline/store/db.py);
nothing else holds a connection."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from shared.settings import Settings


def sqlalchemy_url(url: str) -> str:
    """postgresql://... -> postgresql+psycopg://... (psycopg 3, not the psycopg2 default)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(settings_or_url: Settings | str, **options) -> Engine:
    url = settings_or_url if isinstance(settings_or_url, str) else settings_or_url.require_database_url()
    options.setdefault("pool_pre_ping", True)
    options.setdefault("pool_size", 5)
    # A host that drops packets fails the connection in seconds instead of hanging the caller.
    options.setdefault("connect_args", {"connect_timeout": 5})
    return create_engine(sqlalchemy_url(url), **options)
