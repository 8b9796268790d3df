"""What every command module shares: the exit-code errors and FriendlyGroup that turns them into
one line on stderr, the settings of the run, and the sender of job messages."""

from __future__ import annotations

import sys

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


def job_sender(settings):
    """The broker and the sender of job messages (the CLI only sends; workers consume)."""
    from workers.actors import declare_actors
    from workers.broker import build_broker
    from workers.middleware import JobSender

    broker = build_broker(settings)
    declare_actors(broker)
    return broker, JobSender(broker)
