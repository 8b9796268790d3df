"""spotify-sync: the operator's command line.

Parses, calls into shared/, pipeline/ and workers/, prints. Exit codes: 0 ok, 1 the work failed,
2 bad usage or a missing/malformed setting (one line naming the variable).
"""

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
            _fail(str(exc), code=2)
        except UsageProblem as exc:
            _fail(str(exc), code=2)
        except WorkFailed as exc:
            _fail(str(exc), code=1)


class UsageProblem(Exception):
    """Bad input from the user: exit 2."""


class WorkFailed(Exception):
    """The command ran but its work failed: exit 1."""


def _fail(message: str, code: int) -> None:
    click.echo(f"spotify-sync: {message}", err=True)
    sys.exit(code)


def settings_of(ctx: click.Context) -> Settings:
    return ctx.find_root().obj


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
        _fail(str(exc), code=2)
    setup_logging(ctx.obj)


# --- db -----------------------------------------------------------------------------------------


@main.group()
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
    reader tables are granted. Needs a user with CREATEROLE.
    """
    import os

    from pipeline.readers import ReaderError, check_role_name, create_reader
    from shared.db import make_engine

    try:
        check_role_name(role)
    except ReaderError as exc:
        raise UsageProblem(str(exc)) from None
    password = None
    if password_env:
        password = os.environ.get(password_env)
        if not password:
            raise UsageProblem(f"{password_env}: expected the password for role {role!r}, but it is not set")
    engine = make_engine(settings_of(ctx), pool_size=1)
    try:
        done = create_reader(engine, role, password)
    except ReaderError as exc:
        raise WorkFailed(str(exc)) from None
    finally:
        engine.dispose()
    click.echo(f"role {done.role} {'created' if done.created else 'refreshed'}"
               f"{', password set' if done.password_set else ''}")
    click.echo(f"  SELECT on: {', '.join(done.granted) or 'nothing yet'}")
    if done.missing:
        click.echo(f"  not there yet (run again after `db upgrade`): {', '.join(done.missing)}")


# --- keys ---------------------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """Encryption keys for stored tokens (SPOTIFY_TOKEN_KEYS)."""


@keys.command("generate")
def keys_generate() -> None:
    """Print a new key. Put it first in SPOTIFY_TOKEN_KEYS to encrypt with it."""
    from shared.crypto import generate_key

    click.echo(generate_key())


@keys.command("rotate")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 100_000))
@click.pass_context
def keys_rotate(ctx: click.Context, batch_size: int) -> None:
    """Re-encrypt every stored token under the first key. Safe to interrupt and run again."""
    from pipeline.connections import rotate_keys
    from shared.crypto import TokenCipher
    from shared.db import make_engine

    settings = settings_of(ctx)
    cipher = TokenCipher(settings.require_token_keys())
    engine = make_engine(settings)
    rewritten = rotate_keys(engine, cipher, batch_size=batch_size)
    click.echo(f"re-encrypted {rewritten} connection(s) under the first key; the other keys may now be dropped")


# --- services -----------------------------------------------------------------------------------


@main.group()
def services() -> None:
    """Embedded PostgreSQL and Redis for a machine that has none."""


@services.command("up")
@click.pass_context
def services_up(ctx: click.Context) -> None:
    """Start the embedded PostgreSQL and Redis (or find them running)."""
    from shared import services as embedded

    settings = settings_of(ctx)
    try:
        state = embedded.up(settings.state_dir)
    except embedded.ServicesError as exc:
        raise WorkFailed(str(exc)) from None
    click.echo(f"postgres pid {state['postgres_pid']}  {state['database_url']}")
    click.echo(f"redis    pid {state['redis_pid']}  {state['redis_url']}")


@services.command("status")
@click.pass_context
def services_status(ctx: click.Context) -> None:
    """Show the embedded services and whether they run."""
    from shared import services as embedded

    found = embedded.status(settings_of(ctx).state_dir)
    if not found:
        click.echo("no embedded services recorded")
        return
    for name, info in found.items():
        click.echo(f"{name:<8} pid {info['pid']}  {'running' if info['running'] else 'stopped'}  {info['url']}")


@services.command("down")
@click.pass_context
def services_down(ctx: click.Context) -> None:
    """Stop the embedded services by PID."""
    from shared import services as embedded

    stopped = embedded.down(settings_of(ctx).state_dir)
    click.echo("stopped " + ", ".join(stopped) if stopped else "nothing was running")


# --- demo ---------------------------------------------------------------------------------------


@main.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
    """The main job on a fresh machine: services, migrations (the full run grows with the pipeline)."""
    from shared import migrate
    from shared import services as embedded

    settings = settings_of(ctx)
    if not (settings.database_url and settings.redis_url):
        try:
            embedded.up(settings.state_dir)
        except embedded.ServicesError as exc:
            raise WorkFailed(str(exc)) from None
        settings = settings.with_embedded_services()
        click.echo(f"embedded PostgreSQL and Redis running under {settings.state_dir}")
    migrate.upgrade(settings.require_database_url())
    click.echo(f"database migrated to {migrate.current(settings.database_url)}")


# --- connect -------------------------------------------------------------------------------------


@main.command("connect")
@click.option("--user", "user_id", required=True, help="The application's user id (created when missing).")
@click.option("--open-with-http", is_flag=True,
              help="Follow the authorize URL with an HTTP client instead of a browser (the emulator).")
@click.option("--scope", "scopes", multiple=True, help="A scope to ask for (repeatable); default: library and profile.")
@click.option("--emulated-user", default=None, help="With the emulator: which of its users authorises.")
@click.option("--timeout", "timeout_s", default=300, show_default=True, type=click.IntRange(1, 3600),
              help="Seconds to wait for the redirect.")
@click.pass_context
def connect(ctx: click.Context, user_id: str, open_with_http: bool, scopes: tuple[str, ...],
            emulated_user: str | None, timeout_s: int) -> None:
    """Connect USER's Spotify account: authorisation code with PKCE, tokens stored encrypted.

    Prints the URL to open; a one-shot server on SPOTIFY_REDIRECT_URI (a 127.0.0.1 address)
    receives the redirect.
    """
    import httpx

    from pipeline.auth.callback_server import CallbackServer
    from pipeline.auth.flow import DEFAULT_SCOPES, authorize_url, exchange_code, new_pkce, new_state, store_connection
    from pipeline.spotify import SpotifyClient
    from pipeline.spotify.errors import SpotifyError
    from pipeline.spotify.http import shared_http_client
    from pipeline.spotify.wiring import token_endpoint
    from shared.crypto import TokenCipher
    from shared.db import make_engine
    from shared.redis_conn import connect as redis_connect

    settings = settings_of(ctx)
    client_id, _ = settings.require_client_credentials()
    cipher = TokenCipher(settings.require_token_keys())
    scopes = scopes or DEFAULT_SCOPES
    pkce, state = new_pkce(), new_state()
    extra = {"emulated_user": emulated_user} if emulated_user else None
    url = authorize_url(settings.spotify_accounts_base_url, client_id, settings.spotify_redirect_uri, state,
                        pkce.challenge, scopes, extra)
    try:
        server = CallbackServer(settings.spotify_redirect_uri)
    except OSError as exc:
        raise UsageProblem(f"cannot listen on {settings.spotify_redirect_uri}: {exc.strerror}") from None
    with server, httpx.Client(timeout=30) as http:
        click.echo(f"Open this URL to connect user {user_id}:\n{url}")
        if open_with_http:
            try:
                http.get(url, follow_redirects=True)
            except httpx.HTTPError as exc:
                raise WorkFailed(f"following the authorize URL failed: {exc.__class__.__name__}") from None
        params = server.wait(timeout_s)
    if params is None:
        raise WorkFailed(f"no redirect came back within {timeout_s}s")
    if params.get("state") != state:
        raise WorkFailed("the redirect's state does not match: not connecting")
    if "code" not in params:
        raise WorkFailed(f"Spotify refused: {params.get('error', 'no code')}")
    engine = make_engine(settings)
    try:
        grant = exchange_code(token_endpoint(settings, shared_http_client(settings)), params["code"], pkce.verifier,
                              settings.spotify_redirect_uri)
        spotify = SpotifyClient.from_settings(settings, redis_connect(settings), engine)
        me = spotify.with_access_token(grant.access_token).me()
        store_connection(engine, cipher, user_id, me.id, grant, tuple(scopes))
    except SpotifyError as exc:
        raise WorkFailed(f"connecting failed: {exc}") from None
    finally:
        engine.dispose()
    click.echo(f"connected user {user_id} to Spotify user {me.id} (scopes: {' '.join(grant.scopes or scopes)})")


def _add_optional_commands() -> None:
    from emulator.cli import emulator

    main.add_command(emulator)


try:
    _add_optional_commands()
except ImportError:  # the emulator is being built; remove this guard once it lands
    pass


if __name__ == "__main__":
    main()
