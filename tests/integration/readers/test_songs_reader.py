"""The read-only role other services use: a real login as the role, on this run's database.

Roles are cluster-wide, so each run makes its own (random name) and drops it at the end.
"""

import base64
import hashlib
import hmac
import os
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from sqlalchemy import text

from pipeline.errors import InputError
from pipeline.store.readers import PRIVATE_TABLES, READER_TABLES, create_reader, drop_reader

PROJECT = Path(__file__).parents[3]


@pytest.fixture(scope="module")
def reader_role(engine):
    role = f"songs_reader_test_{secrets.token_hex(4)}"
    yield role
    drop_reader(engine, role)


def login_as(database_url: str, role: str, password: str | None = None) -> psycopg.Connection:
    """A real login with user=<role> (not SET ROLE), autocommit so each statement stands alone."""
    parts = urlsplit(database_url)
    return psycopg.connect(host=parts.hostname, port=parts.port or 5432, dbname=parts.path.lstrip("/"),
                           user=role, password=password, autocommit=True, connect_timeout=5)


@pytest.fixture
def one_song_and_one_connection(engine):
    with engine.begin() as conn:
        # CASCADE empties whatever references these too (saved tracks, history, jobs).
        conn.execute(text("TRUNCATE songs, users, spotify_connections CASCADE"))
        conn.execute(text("INSERT INTO users (id, email) VALUES ('u1', 'reader-test@example.com')"))
        conn.execute(text("""INSERT INTO songs (id, "spotifyId", title, artist, "spotifyPopularity")
                             VALUES ('s1', '4uLU6hMCjMI75M1A2tKUQC', 'Song', 'Artist', 42)"""))
        conn.execute(text("""INSERT INTO spotify_connections (id, "userId", "spotifyUserId", "accessToken",
                                 "tokenExpiresAt") VALUES ('c1', 'u1', 'spotify-u1', 'ciphertext', now())"""))


def test_the_reader_reads_songs_and_nothing_private(engine, database_url, reader_role, one_song_and_one_connection):
    done = create_reader(engine, reader_role, password=secrets.token_urlsafe(16))
    assert done.created and done.password_set
    assert (done.granted, done.missing) == (READER_TABLES, ())  # the database is at head
    with engine.connect() as conn:
        every_table = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars().all()
    assert set(PRIVATE_TABLES) <= set(every_table)

    with login_as(database_url, reader_role) as conn:
        assert conn.execute("SELECT current_user, session_user").fetchone() == (reader_role, reader_role)
        assert conn.execute('SELECT title, "spotifyPopularity" FROM songs').fetchall() == [("Song", 42)]
        for table in done.granted:
            conn.execute(f"SELECT * FROM {table} LIMIT 1").fetchall()
        for table in set(every_table) - set(READER_TABLES):  # jobs, backfills, capabilities, alembic...
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f'SELECT * FROM "{table}"')
        # Denied by the grants, not only by the read-only default: lift that and try again.
        conn.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO songs (title, artist) VALUES ('x', 'y')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE songs SET title = 'changed'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM songs")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE mine (id int)")

    with engine.connect() as conn:
        assert conn.execute(text("SELECT title FROM songs")).scalars().all() == ["Song"]


def scram_verifies(verifier: str, password: str) -> bool:
    """Does PostgreSQL's stored SCRAM-SHA-256 verifier accept `password`? (RFC 5802's StoredKey)"""
    method, rest = verifier.split("$", 1)
    iterations_salt, keys = rest.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key = keys.split(":")[0]
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    return method == "SCRAM-SHA-256" and hashlib.sha256(client_key).digest() == base64.b64decode(stored_key)


def test_the_password_goes_to_the_server_only_as_a_scram_verifier(engine, reader_role, monkeypatch):
    password = secrets.token_urlsafe(16)
    sent = []
    real_execute = psycopg.Cursor.execute

    def recording_execute(cursor, query, *args, **kwargs):
        sent.append(query.as_string(cursor) if hasattr(query, "as_string") else str(query))
        return real_execute(cursor, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", recording_execute)
    create_reader(engine, reader_role, password=password)
    monkeypatch.undo()

    assert any("PASSWORD 'SCRAM-SHA-256$" in statement for statement in sent)
    assert not any(password in statement for statement in sent)
    with engine.connect() as conn:  # the test user is a superuser: it may read pg_authid
        stored = conn.execute(text("SELECT rolpassword FROM pg_authid WHERE rolname = :r"), {"r": reader_role}).scalar()
    assert scram_verifies(stored, password) and not scram_verifies(stored, password + "x")


def test_running_again_converges_on_the_contract(engine, database_url, reader_role, one_song_and_one_connection):
    create_reader(engine, reader_role)
    with engine.begin() as conn:  # someone grants too much by hand
        conn.execute(text(f'GRANT SELECT, INSERT ON spotify_connections, songs TO "{reader_role}"'))

    again = create_reader(engine, reader_role)  # no password given: the role keeps its own
    assert not again.created and not again.password_set

    with login_as(database_url, reader_role) as conn:
        assert conn.execute("SELECT count(*) FROM songs").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM spotify_connections")
        conn.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO songs (title, artist) VALUES ('x', 'y')")

    with engine.connect() as conn:
        privileges = conn.execute(text("""
            SELECT table_name, privilege_type FROM information_schema.role_table_grants
            WHERE grantee = :role ORDER BY table_name"""), {"role": reader_role}).all()
    assert {p for _, p in privileges} == {"SELECT"}
    assert {t for t, _ in privileges} <= set(READER_TABLES)


def test_a_bad_role_name_is_refused_before_any_sql(engine):
    with pytest.raises(InputError, match="role name"):
        create_reader(engine, 'x"; DROP TABLE songs; --')


def test_the_command_takes_the_password_from_the_named_variable_and_never_prints_it(database_url, engine):
    role = f"songs_reader_cli_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(16)
    env = {**os.environ, "DATABASE_URL": database_url, "READER_TEST_PASSWORD": password}
    command = [sys.executable, "-m", "cli", "db", "create-reader", "--role", role]
    try:
        first = subprocess.run([*command, "--password-env", "READER_TEST_PASSWORD"], check=False, env=env, cwd=PROJECT,
                               capture_output=True, text=True, timeout=60)
        assert first.returncode == 0, first.stderr
        assert f"role {role} created, password set" in first.stdout
        assert password not in first.stdout + first.stderr
        again = subprocess.run(command, check=False, env=env, cwd=PROJECT, capture_output=True, text=True, timeout=60)
        assert again.returncode == 0 and f"role {role} refreshed" in again.stdout

        unset = subprocess.run([*command, "--password-env", "NO_SUCH_VARIABLE_FOR_READERS"], check=False, env=env,
                               cwd=PROJECT, capture_output=True, text=True, timeout=60)
        assert unset.returncode == 2 and "NO_SUCH_VARIABLE_FOR_READERS" in unset.stderr
        bad = subprocess.run([*command[:-1], "Robert'); DROP"], check=False, env=env, cwd=PROJECT,
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and "role name" in bad.stderr
    finally:
        drop_reader(engine, role)
