"""Private services for the chaos tier: a PostgreSQL cluster and a redis-server of the run's own,
on ports of their own, so that restarting, flushing or cutting them off touches nobody else.

The machine's PostgreSQL and Redis are shared with other engineers: the chaos run never restarts
or flushes them. PostgreSQL 15's `initdb`/`pg_ctl` come from /usr/lib/postgresql/15/bin (Debian's
postgresql-15 package); as root they run as the `postgres` OS user (PostgreSQL refuses root).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import redis

PG_BIN = Path(os.environ.get("CHAOS_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _wait(condition, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.05)


class PrivatePostgres:
    """A throw-away cluster under a temp dir: `start`, `restart`, `stop`; `url(db)` to reach it.

    `listen` lists the addresses it accepts TCP on (127.0.0.1, and a bridge address for the
    several-hosts run). fsync is off: the run measures recovery from a restart, not durability
    of the disk, and the machine's two cores are shared."""

    def __init__(self, listen: tuple[str, ...] = ("127.0.0.1",)) -> None:
        for tool in ("initdb", "pg_ctl"):
            if not (PG_BIN / tool).exists():
                raise AssertionError(f"{PG_BIN / tool} is missing: install postgresql-15 (apt) or set CHAOS_PG_BIN")
        self.listen = listen
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="chaos-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as_postgres:
            shutil.chown(self.base, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        # The hosts of the several-hosts run connect from the bridge's /24 (trust: a throw-away cluster
        # reachable only from this machine).
        with (self.data / "pg_hba.conf").open("a") as hba:
            for address in listen:
                if address != "127.0.0.1":
                    hba.write(f"host all all {address.rsplit('.', 1)[0]}.0/24 trust\n")

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run([*self._as_postgres, str(PG_BIN / tool), *args], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, f"{tool} {' '.join(args)}: {result.stderr[-2000:]}"

    def url(self, database: str = "postgres", host: str = "127.0.0.1") -> str:
        return f"postgresql://postgres@{host}:{self.port}/{database}"

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.base} -c listen_addresses='{','.join(self.listen)}' "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options, "start")
        _wait(self.answers, "the private PostgreSQL to answer")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode: str = "immediate") -> None:
        """Stop (immediate: as a crash would, every connection cut) and start again."""
        self.stop(mode)
        self.start()

    def shut_out(self, role: str) -> None:
        """Refuse every new connection of `role` until `let_in` (pg_hba.conf reloaded, no restart);
        its connections already open stay until they end."""
        hba = self.data / "pg_hba.conf"
        self._hba = hba.read_text()
        hba.write_text(f"host all {role} all reject\nlocal all {role} reject\n" + self._hba)
        self._run("pg_ctl", "-D", str(self.data), "reload")

    def let_in(self) -> None:
        (self.data / "pg_hba.conf").write_text(self._hba)
        self._run("pg_ctl", "-D", str(self.data), "reload")

    def answers(self) -> bool:
        try:
            with psycopg.connect(self.url(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self.stop("immediate")
            except AssertionError:
                pass
        shutil.rmtree(self.base, ignore_errors=True)


class PrivateRedis:
    """A redis-server without persistence on its own port: `flushall`, `outage` (the process
    gone and back on the same port: connections refused meanwhile, every key lost)."""

    def __init__(self, bind: tuple[str, ...] = ("127.0.0.1",)) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise AssertionError("redis-server is missing: install redis-server (apt)")
        self.binary = binary
        self.bind = bind
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="chaos-redis-"))
        self.process: subprocess.Popen | None = None
        self.client = redis.Redis(port=self.port, socket_timeout=5)

    def url(self, host: str = "127.0.0.1") -> str:
        return f"redis://{host}:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", *self.bind, "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--maxclients", "2000",
             # It listens on loopback and the chaos bridge only (a /24 that exists only on this machine):
             # protected mode would refuse the namespaced hosts.
             "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(self._pings, "the private redis-server to answer")

    def _pings(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def flushall(self) -> None:
        assert self.client.flushall()

    def destroy(self) -> None:
        self.kill()
        self.client.close()
        shutil.rmtree(self.dir, ignore_errors=True)
