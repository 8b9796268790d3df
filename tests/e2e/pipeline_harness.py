"""What the pipeline's e2e tests share: the emulator as a server, `spotify-sync` run as the
operator runs it, worker processes started with `spotify-sync worker`, and waits on the ledger
(never blind sleeps: every wait polls Postgres and has a deadline)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import text

from emulator.config import EmulatorConfig
from emulator.server import start_subprocess
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "spotify-sync")


class Emulator:
    def __init__(self, base_url: str):
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=30)

    def _ok(self, response: httpx.Response) -> dict:
        assert response.status_code == 200, response.text
        return response.json()

    def reset(self, **config) -> None:
        self._ok(self.http.post("/_emulator/reset", json={"config": True, "grants": False}))
        if config:
            self.configure(**config)

    def configure(self, **changes) -> dict:
        return self._ok(self.http.post("/_emulator/config", json=changes))

    def force(self, **rule) -> dict:
        return self._ok(self.http.post("/_emulator/force", json=rule))

    def stats(self) -> dict:
        return self._ok(self.http.get("/_emulator/stats"))

    def ids(self, count: int, offset: int = 0) -> list[str]:
        return self._ok(self.http.get("/_emulator/ids", params={"count": count, "offset": offset}))["ids"]

    def requests_to(self, endpoint: str) -> dict[str, int]:
        return self.stats()["requests"].get(endpoint, {})


@pytest.fixture(scope="module")
def emulator():
    handle = start_subprocess(EmulatorConfig(rate_limit=None))
    client = Emulator(handle.base_url)
    try:
        yield client
    finally:
        client.http.close()
        handle.stop()


def run_env(settings: Settings, emulator: Emulator, **overrides: str) -> dict[str, str]:
    """The environment of every process of a test: its database, namespace and client id."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOTIFY_", "DATABASE_URL", "REDIS_", "BROKER_"))}
    env.update(settings.as_environ())
    env.update({
        "SPOTIFY_API_BASE_URL": emulator.base_url + "/v1",
        "SPOTIFY_ACCOUNTS_BASE_URL": emulator.base_url,
        # Fast, so that the suite stays short; the tests about limits set their own.
        "SPOTIFY_RATE_LIMIT": "100/1s",
        "JOB_LEASE": "10s",
        "LOG_LEVEL": "INFO",
    })
    env.update(overrides)
    return env


def cli(env: dict[str, str], *args: str, input: str | None = None, timeout_s: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([CLI, *args], env=env, input=input, capture_output=True, text=True, timeout=timeout_s,
                            cwd=ROOT)
    return result


def cli_ok(env: dict[str, str], *args: str, input: str | None = None) -> str:
    result = cli(env, *args, input=input)
    assert result.returncode == 0, f"spotify-sync {' '.join(args)} -> {result.returncode}\n{result.stderr[-3000:]}"
    return result.stdout


class Workers:
    """`spotify-sync worker` in its own process group; its output goes to a file (shown on failure)."""

    def __init__(self, env: dict[str, str], processes: int = 2, threads: int = 4, metrics_port: int = 0):
        self.log = tempfile.NamedTemporaryFile(prefix="workers-", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            [CLI, "worker", "--processes", str(processes), "--threads", str(threads), "--shutdown-timeout", "10s",
             "--metrics-port", str(metrics_port)],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        self.expected = processes

    def children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            return []

    def wait_ready(self, timeout_s: float = 30) -> list[psutil.Process]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.tail()
            # The whole log, not its tail: busy workers can push their "ready" lines out of it.
            if self.output().count("worker process ready") >= self.expected:
                return self.children()
            time.sleep(0.1)
        raise AssertionError("the workers did not start:\n" + self.tail())

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def tail(self, chars: int = 4000) -> str:
        return self.output()[-chars:]

    def stop(self, timeout_s: float = 30) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


def job_counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT status, count(*) FROM spotify_sync_jobs GROUP BY status")).all())


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, workers: Workers | None = None,
               engine=None, interval_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        if workers is not None and workers.process.poll() is not None:
            raise AssertionError(f"the workers exited ({workers.process.returncode}) while waiting for {what}\n"
                                 + workers.tail())
        time.sleep(interval_s)
    state = f"\njobs: {job_counts(engine)}" if engine is not None else ""
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}{state}"
                         + ("\n" + workers.tail() if workers else ""))


def all_jobs_finished(engine) -> bool:
    counts = job_counts(engine)
    return bool(counts) and counts.get("pending", 0) == 0 and counts.get("running", 0) == 0


def scalar(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()
