"""The read-only database role for the services that read songs (`spotify-sync db create-reader`).

Contract: the role (default `songs_reader`) can log in, connect to this database, use schema
public and SELECT the tables in `READER_TABLES` that exist, and nothing else. It never sees
tokens (`spotify_connections`), the job ledger (`spotify_sync_jobs`) or `users`. There are no
default privileges: a table added later is readable only once it is added to `READER_TABLES`
and the command is run again.

Re-runnable: a second run creates nothing new, (re)sets the password when one is given, revokes
whatever the role held on the schema's tables and grants exactly the list again, so the role
converges on the contract whatever was granted by hand in between.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy.exc
from psycopg import sql
from sqlalchemy import Engine

DEFAULT_ROLE = "songs_reader"

# The reader-facing tables, in one place: songs, users' saved-track links, popularity history.
# Those that do not exist yet (an older schema) are skipped and reported.
READER_TABLES = ("songs", "spotify_saved_tracks", "song_popularity_history")

# Never readable by the role; revoked explicitly in case someone granted them by hand.
PRIVATE_TABLES = ("spotify_connections", "spotify_sync_jobs", "users")

_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class ReaderError(Exception):
    """The role could not be set up: a bad role name, or the database refused (no CREATEROLE)."""


@dataclass(frozen=True)
class ReaderRole:
    """What `create_reader` did, for the CLI to print (never the password)."""

    role: str
    created: bool
    password_set: bool
    granted: tuple[str, ...]
    missing: tuple[str, ...]


def check_role_name(role: str) -> str:
    if not _ROLE_NAME.fullmatch(role) or role.startswith("pg_"):
        raise ReaderError(
            f"role name {role!r}: expected lower-case letters, digits and _ (not starting with pg_), at most 63"
        )
    return role


def create_reader(engine: Engine, role: str = DEFAULT_ROLE, password: str | None = None) -> ReaderRole:
    """Create or refresh the read-only role in the engine's database, in one transaction.

    `password=None` leaves an existing password alone (a new role gets none: fit for trust,
    peer or certificate authentication).
    """
    import psycopg

    check_role_name(role)
    try:
        # One SQLAlchemy transaction; statements go through psycopg to compose identifiers safely.
        with engine.begin() as connection, connection.connection.driver_connection.cursor() as cur:
            created, granted = _apply(cur, sql.Identifier(role), role, password)
    except (psycopg.errors.InsufficientPrivilege, sqlalchemy.exc.ProgrammingError) as exc:
        diag = getattr(getattr(exc, "orig", exc), "diag", None)
        raise ReaderError(
            f"the database refused to set up role {role!r} ({diag.message_primary if diag else exc}): "
            "run this as a user with CREATEROLE that owns the tables"
        ) from None
    missing = tuple(t for t in READER_TABLES if t not in granted)
    return ReaderRole(role, created, password is not None, granted, missing)


def _apply(cur, name: sql.Identifier, role: str, password: str | None) -> tuple[bool, tuple[str, ...]]:
    attributes = sql.SQL("LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT")
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
    created = cur.fetchone() is None
    cur.execute(sql.SQL("CREATE ROLE {} {}" if created else "ALTER ROLE {} {}").format(name, attributes))
    if password is not None:
        # DDL takes no bind parameters, and a statement can end up in the server's log: send
        # the SCRAM verifier libpq computes here (as psql's \password does), never the password.
        verifier = cur.connection.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
        cur.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(name, sql.Literal(verifier.decode())))
    # Belt and braces: even a table granted by mistake is not writable in the role's sessions.
    cur.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(name))

    cur.execute("SELECT current_database()")
    database = sql.Identifier(cur.fetchone()[0])
    cur.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, name))
    cur.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(name))
    cur.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM {}").format(name))
    # Start from nothing on every run, then grant exactly the list.
    cur.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {}").format(name))
    cur.execute(sql.SQL("REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {}").format(name))

    cur.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename = ANY(%s)",
        (list(READER_TABLES + PRIVATE_TABLES),),
    )
    existing = {row[0] for row in cur.fetchall()}
    granted = tuple(t for t in READER_TABLES if t in existing)
    for table in granted:
        cur.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(sql.Identifier("public", table), name))
    for table in PRIVATE_TABLES:
        if table in existing:
            cur.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(sql.Identifier("public", table), name))
    return created, granted


def drop_reader(engine: Engine, role: str) -> None:
    """Remove the role (its grants in this database first). Roles are cluster-wide: a role with
    grants in other databases must be cleaned there too (`DROP OWNED BY` in each)."""
    check_role_name(role)
    name = sql.Identifier(role)
    with engine.begin() as connection, connection.connection.driver_connection.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        if cur.fetchone() is None:
            return
        cur.execute(sql.SQL("DROP OWNED BY {}").format(name))
        cur.execute(sql.SQL("DROP ROLE {}").format(name))
