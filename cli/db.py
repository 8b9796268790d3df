"""`spotify-sync db`: migrations (upgrade, downgrade, current, stamp) and the read-only role (create-reader)."""

from __future__ import annotations

import os

import click

from cli.common import UsageProblem, database, settings_of

SHOWN_DATABASES = 10  # of those PUBLIC may connect to


@click.group()
def db() -> None:
    """Database migrations (Alembic)."""


@db.command("upgrade")
@click.argument("revision", default="head")
@click.pass_context
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Migrate the database up to REVISION (default: the newest)."""
    from shared import migrate

    url = settings_of(ctx).require_database_url()
    migrate.upgrade(url, revision)
    click.echo(f"database at {migrate.current(url)}")


@db.command("downgrade")
@click.argument("revision")
@click.pass_context
def db_downgrade(ctx: click.Context, revision: str) -> None:
    """Migrate the database down to REVISION (e.g. -1, baseline, base)."""
    from shared import migrate

    url = settings_of(ctx).require_database_url()
    migrate.downgrade(url, revision)
    click.echo(f"database at {migrate.current(url) or 'base (empty)'}")


@db.command("current")
@click.pass_context
def db_current(ctx: click.Context) -> None:
    """Print the revision the database is at."""
    from shared import migrate

    click.echo(migrate.current(settings_of(ctx).require_database_url()) or "base (not migrated)")


@db.command("stamp")
@click.argument("revision")
@click.pass_context
def db_stamp(ctx: click.Context, revision: str) -> None:
    """Mark the database as being at REVISION without running anything.

    For an existing database that already has the application's users and songs tables:
    `spotify-sync db stamp baseline && spotify-sync db upgrade`.
    """
    from shared import migrate

    migrate.stamp(settings_of(ctx).require_database_url(), revision)
    click.echo(f"database stamped at {revision}")


@db.command("create-reader")
@click.option("--role", default="songs_reader", show_default=True, help="The role's name.")
@click.option("--password-env", metavar="VAR",
              help="Set the role's password from this environment variable (never printed). "
                   "Without it a new role has no password and an existing one keeps its own.")
@click.pass_context
def db_create_reader(ctx: click.Context, role: str, password_env: str | None) -> None:
    """Create or refresh a read-only role for the services that read songs.

    It may SELECT songs, saved-track links and popularity history, and nothing else: no tokens
    (spotify_connections), no jobs, no users. Safe to run again; run it after `db upgrade` so new
    reader tables are granted. Needs a user with CREATEROLE that owns the tables (no superuser).
    """
    from pipeline.errors import InputError
    from pipeline.store.readers import check_role_name, create_reader

    try:
        check_role_name(role)
    except InputError as exc:
        raise UsageProblem(str(exc)) from None
    password = None
    if password_env:
        password = os.environ.get(password_env)
        if not password:
            raise UsageProblem(f"{password_env}: expected the password for role {role!r}, but it is not set")
    with database(settings_of(ctx), pool_size=1) as engine:
        try:
            done = create_reader(engine, role, password)
        except InputError as exc:
            raise UsageProblem(str(exc)) from None
    click.echo(f"role {done.role} {'created' if done.created else 'refreshed'}"
               f"{', password set' if done.password_set else ''}")
    click.echo(f"  SELECT on: {', '.join(done.granted) or 'nothing yet'}")
    if done.missing:
        click.echo(f"  not there yet (run again after `db upgrade`): {', '.join(done.missing)}")
    if done.other_databases_revoked:
        click.echo(f"  CONNECT and TEMPORARY revoked on: {', '.join(done.other_databases_revoked)}")
    if done.other_databases_not_revoked:
        click.echo(f"  could not revoke its CONNECT/TEMPORARY (not their owner) on: "
                   f"{', '.join(done.other_databases_not_revoked)}", err=True)
    if done.public_can_connect:
        shown, more = done.public_can_connect[:SHOWN_DATABASES], len(done.public_can_connect) - SHOWN_DATABASES
        click.echo(f"  every role (PUBLIC) may connect to: {', '.join(shown)}"
                   + (f" and {more} more" if more > 0 else "")
                   + " (REVOKE CONNECT ON DATABASE ... FROM PUBLIC closes one)")
