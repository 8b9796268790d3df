"""Worker groups of the chaos run: `spotify-sync worker` in a process group of its own (optionally
inside a network namespace), its JSON log kept in a file for the figures at the end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.pipeline_harness import ROOT

CLI = str(Path(sys.executable).parent / "spotify-sync")


class WorkerGroup:
    """One host's `spotify-sync worker` (processes x threads). `prefix` runs it elsewhere, e.g.
    `ip netns exec NS`. SIGKILL takes the whole group at once, as a host or container dies."""

    def __init__(self, name: str, env: dict[str, str], processes: int = 2, threads: int = 4,
                 prefix: tuple[str, ...] = (), log_dir: Path | None = None) -> None:
        self.name = name
        self.expected = processes
        self.log_path = Path(tempfile.mkstemp(prefix=f"chaos-{name}-", suffix=".log", dir=log_dir)[1])
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*prefix, CLI, "worker", "--processes", str(processes), "--threads", str(threads),
                 "--shutdown-timeout", "5s", "--metrics-port", "0"],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ready(self) -> bool:
        return self.output().count("worker process ready") >= self.expected

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.ready():
            if self.process.poll() is not None:
                raise AssertionError(f"worker group {self.name} exited ({self.process.returncode}):\n"
                                     + self.output()[-3000:])
            if time.monotonic() > deadline:
                raise AssertionError(f"worker group {self.name} did not start:\n" + self.output()[-3000:])
            time.sleep(0.1)

    def cpu_s(self) -> float:
        """CPU seconds used so far by the group's processes (the live ones: the main process and
        its workers)."""
        import psutil

        try:
            root = psutil.Process(self.process.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        total = 0.0
        for process in processes:
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                continue
        return total

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL to every process of the group: no shutdown, no acknowledgement, leases left running."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)

    def stop(self, timeout_s: float = 20) -> None:
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Runs:
    """What the workers' JSON logs say about the job runs: each run's duration (from "job
    started" to its end: completed, parked, will retry, failed), parks per job, and failures."""

    runs: list[tuple[float, float]] = field(default_factory=list)  # (started, ended), epoch seconds
    parks: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    completions: dict[str, int] = field(default_factory=dict)  # job id -> "job completed" lines
    last_completed_at: dict[str, float] = field(default_factory=dict)  # log file name -> epoch s

    @property
    def durations_s(self) -> list[float]:
        return [end - start for start, end in self.runs]

    @property
    def longest_s(self) -> float:
        return max(self.durations_s, default=0.0)


def read_runs(logs: list[Path]) -> Runs:
    runs = Runs()
    for path in logs:
        started: dict[str, float] = {}
        for line in path.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by the SIGKILL
            job_id, message = record.get("job_id"), record.get("message", "")
            if record.get("level") == "ERROR":
                runs.errors.append(message)
            if not job_id:
                continue
            at = _epoch(record["time"])
            if message == "job started":
                started[job_id] = at
            elif message == "job completed" or message.startswith(("job parked", "job will retry", "job failed")):
                if job_id in started:
                    runs.runs.append((started.pop(job_id), at))
                if message == "job completed":
                    runs.completions[job_id] = runs.completions.get(job_id, 0) + 1
                    runs.last_completed_at[path.name] = at
                if message.startswith("job parked"):
                    runs.parks[job_id] = runs.parks.get(job_id, 0) + 1
    return runs


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()
