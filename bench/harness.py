"""What every benchmark needs: a fresh database, its own Redis namespace, the emulator over a
socket, worker and producer processes, and a wait on the job ledger.

Each benchmark runs in a database created for it (`bench_<random>`, migrated to head, dropped
afterwards) and a Redis namespace of its own (its keys deleted afterwards), so a benchmark never
sees another's rows or messages, and a crash leaves nothing behind but what `DROP ... FORCE`
and the key sweep would have removed anyway.

Services come from TEST_DATABASE_URL / DATABASE_URL and TEST_REDIS_URL / REDIS_URL, else the
machine's own on 127.0.0.1 (as tests/conftest.py finds them).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
import psycopg
import redis

from emulator.config import EmulatorConfig
from emulator.server import SubprocessHandle, start_subprocess
from shared import migrate
from shared.crypto import generate_key
from shared.db import make_engine
from shared.settings import Rate, Settings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MACHINE_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
MACHINE_REDIS = "redis://127.0.0.1:6379/0"
# What "no limit" means for our own fleet limiter (the settings need a number).
UNLIMITED = Rate(1_000_000, 1)


def serve_client(port: int, token: str) -> httpx.Client:
    """A client of a `spotify-sync serve` on this host. uvicorn closes a keep-alive connection idle
    for 5 s and httpx keeps one for 5 s: a request sent on it as the server closes it fails with
    "Server disconnected without sending a response" (it did, once, between two phases of the
    enrichment bench). The client lets its idle connections go first."""
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, headers={"Authorization": f"Bearer {token}"},
                        limits=httpx.Limits(keepalive_expiry=1.0))


class BenchError(Exception):
    """A benchmark could not be run (a process died, a wait ran out): the run reports it."""


def server_url() -> str:
    return os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL") or MACHINE_POSTGRES


def redis_url() -> str:
    return os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL") or MACHINE_REDIS


# --- database and namespace ---------------------------------------------------------------------


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new database, migrated to head; dropped when the block ends."""
    name = f"bench_{secrets.token_hex(4)}"
    server = server_url()
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = urlsplit(server)._replace(path="/" + name).geturl()
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def redis_namespace(url: str) -> Iterator[str]:
    """A namespace of this benchmark's own; its keys are deleted when the block ends."""
    namespace = f"bench-{secrets.token_hex(4)}"
    try:
        yield namespace
    finally:
        client = redis.Redis.from_url(url)
        for key in client.scan_iter(match=namespace + ":*", count=1000):
            client.delete(key)
        client.close()


# --- the emulator -------------------------------------------------------------------------------


@dataclass
class Emulator:
    handle: SubprocessHandle
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @property
    def base_url(self) -> str:
        return self.handle.base_url

    def stats(self) -> dict:
        return self._ok(self.http.get(self.base_url + "/_emulator/stats"))

    def configure(self, **changes) -> dict:
        return self._ok(self.http.post(self.base_url + "/_emulator/config", json=changes))

    def reset(self) -> None:
        self._ok(self.http.post(self.base_url + "/_emulator/reset", json={}))

    def app_token(self, client_id: str, client_secret: str) -> str:
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        response = self.http.post(self.base_url + "/api/token", data={"grant_type": "client_credentials"},
                                  headers={"Authorization": f"Basic {basic}"})
        return self._ok(response)["access_token"]

    @staticmethod
    def _ok(response: httpx.Response) -> dict:
        if response.status_code != 200:
            raise BenchError(f"emulator control call answered {response.status_code}: {response.text[:200]}")
        return response.json()


@contextmanager
def emulator(config: EmulatorConfig) -> Iterator[Emulator]:
    handle = _quietly(start_subprocess, config)
    emu = Emulator(handle)
    try:
        yield emu
    finally:
        emu.http.close()
        handle.stop()


def _quietly(start, *args):
    """Start a child with its stdout on /dev/null (the emulator prints its banner there, which
    would break up the table); its stderr, where errors go, stays."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        return start(*args)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


# --- one benchmark's world ----------------------------------------------------------------------


@dataclass
class World:
    """Settings pointing at this benchmark's database, namespace and emulator."""

    settings: Settings
    emulator: Emulator
    workdir: Path
    catalog_size: int = 100_000

    @property
    def database_url(self) -> str:
        return self.settings.require_database_url()

    def engine(self):
        return make_engine(self.settings)

    def env(self) -> dict[str, str]:
        """The environment of a child process (worker, producer): these settings, nothing else
        of ours (a stray DATABASE_URL in the caller's environment must not leak in)."""
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
        return {**keep, **self.settings.as_environ(), "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING"}


@contextmanager
def world(config: EmulatorConfig, **settings_changes) -> Iterator[World]:
    """Fresh database + namespace + emulator + settings; all removed when the block ends."""
    redis = redis_url()
    workdir = Path(tempfile.mkdtemp(prefix="spotify-sync-bench-"))
    try:
        with fresh_database() as database_url, redis_namespace(redis) as namespace, emulator(config) as emu:
            settings = Settings(
                database_url=database_url,
                redis_url=redis,
                redis_namespace=namespace,
                # A client id of the benchmark's own: the emulator and our limiter count per client id.
                spotify_client_id=f"bench-{secrets.token_hex(6)}",
                spotify_client_secret=secrets.token_hex(16),
                spotify_token_keys=(generate_key(),),
                spotify_api_base_url=emu.base_url + "/v1",
                spotify_accounts_base_url=emu.base_url,
                state_dir=workdir / "state",
            ).replace(**settings_changes)
            yield World(settings, emu, workdir, config.catalog_size)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --- processes ----------------------------------------------------------------------------------


class RssPoller:
    """Polls the resident memory of a process tree; keeps each process's peak."""

    def __init__(self, root_pid: int, interval_s: float = 0.2, include_root: bool = True):
        self.root_pid = root_pid
        self.interval_s = interval_s
        self.include_root = include_root
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="rss-poller")
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                root = psutil.Process(self.root_pid)
                tree = root.children(recursive=True) + ([root] if self.include_root else [])
            except psutil.Error:
                tree = []
            for proc in tree:
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:
                    continue
                self.peaks[proc.pid] = max(self.peaks.get(proc.pid, 0), rss)
            self._stop.wait(self.interval_s)

    def stop(self) -> int:
        """Stop polling; the largest peak of any one process, in bytes."""
        self._stop.set()
        self._thread.join(5)
        return max(self.peaks.values(), default=0)


class Workers:
    """`spotify-sync worker --processes N --threads T` as a child process group.

    `peak_rss()` is the largest resident memory any worker process reached (the supervising
    parent left out: it only forks and waits)."""

    def __init__(self, w: World, processes: int, threads: int, *, env: dict[str, str] | None = None):
        self.log_path = w.workdir / f"workers-{secrets.token_hex(3)}.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            # No metrics endpoint: runs follow each other (recovery starts a second beside a killed
            # one), and a taken port would stop a run; the exporter's process would count as a worker.
            [str(BIN / "spotify-sync"), "worker", "--processes", str(processes), "--threads", str(threads),
             "--metrics-port", "0"],
            env={**w.env(), **(env or {})}, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends the forked workers too
        )
        self.rss = RssPoller(self.process.pid, include_root=False)

    def worker_pids(self) -> list[int]:
        """The worker processes (Dramatiq forks them from the supervising parent)."""
        try:
            return [p.pid for p in psutil.Process(self.process.pid).children(recursive=True)]
        except psutil.Error:
            return []

    def wait_ready(self, count: int, timeout_s: float = 60) -> list[int]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            pids = self.worker_pids()
            if len(pids) >= count:
                return pids
            time.sleep(0.1)
        raise BenchError(f"workers did not start {count} processes in {timeout_s}s; log: {self.tail()}")

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(f"the workers exited with {self.process.returncode}: {self.tail()}")

    def tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout_s: float = 20) -> int:
        """SIGTERM the group (Dramatiq's warm shutdown), SIGKILL what is left; returns peak RSS."""
        peak = self.rss.stop()
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            except ProcessLookupError:
                pass
        self._log.close()
        return peak

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class ChildRun:
    seconds: float
    peak_rss_bytes: int
    returncode: int
    output: str


def run_measured(command: list[str], env: dict[str, str], workdir: Path, timeout_s: float) -> ChildRun:
    """Run a child to its end; its wall time and its own peak RSS (the kernel's ru_maxrss, taken
    through bench/peak_rss.py: see there why not straight from this process)."""
    out_path = workdir / f"child-{secrets.token_hex(3)}.log"
    with open(out_path, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "bench.peak_rss", "--", *command], env=env, cwd=ROOT,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the wrapper and the command under it
            process.wait()
            raise BenchError(f"{' '.join(command[:3])} ran longer than {timeout_s}s") from None
    output = out_path.read_text(errors="replace")
    last = output.rstrip().rsplit("\n", 1)[-1]
    try:
        measured = json.loads(last)
    except ValueError:
        raise BenchError(f"no measurement from bench.peak_rss: {output[-800:]}") from None
    return ChildRun(measured["seconds"], measured["max_rss_kib"] * 1024,  # Linux: ru_maxrss in KiB
                    measured["returncode"], output)


def write_ids(w: World, count: int, offset: int = 0, catalog_size: int | None = None) -> Path:
    """`count` valid ids of the emulator's catalog, one per line, in a temp file."""
    path = w.workdir / f"ids-{count}-{offset}.txt"
    with open(path, "wb") as out:
        subprocess.run(
            [str(BIN / "spotify-sync"), "emulator", "ids", "--count", str(count), "--offset", str(offset),
             "--catalog-size", str(catalog_size or w.catalog_size)],
            stdout=out, check=True, cwd=ROOT,
        )
    return path


def enqueue_track_sync(w: World, ids_file: Path, *, force: bool = False, timeout_s: float = 600) -> ChildRun:
    """The producer as an operator runs it: `spotify-sync enqueue track-sync --ids-file FILE`."""
    command = [str(BIN / "spotify-sync"), "enqueue", "track-sync", "--ids-file", str(ids_file)]
    run = run_measured(command + (["--force"] if force else []), w.env(), w.workdir, timeout_s)
    if run.returncode != 0:
        raise BenchError(f"enqueue exited with {run.returncode}: {run.output[-1500:]}")
    return run


# --- waiting on the ledger ----------------------------------------------------------------------


def latest_backfill_id(engine) -> str:
    from pipeline.store import ledger

    found = ledger.recent_backfills(engine, limit=1)
    if not found:
        raise BenchError("no backfill in the ledger")
    return found[0].id


def wait_backfill(engine, backfill_id: str, timeout_s: float, *, workers: Workers | None = None,
                  poll_s: float = 0.25):
    """Poll the ledger until every job of the backfill is finished; returns its progress."""
    from pipeline.store import ledger

    deadline = time.monotonic() + timeout_s
    while True:
        progress = ledger.backfill_progress(engine, backfill_id)
        if progress is not None and progress.done:
            return progress
        if workers is not None:
            workers.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"backfill not finished after {timeout_s}s: {progress and progress.by_status}")
        time.sleep(poll_s)
