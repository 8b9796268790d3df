"""The embedded services as a user runs them (`spotify-sync services up|status|down`, child processes):
PostgreSQL 18 with pg_trgm and unaccent on a socket in the state folder, nothing left running after down,
and a state file whose PID now names another process never gets that process signalled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import psycopg
import redis

from shared import services

CLI = Path(sys.executable).with_name("spotify-sync")
ENV_WITHOUT_SERVICES = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}


def cli(state_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), "services", *args], check=False, capture_output=True, text=True, timeout=120,
                          env={**ENV_WITHOUT_SERVICES, "SPOTIFY_SYNC_STATE_DIR": str(state_dir)})


def test_up_status_down_with_pg_trgm_and_unaccent_and_nothing_left_running(tmp_path):
    up = cli(tmp_path, "up")
    assert up.returncode == 0, up.stderr
    state = json.loads((tmp_path / services.STATE_FILE).read_text())
    postmaster = psutil.Process(state["postgres_pid"])
    ours = [postmaster, *postmaster.children(recursive=True), psutil.Process(state["redis_pid"])]
    try:
        assert f"postgres pid {state['postgres_pid']}" in up.stdout
        assert cli(tmp_path, "up").stdout == up.stdout  # found running, not started twice
        assert f"host={tmp_path}/" in state["database_url"]  # the socket lives in the state folder

        with psycopg.connect(state["database_url"], autocommit=True) as admin:
            assert admin.info.server_version // 10000 == 18
            admin.execute("CREATE DATABASE music")
        with psycopg.connect(state["database_url"].replace("/postgres?", "/music?"), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_trgm")
            conn.execute("CREATE EXTENSION unaccent")
            found = conn.execute(
                "SELECT unaccent('Beyoncé Knowles'), similarity('Beyonce', 'Beyonse') > 0.3").fetchone()
            assert found == ("Beyonce Knowles", True)
        assert redis.Redis.from_url(state["redis_url"]).eval("return 1 + 1", 0) == 2

        shown = cli(tmp_path, "status").stdout.splitlines()
        assert shown == [f"postgres pid {state['postgres_pid']}  running  {state['database_url']}",
                         f"redis    pid {state['redis_pid']}  running  {state['redis_url']}"]
    finally:
        down = cli(tmp_path, "down")
    assert (down.returncode, down.stdout.strip(), down.stderr) == (0, "stopped postgres, redis", "")
    assert [p.pid for p in ours if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    assert not list(tmp_path.glob("pgdata/.s.PGSQL.*")) and not (tmp_path / "redis.sock").exists()
    assert cli(tmp_path, "status").stdout.strip() == "no embedded services recorded"
    assert cli(tmp_path, "down").stdout.strip() == "nothing was running"


def test_down_leaves_alone_a_process_that_took_over_a_recorded_pid(tmp_path):
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        # What `up` would have recorded for a postgres that has since exited and whose PID was reused.
        record = {**services.process_identity(stranger.pid), "cmdline": ["/x/pginstall/bin/postgres", "-D", "/x"]}
        other_start = {**services.process_identity(stranger.pid)}
        other_start["start_ticks"] -= 1  # same command line, earlier start: another process too
        (tmp_path / services.STATE_FILE).write_text(json.dumps({
            "postgres_pid": stranger.pid, "redis_pid": stranger.pid,
            "processes": {"postgres": record, "redis": other_start}}))
        assert [line.split()[3:5] for line in cli(tmp_path, "status").stdout.splitlines()] == [
            ["another", "process"], ["another", "process"]]

        down = cli(tmp_path, "down")
        assert down.returncode == 1 and down.stdout == ""
        assert down.stderr.splitlines() == [(
            f"spotify-sync: not signalling PID {stranger.pid} (recorded for postgres) or PID {stranger.pid} "
            "(recorded for redis): that PID now belongs to another process, not the one `services up` started; "
            f"removed the stale {tmp_path / services.STATE_FILE}")]
        assert stranger.poll() is None  # still running, never signalled
        assert not (tmp_path / services.STATE_FILE).exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_down_stops_a_recorded_process_that_is_still_the_same_one(tmp_path):
    # The identity check is not a blanket refusal: the process recorded as it is gets its signal.
    # SIGINT back to its default: a run started in the background (CI) hands its children SIGINT
    # ignored, and PostgreSQL, unlike `sleep`, installs its own handler anyway.
    ours = subprocess.Popen(["sleep", "60"], preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        record = services.process_identity(ours.pid)
        (tmp_path / services.STATE_FILE).write_text(json.dumps({
            "postgres_pid": ours.pid, "redis_pid": None, "processes": {"postgres": record}}))
        down = cli(tmp_path, "down")
        assert (down.returncode, down.stdout.strip()) == (0, "stopped postgres")
        assert ours.wait(timeout=10) == -2  # SIGINT, PostgreSQL's fast shutdown
    finally:
        ours.kill()
        ours.wait()


def test_a_state_file_from_before_identities_were_recorded_is_not_trusted(tmp_path):
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / services.STATE_FILE).write_text(json.dumps({"postgres_pid": stranger.pid, "redis_pid": None}))
        assert services.read_state(tmp_path) == {}  # the settings will not use it
        assert cli(tmp_path, "down").returncode == 1 and stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_a_data_folder_of_an_older_postgresql_is_one_clear_line_and_left_as_it_is(tmp_path):
    (tmp_path / "pgdata").mkdir()
    (tmp_path / "pgdata" / "PG_VERSION").write_text("16\n")  # what pgserver's PostgreSQL 16 left
    up = cli(tmp_path, "up")
    assert up.returncode == 1
    assert up.stderr.splitlines() == [(
        f"spotify-sync: {tmp_path / 'pgdata'} holds a PostgreSQL 16 cluster, and the embedded PostgreSQL is 18: "
        "dump what you need from it with PostgreSQL 16's pg_dump, then remove the folder")]
    assert [p.name for p in (tmp_path / "pgdata").iterdir()] == ["PG_VERSION"]
    assert not (tmp_path / services.STATE_FILE).exists()
