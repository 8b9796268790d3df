"""spotify-sync: the operator's command line.

Parses, calls into shared/, pipeline/ and workers/, prints. Exit codes: 0 ok, 1 the work failed,
2 bad usage or a missing/malformed setting (one line naming the variable).

This module holds the `main` group; each command lives in the module of its name (cli/db.py,
cli/enqueue.py, ...), the helpers they share in cli/common.py. Commands import what they need
when they run, so that starting the CLI stays fast.
"""

from __future__ import annotations

import click

from cli import connect, db, demo, enqueue, jobs, keys, ratelimit, serve, services, status, worker
from cli.common import FriendlyGroup, fail
from emulator.cli import emulator
from shared.settings import Settings, SettingsError

__all__ = ["main"]


@click.group(cls=FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def main(ctx: click.Context) -> None:
    """Keep a music database enriched with Spotify data.

    Settings come from the environment (see README.md). With DATABASE_URL and REDIS_URL unset,
    the embedded services of `spotify-sync services up` are used.
    """
    from shared.logging import setup_logging

    try:
        ctx.obj = Settings.from_env()
    except SettingsError as exc:
        fail(str(exc), code=2)
    setup_logging(ctx.obj)


# The emulator keeps its own command module (emulator/cli.py): it is a separate tool that ships with us.
for command in (db.db, keys.keys, services.services, demo.demo, enqueue.enqueue, jobs.jobs, status.status,
                worker.worker, connect.connect, ratelimit.ratelimit, serve.serve, emulator):
    main.add_command(command)
