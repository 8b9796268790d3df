"""Users connecting Spotify in their browser: the authorisations the API has started, kept in
Redis so that whichever API instance receives the callback can finish them.

    flow = WebFlow(redis, keys, cipher)
    started = flow.begin(user_id, scopes, return_url="https://app.example/settings")
    url = authorize_url(..., started.state, started.challenge, scopes)   # the browser goes there
    ... Spotify sends the browser to /auth/spotify/callback?code=...&state=...
    pending = flow.consume(state)   # None: unknown, forged, already used or expired
    grant = exchange_code(endpoint, code, pending.verifier, redirect_uri)

A state is `<id>.<secret>`. The id names the Redis key; only the secret's SHA-256 is stored, and
it is compared with `hmac.compare_digest`, so neither the key lookup nor the comparison's timing
tells a forger how close a guess came. An entry lives STATE_TTL_S (ten minutes, Redis expiry)
and is used once: the one caller whose DEL removes it wins, however many callbacks race.
A wrong secret for an existing id leaves the entry alone (a forger cannot cancel a real sign-in).
The PKCE verifier is kept encrypted with the token keys (SPOTIFY_TOKEN_KEYS), as the tokens are:
whoever reads Redis learns neither a state's secret nor a verifier.

An authorisation may also be bound to the browser that started it (`browser_secret`, kept by the
caller in a cookie): then only a callback from that browser finishes it, so a sign-in link sent
to someone else cannot attach their Spotify account to the sender's user.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

import orjson
import redis

from pipeline.auth.flow import new_pkce
from pipeline.errors import RedisUnavailable
from shared.crypto import TokenCipher, TokenDecryptError
from shared.keys import RedisKeys
from shared.logging import register_secret

STATE_TTL_S = 600
_STATE_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


@dataclass(frozen=True)
class Started:
    """What the authorize URL needs: the state to send and the PKCE challenge. repr() hides the state."""

    state: str
    challenge: str

    def __repr__(self) -> str:
        return "Started(***)"


@dataclass(frozen=True)
class PendingAuthorization:
    """A consumed authorisation: whose it is, its PKCE verifier (secret), what it asked for and where
    the browser goes afterwards (`return_url`, or the API's own connect page, or None: the API's
    result page). repr() hides the verifier."""

    user_id: str
    verifier: str
    scopes: tuple[str, ...]
    return_url: str | None
    to_connect_page: bool

    def __repr__(self) -> str:
        return (f"PendingAuthorization(user_id={self.user_id!r}, scopes={self.scopes!r}, "
                f"return_url={self.return_url!r}, to_connect_page={self.to_connect_page!r})")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class WebFlow:
    def __init__(self, client: redis.Redis, keys: RedisKeys, cipher: TokenCipher, *, ttl_s: int = STATE_TTL_S):
        self._redis = client
        self._keys = keys
        self._cipher = cipher
        self.ttl_s = ttl_s

    def begin(self, user_id: str, scopes: tuple[str, ...], *, return_url: str | None = None,
              to_connect_page: bool = False, browser_secret: str | None = None) -> Started:
        """Remember a new authorisation for `user_id` (the caller has checked `return_url` against
        CONNECT_RETURN_URL), bound to `browser_secret` when given; RedisUnavailable when Redis does
        not answer."""
        state_id, secret = secrets.token_urlsafe(16), secrets.token_urlsafe(32)
        pkce = new_pkce()
        entry = {"user_id": user_id, "sealed_verifier": self._cipher.encrypt(pkce.verifier),
                 "scopes": list(scopes), "return_url": return_url,
                 "to_connect_page": to_connect_page, "secret_sha256": _digest(secret),
                 "browser_sha256": _digest(browser_secret) if browser_secret else None}
        try:
            if not self._redis.set(self._keys.oauth_state(state_id), orjson.dumps(entry), ex=self.ttl_s, nx=True):
                raise RedisUnavailable("Redis: a fresh random state id was already taken")  # 128 bits: never
        except redis.RedisError as exc:
            raise RedisUnavailable(f"Redis: {exc}") from exc
        state = f"{state_id}.{secret}"
        register_secret(state)
        return Started(state, pkce.challenge)

    def consume(self, state: str | None, browser_secret: str | None = None) -> PendingAuthorization | None:
        """The authorisation this state belongs to, removed so that it can never be used again; None
        for a state that is malformed, unknown, forged, already used or expired, or that is bound to
        another browser than the one presenting `browser_secret` (then it is left for the right one)."""
        state_id, _, secret = (state or "").partition(".")
        if not _STATE_ID.fullmatch(state_id) or not secret:
            return None
        key = self._keys.oauth_state(state_id)
        try:
            raw = self._redis.get(key)
            if raw is None:
                return None
            entry = orjson.loads(raw)
            if not hmac.compare_digest(_digest(secret), entry["secret_sha256"]):
                return None
            bound = entry.get("browser_sha256")
            if bound and not hmac.compare_digest(_digest(browser_secret or ""), bound):
                return None
            if self._redis.delete(key) != 1:
                return None  # another callback with the same state took it first
        except redis.RedisError as exc:
            raise RedisUnavailable(f"Redis: {exc}") from exc
        try:
            verifier = self._cipher.decrypt(entry["sealed_verifier"])
        except (KeyError, TokenDecryptError):
            return None  # sealed with a key this process no longer has (or by an older version): start again
        register_secret(verifier)  # this process did not make it: mask it here too
        return PendingAuthorization(entry["user_id"], verifier, tuple(entry["scopes"]), entry["return_url"],
                                    bool(entry["to_connect_page"]))
