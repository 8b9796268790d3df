"""What every command module shares: the exit-code errors and FriendlyGroup that turns them into
one line on stderr, the settings of the run, and the database, Redis client and job sender a
command opens and closes."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from shared.settings import Settings, SettingsError, without_password


class FriendlyGroup(click.Group):
    """Turns the project's expected errors into one line on stderr and the right exit code:
    2 for bad usage or settings, 1 for work that failed or a service that did not answer."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SettingsError as exc:
            fail(str(exc), code=2)
        except UsageProblem as exc:
            fail(str(exc), code=2)
        except WorkFailed as exc:
            fail(str(exc), code=1)
        except Exception as exc:
            problem = service_problem(exc, ctx.obj if isinstance(ctx.obj, Settings) else None)
            if problem is None:
                raise  # a bug: its traceback is what its reader needs
            fail(problem, code=1)


def service_problem(exc: BaseException, settings: Settings | None) -> str | None:
    """One line naming the service that did not answer (or refused) and its URL without its
    password, or None when `exc` is not about a service.

    The pipeline's own types first; the drivers' until every path translates its errors
    (pipeline/errors.py)."""
    import dramatiq.errors
    import pika.exceptions
    import psycopg
    import redis.exceptions
    import sqlalchemy.exc

    from pipeline.errors import RedisUnavailable, StoreError, StoreUnavailable

    def where(attribute: str, service: str) -> str:
        url = getattr(settings, attribute, None) if settings else None
        return f"{service} at {without_password(url)}" if url else service

    postgres, redis_ = where("database_url", "PostgreSQL"), where("redis_url", "Redis")
    if isinstance(exc, StoreUnavailable):
        return f"{postgres} did not answer: {_first_line(exc.__cause__ or exc)}"
    if isinstance(exc, StoreError):
        return f"{postgres}: {_first_line(exc)}"
    if isinstance(exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, psycopg.OperationalError)):
        return f"{postgres} did not answer: {_first_line(getattr(exc, 'orig', None) or exc)}"
    if isinstance(exc, (RedisUnavailable, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return f"{redis_} did not answer: {_first_line(exc)}"
    # dramatiq 2.2 renamed ConnectionError (the old name warns); 2.0 and 2.1 have only the old one.
    broker_error = getattr(dramatiq.errors, "BrokerConnectionError", None) or dramatiq.errors.ConnectionError
    if isinstance(exc, (broker_error, pika.exceptions.AMQPConnectionError)):
        broker_url = settings.broker_url if settings else None
        broker = where("broker_url", "RabbitMQ") if broker_url and broker_url.startswith("amqp") else redis_
        return f"{broker} did not answer: {_first_line(exc)}"
    return None


def _first_line(exc: BaseException) -> str:
    """The exception's first line, secrets masked and control characters escaped."""
    from shared.logging import mask, printable

    # Some (pika's) keep their message in their first argument and have an empty str().
    lines = (str(exc) or (str(exc.args[0]) if exc.args else "")).strip().splitlines()
    return printable(mask(lines[0][:300])) if lines else type(exc).__name__


class UsageProblem(Exception):
    """Bad input from the user: exit 2."""


class WorkFailed(Exception):
    """The command ran but its work failed: exit 1."""


def fail(message: str, code: int) -> None:
    """One line on stderr and exit `code`; control characters in the message (a value echoed
    back from input) are escaped."""
    from shared.logging import printable

    click.echo(f"spotify-sync: {printable(message)}", err=True)
    sys.exit(code)


def echo_json(document: Any, *, indent: int | None = None) -> None:
    """One JSON document on stdout, for scripts: keys in the order the code builds them,
    datetimes ISO-8601 in UTC (the database's naive timestamps are UTC), dataclasses as objects,
    and every non-ASCII or control character escaped (no raw ESC reaches a terminal)."""
    import json

    click.echo(json.dumps(document, default=_json_default, indent=indent))


def _json_default(value: Any) -> Any:
    from dataclasses import asdict, is_dataclass
    from datetime import UTC, datetime

    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def echo_line(line: str) -> None:
    """A line of a table for a person: control characters escaped (shared.logging.printable),
    so a value from Spotify or a file cannot forge lines or repaint the terminal."""
    from shared.logging import printable

    click.echo(printable(line))


def settings_of(ctx: click.Context) -> Settings:
    return ctx.find_root().obj


@contextmanager
def database(settings: Settings, **engine_options: Any) -> Iterator[Any]:
    """An engine for the length of one command, disposed on the way out, errors included."""
    from shared.db import make_engine

    engine = make_engine(settings, **engine_options)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def redis_client(settings: Settings) -> Iterator[Any]:
    """A Redis client for the length of one command, closed on the way out."""
    from shared.redis_conn import connect

    client = connect(settings)
    try:
        yield client
    finally:
        client.close()


@contextmanager
def job_sender(settings: Settings) -> Iterator[Any]:
    """The broker and the sender of job messages (the CLI only sends; workers consume), the
    broker closed on the way out."""
    from workers.actors import declare_actors
    from workers.broker import build_broker
    from workers.sender import JobSender

    broker = build_broker(settings)
    try:
        _check_reachable(broker)
        declare_actors(broker)
        yield broker, JobSender(broker)
    finally:
        broker.close()


def _check_reachable(broker: Any) -> None:
    """Ask the broker before any work is done, so that a broker that does not answer stops the
    command before a producer writes rows it then cannot send (and before a backfill is left
    half-made). Its errors are the drivers' (redis, dramatiq): FriendlyGroup names the service."""
    from dramatiq.brokers.redis import RedisBroker

    if isinstance(broker, RedisBroker):
        broker.client.ping()
    else:  # RabbitMQ: the connection is opened on first use; open it now
        broker.connection  # noqa: B018
