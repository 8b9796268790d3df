"""One chaos run: private PostgreSQL and Redis, the emulator as a server with faults, worker groups
as real processes, a backfill plus users' library syncs plus a popularity refresh, and a driver
that strikes on a schedule (SIGKILL a group, restart PostgreSQL, FLUSHALL, a Redis outage, 429
bursts, `jobs reconcile` as cron). `Run.verify()` then says whether anything was lost, wrong,
written twice or erased, and `Report` holds the figures (drain time, requests per track, 429s,
parks per job, the longest stall).

Used by tests/chaos (the full run, several hosts) and tests/e2e/test_chaos_short.py (CI's short one).
Every wait polls a condition with a deadline; the only timed pauses are the faults' own durations
(a Redis outage lasts 10 s because that is the fault).
"""

from __future__ import annotations

import heapq
import json
import math
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
from sqlalchemy import text

from emulator.catalog import Catalog
from emulator.config import EmulatorConfig
from emulator.server import SubprocessHandle, start_subprocess
from pipeline import errors
from pipeline.ratecontrol.penalty_box import RedisPenaltyBox
from shared import migrate
from shared.crypto import generate_key
from shared.db import make_engine
from shared.keys import RedisKeys
from shared.settings import Settings
from tests.chaos.fleet import Runs, WorkerGroup, read_runs
from tests.chaos.services import PrivatePostgres, PrivateRedis, free_port
from tests.e2e.pipeline_harness import Emulator, cli, cli_ok, job_counts

# 5% 5xx, 1% dropped connections, slow answers (past the read timeout), malformed and incomplete bodies.
FAULTS = "500:0.02,502:0.015,503:0.015,drop:0.01,slow:0.01,malformed:0.005,incomplete:0.01"
SLOW_S = 4.0  # a slow answer outlasts SPOTIFY_READ_TIMEOUT below: the client times out and retries
READ_TIMEOUT_S = 3.0
CONNECT_TIMEOUT_S = 2.0
RETRY_BUDGET_S = 8.0
WINDOW_S = 30.0  # the emulator's rolling window, as Spotify's
SECOND_CLIENT_RETRY_AFTER_S = 3600
SECOND_CLIENT_TRACKS = 500  # 5 jobs
# While a client is in Spotify's box every call it makes is answered 429, not only the first: calls
# already in flight when the first 429 lands (B's threads overlap their requests) meet it too.
SECOND_CLIENT_BOXED_CALLS = 100


@dataclass(frozen=True)
class Plan:
    """What a run does and when (seconds after the workers start). None: that strike is left out."""

    tracks: int
    users: dict[str, str]  # the application's user id -> the emulator's user whose library it has
    groups: int = 2
    processes: int = 2
    threads: int = 4
    fleet_rate: str = "100/1s"  # SPOTIFY_RATE_LIMIT of every worker
    emulator_limit: int = 3600  # admitted per WINDOW_S per client id (>= what the fleet's rate allows)
    faults: str = FAULTS
    kill_every_s: float | None = 15.0
    kill_at_s: tuple[float, ...] = ()  # single SIGKILLs besides the periodic ones
    pg_restart_at_s: float | None = 45.0
    pg_down_s: float = 2.0
    redis_flush_at_s: float | None = 70.0
    redis_outage_at_s: float | None = 100.0
    redis_outage_s: float = 10.0
    forced_429_at_s: float | None = 25.0  # three forced 429s on the fleet's client id
    forced_retry_after_s: int = 5
    window_burst_at_s: float | None = 130.0  # the emulator's window shrunk for 3 s: window 429s
    reconcile_every_s: float | None = 30.0
    popularity_at_share: float | None = 0.5  # enqueue the refresh once this share of the work is done
    popularity_limit: int = 20_000  # songs whose popularity it refreshes
    second_client: bool = True  # a second client id meets a 429 with a Retry-After of an hour
    drain_timeout_s: float = 900.0
    max_stall_s: float = 10.0  # outside the deliberate outages
    seed: int = 7


@dataclass
class Report:
    drain_s: float = 0.0
    tracks: int = 0
    jobs: int = 0
    requests_total: int = 0
    requests_per_track: float = 0.0
    rate_limited: dict[str, int] = field(default_factory=dict)
    busiest_window: int = 0
    saturation: float = 0.0  # of the emulator's limit, from the workers' start (see `saturation`)
    parks_per_job: float = 0.0
    parks_max: int = 0
    stall_s: float = 0.0
    stall_outside_outages_s: float = 0.0
    stall_at_s: float = 0.0  # where the longest stall outside the outages began (seconds into the strikes)
    longest_run_s: float = 0.0
    median_run_s: float = 0.0
    worker_cpu_ms_per_job: float = 0.0  # the live groups' CPU over the jobs finished
    kills: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    lock_waits: dict[str, int] = field(default_factory=dict)

    def lines(self) -> str:
        return "\n".join([
            f"drain: {self.drain_s:.1f}s for {self.jobs} jobs ({self.tracks} tracks)",
            f"requests: {self.requests_total} ({self.requests_per_track:.3f} per track); "
            f"busiest {WINDOW_S:.0f}s window: {self.busiest_window}; saturation: {self.saturation:.3f}",
            f"429s: {self.rate_limited or 0}; faults: {self.faults}",
            f"parks per job: {self.parks_per_job:.3f} (max {self.parks_max}); longest run: {self.longest_run_s:.1f}s "
            f"(outages included), median {self.median_run_s:.2f}s; workers' CPU {self.worker_cpu_ms_per_job:.0f} ms a job",
            f"stall (no job finished while work was due): {self.stall_s:.1f}s; "
            f"outside the deliberate outages: {self.stall_outside_outages_s:.1f}s (from {self.stall_at_s:.0f}s)",
            f"strikes: {self.kills} SIGKILLs; " + "; ".join(self.events),
            "lock waits seen (half-second samples): "
            + ("; ".join(f"{n}x {k}" for k, n in sorted(self.lock_waits.items(), key=lambda kv: -kv[1])[:5])
               or "none"),
        ])


class Sampler(threading.Thread):
    """Every half second: how many jobs have finished, and how many are due (running, or pending
    without a not-before still ahead). Nothing is due while the fleet's penalty box is shut (Spotify
    said to wait: waiting is right). A sample the database did not answer is left out."""

    def __init__(self, url: str, penalty_box: RedisPenaltyBox | None = None) -> None:
        super().__init__(name="chaos-sampler", daemon=True)
        self.url = url
        self.penalty_box = penalty_box
        self.samples: list[tuple[float, int, int]] = []
        self.stopped = threading.Event()
        self.lock_waits: dict[str, int] = {}  # "waiting query <- blocking query (its state)" -> samples seen

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            try:
                with psycopg.connect(self.url, connect_timeout=1, autocommit=True) as conn:
                    row = conn.execute(
                        "SELECT count(*) FILTER (WHERE status IN ('completed', 'failed')), "
                        "count(*) FILTER (WHERE status = 'running' OR (status = 'pending' AND "
                        "(\"notBefore\" IS NULL OR \"notBefore\" <= now() AT TIME ZONE 'UTC'))) "
                        "FROM spotify_sync_jobs").fetchone()
                    assert row is not None
                    self.samples.append((time.time(), row[0], 0 if self._box_shut() else row[1]))
                    self._note_lock_waits(conn)
            except psycopg.Error:
                continue

    def _box_shut(self) -> bool:
        try:
            return self.penalty_box is not None and self.penalty_box.remaining_s() > 0
        except errors.RedisUnavailable:
            return False  # Redis down on purpose: an outage span covers it

    def _note_lock_waits(self, conn: psycopg.Connection) -> None:
        """Sessions waiting on a lock, and what holds it: why the fleet stalls, when it does."""
        for waiting, blocking, state in conn.execute(
                "SELECT left(w.query, 60), left(b.query, 60), b.state FROM pg_stat_activity w "
                "JOIN pg_stat_activity b ON b.pid = ANY(pg_blocking_pids(w.pid)) WHERE w.wait_event_type = 'Lock'"):
            key = f"{waiting!r} <- {blocking!r} ({state})"
            self.lock_waits[key] = self.lock_waits.get(key, 0) + 1


def stalls(samples: list[tuple[float, int, int]]) -> list[tuple[float, float]]:
    """The spans during which work was due and no job finished: (start, end) in epoch seconds."""
    spans: list[tuple[float, float]] = []
    since: float | None = None
    finished_before = -1
    for at, finished, due in samples:
        if since is not None and (finished > finished_before or due == 0):
            spans.append((since, at))
            since = None
        if due > 0 and since is None:
            since = at
        finished_before = finished
    return spans


class Driver(threading.Thread):
    """Runs the plan's strikes at their times; periodic ones (kill, reconcile) reschedule themselves.
    A strike that raises is written down as an event, and the run goes on."""

    def __init__(self) -> None:
        super().__init__(name="chaos-driver", daemon=True)
        self.queue: list[tuple[float, int, str, Callable[[], None]]] = []  # (offset from the start, ...)
        self.events: list[str] = []
        self.stopped = threading.Event()
        self.started_at = time.monotonic()
        self.started_wall = time.time()
        self._order = 0
        self._lock = threading.Lock()

    def at(self, offset_s: float, name: str, action: Callable[[], None]) -> None:
        with self._lock:
            self._order += 1
            heapq.heappush(self.queue, (offset_s, self._order, name, action))

    def every(self, period_s: float, name: str, action: Callable[[], None], first_s: float | None = None) -> None:
        def repeat() -> None:
            action()
            self.at(self.elapsed() + period_s, name, repeat)

        self.at(first_s if first_s is not None else period_s, name, repeat)

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def note(self, what: str) -> None:
        self.events.append(f"{self.elapsed():.0f}s {what}")

    def run(self) -> None:
        while not self.stopped.wait(0.1):
            with self._lock:
                due = self.queue and self.queue[0][0] <= self.elapsed()
                item = heapq.heappop(self.queue) if due else None
            if item is None:
                continue
            _, _, name, action = item
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - a strike that fails is a fact of the run, not its end
                self.note(f"{name} failed: {type(exc).__name__}: {str(exc)[:200]}")


@dataclass
class Outages:
    """When a service or a host's link was deliberately down (epoch seconds): stalls and long runs
    within them are the fault's, not the pipeline's."""

    spans: list[list[float]] = field(default_factory=list)

    def begin(self) -> list[float]:
        span = [time.time(), math.inf]
        self.spans.append(span)
        return span

    def overlaps(self, start: float, end: float) -> bool:
        return any(start < s_end and s_start < end for s_start, s_end in self.spans)


def saturation(series: list[list[int]], limit: int, window_s: float = WINDOW_S) -> float:
    """How full the fleet kept its budget: the mean of the requests in each whole window of the
    emulator's per-second series ([second, calls, of which 429]), but the last window's worth
    (the drain's tail, where work runs out), over the limit. 0.0 when the run was too short."""
    window = int(window_s)
    calls = [c for _, c, _ in series]
    sums = [sum(calls[i:i + window]) for i in range(0, max(0, len(calls) - 2 * window + 1))]
    return sum(sums) / len(sums) / limit if sums else 0.0


class Run:
    """The services, the emulator and the workers of one chaos run. Use as a context manager:
    everything it started is stopped and removed on the way out, also when a check fails."""

    def __init__(self, plan: Plan, bind_host: str = "127.0.0.1",
                 hosts: list[tuple[str, tuple[str, ...]]] | None = None, relayed: bool = False) -> None:
        """`hosts`: (name, command prefix) per worker group, e.g. ("h1", ("ip", "netns", "exec", "h1"));
        by default `plan.groups` groups on this host. `bind_host`: where PostgreSQL, Redis and the
        emulator also listen (a bridge address the namespaces reach). `relayed`: the hosts reach
        them at 127.0.0.1, the same ports, through a relay in their namespace (netns.Hosts.relay)."""
        self.plan = plan
        self.bind_host = bind_host
        self.relayed = relayed
        self.per_second: dict[int, int] = {}  # the emulator's API calls per epoch second, the whole run
        self._series_read_at = -math.inf
        self.hosts = hosts or [(f"g{i}", ()) for i in range(plan.groups)]
        self.log_dir = Path(tempfile.mkdtemp(prefix="chaos-logs-"))
        self.client_id = f"chaos-{secrets.token_hex(4)}"
        self.second_client_id = f"chaos-b-{secrets.token_hex(4)}"
        self.groups: dict[str, WorkerGroup] = {}  # the live group of each host
        self.retired: list[WorkerGroup] = []  # killed, or exited on their own
        self.started: list[WorkerGroup] = []  # every group ever started: stopped on exit, logs read
        self._groups_lock = threading.Lock()  # the driver replaces groups, the main thread supervises
        self.outages = Outages()
        self.report = Report()
        self.kills = 0
        self._cleanups: list[Callable[[], None]] = []

    # --- set-up ---
    def __enter__(self) -> Run:
        try:
            self._start_services()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start_services(self) -> None:
        listen = tuple(dict.fromkeys(("127.0.0.1", self.bind_host)))
        self.postgres = PrivatePostgres(listen)
        self._cleanups.append(self.postgres.destroy)
        self.postgres.start()
        self.redis = PrivateRedis(listen)
        self._cleanups.append(self.redis.destroy)
        self.redis.start()
        config = EmulatorConfig(rate_limit=self.plan.emulator_limit, rate_window_s=WINDOW_S, slow_s=SLOW_S,
                                fault_seed=self.plan.seed, catalog_size=100_000, search_index_max_tracks=0)
        self.emulator_handle: SubprocessHandle = start_subprocess(config, host=self.bind_host)
        self._cleanups.append(self.emulator_handle.stop)
        self.emulator = Emulator(self.emulator_handle.base_url)
        self._cleanups.append(self.emulator.http.close)
        self.catalog = Catalog(config.catalog_size, config.catalog_seed, config.audio_features_share, 0)

        self.database_url = self.postgres.create_database("chaos")
        migrate.upgrade(self.database_url)
        self.engine = make_engine(self.database_url)
        self._cleanups.append(self.engine.dispose)
        self.env = self._env(self.client_id, "chaos", self.bind_host)
        # The same settings, the services' addresses on loopback: a relayed host's view.
        self.host_env = {k: v.replace(f"//{self.bind_host}:", "//127.0.0.1:").replace(f"@{self.bind_host}:", "@127.0.0.1:")
                         for k, v in self.env.items()} if self.relayed else self.env

    def service_ports(self) -> list[int]:
        """PostgreSQL's, Redis's and the emulator's ports (what a host's relay forwards)."""
        return [self.postgres.port, self.redis.port, int(self.emulator.base_url.rsplit(":", 1)[1].split("/")[0])]

    def _env(self, client_id: str, database: str, host: str) -> dict[str, str]:
        """Every process of one client id gets the same environment (one secret, one token key)."""
        settings = Settings(
            database_url=self.postgres.url(database, host), redis_url=self.redis.url(host),
            redis_namespace=f"chaos-{database}", spotify_client_id=client_id,
            spotify_client_secret=secrets.token_hex(16), spotify_token_keys=(generate_key(),),
            state_dir=self.log_dir / "state")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOTIFY_", "DATABASE_URL", "REDIS_", "BROKER_"))}
        env.update(settings.as_environ())
        base = self.emulator.base_url  # on bind_host: reachable from this host and from the namespaces
        env.update({
            "SPOTIFY_API_BASE_URL": base + "/v1", "SPOTIFY_ACCOUNTS_BASE_URL": base,
            "SPOTIFY_RATE_LIMIT": self.plan.fleet_rate, "SPOTIFY_READ_TIMEOUT": str(READ_TIMEOUT_S),
            "SPOTIFY_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT_S), "SPOTIFY_RETRY_BUDGET": str(RETRY_BUDGET_S),
            "SPOTIFY_REDIRECT_URI": f"http://127.0.0.1:{free_port()}/callback",
            "JOB_LEASE": "10s", "LOG_LEVEL": "INFO", "LOG_FORMAT": "json",
        })
        return env

    def __exit__(self, *exc: object) -> None:
        for group in self.started:
            group.stop(10)
        for cleanup in reversed(self._cleanups):
            try:
                cleanup()
            except Exception:  # noqa: BLE001 - clean up the rest whatever one of them says
                pass
        self._cleanups.clear()
        # The workers' logs and the samples are kept only when the run failed: they say why.
        if exc and exc[0] is not None:
            print(f"\nthe chaos run's logs and samples: {self.log_dir}")
        else:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    # --- the work ---
    def seed_songs(self) -> None:
        """Songs the database already held: some of the backfill's ids (their values are replaced by
        Spotify's) and some outside it (they must come out exactly as they went in, popularity aside),
        each with every column set, so that a NULL written over any of them is seen."""
        inside = self.ids[:: max(1, len(self.ids) // 200)]
        outside = self.emulator.ids(100, offset=self.plan.tracks + 1000)
        with self.engine.begin() as conn:
            conn.execute(text(
                'INSERT INTO songs ("spotifyId", title, artist, album, duration, danceability, energy, valence, '
                'acousticness, instrumentalness, tempo, speechiness, liveness, loudness, "spotifyPreviewUrl", '
                '"spotifyExternalUrl") SELECT i, \'old title\', \'old artist\', \'old album\', 123, 0.42, 0.42, '
                "0.42, 0.42, 0.42, 99.5, 0.42, 0.42, -7.5, 'http://preview.invalid/x', 'http://ext.invalid/x' "
                "FROM unnest(CAST(:ids AS text[])) i"), {"ids": inside + outside})
            self.seeded = {r[0]: dict(r._mapping) for r in conn.execute(text(
                'SELECT "spotifyId", * FROM songs WHERE "spotifyId" = ANY(:ids)'), {"ids": inside + outside})}
        self.outside = set(outside)

    def enqueue(self) -> None:
        self.ids = self.emulator.ids(self.plan.tracks)
        self.seed_songs()
        ids_file = self.log_dir / "ids.txt"
        ids_file.write_text("\n".join(self.ids) + "\n")
        for user, emulated in self.plan.users.items():
            cli_ok(self.env, "connect", "--user", user, "--open-with-http", "--emulated-user", emulated)
        cli_ok(self.env, "enqueue", "track-sync", "--ids-file", str(ids_file), "--quiet")
        for user in self.plan.users:
            cli_ok(self.env, "enqueue", "user-library", "--user", user)

    def start_second_client(self) -> None:
        """Client id B, with a database of its own (its parked jobs must not hold up the fleet's):
        its calls meet a 429 with Retry-After of an hour. Its threads must park every job at once
        and sleep on none."""
        url = self.postgres.create_database("chaos_b")
        migrate.upgrade(url)
        self.engine_b = make_engine(url)
        self._cleanups.append(self.engine_b.dispose)
        self.env_b = self._env(self.second_client_id, "chaos_b", "127.0.0.1")
        ids_file = self.log_dir / "ids-b.txt"
        ids_file.write_text("\n".join(self.emulator.ids(SECOND_CLIENT_TRACKS, offset=90_000)) + "\n")
        cli_ok(self.env_b, "enqueue", "track-sync", "--ids-file", str(ids_file), "--quiet")
        self.emulator.force(kind="429", count=SECOND_CLIENT_BOXED_CALLS, retry_after_s=SECOND_CLIENT_RETRY_AFTER_S,
                            client_id=self.second_client_id)
        self.group_b = WorkerGroup("b", self.env_b, processes=1, threads=2, log_dir=self.log_dir)
        self.b_started = time.monotonic()

    def start_group(self, name: str, prefix: tuple[str, ...]) -> WorkerGroup:
        env = self.host_env if prefix else self.env
        group = WorkerGroup(name, env, self.plan.processes, self.plan.threads, prefix, self.log_dir)
        self.started.append(group)
        self.groups[name] = group
        return group

    def replace_group(self, name: str) -> None:
        """SIGKILL the group, and start its replacement at once (as a supervisor would)."""
        with self._groups_lock:
            old = self.groups[name]
            old.kill()
            self.retired.append(old)
            self.kills += 1
            self.driver.note(f"SIGKILL {name}")
            self.start_group(name, dict(self.hosts)[name])

    def finished(self) -> bool:
        try:
            counts = job_counts(self.engine)
        except Exception:  # noqa: BLE001 - PostgreSQL is down on purpose now and then
            return False
        return bool(counts) and counts.get("pending", 0) == 0 and counts.get("running", 0) == 0

    def share_done(self) -> float:
        counts = job_counts(self.engine)
        total = sum(counts.values())
        return (counts.get("completed", 0) + counts.get("failed", 0)) / total if total else 0.0

    def drive(self, driver: Driver | None = None) -> Report:
        """Start the workers and the strikes, wait until every job has finished, stop the strikes."""
        plan = self.plan
        self.enqueue()
        if plan.second_client:
            self.start_second_client()
        self.emulator.configure(faults=plan.faults)
        driver = driver or Driver()
        self.driver = driver
        box = RedisPenaltyBox(redis.Redis(port=self.redis.port, socket_timeout=1, socket_connect_timeout=1),
                              RedisKeys(self.env["REDIS_NAMESPACE"]).penalty_box(self.client_id))
        sampler = Sampler(self.postgres.url("chaos"), box)
        started = time.monotonic()
        for name, prefix in self.hosts:
            self.start_group(name, prefix)
        for group in self.groups.values():
            group.wait_ready()
        driver.started_at, driver.started_wall = time.monotonic(), time.time()
        self._schedule(driver)
        sampler.start()
        driver.start()
        deadline = time.monotonic() + plan.drain_timeout_s
        try:
            while not self.finished():
                if time.monotonic() > deadline:
                    raise AssertionError(f"not drained after {plan.drain_timeout_s}s: {job_counts(self.engine)}\n"
                                         + "\n".join(driver.events) + "\n" + "\n".join(self._stuck_jobs_or_why()))
                self._supervise(driver)
                self._keep_series()
                time.sleep(0.5)
        finally:
            driver.stopped.set()
            sampler.stopped.set()
            driver.join(30)
            sampler.join(10)
        self.report.drain_s = time.monotonic() - started
        with self._groups_lock:
            cpu_s = sum(group.cpu_s() for group in self.groups.values())
        self.report.worker_cpu_ms_per_job = 1000 * cpu_s / max(1, sum(job_counts(self.engine).values()))
        self._figures(sampler, driver)
        return self.report

    def _keep_series(self, every_s: float = 30.0) -> None:
        """The emulator keeps only its last SERIES_S (120) seconds per second: read them often
        enough that the whole run's series is kept here, for the saturation figure."""
        if time.monotonic() - self._series_read_at < every_s:
            return
        self._series_read_at = time.monotonic()
        try:
            series = self.emulator.stats()["requests_per_second"]["series"]
        except Exception:  # noqa: BLE001 - a busy emulator: read again next time, well within 120 s
            return
        self.per_second.update({second: calls for second, calls, _ in series})

    def series_since(self, start_wall: float) -> list[list[int]]:
        """[second, calls, 0] for every second from `start_wall` to the last call, idle ones included."""
        seconds = [t for t in self.per_second if t >= int(start_wall)]
        if not seconds:
            return []
        return [[t, self.per_second.get(t, 0), 0] for t in range(int(start_wall), max(seconds) + 1)]

    def _supervise(self, driver: Driver) -> None:
        """A group that exited on its own is written down and started again (a supervisor's job)."""
        with self._groups_lock:
            for name, group in list(self.groups.items()):
                if not group.alive():
                    driver.note(f"group {name} exited on its own ({group.process.returncode}): restarted")
                    self.retired.append(group)
                    self.start_group(name, dict(self.hosts)[name])

    def _schedule(self, driver: Driver) -> None:
        plan = self.plan
        names = [name for name, _ in self.hosts]
        if plan.kill_every_s:
            turn = iter(range(10**6))

            def kill_next() -> None:
                self.replace_group(names[next(turn) % len(names)])
            driver.every(plan.kill_every_s, "sigkill", kill_next)
        for n, at in enumerate(plan.kill_at_s):
            driver.at(at, "sigkill", lambda n=n: self.replace_group(names[n % len(names)]))  # type: ignore[misc]
        if plan.reconcile_every_s:
            def reconcile() -> None:
                started = time.monotonic()
                try:
                    result = cli(self.env, "jobs", "reconcile", "--grace", "15s", timeout_s=120)
                except subprocess.TimeoutExpired:  # a starved machine: the next cron tick tries again
                    driver.note("reconcile still running after 120s: stopped")
                    return
                took = f" after {time.monotonic() - started:.0f}s" if time.monotonic() - started > 5 else ""
                if result.returncode != 0:
                    driver.note(f"reconcile exited {result.returncode}{took}: {result.stderr.strip()[-200:]}")
                elif took:
                    driver.note(f"reconcile took{took}")

            def cron() -> None:  # its own thread, as cron's: a slow reconcile holds up no strike
                threading.Thread(target=reconcile, name="chaos-cron", daemon=True).start()
            driver.every(plan.reconcile_every_s, "reconcile", cron)
        if plan.forced_429_at_s is not None:
            def forced() -> None:
                self.emulator.force(kind="429", count=3, retry_after_s=plan.forced_retry_after_s,
                                    client_id=self.client_id)
                driver.note("3 forced 429s")
            driver.at(plan.forced_429_at_s, "forced 429", forced)
        if plan.pg_restart_at_s is not None:
            def pg_down() -> None:
                span = self.outages.begin()
                self.postgres.stop("immediate")
                driver.note("PostgreSQL stopped (immediate)")

                def pg_up() -> None:
                    self.postgres.start()
                    span[1] = time.time()
                    driver.note("PostgreSQL started")
                driver.at(driver.elapsed() + plan.pg_down_s, "postgres up", pg_up)
            driver.at(plan.pg_restart_at_s, "postgres down", pg_down)
        if plan.redis_flush_at_s is not None:
            def flush() -> None:
                self.redis.flushall()
                driver.note("FLUSHALL")
            driver.at(plan.redis_flush_at_s, "flushall", flush)
        if plan.redis_outage_at_s is not None:
            def redis_down() -> None:
                span = self.outages.begin()
                self.redis.kill()
                driver.note(f"Redis down for {plan.redis_outage_s:.0f}s")

                def redis_up() -> None:
                    self.redis.start()
                    span[1] = time.time()
                    driver.note("Redis back")
                driver.at(driver.elapsed() + plan.redis_outage_s, "redis up", redis_up)
            driver.at(plan.redis_outage_at_s, "redis down", redis_down)
        if plan.window_burst_at_s is not None:
            def shrink() -> None:
                self.emulator.configure(rate_limit=1)
                driver.note("emulator window shrunk (window 429s)")

                def restore() -> None:
                    self.emulator.configure(rate_limit=plan.emulator_limit)
                    driver.note("window restored")
                driver.at(driver.elapsed() + 3, "window back", restore)
            driver.at(plan.window_burst_at_s, "window burst", shrink)
        share = plan.popularity_at_share
        if share is not None:
            def popularity() -> None:
                try:
                    early = self.share_done() < share
                except Exception:  # noqa: BLE001 - PostgreSQL down on purpose: look again later
                    early = True
                if early:
                    driver.at(driver.elapsed() + 2, "popularity", popularity)
                    return

                def enqueue() -> None:  # its own thread: the producer's transaction holds up no strike
                    result = cli(self.env, "enqueue", "popularity-update", "--older-than", "1s",
                                 "--limit", str(plan.popularity_limit))
                    if result.returncode != 0:  # PostgreSQL or Redis down on purpose: cron tries again
                        driver.note(f"popularity enqueue exited {result.returncode}: again in 2s")
                        driver.at(driver.elapsed() + 2, "popularity", popularity)
                        return
                    driver.note(result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "popularity")
                threading.Thread(target=enqueue, name="chaos-popularity", daemon=True).start()
            driver.at(1, "popularity", popularity)

    def _stuck_jobs_or_why(self) -> list[str]:
        try:
            return self.stuck_jobs()
        except Exception as exc:  # noqa: BLE001 - the drain's failure must not be hidden by its diagnosis
            return [f"(no broker view of the stuck jobs: {type(exc).__name__}: {exc})"]

    def stuck_jobs(self) -> list[str]:
        """Where the broker holds each unfinished job's message: in a queue, or in some worker's
        acknowledgement set (fetched, never acknowledged), and whether that worker's heartbeat is fresh."""
        with self.engine.connect() as conn:
            jobs = conn.execute(text('SELECT id, "jobType", status, attempts, "notBefore", "enqueuedAt" '
                                     "FROM spotify_sync_jobs WHERE status IN ('pending', 'running')")).all()
        ns = RedisKeys(self.env["REDIS_NAMESPACE"]).dramatiq_namespace()
        client = redis.Redis(port=self.redis.port, socket_timeout=5, decode_responses=True)
        messages: dict[str, str] = {}  # job id -> message id
        for key in client.scan_iter(f"{ns}:*.msgs"):
            for message_id, data in client.hscan_iter(key):
                args = json.loads(data).get("args") or [None]
                messages[str(args[0])] = f"{message_id} in {key}"
        holders: dict[str, str] = {}
        scored: Any = client.zrange(f"{ns}:__heartbeats__", 0, -1, withscores=True)
        beats = {str(worker): float(score) for worker, score in scored}
        redis_now_ms = client.time()[0] * 1000
        for key in client.scan_iter(f"{ns}:__acks__.*"):
            worker = key.split("__acks__.", 1)[1].rsplit(".", 1)[0]
            age = f"heartbeat {(redis_now_ms - beats[worker]) / 1000:.0f}s old" if worker in beats else "no heartbeat"
            members: Any = client.smembers(key)
            for message_id in members:
                holders[str(message_id)] = f"acks of worker {worker} ({age})"
        client.close()
        lines = []
        for job in jobs:
            where = messages.get(job.id, "no message in the broker")
            message_id = where.split(" ", 1)[0]
            lines.append(f"stuck {job.jobType} {job.id} {job.status} attempts={job.attempts} notBefore={job.notBefore} "
                         f"enqueuedAt={job.enqueuedAt}: {where}; {holders.get(message_id, 'in no ack set')}")
        return lines

    # --- the figures and the checks ---
    def logs(self) -> list[Path]:
        return [g.log_path for g in self.started]

    def _figures(self, sampler: Sampler, driver: Driver) -> None:
        report = self.report
        stats = self.emulator.stats()
        runs: Runs = read_runs(self.logs())
        self.runs = runs
        counts = job_counts(self.engine)
        report.jobs = sum(counts.values())
        with self.engine.connect() as conn:
            report.tracks = conn.execute(
                text('SELECT count(*) FROM songs WHERE "spotifyLastSync" IS NOT NULL')).scalar() or 0
        report.requests_total = stats["requests_total"]
        report.requests_per_track = report.requests_total / max(1, report.tracks)
        report.rate_limited = stats["rate_limited"]
        report.busiest_window = stats["max_requests_in_window"]["by_client"].get(self.client_id, 0)
        self._series_read_at = -math.inf
        self._keep_series()
        # From the moment every worker was ready: the seconds before (services, enqueueing, the
        # OAuth connect's few calls) are the set-up's, not the fleet's.
        report.saturation = saturation(self.series_since(driver.started_wall), self.plan.emulator_limit)
        report.faults = stats["faults"]
        report.parks_per_job = sum(runs.parks.values()) / max(1, report.jobs)
        report.parks_max = max(runs.parks.values(), default=0)
        report.longest_run_s = runs.longest_s
        report.median_run_s = statistics.median(runs.durations_s) if runs.durations_s else 0.0
        spans = stalls(sampler.samples)
        # Kept beside the workers' logs, for a look at any stall: [epoch s, finished, due].
        (self.log_dir / "samples.json").write_text(json.dumps(
            {"started": driver.started_wall, "samples": sampler.samples, "events": driver.events}))
        report.stall_s = max((end - start for start, end in spans), default=0.0)
        clear = [(end - start, start) for start, end in spans if not self.outages.overlaps(start, end)]
        longest, began = max(clear, default=(0.0, driver.started_wall))
        report.stall_outside_outages_s = longest
        report.stall_at_s = began - driver.started_wall
        report.kills = self.kills
        report.events = driver.events
        report.lock_waits = sampler.lock_waits

    def verify(self) -> list[str]:
        """Every problem found (empty when the run kept every promise)."""
        problems: list[str] = []
        problems += self._jobs_finished()
        problems += self._songs_match_the_catalog()
        problems += self._libraries_complete()
        problems += self._nothing_erased()
        problems += self._no_thread_slept()
        twice = {job: n for job, n in self.runs.completions.items() if n > 1}
        if twice:
            problems.append(f"{len(twice)} jobs completed more than once: {list(twice.items())[:5]}")
        if self.plan.second_client:
            problems += self._second_client_parked()
        return problems

    def _jobs_finished(self) -> list[str]:
        problems = []
        counts = job_counts(self.engine)
        if counts.get("pending") or counts.get("running"):
            problems.append(f"unfinished jobs: {counts}")
        with self.engine.connect() as conn:
            failed = conn.execute(text('SELECT id, "jobType", "errorClass", error FROM spotify_sync_jobs '
                                       "WHERE status = 'failed'")).all()
        for job in failed:
            error_class = getattr(errors, job.errorClass or "", None)
            if not (isinstance(error_class, type) and issubclass(error_class, errors.PipelineError)
                    and not error_class.transient):
                problems.append(f"job {job.id} ({job.jobType}) failed for a reason that is not permanent: "
                                f"{job.errorClass}: {(job.error or '')[:300]}")
        return problems

    def _expected(self, spotify_id: str) -> dict[str, Any] | None:
        index = self.catalog.track_index(spotify_id)
        if index is None:
            return None
        track = self.catalog.track(index)
        return {"title": track["name"], "artist": ", ".join(a["name"] for a in track["artists"]),
                "album": track["album"]["name"], "duration": round(track["duration_ms"] / 1000), "index": index}

    def _songs_match_the_catalog(self) -> list[str]:
        problems = []
        with self.engine.connect() as conn:
            rows = conn.execute(text(
                'SELECT "spotifyId", title, artist, album, duration, "spotifyPopularity", "lastPopularityUpdate", '
                '"spotifyLastSync" FROM songs')).all()
            twice = conn.execute(text('SELECT "spotifyId" FROM songs WHERE "spotifyId" IS NOT NULL '
                                      'GROUP BY "spotifyId" HAVING count(*) > 1')).scalars().all()
        if twice:
            problems.append(f"{len(twice)} ids have more than one row, e.g. {twice[:3]}")
        by_id = {r.spotifyId: r for r in rows}
        missing = [i for i in self.ids if i not in by_id or by_id[i].spotifyLastSync is None]
        if missing:
            problems.append(f"{len(missing)} of {len(self.ids)} backfill ids have no synced row, e.g. {missing[:3]}")
        hours = range(int(self.started_wall // 3600) - 1, int(time.time() // 3600) + 2)
        wrong: list[str] = []
        for row in rows:
            if row.spotifyId in self.outside or row.spotifyLastSync is None:
                continue
            expected = self._expected(row.spotifyId)
            if expected is None:
                wrong.append(f"{row.spotifyId}: not in the catalog")
                continue
            for column in ("title", "artist", "album", "duration"):
                if getattr(row, column) != expected[column]:
                    wrong.append(f"{row.spotifyId}.{column} = {getattr(row, column)!r}, Spotify: {expected[column]!r}")
            allowed = {self.catalog.popularity(expected["index"], h) for h in hours}
            if row.spotifyPopularity not in allowed:
                wrong.append(f"{row.spotifyId}.spotifyPopularity = {row.spotifyPopularity}, Spotify: {sorted(allowed)}")
        if wrong:
            problems.append(f"{len(wrong)} stored values differ from Spotify's, e.g. " + "; ".join(wrong[:5]))
        return problems

    def _libraries_complete(self) -> list[str]:
        problems = []
        for user, emulated in self.plan.users.items():
            expected = set(self.emulator._ok(self.emulator.http.get(f"/_emulator/users/{emulated}/library"))["ids"])
            with self.engine.connect() as conn:
                stored = set(conn.execute(text('SELECT "spotifyId" FROM spotify_saved_tracks WHERE "userId" = :u'),
                                          {"u": user}).scalars())
            if stored != expected:
                problems.append(f"library of {user} ({emulated}): {len(expected - stored)} missing, "
                                f"{len(stored - expected)} extra of {len(expected)}")
        return problems

    def _nothing_erased(self) -> list[str]:
        erased = []
        with self.engine.connect() as conn:
            now = {r[0]: dict(r._mapping) for r in conn.execute(text(
                'SELECT "spotifyId", * FROM songs WHERE "spotifyId" = ANY(:ids)'), {"ids": list(self.seeded)})}
        for spotify_id, before in self.seeded.items():
            after = now.get(spotify_id)
            if after is None:
                erased.append(f"{spotify_id}: the row is gone")
                continue
            for column, value in before.items():
                if value is not None and after[column] is None:
                    erased.append(f"{spotify_id}.{column}")
                changed = column not in ("spotifyPopularity", "lastPopularityUpdate", "updatedAt")
                if spotify_id in self.outside and changed and after[column] != value:
                    erased.append(f"{spotify_id}.{column} changed ({value!r} -> {after[column]!r}) though not synced")
        return [f"{len(erased)} stored values erased or changed, e.g. {erased[:5]}"] if erased else []

    def _no_thread_slept(self) -> list[str]:
        """A run (claim to park/finish) makes at most a few Spotify calls, each bounded by the retry
        budget plus one request's timeouts: a thread that slept on any Retry-After of the run (the
        forced ones, the window's, B's hour) would outlast this bound."""
        per_call_s = RETRY_BUDGET_S + READ_TIMEOUT_S + CONNECT_TIMEOUT_S
        bound_s = 2 * per_call_s + 10.0  # tracks + audio features, and the database's share
        # A run cut off with its host or its database waits as long as the outage: not a sleep.
        clear = [end - start for start, end in self.runs.runs if not self.outages.overlaps(start, end)]
        if not clear:
            return ["no job run found in the workers' logs"]
        if max(clear) > bound_s:
            return [f"a job run lasted {max(clear):.1f}s (> {bound_s:.0f}s) outside any outage: "
                    f"slowest {[round(d, 1) for d in sorted(clear)[-5:]]}"]
        return []

    def _second_client_parked(self) -> list[str]:
        """B's jobs all parked for about an hour, within seconds, their retries untouched."""
        deadline = time.monotonic() + 60
        while True:
            with self.engine_b.connect() as conn:
                rows = conn.execute(text(
                    'SELECT status, "retryCount", "errorClass", EXTRACT(EPOCH FROM "notBefore" - '
                    "(now() AT TIME ZONE 'UTC')) AS ahead_s FROM spotify_sync_jobs")).all()
            parked = [r for r in rows if r.status == "pending" and r.ahead_s is not None]
            if len(parked) == len(rows) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.group_b.stop()
        problems = []
        if len(parked) != len(rows):
            problems.append(f"client B: {len(parked)} of {len(rows)} jobs parked: {[tuple(r) for r in rows][:5]}")
        elif not all(SECOND_CLIENT_RETRY_AFTER_S - 600 < r.ahead_s <= SECOND_CLIENT_RETRY_AFTER_S + 60 for r in parked):
            problems.append(f"client B: not-before not about an hour ahead: {[r.ahead_s for r in parked]}")
        elif {r.retryCount for r in rows} != {0} or {r.errorClass for r in rows} != {"RateLimited"}:
            problems.append(f"client B: {[tuple(r) for r in rows]}")
        b_runs = read_runs([self.group_b.log_path])
        if b_runs.longest_s > 30:
            problems.append(f"client B: a run lasted {b_runs.longest_s:.1f}s after a 429 of an hour")
        return problems

    def execute(self) -> Report:
        """drive() then verify(): fails with every problem found, the figures and the strikes."""
        self.started_wall = time.time()
        report = self.drive()
        problems = self.verify()
        print("\n" + report.lines())
        assert not problems, "\n".join(problems) + "\n\n" + report.lines()
        return report
