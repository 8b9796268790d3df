"""Fixtures for the tiers that use real services (integration, e2e).

Where the services come from, first that answers:
1. TEST_DATABASE_URL / TEST_REDIS_URL;
2. the machine's own PostgreSQL and Redis on 127.0.0.1 (5432, 6379);
3. the embedded ones (`spotify-sync services up`), started under a temporary folder for this run.
If none can be had, the tests that need them fail loudly: they are never skipped.

RabbitMQ, the optional broker, has no embedded stand-in: its tests use TEST_RABBITMQ_URL (which
must answer; `.ci/run` sets it), else the machine's RabbitMQ on 127.0.0.1:5672 (guest/guest).
Only where neither exists, outside CI, are they skipped, and the summary at the end says so;
under CI (CI set, as `.ci/run` does) a missing RabbitMQ fails them.

Each run works in a freshly created database and its own Redis namespace, and removes both
when it ends.
"""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis

from shared import migrate, services
from shared.crypto import generate_key
from shared.settings import Settings, without_password

MACHINE_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
MACHINE_REDIS = "redis://127.0.0.1:6379/0"
MACHINE_RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/%2F"
RUN_ID = secrets.token_hex(4)
SERVICES_USED: dict[str, str] = {}  # for the summary at the end of the run


def _answers(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "unix" or not parts.hostname:
        return True  # a socket path: let the real connection say
    try:
        with socket.create_connection((parts.hostname, parts.port or 0), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def _embedded() -> Iterator[dict]:
    """Embedded services for this run, started only when asked for."""
    state_dir = Path(tempfile.mkdtemp(prefix="spotify-sync-test-"))
    try:
        state = services.up(state_dir)
    except services.ServicesError as exc:
        pytest.fail(f"no PostgreSQL/Redis for the tests: none configured, none on 127.0.0.1, and {exc}")
    yield state
    services.down(state_dir)


def _service_url(env: str, machine: str, embedded_key: str, request: pytest.FixtureRequest) -> str:
    url = os.environ.get(env)
    if url:
        if not _answers(url):
            pytest.fail(f"{env}={url} does not answer")
        return url
    if _answers(machine):
        return machine
    return request.getfixturevalue("_embedded")[embedded_key]


@pytest.fixture(scope="session")
def postgres_server_url(request) -> str:
    """A maintenance connection URL to a PostgreSQL server (we create our databases there)."""
    SERVICES_USED["PostgreSQL"] = _service_url("TEST_DATABASE_URL", MACHINE_POSTGRES, "database_url", request)
    return SERVICES_USED["PostgreSQL"]


@pytest.fixture(scope="session")
def redis_url(request) -> str:
    SERVICES_USED["Redis"] = _service_url("TEST_REDIS_URL", MACHINE_REDIS, "redis_url", request)
    return SERVICES_USED["Redis"]


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    url = os.environ.get("TEST_RABBITMQ_URL")
    if url and not _answers(url):
        pytest.fail(f"TEST_RABBITMQ_URL={url} does not answer")
    if not url:
        if not _answers(MACHINE_RABBITMQ):
            # Like PostgreSQL and Redis: a missing service fails its tests, never skips them.
            pytest.fail("no RabbitMQ: TEST_RABBITMQ_URL is not set and none answers on 127.0.0.1:5672 "
                        "(start one, or point TEST_RABBITMQ_URL at one)")
        url = MACHINE_RABBITMQ
    SERVICES_USED["RabbitMQ"] = url
    return url


@pytest.fixture(scope="session")
def create_database(postgres_server_url) -> Iterator:
    """A factory of fresh, empty databases on the test server, all dropped when the run ends."""
    created: list[str] = []

    def create() -> str:
        name = f"spotify_sync_test_{RUN_ID}_{len(created)}"
        with psycopg.connect(postgres_server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return _with_database(postgres_server_url, name)

    yield create
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _with_database(server_url: str, name: str) -> str:
    parts = urlsplit(server_url)
    return parts._replace(path="/" + name).geturl()


@pytest.fixture(scope="session")
def database_url(create_database) -> str:
    """One database for the session, migrated to head."""
    url = create_database()
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def engine(database_url):
    from shared.db import make_engine

    engine = make_engine(database_url)
    yield engine
    engine.dispose()


SEARCH_TABLES = ("song_search", "song_search_words", "song_search_queue")


@pytest.fixture
def clean_db(engine):
    """Empty every table of the session database before the test (the schema stays)."""
    from sqlalchemy import text

    from shared.models import Base

    with engine.begin() as conn:
        # The models' tables, and search's (raw tables of its migrations, no model; the queue has
        # no key to songs, so a truncate of songs leaves its entries behind).
        search = [n for n in SEARCH_TABLES if conn.execute(text("SELECT to_regclass(:n)"), {"n": n}).scalar()]
        names = ", ".join(f'"{n}"' for n in [t.name for t in Base.metadata.sorted_tables] + search)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    return engine


@pytest.fixture
def redis_namespace(redis_url) -> Iterator[str]:
    """A Redis key namespace of this test's own; its keys are deleted afterwards."""
    namespace = f"spotify-sync-test-{RUN_ID}-{secrets.token_hex(3)}"
    yield namespace
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=namespace + ":*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture
def settings(database_url, redis_url, redis_namespace) -> Settings:
    """Settings for real services: this run's database, this test's Redis namespace, a fresh key,
    and a client id of the test's own (the emulator and the limiter count per client id)."""
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        redis_namespace=redis_namespace,
        spotify_client_id=f"client-{secrets.token_hex(6)}",
        spotify_client_secret=secrets.token_hex(16),
        spotify_token_keys=(generate_key(),),
        state_dir=Path(tempfile.gettempdir()) / "spotify-sync-unused",
    )


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say which real services the run used, so a green run shows it was not against nothing."""
    if SERVICES_USED:
        terminalreporter.section("real services used")
        for name, url in SERVICES_USED.items():
            version = "" if url.startswith("none") else f"  ({_server_version(name, url)})"
            terminalreporter.write_line(f"{name:<10} {without_password(url)}{version}")


def _server_version(name: str, url: str) -> str:
    try:
        if name == "RabbitMQ":
            return _rabbitmq_version(url)
        if name == "PostgreSQL":
            with psycopg.connect(url, connect_timeout=3) as conn:
                return conn.execute("SHOW server_version").fetchone()[0].split()[0]
        return "Redis " + redis.Redis.from_url(url, socket_timeout=3).info("server")["redis_version"]
    except Exception as exc:  # noqa: BLE001 - a summary line must never fail the run
        return f"version unknown: {type(exc).__name__}"


def _rabbitmq_version(url: str) -> str:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return "RabbitMQ " + connection._impl.server_properties["version"]  # pika has no public getter
    finally:
        connection.close()
