"""How the store talks to PostgreSQL: transactions, the database's clock, and driver errors
translated into the StoreError tree (pipeline/errors.py), so nothing above the store layer sees a
psycopg or SQLAlchemy exception.

    with transaction(engine) as conn:      # commits when the block ends, rolls back if it raises
        conn.execute(text(f"UPDATE ... SET \"updatedAt\" = {NOW} ..."))

Every store function opens its own transaction (or, when it composes others' statements, passes
its `Connection` down); callers above the store never hold one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import psycopg
import psycopg.errors
import sqlalchemy.exc
from sqlalchemy import Connection, Engine, TextClause, text

from pipeline.errors import StoreConflict, StoreError, StoreIntegrity, StoreUnavailable

# The database's clock, in UTC, like every timestamp column of the contract (TIMESTAMP WITHOUT
# TIME ZONE holding UTC). One clock for every host; statement_timestamp(), not now(), so that a
# long transaction's later statements see time move.
NOW = "(statement_timestamp() AT TIME ZONE 'UTC')"
NOW_SQL: TextClause = text(NOW)
T = TypeVar("T")


def placeholder(param: str, *, driver: bool = False) -> str:
    """The bound parameter `param` in a statement's text: SQLAlchemy's `:param`, or psycopg's
    `%(param)s` for a statement run on the driver's connection (`driver_autocommit`)."""
    return f"%({param})s" if driver else f":{param}"


def seconds_from_now(param: str, *, driver: bool = False) -> str:
    """SQL for "NOW plus the bound parameter `param` seconds" (a lease, a not-before time)."""
    return f"({NOW} + make_interval(secs => {placeholder(param, driver=driver)}))"


def seconds_ago(param: str) -> str:
    """SQL for "NOW minus :param seconds" (a TTL's horizon)."""
    return f"({NOW} - make_interval(secs => :{param}))"


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One unit of work: commits when the block ends, rolls back if it raises; driver errors
    come out as StoreError."""
    with translated():
        with engine.begin() as connection:
            yield connection


@contextmanager
def autocommit(engine: Engine) -> Iterator[Connection]:
    """A connection whose every statement is its own transaction: one round trip instead of
    three (BEGIN, statement, COMMIT) where a statement is the whole unit of work."""
    with translated():
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            yield connection


@contextmanager
def driver_autocommit(engine: Engine) -> Iterator[psycopg.Connection]:
    """A pooled connection's psycopg connection itself, in autocommit, for a statement built
    once that every job runs: SQLAlchemy's execution around a statement (its execution context,
    its result, a Row for each row returned) cost about 0.4 ms of CPU for the songs upsert of 100
    rows, next to psycopg's own 0.5. Driver errors come out as StoreError, as everywhere; a
    connection that an error left broken is dropped from the pool, not handed out again."""
    with translated():
        pooled = engine.raw_connection()
        try:
            driver: psycopg.Connection = pooled.driver_connection  # type: ignore[assignment]
            driver.autocommit = True
            try:
                yield driver
            finally:
                if not driver.broken:
                    driver.autocommit = False  # back as the pool lends it to SQLAlchemy
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            pooled.invalidate(exc)
            raise
        finally:
            pooled.close()


def read(engine: Engine, work: Callable[[Connection], T]) -> T:
    """`work`'s statements, which only read, on an autocommit connection; run once more on a new
    connection when the first one was found dead (PostgreSQL restarted since it was pooled). An
    engine pings a pooled connection only when it sat idle (shared/db.py: no `SELECT 1` round trip
    before every search), so a connection that died since its last use is learned of this way;
    the failure invalidates the pool, so every other connection pooled before it is replaced too."""
    try:
        with autocommit(engine) as conn:
            return work(conn)
    except StoreUnavailable as exc:
        if not getattr(exc.__cause__, "connection_invalidated", False):
            raise
    with autocommit(engine) as conn:
        return work(conn)


@contextmanager
def translated() -> Iterator[None]:
    """Driver errors raised inside the block come out as the matching StoreError."""
    try:
        yield
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise store_error(exc) from exc
    except psycopg.Error as exc:  # raw psycopg (COPY through the driver connection)
        raise store_error(exc) from exc


_CONFLICTS = (psycopg.errors.LockNotAvailable, psycopg.errors.SerializationFailure,
              psycopg.errors.DeadlockDetected, psycopg.errors.QueryCanceled)


def store_error(exc: BaseException) -> StoreError:
    """The StoreError a driver exception stands for. The message names the problem, not the
    statement (which can be long and hold values)."""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, _CONFLICTS):
        return StoreConflict(f"PostgreSQL: {_first_line(orig)}")
    if isinstance(orig, psycopg.errors.IntegrityError) or isinstance(exc, sqlalchemy.exc.IntegrityError):
        return StoreIntegrity(f"PostgreSQL refused the row: {_first_line(orig)}")
    if (isinstance(exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError,
                         sqlalchemy.exc.TimeoutError, sqlalchemy.exc.DisconnectionError))
            or isinstance(orig, (psycopg.OperationalError, psycopg.InterfaceError))):
        return StoreUnavailable(f"PostgreSQL is unavailable: {_first_line(orig)}")
    return StoreError(f"PostgreSQL: {_first_line(orig)}")


def _first_line(exc: BaseException) -> str:
    text_ = str(exc).strip().splitlines()
    return text_[0][:300] if text_ else type(exc).__name__
