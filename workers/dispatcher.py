"""The dispatcher: the ledger decides when parked work runs again, not the broker.

A parked job (a 429, a backoff) has no message out: its row says when it may run (`notBefore`).
One thread per worker process ticks every `every_s`; on each tick one process of the fleet (a
short Redis claim) does the work:
- **due jobs**: parked jobs whose time has come get their message (`ledger.take_due`), the
  longest due first and at most `release_per_s` a second, so that the thousand jobs one 429
  parked come back at about the pace the budget admits instead of all in the same second; none
  while the fleet's penalty box is shut (they would only park again). The pace is the one the
  return line gives parked jobs their slots at (pipeline/ratecontrol/pacer.py: the worker
  process hands in `background_per_s` of the fleet's budget), counted the same way;
- **a broker that lost its messages**: a marker key in the broker's Redis is set once; when it
  is missing (Redis restarted without persistence, or flushed), every pending job without a live
  message is sent again at once, and the marker set anew;
- **lost workers' jobs**: a job whose lease ran out (its worker SIGKILLed, a host gone) goes back
  to pending with a message, so it runs again about a tick after JOB_LEASE, not at the next
  reconcile (a minute; cron's, five);
- **the reconciler**, every `reconcile_every_s`: that, and pending jobs without a live message
  (`pipeline/reconciler.py`), so the fleet needs no cron to recover.

Work therefore resumes within a tick or two of Redis answering again, whatever Dramatiq dropped
from memory meanwhile. Several hosts at once are safe: `take_due` and the reconciler are
compare-and-set on the rows, and a duplicate message is harmless (a claim is one too).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import dramatiq
import redis
from loguru import logger
from sqlalchemy import Engine

from pipeline.errors import PipelineError
from pipeline.metrics import RECONCILED
from pipeline.ratecontrol.pacer import ReleaseAllowance
from pipeline.reconciler import reconcile, take_back_lost
from pipeline.store import ledger
from shared.keys import RedisKeys
from workers.broker import live_job_ids

DISPATCH_EVERY_S = 1.0
RECONCILE_EVERY_S = 60.0


class Dispatcher:
    def __init__(self, engine: Engine, broker: dramatiq.Broker, send: Callable[[str, str, float], None],
                 redis_client: redis.Redis, keys: RedisKeys, *, max_retries: int,
                 release_per_s: float | Callable[[], float],
                 penalty_s: Callable[[], float] = lambda: 0.0, every_s: float = DISPATCH_EVERY_S,
                 reconcile_every_s: float = RECONCILE_EVERY_S):
        self._engine = engine
        self._broker = broker
        self._send = send
        self._redis = redis_client
        self._keys = keys
        self._max_retries = max_retries
        # A learned budget (SPOTIFY_RATE_LIMIT=auto) moves: then the pace is asked at every tick.
        self._releases = ReleaseAllowance(release_per_s if callable(release_per_s) else (lambda: release_per_s), every_s)
        self._penalty_s = penalty_s
        self.every_s = every_s
        self._reconcile_every_s = reconcile_every_s
        self._last_reconcile = float("-inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._me = uuid.uuid4().hex

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="dispatcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.tick()
            except (PipelineError, redis.RedisError, dramatiq.errors.BrokerError) as exc:
                # The database, Redis or the broker is away: the next tick tries again.
                logger.debug("dispatcher: tick skipped: {}", exc)

    def tick(self) -> int:
        """One round (when this process holds the fleet's turn); returns how many messages it sent."""
        if not self._redis.set(self._keys.dispatcher_turn(), self._me, nx=True, px=int(self.every_s * 900)):
            return 0
        sent = 0
        if self._broker_lost_its_messages():
            sent += self._reconcile(grace_s=0, why="the broker's Redis lost its data")
        elif time.monotonic() - self._last_reconcile >= self._reconcile_every_s:
            sent += self._reconcile(grace_s=120, why=None)
        else:
            sent += self._take_back_lost()
        release = self._releases.take() if self._penalty_s() <= 0 else 0
        if release:
            for job_id, job_type in ledger.take_due(self._engine, limit=release):
                self._send(job_type, job_id, 0.0)
                sent += 1
        return sent

    def _broker_lost_its_messages(self) -> bool:
        """True (once) when the marker in the broker's Redis is gone: set it for next time."""
        client = getattr(self._broker, "client", None)
        if client is None:  # RabbitMQ keeps its messages; its pending jobs are judged by age
            return False
        return bool(client.set(self._keys.broker_epoch(), uuid.uuid4().hex, nx=True))

    def _take_back_lost(self) -> int:
        taken, failed = take_back_lost(self._engine, self._send, self._max_retries)
        RECONCILED.labels("lease_expired").inc(taken)
        if taken:
            logger.info("dispatcher took back {} job(s) whose worker was lost ({} failed: worker lost too often)",
                        taken, failed)
        return taken - failed

    def _reconcile(self, *, grace_s: int, why: str | None) -> int:
        self._last_reconcile = time.monotonic()
        result = reconcile(self._engine, self._send, lambda: live_job_ids(self._broker),
                           max_retries=self._max_retries, grace_s=grace_s)
        RECONCILED.labels("lease_expired").inc(result.leases_expired)
        RECONCILED.labels("resent").inc(result.pending_resent)
        if why or result.leases_expired or result.pending_resent:
            logger.info("dispatcher reconciled: {}{}", result.summary(), f" ({why})" if why else "")
        return result.pending_resent + result.leases_expired - result.failed_worker_lost
