"""`db create-reader` as production runs it: a CREATEROLE user that is not a superuser, owns the
schema (it runs `db upgrade`), and runs the command again after every upgrade. The real CLI as a
child process, a real login as the reader."""

import os
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.integration.readers.test_songs_reader import login_as

PROJECT = Path(__file__).parents[3]


def as_user(url: str, user: str, dbname: str | None = None) -> str:
    parts = urlsplit(url)
    host = f"{parts.hostname}:{parts.port or 5432}"
    return parts._replace(netloc=f"{user}@{host}", path="/" + (dbname or parts.path.lstrip("/"))).geturl()


def cli(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_", "SPOTIFY_"))}
    return subprocess.run([sys.executable, "-m", "cli", *args], env={**env, "DATABASE_URL": database_url},
                          cwd=PROJECT, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def admin(postgres_server_url):
    """A CREATEROLE, non-superuser login role owning a fresh database; both dropped afterwards,
    with every role it created."""
    name = f"ss_admin_{secrets.token_hex(4)}"
    dbname = f"ss_reader_{secrets.token_hex(4)}"
    other_owned, other_foreign = dbname + "_owned", dbname + "_foreign"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{name}" LOGIN CREATEROLE NOSUPERUSER')
        for database, owner in ((dbname, name), (other_owned, name), (other_foreign, "postgres")):
            conn.execute(f'CREATE DATABASE "{database}" OWNER "{owner}"')
    yield {"role": name, "url": as_user(postgres_server_url, name, dbname), "other_owned": other_owned,
           "other_foreign": other_foreign}
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        readers = [r for (r,) in conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE 'ss_reader_role_%'").fetchall()]
        for database in (dbname, other_owned, other_foreign):
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        for role in [*readers, name]:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_a_createrole_user_creates_the_reader_and_refreshes_it_after_an_upgrade(admin, postgres_server_url):
    reader = f"ss_reader_role_{secrets.token_hex(4)}"
    with psycopg.connect(admin["url"]) as conn:  # the premise: not a superuser
        assert conn.execute("SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user"
                            ).fetchone() == (False, True)
    older = cli(admin["url"], "db", "upgrade", "20261122_01")  # before song_popularity_history
    assert older.returncode == 0, older.stderr

    first = cli(admin["url"], "db", "create-reader", "--role", reader)
    assert first.returncode == 0, first.stderr
    assert f"role {reader} created" in first.stdout
    assert "  SELECT on: songs\n" in first.stdout and "song_popularity_history" in first.stdout.split("not there yet")[1]

    upgraded = cli(admin["url"], "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    again = cli(admin["url"], "db", "create-reader", "--role", reader)  # failed here: ALTER ROLE ... NOSUPERUSER
    assert again.returncode == 0, again.stderr
    assert f"role {reader} refreshed" in again.stdout
    assert "SELECT on: songs, spotify_saved_tracks, song_popularity_history" in again.stdout

    with login_as(admin["url"], reader) as conn:
        assert conn.execute("SELECT count(*) FROM song_popularity_history").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM spotify_sync_jobs")


def test_grants_on_other_databases_are_revoked_where_the_user_may(admin, postgres_server_url):
    reader = f"ss_reader_role_{secrets.token_hex(4)}"
    assert cli(admin["url"], "db", "upgrade").returncode == 0
    assert cli(admin["url"], "db", "create-reader", "--role", reader).returncode == 0
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:  # someone grants by hand
        for database in (admin["other_owned"], admin["other_foreign"]):
            conn.execute(f'GRANT CONNECT, TEMPORARY ON DATABASE "{database}" TO "{reader}"')

    result = cli(admin["url"], "db", "create-reader", "--role", reader)
    assert result.returncode == 0, result.stderr
    assert f"CONNECT and TEMPORARY revoked on: {admin['other_owned']}" in result.stdout
    assert f"could not revoke its CONNECT/TEMPORARY (not their owner) on: {admin['other_foreign']}" in result.stderr
    assert "every role (PUBLIC) may connect to: " in result.stdout
    with psycopg.connect(postgres_server_url) as conn:
        held = dict(conn.execute(
            """SELECT d.datname, array_agg(acl.privilege_type ORDER BY acl.privilege_type)
               FROM pg_database d, aclexplode(d.datacl) acl
               WHERE acl.grantee = (SELECT oid FROM pg_roles WHERE rolname = %s) GROUP BY d.datname""",
            (reader,)).fetchall())
    assert admin["other_owned"] not in held
    assert held[admin["other_foreign"]] == ["CONNECT", "TEMPORARY"]
    assert held[urlsplit(admin["url"]).path.lstrip("/")] == ["CONNECT"]  # its own database: CONNECT only


def test_a_user_without_createrole_gets_one_line_saying_what_to_do(admin, postgres_server_url):
    plain = f"ss_reader_role_plain_{secrets.token_hex(3)}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{plain}" LOGIN')
    url = as_user(admin["url"], plain)
    result = cli(url, "db", "create-reader", "--role", f"ss_reader_role_{secrets.token_hex(4)}")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("spotify-sync: PostgreSQL at ") and "CREATEROLE" in line, line


def test_a_superuser_role_is_refused_not_altered(admin, postgres_server_url, engine):
    from pipeline.errors import InputError
    from pipeline.store.readers import create_reader

    superuser = f"ss_reader_role_super_{secrets.token_hex(3)}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{superuser}" SUPERUSER')
    with pytest.raises(InputError, match="is a superuser: it cannot be made a read-only reader"):
        create_reader(engine, superuser)
    with psycopg.connect(postgres_server_url) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (superuser,)).fetchone() == (True,)
