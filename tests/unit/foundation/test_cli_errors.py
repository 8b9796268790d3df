"""FriendlyGroup's translation of service errors into one line (pure logic; the real services
are met in tests/integration/pipeline/test_cli_bad_input.py)."""

import psycopg
import redis.exceptions

from cli.common import service_problem
from pipeline.errors import InvalidId, RedisUnavailable, StoreConflict, StoreUnavailable
from shared.settings import Settings

SETTINGS = Settings(database_url="postgresql://app:pg-pw@db:5432/music", redis_url="redis://:r-pw@cache:6379/0",
                    broker_url="amqps://user:mq-pw@mq:5671/%2F")


def test_the_pipeline_errors_name_their_service_without_passwords():
    try:
        raise StoreUnavailable("PostgreSQL is unavailable") from psycopg.OperationalError("connection refused\nmore")
    except StoreUnavailable as exc:
        unavailable = exc
    assert service_problem(unavailable, SETTINGS) == (
        "PostgreSQL at postgresql://app:***@db:5432/music did not answer: connection refused")
    assert service_problem(StoreConflict("PostgreSQL: deadlock detected"), SETTINGS) == (
        "PostgreSQL at postgresql://app:***@db:5432/music: PostgreSQL: deadlock detected")
    assert service_problem(RedisUnavailable("timed out"), SETTINGS) == (
        "Redis at redis://:***@cache:6379/0 did not answer: timed out")


def test_driver_errors_until_every_path_translates_them():
    assert service_problem(redis.exceptions.ConnectionError("Error 111 connecting\x1b[2J"), SETTINGS) == (
        "Redis at redis://:***@cache:6379/0 did not answer: Error 111 connecting\\x1b[2J")
    import dramatiq.errors

    assert service_problem(dramatiq.errors.ConnectionClosed(OSError("reset")), SETTINGS).startswith(
        "RabbitMQ at amqps://user:***@mq:5671/%2F did not answer")


def test_everything_else_is_left_to_raise():
    assert service_problem(InvalidId("x"), SETTINGS) is None
    assert service_problem(KeyError("bug"), None) is None
