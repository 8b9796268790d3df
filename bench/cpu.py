"""CPU seconds by process group over a stretch of a benchmark run: where a run's CPU went.

On a 2-core host every process of a run shares the same cores: the emulator, PostgreSQL's
backends, Redis and the clients. A throughput figure alone cannot say whether a client could go
faster or whether the services it talks to already take the machine; CPU seconds per 1,000 tracks
by group can (bench/throughput.py prints them for both sides).

`CpuMeter({"workers": finder, ...})` polls every `interval_s`: each group's finder names its
process ids, and each process's user + system CPU seconds (/proc, through psutil) are read. A
process seen first after the meter started counts from zero (all its CPU is the run's); one that
was there already counts from its first reading. `between(t0, t1)` gives each group's CPU seconds
between two moments of the wall clock (time.time(), the host's, which PostgreSQL's timestamps share
on this host), read off the polled series by linear interpolation, so the window can be the
ledger's (first job started to last completed) and leave start-up and shutdown out.

What a process spends after its last poll before it exits is lost: stop the meter before the
processes it measures end, or measure a window that ends before they do.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterable

import psutil

Finder = Callable[[], Iterable[int]]


class CpuMeter:
    def __init__(self, groups: dict[str, Finder], *, interval_s: float = 0.1, rescan_s: float = 0.5):
        self.groups = groups
        self.interval_s = interval_s
        self.rescan_s = rescan_s  # how often the finders are asked again (children() scans /proc)
        self._procs: dict[int, tuple[str, psutil.Process, float]] = {}  # pid -> (group, process, baseline)
        self._last: dict[int, float] = {}  # pid -> CPU seconds at its latest reading
        self._times: list[float] = []
        self._totals: list[dict[str, float]] = []
        self._started = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="cpu-meter")

    def start(self) -> CpuMeter:
        self._scan(first=True)
        self._sample()
        self._started = True
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sample()

    def __enter__(self) -> CpuMeter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        scanned = time.monotonic()
        while not self._stop.wait(self.interval_s):
            if time.monotonic() - scanned >= self.rescan_s:
                self._scan(first=False)
                scanned = time.monotonic()
            self._sample()

    def _scan(self, *, first: bool) -> None:
        for group, finder in self.groups.items():
            try:
                pids = list(finder())
            except (psutil.Error, OSError):
                continue
            for pid in pids:
                if pid in self._procs:
                    continue
                try:
                    proc = psutil.Process(pid)
                    cpu = _cpu_s(proc)
                except psutil.Error:
                    continue
                # There before the meter: its earlier CPU is not this run's.
                self._procs[pid] = (group, proc, cpu if first else 0.0)
                self._last[pid] = cpu

    def _sample(self) -> None:
        for pid, (_group, proc, _baseline) in list(self._procs.items()):
            try:
                self._last[pid] = _cpu_s(proc)
            except psutil.Error:
                pass  # gone: its last reading stands
        totals = dict.fromkeys(self.groups, 0.0)
        for pid, (group, _proc, baseline) in self._procs.items():
            totals[group] += self._last[pid] - baseline
        self._times.append(time.time())
        self._totals.append(totals)

    def between(self, t0: float, t1: float) -> dict[str, float]:
        """Each group's CPU seconds from t0 to t1 (time.time() moments within the metered span)."""
        return {g: self._at(t1, g) - self._at(t0, g) for g in self.groups}

    def _at(self, moment: float, group: str) -> float:
        times = self._times
        i = bisect.bisect_left(times, moment)
        if i == 0:
            return self._totals[0][group]
        if i == len(times):
            return self._totals[-1][group]
        t_a, t_b = times[i - 1], times[i]
        a, b = self._totals[i - 1][group], self._totals[i][group]
        return a + (b - a) * ((moment - t_a) / (t_b - t_a) if t_b > t_a else 1.0)


def _cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """User + system CPU seconds of these processes so far (one that has ended counts nothing)."""
    total = 0.0
    for proc in processes:
        try:
            total += _cpu_s(proc)
        except psutil.Error:
            pass
    return total


# --- finders ------------------------------------------------------------------------------------


def fixed(*pids: int) -> Finder:
    return lambda: pids


def children_of(root_pid: int) -> Finder:
    """The processes under `root_pid`, not itself (Dramatiq's supervising parent only waits)."""
    return lambda: [p.pid for p in psutil.Process(root_pid).children(recursive=True)]


def postgres_backends(postmaster_pid: int, database: str) -> Finder:
    """The server's backends connected to `database`: PostgreSQL sets each backend's process title
    to "postgres: USER DATABASE HOST(PORT) STATE", so other databases' work (another benchmark, a
    test run beside this one) is left out. Server-wide helpers (WAL writer, checkpointer) are too."""
    def find() -> list[int]:
        found = []
        for child in psutil.Process(postmaster_pid).children():
            try:
                title = " ".join(child.cmdline())
            except psutil.Error:
                continue
            if f" {database} " in f" {title} ":
                found.append(child.pid)
        return found
    return find


def local_pid_of_postgres(engine) -> int | None:
    """The postmaster's pid when PostgreSQL runs on this host (the parent of our backend), else None."""
    from sqlalchemy import text

    with engine.connect() as conn:
        backend = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        database = conn.execute(text("SELECT current_database()")).scalar_one()
    try:
        proc = psutil.Process(backend)
        if database not in " ".join(proc.cmdline()):
            return None  # a pid of another host's server
        return proc.ppid()
    except psutil.Error:
        return None


def local_pid_of_redis(url: str) -> int | None:
    """redis-server's pid when it runs on this host, else None."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        pid = int(client.info("server")["process_id"])
    finally:
        client.close()
    try:
        return pid if "redis" in psutil.Process(pid).name() else None
    except psutil.Error:
        return None


def service_groups(emulator_pid: int, engine, database: str, redis_url: str) -> dict[str, Finder]:
    """The groups every run of a benchmark talks to: the emulator, its database's backends and
    Redis (shared with whatever else uses this Redis: its figure is an upper bound)."""
    groups: dict[str, Finder] = {"emulator": fixed(emulator_pid)}
    postmaster = local_pid_of_postgres(engine)
    if postmaster is not None:
        groups["postgres"] = postgres_backends(postmaster, database)
    redis_pid = local_pid_of_redis(redis_url)
    if redis_pid is not None:
        groups["redis"] = fixed(redis_pid)
    return groups


def per_thousand(cpu_s: dict[str, float], tracks: int) -> dict[str, float]:
    return {group: seconds * 1000 / tracks for group, seconds in cpu_s.items()}


def breakdown(per_1000: dict[str, float]) -> str:
    return ", ".join(f"{group} {seconds:.3f}" for group, seconds in per_1000.items())
