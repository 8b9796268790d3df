"""The console script as a user runs it: exit codes and one-line errors, migrations, embedded services."""

import os
import subprocess
import sys
from pathlib import Path

from shared import services

ENV_WITHOUT_SERVICES = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, timeout=120,
                          env={**ENV_WITHOUT_SERVICES, **(env or {})}, cwd=Path(__file__).parents[3])


def test_a_malformed_setting_is_one_line_and_exit_2_for_every_command(tmp_path):
    for command in (["db", "current"], ["keys", "generate"], ["services", "status"]):
        result = run(*command, env={"SPOTIFY_RATE_LIMIT": "fast", "SPOTIFY_SYNC_STATE_DIR": str(tmp_path)})
        assert result.returncode == 2, result
        assert result.stderr.strip().splitlines() == [
            "spotify-sync: SPOTIFY_RATE_LIMIT: expected a rate like 100/60s (requests per window), got 'fast'"]


def test_a_missing_database_url_says_what_to_do(tmp_path):
    result = run("db", "current", env={"SPOTIFY_SYNC_STATE_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr and "services up" in result.stderr


def test_db_commands_wrap_alembic(create_database):
    url = create_database()
    env = {"DATABASE_URL": url}
    assert run("db", "current", env=env).stdout.strip() == "base (not migrated)"
    upgraded = run("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    head = run("db", "current", env=env).stdout.strip()
    assert head and head != "base (not migrated)"
    assert run("db", "downgrade", "baseline", env=env).stdout.strip() == "database at baseline"


def test_keys_generate_prints_a_usable_key():
    from shared.crypto import TokenCipher

    result = run("keys", "generate")
    key = result.stdout.strip()
    assert result.returncode == 0 and TokenCipher((key,)).decrypt(TokenCipher((key,)).encrypt("x")) == "x"


def test_embedded_services_up_migrate_down_leaves_nothing_running(tmp_path):
    env = {"SPOTIFY_SYNC_STATE_DIR": str(tmp_path)}
    up = run("services", "up", env=env)
    assert up.returncode == 0, up.stderr
    state = services.read_state(tmp_path)
    pids = [state["postgres_pid"], state["redis_pid"]]
    try:
        migrated = run("db", "upgrade", env=env)  # found without exporting anything
        assert migrated.returncode == 0, migrated.stderr
        assert "running" in run("services", "status", env=env).stdout
        import redis

        assert redis.Redis.from_url(state["redis_url"]).eval("return 1 + 1", 0) == 2  # Lua, as Dramatiq needs
    finally:
        down = run("services", "down", env=env)
    assert down.stdout.strip() == "stopped postgres, redis"
    assert not any(services._alive(pid) for pid in pids)
