"""Every error the Spotify client raises, in one hierarchy.

    SpotifyError                      base; `.permanent` tells a worker whether retrying can help
    ├── RateLimited                   429, the penalty box, or our own budget not free in time.
    │                                 `.retry_after_s` (seconds from now), `.blocked_until` (epoch
    │                                 seconds, Redis clock), `.reason`. Park the job until then; it
    │                                 must not use up the job's retry budget. (transient)
    ├── Unauthorized                  401 that a fresh token did not cure (transient)
    ├── Forbidden                     403: `.endpoint`, `.message` (permanent)
    │   └── CapabilityForbidden       the app may not call this (learned, `.capability`,
    │                                 `.recheck_after`): leave the data empty with the reason (permanent)
    ├── NotFound                      404 (permanent)
    ├── BadRequest                    400 (permanent)
    │   └── InvalidId                 input that is not a Spotify track id; names it (also ValueError)
    ├── ServerError                   5xx after the bounded retries (transient)
    ├── NetworkError                  timeouts, refused/reset connections after the retries (transient)
    ├── MalformedResponse             a body that is not the JSON we expect (transient)
    ├── ForeignUrl                    a `next` URL not under the API base URL: not followed, so the
    │                                 token goes to no other host; names the host (permanent)
    ├── LimiterUnavailable            Redis, which holds the fleet's budget, did not answer (transient)
    └── AuthError                     the accounts service said no
        ├── InvalidGrant              refresh token revoked/expired, code reused: the user must
        │                             authorise again; the connection is marked needs_reauth (permanent)
        ├── InvalidClient             wrong client id/secret (permanent)
        └── NotConnected              the user has no usable Spotify connection (permanent)

httpx, JSON and Redis exceptions are translated into these at the boundary (`raise X from exc`);
nothing above pipeline/spotify sees a third-party exception type.

`get_tracks`, which may make many requests, sets `.partial` on whatever stops it part way (any of
these, or a worker's interrupt): the tracks fetched before it, by id, for the caller to keep.
"""

from __future__ import annotations

from datetime import datetime


class SpotifyError(Exception):
    permanent: bool = False
    partial: dict | None = None  # set by get_tracks when it stops part way

    def __init__(self, message: str = "", *, status: int | None = None, endpoint: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.endpoint = endpoint


class RateLimited(SpotifyError):
    """Do not call before `blocked_until`; never sleep on it inside a request or a worker thread."""

    def __init__(
        self,
        retry_after_s: float,
        reason: str = "rate_limit",
        *,
        blocked_until: float | None = None,
        endpoint: str | None = None,
    ):
        super().__init__(f"rate limited ({reason}), retry after {retry_after_s:.1f}s", status=429, endpoint=endpoint)
        self.retry_after_s = float(retry_after_s)
        self.reason = reason
        self.blocked_until = blocked_until


class Unauthorized(SpotifyError):
    pass


class Forbidden(SpotifyError):
    permanent = True

    def __init__(self, endpoint: str, message: str = "Forbidden"):
        super().__init__(f"403 on {endpoint}: {message}", status=403, endpoint=endpoint)
        self.message = message


class CapabilityForbidden(Forbidden):
    def __init__(self, capability: str, endpoint: str, recheck_after: datetime | None = None, reason: str = ""):
        super().__init__(endpoint, reason or f"the app may not use {capability}")
        self.capability = capability
        self.recheck_after = recheck_after


class NotFound(SpotifyError):
    permanent = True


class BadRequest(SpotifyError):
    permanent = True


class InvalidId(BadRequest, ValueError):
    def __init__(self, raw: object):
        super().__init__(f"not a Spotify track id, URI or URL: {raw!r}")
        self.raw = raw


class ServerError(SpotifyError):
    pass


class NetworkError(SpotifyError):
    pass


class MalformedResponse(SpotifyError):
    pass


class ForeignUrl(SpotifyError):
    permanent = True

    def __init__(self, host: str | None):
        super().__init__(f"refusing to follow a URL to {host!r}: it is not under the API base URL")
        self.host = host


class LimiterUnavailable(SpotifyError):
    pass


class AuthError(SpotifyError):
    permanent = True


class InvalidGrant(AuthError):
    """The user must authorise again (`spotify-sync connect`); do not retry."""


class InvalidClient(AuthError):
    pass


class NotConnected(AuthError):
    pass
