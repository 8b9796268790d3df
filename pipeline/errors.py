"""Every error the pipeline raises, in one tree. Third-party exceptions (httpx, psycopg,
SQLAlchemy, redis) are translated at the boundary that meets them (`raise X(...) from exc`), so
nothing above `pipeline/spotify`, `pipeline/store` or `pipeline/ratecontrol` sees a driver's type.

    PipelineError                 base. `.transient`: may the same work succeed if tried later?
    ├── InputError                what we were handed is wrong (permanent)
    │   ├── InvalidId             not a Spotify track id, URI or URL; names it (also ValueError)
    │   └── BadJob                a job row that cannot run (no ids in its payload, wrong queue)
    ├── RateLimited               do not call Spotify before `.blocked_until` (epoch s, Redis clock)
    │                             or `.retry_after_s` from now. `.source` says who said so: "spotify"
    │                             (this request met a 429), "penalty_box" (the fleet's box was shut:
    │                             no request was made), "budget" (the fleet's own budget was not free
    │                             in time). Park the work; never sleep on it; it uses up no retry.
    ├── SpotifyError              Spotify answered something other than what was asked for, or not at all
    │   ├── Unauthorized          401 that a fresh token did not cure (transient)
    │   ├── Forbidden             403 (permanent)
    │   │   └── CapabilityForbidden   the app may not call this (learned, `.capability`, `.recheck_after`)
    │   ├── NotFound              404 (permanent)
    │   ├── BadRequest            400 (permanent)
    │   ├── ServerError           5xx after the bounded in-call retries (transient)
    │   ├── NetworkError          timeouts, refused or reset connections after the retries (transient)
    │   ├── MalformedResponse     a body that is not what Spotify always sends (transient)
    │   ├── ForeignUrl            a `next` URL not under the API base URL (or not a URL): not
    │   │                         followed, so the token goes to no other host (permanent)
    │   └── AuthError             the accounts service said no (permanent)
    │       ├── InvalidGrant      refresh token revoked or expired, code reused: the user must
    │       │                     authorise again (the connection is marked needs_reauth)
    │       ├── InvalidClient     wrong client id or secret
    │       └── NotConnected      the user has no usable Spotify connection
    ├── StoreError                PostgreSQL said no (pipeline/store translates every driver error)
    │   ├── StoreUnavailable      it cannot be reached, or the connection broke (transient)
    │   ├── StoreConflict         a lock not had in time, a serialization failure, a deadlock (transient)
    │   │   └── ProducerBusy      another producer of the same job type holds its turn
    │   └── StoreIntegrity        a constraint refused the row (permanent)
    ├── RedisUnavailable          Redis (the fleet's budget, penalty box, shared token) did not answer (transient)
    ├── Contended                 another process held what we waited for (the app token's renewal) (transient)
    ├── LeaseLost                 the run no longer holds its job (taken over, cancelled): stop, write nothing
    ├── CoalescedRequestLost      the shared request a thread's ids rode on never came back (transient)
    └── WorkerInterrupted         Dramatiq's time limit or shutdown stopped the run (transient)

What a failure means for a job is decided in one place, `pipeline/retry_policy.py`: RateLimited
parks, a transient error retries with backoff, a permanent one fails at once, and an exception
outside this tree is a bug (the job fails with its traceback in the log).
"""

from __future__ import annotations

from datetime import datetime


class PipelineError(Exception):
    transient: bool = False

    def __init__(self, message: str = ""):
        super().__init__(message)
        self.message = message


# --- what we were handed ------------------------------------------------------------------------


class InputError(PipelineError):
    pass


class InvalidId(InputError, ValueError):
    def __init__(self, raw: object):
        shown = raw if not isinstance(raw, str) else raw[:200]
        super().__init__(f"not a Spotify track id, URI or URL: {shown!r}")
        self.raw = raw


class BadJob(InputError):
    pass


# --- rate limits --------------------------------------------------------------------------------

SPOTIFY = "spotify"
PENALTY_BOX = "penalty_box"
BUDGET = "budget"


class RateLimited(PipelineError):
    """Do not call before `blocked_until`; never sleep on it inside a request or a worker thread.

    `reason` is Spotify's (rate_limit, quota_exceeded) or ours (local_budget); `source` says
    whether this very request met it or the fleet already knew (see the module docstring)."""

    transient = True

    def __init__(self, retry_after_s: float, reason: str = "rate_limit", *, source: str = SPOTIFY,
                 blocked_until: float | None = None, endpoint: str | None = None):
        self.retry_after_s = float(retry_after_s)
        self.reason = reason
        self.source = source
        self.blocked_until = blocked_until
        self.endpoint = endpoint
        super().__init__(self._describe())

    def _describe(self) -> str:
        if self.source == PENALTY_BOX:
            return f"the fleet's penalty box is shut ({self.reason}) for {self.retry_after_s:.1f}s more: no request sent"
        if self.source == BUDGET:
            return f"the fleet's rate budget is spent for {self.retry_after_s:.1f}s: no request sent"
        return f"Spotify answered 429 ({self.reason}), retry after {self.retry_after_s:.1f}s"


# --- Spotify ------------------------------------------------------------------------------------


class SpotifyError(PipelineError):
    def __init__(self, message: str = "", *, status: int | None = None, endpoint: str | None = None):
        super().__init__(message)
        self.status = status
        self.endpoint = endpoint


class Unauthorized(SpotifyError):
    transient = True


class Forbidden(SpotifyError):
    def __init__(self, endpoint: str, message: str = "Forbidden"):
        super().__init__(f"403 on {endpoint}: {message}", status=403, endpoint=endpoint)
        self.message = message


class CapabilityForbidden(Forbidden):
    def __init__(self, capability: str, endpoint: str, recheck_after: datetime | None = None, reason: str = ""):
        super().__init__(endpoint, reason or f"the app may not use {capability}")
        self.capability = capability
        self.recheck_after = recheck_after


class NotFound(SpotifyError):
    pass


class BadRequest(SpotifyError):
    pass


class ServerError(SpotifyError):
    transient = True


class NetworkError(SpotifyError):
    transient = True


class MalformedResponse(SpotifyError):
    transient = True


class ForeignUrl(SpotifyError):
    def __init__(self, host: str | None):
        super().__init__(f"refusing to follow a URL to {host!r}: it is not under the API base URL")
        self.host = host


class AuthError(SpotifyError):
    pass


class InvalidGrant(AuthError):
    """The user must authorise again; do not retry."""


class InvalidClient(AuthError):
    pass


class NotConnected(AuthError):
    pass


# --- our own services ---------------------------------------------------------------------------


class StoreError(PipelineError):
    pass


class StoreUnavailable(StoreError):
    transient = True


class StoreConflict(StoreError):
    transient = True


class ProducerBusy(StoreConflict):
    pass


class StoreIntegrity(StoreError):
    pass


class RedisUnavailable(PipelineError):
    transient = True


class Contended(PipelineError):
    transient = True


# --- a job's run --------------------------------------------------------------------------------


class LeaseLost(PipelineError):
    pass


class CoalescedRequestLost(PipelineError):
    transient = True


class WorkerInterrupted(PipelineError):
    transient = True


TRANSIENT_SPOTIFY = (ServerError, NetworkError, MalformedResponse)  # retried inside a call, briefly
