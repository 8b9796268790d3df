"""What this Spotify app may call, learned from Spotify's answers (docs/architecture.md, decision 5).

A 403 on batch /tracks?ids= or on /audio-features, or tracks that come without popularity, is
recorded once per client id in `spotify_capabilities` with when it was learned and when to look
again (SPOTIFY_CAPABILITY_RECHECK, default a day). Until then `allowed()` says no and the client
does not make the call (batch tracks fall back to /tracks/{id}). After it, one caller is let
through to probe: a success records the capability as allowed again, another 403 pushes the
recheck on.

How every process of the fleet knows at once without asking Postgres per request: each process
keeps the rows it read, and a Redis version per client id (`RedisKeys.capabilities_version`) is
set to a fresh random value after every row written (after the Postgres commit). `state()` reads
the version (one GET, beside the limiter's round trips) and reads the rows again when it differs
from the version it loaded; a missing version (Redis restarted) is a version too, read once. So a
403 one worker meets is obeyed by every other worker from its very next job, instead of each
process meeting the 403 itself while its copy is fresh. Within a job's run (`once_per_job`, which
workers/run.py opens around every job) the version is read at its first look and then at most
every PER_JOB_RECHECK_S, not at each of the five or so looks a track_sync makes (before and after
each request): a change another process announces during a run of a tenth of a second is obeyed
from the next run, at the cost of at most one request of this run meeting the 403 itself. A
403 met (`forbid`) always reads the version, so it is recorded once, not again per process. The version is random, not a counter:
after Redis loses the key an INCR starts again at 1, and a process that had loaded "1" before the
loss (and made no call while the key was missing) would take the new "1" for its own and keep its
stale rows. The rows are also read again every `backstop_ttl_s` (a version write lost to a Redis
failure).

While Redis does not answer (and without Redis at all: a client built without a database, the
unit tests' fakes), the process falls back to reading the rows every `cache_ttl_s` (and what it
has not seen yet after a second), with one warning per outage, and asks Redis again only after
REDIS_PAUSE_S. So the capabilities never fail a caller themselves; a request to Spotify fails all
the same, with RedisUnavailable (transient: the job is tried again later), because the penalty
box and the limiter before it need the same Redis. What the fallback is for: an answer already in
hand (a 403, or a success, met as Redis failed) is still recorded in Postgres rather than lost
with an error, and work that needs no request goes on (a popularity update where popularity is
known forbidden finishes without one, pipeline/sync.py).

The probe after the recheck time is made by one caller, not by every thread that asks then: a
claim per process, and across processes a Redis SET NX with a short expiry
(`RedisKeys.capability_probe`); the others keep treating the capability as forbidden until the
answer is recorded (or the claim runs out, if the prober never answered: a 5xx, a dead worker).
"""

from __future__ import annotations

import contextvars
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from loguru import logger
from redis.exceptions import RedisError

from pipeline import metrics
from pipeline.store.capabilities import CapabilityState, PostgresCapabilityRows
from shared.clock import utc_now
from shared.keys import RedisKeys

if TYPE_CHECKING:
    from sqlalchemy import Engine

BATCH_TRACKS = "batch_tracks"
AUDIO_FEATURES = "audio_features"
POPULARITY = "popularity"


class CapabilityRows(Protocol):
    def load(self, client_id: str) -> dict[str, CapabilityState]: ...
    def save(self, client_id: str, state: CapabilityState) -> None: ...


class InMemoryCapabilityRows:
    """The fake: the table as a dict."""

    def __init__(self):
        self.rows: dict[tuple[str, str], CapabilityState] = {}

    def load(self, client_id: str) -> dict[str, CapabilityState]:
        return {cap: state for (cid, cap), state in self.rows.items() if cid == client_id}

    def save(self, client_id: str, state: CapabilityState) -> None:
        self.rows[(client_id, state.capability)] = state


UNKNOWN_TTL_S = 1.0  # without Redis: what is not yet known here is read again after this
BACKSTOP_TTL_S = 60.0  # with Redis: the rows are read again at least this often anyway
PROBE_TTL_S = 60.0  # how long one caller holds the probe of a capability due for a recheck
PER_JOB_RECHECK_S = 1.0  # within one job's run, the version is read again after this long
# After a Redis error, reads do not ask Redis again for this long: a Redis that does not answer
# costs a connect timeout and the client's retries on every call.
REDIS_PAUSE_S = 5.0

class _RunMark:
    """A job run's look at the version: when it was last read (monotonic), None before the first."""

    __slots__ = ("checked_at", "lock")

    def __init__(self) -> None:
        self.checked_at: float | None = None
        self.lock = threading.Lock()


_NEVER = object()  # the version before the first load (a missing key, None, is a version)
_NO_REDIS = object()  # the version could not be read


class Capabilities:
    def __init__(
        self,
        rows: CapabilityRows,
        client_id: str,
        *,
        recheck_s: float = 86400,
        cache_ttl_s: float = 10.0,
        redis: Any = None,
        keys: RedisKeys | None = None,
        backstop_ttl_s: float = BACKSTOP_TTL_S,
        probe_ttl_s: float = PROBE_TTL_S,
        per_job_recheck_s: float = PER_JOB_RECHECK_S,
        now: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        if redis is not None and keys is None:
            # No default namespace here: it would have to repeat the settings' and would ignore
            # REDIS_NAMESPACE, sharing versions and probes with another deployment.
            raise ValueError("Capabilities: keys (RedisKeys of the settings' namespace) are required with redis")
        self.client_id = client_id
        self._rows = rows
        self._recheck = timedelta(seconds=recheck_s)
        self._cache_ttl_s = cache_ttl_s
        self._backstop_ttl_s = backstop_ttl_s
        self._probe_ttl_s = probe_ttl_s
        self._per_job_recheck_s = per_job_recheck_s
        self._now = now
        self._monotonic = monotonic
        self._redis = redis
        self._keys = keys  # None only without Redis, where no key is used
        self._version_key = keys.capabilities_version(client_id) if keys is not None else None
        self._lock = threading.Lock()
        self._states: dict[str, CapabilityState] = {}
        self._loaded_at = float("-inf")
        self._version: object = _NEVER
        # capability -> (the recheck time being probed, monotonic time the claim runs out)
        self._probes: dict[str, tuple[datetime | None, float]] = {}
        self._redis_lock = threading.Lock()
        self._redis_failing = False
        self._redis_paused_until = float("-inf")
        # The job run under way (once_per_job) in this context: a context variable, not a thread's,
        # so that the run's requests in flight beside it (pipeline/overlap.py runs them on a pool
        # in a copy of the run's context) share its look at the version: a track_sync of 100 read
        # it about six times, once per thread per look, where one read is the rule.
        self._run: contextvars.ContextVar[_RunMark | None] = contextvars.ContextVar(
            f"capabilities-run-{id(self)}", default=None)

    @classmethod
    def from_settings(cls, settings, engine: Engine, redis: Any = None, keys: RedisKeys | None = None) -> Capabilities:
        if redis is not None and keys is None:
            keys = RedisKeys(settings.redis_namespace)
        return cls(PostgresCapabilityRows(engine), settings.spotify_client_id, recheck_s=settings.capability_recheck_s,
                   redis=redis, keys=keys)

    # --- reading ---

    @contextmanager
    def once_per_job(self) -> Iterator[None]:
        """Within the block (one job's run, and the calls it starts on the overlap pool), the
        version is read at the first look and then at most every `per_job_recheck_s` (see the
        module docstring)."""
        token = self._run.set(_RunMark())
        try:
            yield
        finally:
            self._run.reset(token)

    def _checked_in(self, run: _RunMark) -> bool:
        return run.checked_at is not None and self._monotonic() - run.checked_at < self._per_job_recheck_s

    def state(self, capability: str, *, fresh: bool = False) -> CapabilityState | None:
        """What is known of `capability` (None: nothing yet). `fresh`: read the version even
        where this run has read it already."""
        run = self._run.get()
        if run is None or fresh:
            return self._looked_up(capability, run)
        with run.lock:  # the run's threads looking at once: one reads the version, the others wait for it
            if self._checked_in(run):
                with self._lock:
                    return self._states.get(capability)
            return self._looked_up(capability, run)

    def _looked_up(self, capability: str, run: _RunMark | None) -> CapabilityState | None:
        """The version read, and the rows again if it moved (or their TTL ran out)."""
        version = self._read_version()  # before the rows: a write seen here is in what we load
        if run is not None:
            run.checked_at = self._monotonic()
        with self._lock:
            now = self._monotonic()
            if version is _NO_REDIS:
                # Not yet known here is looked up again sooner: another process may just have
                # learned it (a 403), and asking a forbidden endpoint again is a wasted request.
                unknown_stale = capability not in self._states and now >= self._loaded_at + UNKNOWN_TTL_S
                stale = unknown_stale or now >= self._loaded_at + self._cache_ttl_s
            else:
                stale = version != self._version or now >= self._loaded_at + self._backstop_ttl_s
            if stale:
                self._states = self._rows.load(self.client_id)
                self._loaded_at = now
                if version is not _NO_REDIS:
                    self._version = version
            return self._states.get(capability)

    def allowed(self, capability: str) -> bool:
        """Unknown or allowed: yes. Forbidden: no, until its recheck time has come; then yes for
        the one caller that claims the probe, no for the others until its answer is recorded."""
        state = self.state(capability)
        if state is None or state.allowed:
            return True
        if not self._due(state):
            return False
        return self._claim_probe(capability, state)

    def known_forbidden(self, capability: str) -> bool:
        """Forbidden and not yet due for its recheck: no caller will ask before then. (When
        allowed() says no but this says no too, another caller is probing it.)"""
        return self._known_forbidden(self.state(capability))

    def _known_forbidden(self, state: CapabilityState | None) -> bool:
        return state is not None and not state.allowed and not self._due(state)

    def _due(self, state: CapabilityState) -> bool:
        return state.recheck_after is not None and self._now() >= state.recheck_after

    def _claim_probe(self, capability: str, state: CapabilityState) -> bool:
        with self._lock:
            now = self._monotonic()
            claim = self._probes.get(capability)
            if claim is not None and claim[0] == state.recheck_after and now < claim[1]:
                return False  # a thread of this process probes (or another process does)
            # Held here even when another process wins the Redis claim: then our threads need
            # not ask Redis again until that claim would have run out.
            self._probes[capability] = (state.recheck_after, now + self._probe_ttl_s)
        won = self._ask_redis(lambda r: r.set(self._probe_key(capability), "1",
                                              nx=True, px=max(1, int(self._probe_ttl_s * 1000))))
        return True if won is _NO_REDIS else bool(won)  # without Redis: one probe per process

    # --- writing ---

    def forbid(self, capability: str, reason: str) -> CapabilityState:
        """Record that the app may not use `capability` (once: a standing record is kept as it is)."""
        current = self.state(capability, fresh=True)
        if current is not None and self._known_forbidden(current):
            return current
        now = self._now()
        return self._save(CapabilityState(capability, False, reason, now, now + self._recheck))

    def allow(self, capability: str) -> None:
        """Record that `capability` works (written only when that is news)."""
        current = self.state(capability)
        if current is None or not current.allowed:
            self._save(CapabilityState(capability, True, None, self._now(), None))

    def _save(self, state: CapabilityState) -> CapabilityState:
        self._rows.save(self.client_id, state)
        with self._lock:
            self._states[state.capability] = state
            self._probes.pop(state.capability, None)
        self._announce(state.capability)
        metrics.CAPABILITY_CHANGES.labels(state.capability, str(state.allowed).lower()).inc()
        return state

    def _announce(self, capability: str) -> None:
        """After the row is committed: a new version (every process reads the rows again) and the
        end of the probe (the answer is recorded)."""

        def bump(r) -> None:
            pipe = r.pipeline(transaction=True)
            # Never a value used before, even after Redis lost the key (see the module docstring).
            pipe.set(self._version_key, uuid.uuid4().hex)
            pipe.delete(self._probe_key(capability))
            pipe.execute()

        # Tried even while reads pause (writes are rare); if lost, the others read the table on
        # their backstop reload (or on their TTL, while Redis is down for them too).
        self._ask_redis(bump, even_if_paused=True)

    # --- Redis ---

    def _probe_key(self, capability: str) -> str:
        assert self._keys is not None, "asked for a Redis key without Redis"  # _ask_redis calls only with Redis
        return self._keys.capability_probe(self.client_id, capability)

    def _read_version(self) -> object:
        return self._ask_redis(lambda r: r.get(self._version_key))

    def _ask_redis(self, call: Callable[[Any], Any], *, even_if_paused: bool = False) -> Any:
        """`call(redis)`, or _NO_REDIS when there is no Redis, it failed, or it failed less than
        REDIS_PAUSE_S ago. A failure never fails the caller: it is logged once per outage."""
        if self._redis is None or (not even_if_paused and self._monotonic() < self._redis_paused_until):
            return _NO_REDIS
        try:
            result = call(self._redis)
        except RedisError as exc:
            with self._redis_lock:
                self._redis_paused_until = self._monotonic() + REDIS_PAUSE_S
                first, self._redis_failing = not self._redis_failing, True
            if first:
                logger.warning("capabilities: Redis did not answer; reading the table every {}s until it does",
                               self._cache_ttl_s, error=type(exc).__name__, client_id=self.client_id)
            return _NO_REDIS
        if self._redis_failing:
            with self._redis_lock:
                back, self._redis_failing = self._redis_failing, False
            if back:
                logger.info("capabilities: Redis answers again", client_id=self.client_id)
        return result
