"""The read-only database role for the services that read songs (`spotify-sync db create-reader`).

Contract: the role (default `songs_reader`) can log in, connect to this database, use schema
public and SELECT the tables in `READER_TABLES` that exist, and nothing else. It never sees
tokens (`spotify_connections`), the job ledger (`spotify_sync_jobs`) or `users`. There are no
default privileges: a table added later is readable only once it is added to `READER_TABLES`
and the command is run again.

The privileges are the guard. The role's `default_transaction_read_only = on` is only a
default: any session of the role can `SET default_transaction_read_only = off` or
`BEGIN READ WRITE`, so it stops nothing the grants allow.

Re-runnable, by the same CREATEROLE user that created the role (a superuser is not needed): a
second run creates nothing new, (re)sets the password when one is given, revokes whatever the
role held on the schema's tables and grants exactly the list again, so the role converges on the
contract whatever was granted by hand in between. An existing role is altered only in the
attributes a CREATEROLE user may change: PostgreSQL refuses `ALTER ROLE ... NOSUPERUSER` to
anyone but a superuser, even when it changes nothing, so a role that is a superuser (or may
replicate) is refused instead of altered.

Roles are cluster-wide, and PostgreSQL grants CONNECT and TEMPORARY on every database to PUBLIC
by default. The command revokes what the role was granted itself on the cluster's other
databases where the user running it may (their owner, or a superuser); what PUBLIC holds it
leaves alone (that is every role's) and reports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg.errors
from psycopg import sql
from sqlalchemy import Connection, Engine

from pipeline.errors import InputError, StoreError
from pipeline.store.db import transaction

DEFAULT_ROLE = "songs_reader"

# The reader-facing tables, in one place: songs, users' saved-track links, popularity history.
# Those that do not exist yet (an older schema) are skipped and reported.
READER_TABLES = ("songs", "spotify_saved_tracks", "song_popularity_history")

# Never readable by the role; revoked explicitly in case someone granted them by hand.
PRIVATE_TABLES = ("spotify_connections", "spotify_sync_jobs", "users")

_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

_HINT = "run this as a user with CREATEROLE that owns the tables (the one that runs `db upgrade`)"


@dataclass(frozen=True)
class ReaderRole:
    """What `create_reader` did, for the CLI to print (never the password).

    `other_databases_revoked`: the other databases where the role's own CONNECT/TEMPORARY
    grants were revoked; `other_databases_not_revoked`: those where it holds some and this user
    may not revoke them; `public_can_connect`: databases (this one included) whose CONNECT
    PUBLIC holds, so the role can connect there whatever its own grants."""

    role: str
    created: bool
    password_set: bool
    granted: tuple[str, ...]
    missing: tuple[str, ...]
    other_databases_revoked: tuple[str, ...] = ()
    other_databases_not_revoked: tuple[str, ...] = ()
    public_can_connect: tuple[str, ...] = ()


def check_role_name(role: str) -> str:
    """The role name, or InputError: lower-case letters, digits and _, not pg_..., at most 63."""
    if not _ROLE_NAME.fullmatch(role) or role.startswith("pg_"):
        raise InputError(
            f"role name {role!r}: expected lower-case letters, digits and _ (not starting with pg_), at most 63"
        )
    return role


def create_reader(engine: Engine, role: str = DEFAULT_ROLE, password: str | None = None) -> ReaderRole:
    """Create or refresh the read-only role in the engine's database, in one transaction.

    `password=None` leaves an existing password alone (a new role gets none: fit for trust,
    peer or certificate authentication). Raises InputError for a bad name or a role that cannot
    be a reader, StoreError when PostgreSQL refuses (with what to do about it)."""
    check_role_name(role)
    with transaction(engine) as connection, _cursor(connection) as cur:
        try:
            return _apply(cur, role, password)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise StoreError(f"PostgreSQL refused to set up role {role!r} "
                             f"({exc.diag.message_primary or exc}): {_HINT}") from exc


def _cursor(connection: Connection) -> psycopg.Cursor:
    """A psycopg cursor inside the SQLAlchemy transaction: it composes identifiers safely (DDL
    takes no bind parameters)."""
    driver = connection.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    return driver.cursor()


def _apply(cur: Any, role: str, password: str | None) -> ReaderRole:
    name = sql.Identifier(role)
    cur.execute("SELECT rolsuper, rolreplication FROM pg_roles WHERE rolname = %s", (role,))
    found = cur.fetchone()
    # Attributes a CREATEROLE user may set on a role that is not a superuser. NOSUPERUSER and
    # NOREPLICATION are the defaults of CREATE ROLE, and only a superuser may name them in ALTER.
    attributes = sql.SQL("LOGIN NOCREATEDB NOCREATEROLE NOINHERIT")
    if found is None:
        cur.execute(sql.SQL("CREATE ROLE {} {}").format(name, attributes))
    elif found[0] or found[1]:
        raise InputError(f"role {role!r} is a {'superuser' if found[0] else 'replication role'}: "
                         "it cannot be made a read-only reader; choose another name with --role")
    else:
        cur.execute(sql.SQL("ALTER ROLE {} {}").format(name, attributes))
    if password is not None:
        # DDL takes no bind parameters, and a statement can end up in the server's log: send
        # the SCRAM verifier libpq computes here (as psql's \password does), never the password.
        verifier = cur.connection.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
        cur.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(name, sql.Literal(verifier.decode())))
    # A default only (see the module docstring): the grants below are the guard.
    cur.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(name))

    cur.execute("SELECT current_database()")
    database = sql.Identifier(cur.fetchone()[0])
    cur.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, name))
    cur.execute(sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM {}").format(database, name))
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
    revoked, not_revoked = _revoke_other_databases(cur, role)
    missing = tuple(t for t in READER_TABLES if t not in granted)
    return ReaderRole(role, found is None, password is not None, granted, missing,
                      revoked, not_revoked, _public_can_connect(cur))


def _revoke_other_databases(cur: Any, role: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Revoke the role's own CONNECT/TEMPORARY on the cluster's other databases where this user
    may (their owner, a member of it, or a superuser). Returns the databases revoked on, and
    those where the role still holds some afterwards (this user may not revoke them)."""
    revocable = [database for database, may in _other_database_grants(cur, role) if may]
    for database in revocable:
        cur.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM {}").format(
            sql.Identifier(database), sql.Identifier(role)))
    # Asked again: a REVOKE by someone who is not the grantor revokes nothing (with a warning).
    remaining = tuple(database for database, _ in _other_database_grants(cur, role))
    return tuple(d for d in revocable if d not in remaining), remaining


def _other_database_grants(cur: Any, role: str) -> list[tuple[str, bool]]:
    """(database, may this user revoke there) for the other databases where the role itself
    holds CONNECT or TEMPORARY."""
    cur.execute(
        """
        SELECT d.datname,
               pg_has_role(current_user, d.datdba, 'MEMBER')
               OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
        FROM pg_database d, aclexplode(d.datacl) acl
        WHERE d.datname <> current_database()
          AND acl.grantee = (SELECT oid FROM pg_roles WHERE rolname = %s)
          AND acl.privilege_type IN ('CONNECT', 'TEMPORARY')
        GROUP BY d.datname, d.datdba
        ORDER BY d.datname
        """,
        (role,),
    )
    return [(row[0], bool(row[1])) for row in cur.fetchall()]


def _public_can_connect(cur: Any) -> tuple[str, ...]:
    """Databases that accept connections and whose CONNECT PUBLIC holds (a NULL acl is the
    default, which grants it)."""
    cur.execute(
        """
        SELECT datname FROM pg_database d
        WHERE datallowconn AND (datacl IS NULL OR EXISTS (
            SELECT 1 FROM aclexplode(d.datacl) acl WHERE acl.grantee = 0 AND acl.privilege_type = 'CONNECT'))
        ORDER BY datname
        """
    )
    return tuple(row[0] for row in cur.fetchall())


def drop_reader(engine: Engine, role: str) -> None:
    """Remove the role (its grants in this database first). Roles are cluster-wide: a role with
    grants in other databases must be cleaned there too (`DROP OWNED BY` in each)."""
    check_role_name(role)
    name = sql.Identifier(role)
    with transaction(engine) as connection, _cursor(connection) as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        if cur.fetchone() is None:
            return
        cur.execute(sql.SQL("DROP OWNED BY {}").format(name))
        cur.execute(sql.SQL("DROP ROLE {}").format(name))
