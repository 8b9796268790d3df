"""What every command module shares: the exit-code errors and FriendlyGroup that turns them into
one line on stderr, the settings of the run, and the database, Redis client and job sender a
command opens and closes."""

from __future__ import annotations

import sys
from contextlib import contextmanager

import click

from shared.settings import Settings, SettingsError


class FriendlyGroup(click.Group):
    """Turns the project's expected errors into one line on stderr and the right exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SettingsError as exc:
            fail(str(exc), code=2)
        except UsageProblem as exc:
            fail(str(exc), code=2)
        except WorkFailed as exc:
            fail(str(exc), code=1)


class UsageProblem(Exception):
    """Bad input from the user: exit 2."""


class WorkFailed(Exception):
    """The command ran but its work failed: exit 1."""


def fail(message: str, code: int) -> None:
    click.echo(f"spotify-sync: {message}", err=True)
    sys.exit(code)


def settings_of(ctx: click.Context) -> Settings:
    return ctx.find_root().obj


@contextmanager
def database(settings: Settings, **engine_options):
    """An engine for the length of one command, disposed on the way out, errors included."""
    from shared.db import make_engine

    engine = make_engine(settings, **engine_options)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def redis_client(settings: Settings):
    """A Redis client for the length of one command, closed on the way out."""
    from shared.redis_conn import connect

    client = connect(settings)
    try:
        yield client
    finally:
        client.close()


@contextmanager
def job_sender(settings: Settings):
    """The broker and the sender of job messages (the CLI only sends; workers consume), the
    broker closed on the way out."""
    from workers.actors import declare_actors
    from workers.broker import build_broker
    from workers.sender import JobSender

    broker = build_broker(settings)
    try:
        declare_actors(broker)
        yield broker, JobSender(broker)
    finally:
        broker.close()
