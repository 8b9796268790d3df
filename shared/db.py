"""The database engine and sessions. SQL lives in pipeline/ (and shared/ for tokens); callers
outside those never hold a session."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

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
    return create_engine(sqlalchemy_url(url), **options)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commits when the block ends, rolls back if it raises."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session
