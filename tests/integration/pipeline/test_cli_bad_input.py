"""Bad input and unreachable services, as an operator meets them: the real CLI as a child
process, one line on stderr (`spotify-sync: ...`), exit 2 for usage or settings, 1 for a service
that does not answer, no traceback, and no row left half-made."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from pipeline.store import ledger

ROOT = Path(__file__).resolve().parents[3]
ID = "4iV5W9uYEdYUVa79Axb7Rh"
OTHER = "0000000000000000000001"


def run(settings, *args, input=None, close_stdin=False, **env_changes):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOTIFY_", "DATABASE_URL", "REDIS_", "BROKER_"))}
    env.update(settings.as_environ())
    env.update(env_changes)
    return subprocess.run([sys.executable, "-m", "cli", *args], check=False, env=env, input=input, capture_output=True,
                          timeout=60, cwd=ROOT,
                          preexec_fn=(lambda: os.close(0)) if close_stdin else None)


def one_line(result) -> str:
    """The single line of stderr (no traceback), decoded."""
    err = result.stderr.decode()
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("spotify-sync: "), err
    return lines[0]


def free_port() -> int:
    """A port nothing listens on (bound and released: nobody else takes it in the next second)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def backfill_states(engine) -> list[str]:
    with engine.connect() as conn:
        return conn.execute(text("SELECT state FROM spotify_backfills")).scalars().all()


def test_a_file_with_random_bytes_and_a_latin1_line_enqueues_its_good_lines(settings, clean_db, tmp_path):
    ids_file = tmp_path / "ids.txt"
    ids_file.write_bytes(f"{ID}\n".encode() + b"caf\xe9\n" + bytes(range(256)).replace(b"\n", b"") + b"\n"
                         + f"spotify:track:{OTHER}\n".encode())
    result = run(settings, "enqueue", "track-sync", "--ids-file", str(ids_file), "--quiet")
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert "Traceback" not in err
    assert f"{ids_file} line 2: not UTF-8 text: 'caf\ufffd'" in err
    assert f"{ids_file} line 3: not UTF-8 text: " in err
    assert not any(ch in err for ch in "\x1b\r\x07\x9b")  # the random bytes' controls are shown escaped
    assert "2 bad line(s) skipped" in err
    [job] = ledger.list_jobs(clean_db)
    assert job.payload == {"ids": [ID, OTHER], "force": False}
    assert backfill_states(clean_db) == ["enqueued"]


def test_a_byte_order_mark_does_not_make_line_1_bad(settings, clean_db, tmp_path):
    ids_file = tmp_path / "ids.txt"
    ids_file.write_bytes(b"\xef\xbb\xbf" + f"{ID}\r\n{OTHER}\r\n".encode())
    result = run(settings, "enqueue", "track-sync", "--ids-file", str(ids_file), "--quiet")
    assert result.returncode == 0, result.stderr.decode()
    [job] = ledger.list_jobs(clean_db)
    assert job.payload["ids"] == [ID, OTHER]


def test_reading_stdin_when_it_is_closed_is_one_line_and_exit_2(settings, clean_db):
    result = run(settings, "enqueue", "track-sync", "--ids-file", "-", close_stdin=True)
    assert result.returncode == 2
    assert one_line(result) == "spotify-sync: --ids-file -: there is no standard input to read (it is closed)"
    assert ledger.list_jobs(clean_db) == [] and backfill_states(clean_db) == []


def test_stdin_still_works(settings, clean_db):
    result = run(settings, "enqueue", "track-sync", "--ids-file", "-", "--quiet", input=f"\ufeff{ID}\n".encode())
    assert result.returncode == 0, result.stderr.decode()
    assert len(ledger.list_jobs(clean_db)) == 1


@pytest.mark.parametrize("command", [
    ["db", "current"], ["jobs", "list"], ["jobs", "reconcile"], ["status"], ["enqueue", "track-sync", ID],
    ["db", "create-reader"],
])
def test_an_unreachable_postgres_is_one_line_naming_it_and_exit_1(settings, command):
    url = f"postgresql://app:pg-secret-pw@127.0.0.1:{free_port()}/music"
    result = run(settings, *command, DATABASE_URL=url)
    assert result.returncode == 1, result.stderr.decode()
    line = one_line(result)
    assert line.startswith(f"spotify-sync: PostgreSQL at postgresql://app:***@127.0.0.1:{url.split(':')[3]}"), line
    assert "pg-secret-pw" not in line


@pytest.mark.parametrize("command", [
    ["jobs", "reconcile"], ["status"], ["enqueue", "track-sync", ID], ["enqueue", "popularity-update"],
    ["jobs", "retry", "--failed"],
])
def test_an_unreachable_redis_is_one_line_naming_it_exit_1_and_no_rows_are_written(settings, clean_db, command):
    port = free_port()
    result = run(settings, *command, REDIS_URL=f"redis://:redis-secret-pw@127.0.0.1:{port}/0")
    assert result.returncode == 1, result.stderr.decode()
    line = one_line(result)
    assert line.startswith(f"spotify-sync: Redis at redis://:***@127.0.0.1:{port}/0"), line
    assert "redis-secret-pw" not in line
    assert ledger.list_jobs(clean_db) == [] and backfill_states(clean_db) == []


@pytest.mark.parametrize("env, value, fragment", [
    ("DATABASE_URL", "postgresql://h:notaport/db", "DATABASE_URL: expected a URL starting with postgresql://"),
    ("SPOTIFY_READ_TIMEOUT", "nan", "SPOTIFY_READ_TIMEOUT: expected a number of seconds above zero"),
    ("JOB_LEASE", "0", "JOB_LEASE: expected a duration above zero"),
    ("TRACK_TTL", "99999999999999999999d", "TRACK_TTL: expected a duration"),
    ("JOB_MAX_RETRIES", "²", "JOB_MAX_RETRIES: expected a whole number"),
])
def test_settings_that_would_break_later_stop_the_command_at_once_with_exit_2(settings, env, value, fragment):
    result = run(settings, "jobs", "list", **{env: value})
    assert result.returncode == 2
    assert one_line(result).startswith(f"spotify-sync: {fragment}")


def test_an_ids_file_that_is_not_there_is_one_line_and_exit_2(settings, clean_db, tmp_path):
    result = run(settings, "enqueue", "track-sync", "--ids-file", str(tmp_path / "missing.txt"))
    assert result.returncode == 2
    assert one_line(result) == f"spotify-sync: --ids-file {tmp_path / 'missing.txt'}: No such file or directory"
    assert backfill_states(clean_db) == []


def test_an_unreachable_rabbitmq_is_one_line_naming_it_exit_1_and_no_rows_are_written(settings, clean_db):
    port = free_port()
    result = run(settings, "enqueue", "track-sync", ID, BROKER_URL=f"amqp://guest:rabbit-secret-pw@127.0.0.1:{port}/%2F")
    assert result.returncode == 1, result.stderr.decode()
    line = one_line(result)
    assert line.startswith(f"spotify-sync: RabbitMQ at amqp://guest:***@127.0.0.1:{port}/%2F did not answer"), line
    assert "rabbit-secret-pw" not in line
    assert ledger.list_jobs(clean_db) == [] and backfill_states(clean_db) == []


def test_a_reachable_rabbitmq_takes_the_messages(settings, clean_db, rabbitmq_url):
    result = run(settings, "enqueue", "track-sync", ID, "--quiet", BROKER_URL=rabbitmq_url)
    assert result.returncode == 0, result.stderr.decode()
    assert len(ledger.list_jobs(clean_db)) == 1
