"""The lease keeper: one thread per worker process renews the leases of the runs in progress
every third of JOB_LEASE, in one statement, so a long run keeps its job and a dead one loses it
quickly (the lost-worker rule: pipeline/store/ledger.py, `lease_ran_out`). Each renewal also stamps
the row's "updatedAt": a lease that ran out with no write since PostgreSQL last started ran out
because the database was down, and its takeover is not charged to the job (`_lost_worker_charge`).

Only the leases that are due are renewed: those claimed or renewed at least a sixth of JOB_LEASE
ago (so a lease is renewed with at least half of it left). Most runs (a track_sync of 100 takes a
few tenths of a second) finish on the lease of their claim: no row is written for them, and a
tick with nothing due sends no statement."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from loguru import logger
from sqlalchemy import Engine

from pipeline.errors import PipelineError
from pipeline.store import ledger
from pipeline.store.ledger import Job


class LeaseKeeper:
    """Renews the leases of this process's runs in progress; remembers the runs that lost theirs."""

    def __init__(self, engine: Engine, lease_s: int, *, monotonic: Callable[[], float] = time.monotonic):
        self.engine = engine
        self.lease_s = lease_s
        self._monotonic = monotonic
        self._runs: dict[str, Job] = {}
        self._renewed_at: dict[str, float] = {}  # job id -> when its lease was last set (monotonic)
        self._lost: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="lease-keeper", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    @contextmanager
    def holding(self, job: Job) -> Iterator[None]:
        with self._lock:
            self._runs[job.id] = job
            self._renewed_at[job.id] = self._monotonic()  # the claim has just set its lease
        try:
            yield
        finally:
            with self._lock:
                self._runs.pop(job.id, None)
                self._renewed_at.pop(job.id, None)
                self._lost.discard(job.id)

    def lost(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._lost

    def renew_now(self) -> None:
        """Renew the leases that are due (see the module docstring), in one statement."""
        now = self._monotonic()
        with self._lock:
            runs = [r for r in self._runs.values() if now - self._renewed_at[r.id] >= self.lease_s / 6]
        if not runs:
            return
        held = ledger.renew_leases(self.engine, runs, self.lease_s)
        with self._lock:
            for run in runs:
                if run.id in self._runs:
                    self._renewed_at[run.id] = now
            self._lost.update(r.id for r in runs if r.id not in held and r.id in self._runs)

    def _loop(self) -> None:
        while not self._stop.wait(max(self.lease_s / 3, 1)):
            try:
                self.renew_now()
            except PipelineError as exc:  # keep renewing; a lease that lapses is taken over
                logger.warning("could not renew job leases: {}", exc)
