"""The client-credentials token, shared by the whole fleet through Redis.

One token serves every process. It is renewed `renew_ahead_s` before it expires by one process
at a time (a Redis lock with a timeout); the others keep using the still-valid token meanwhile,
or, when there is none yet, wait briefly for the one being fetched. Expiry is on Redis's clock.
The token is stored encrypted when token keys are configured.
"""

from __future__ import annotations

import json
import threading
import time

import redis
from loguru import logger

from pipeline import metrics
from pipeline.auth.token_endpoint import TokenEndpoint
from pipeline.errors import Contended, RedisUnavailable, SpotifyError
from shared.crypto import TokenCipher
from shared.keys import RedisKeys
from shared.logging import register_secret
from shared.redis_conn import server_time_s

_MIN_VALID_S = 5.0  # a token with less life than this is not handed out


class AppToken:
    def __init__(
        self,
        client: redis.Redis,
        keys: RedisKeys,
        endpoint: TokenEndpoint,
        *,
        cipher: TokenCipher | None = None,
        renew_ahead_s: float = 300.0,
        lock_timeout_s: float = 15.0,
        wait_s: float = 10.0,
    ):
        self._redis = client
        self._endpoint = endpoint
        self._key = keys.app_token(endpoint.client_id)
        self._lock_key = keys.app_token_lock(endpoint.client_id)
        self._cipher = cipher
        self._renew_ahead_s = renew_ahead_s
        self._lock_timeout_s = lock_timeout_s
        self._wait_s = wait_s
        self._local_lock = threading.Lock()
        self._cached: tuple[str, float] | None = None  # (token, monotonic time to look again)

    # --- the contract the client uses ---

    def token(self) -> str:
        cached = self._cached
        if cached and time.monotonic() < cached[1]:
            return cached[0]
        with self._local_lock:  # one thread per process goes to Redis
            cached = self._cached
            if cached and time.monotonic() < cached[1]:
                return cached[0]
            return self._token_from_fleet()

    def invalidate(self, token: str) -> None:
        """Spotify refused `token` (401): forget it here and in Redis (only if it is still the one stored)."""
        with self._local_lock:
            if self._cached and self._cached[0] == token:
                self._cached = None
            stored = self._read()
            if stored and stored[0] == token:
                self._redis.delete(self._key)

    # --- the fleet's side ---

    def _token_from_fleet(self) -> str:
        deadline = time.monotonic() + self._wait_s
        try:
            while True:
                now_s = server_time_s(self._redis)
                stored = self._read()
                left_s = stored[1] - now_s if stored else 0.0
                if stored and left_s > self._renew_ahead_s:
                    return self._remember(stored[0], left_s)
                lock = self._redis.lock(self._lock_key, timeout=self._lock_timeout_s, blocking=False)
                if lock.acquire(blocking=False):
                    try:
                        return self._renew()
                    finally:
                        try:
                            lock.release()
                        except redis.exceptions.LockError:
                            pass  # it timed out and another process holds it now: nothing to undo
                if stored and left_s > _MIN_VALID_S:
                    # Another process is renewing; this one is still good for a while.
                    return self._remember(stored[0], min(left_s - _MIN_VALID_S, 1.0))
                if time.monotonic() > deadline:
                    raise Contended("no client-credentials token: another process holds the renewal lock")
                time.sleep(0.05)
        except redis.exceptions.RedisError as exc:
            raise RedisUnavailable(f"the app token's Redis did not answer: {exc.__class__.__name__}") from exc

    def _renew(self) -> str:
        now_s = server_time_s(self._redis)
        stored = self._read()  # someone may have renewed between our read and our lock
        if stored and stored[1] - now_s > self._renew_ahead_s:
            return self._remember(stored[0], stored[1] - now_s)
        try:
            grant = self._endpoint.request({"grant_type": "client_credentials"})
        except SpotifyError:
            metrics.TOKEN_REFRESHES.labels("app", "error").inc()
            raise
        metrics.TOKEN_REFRESHES.labels("app", "ok").inc()
        expires_at_s = now_s + grant.expires_in_s
        value = self._cipher.encrypt(grant.access_token) if self._cipher else grant.access_token
        self._redis.set(self._key, json.dumps({"token": value, "expires_at_s": expires_at_s}),
                        px=int(grant.expires_in_s * 1000))
        logger.info("client-credentials token renewed", expires_in_s=grant.expires_in_s)
        return self._remember(grant.access_token, grant.expires_in_s)

    def _read(self) -> tuple[str, float] | None:
        raw = self._redis.get(self._key)
        if not raw:
            return None
        try:
            data = json.loads(raw)
            token = self._cipher.decrypt(data["token"]) if self._cipher else data["token"]
            register_secret(token)
            return token, float(data["expires_at_s"])
        except Exception:  # noqa: BLE001  a value we cannot read is as good as none
            return None

    def _remember(self, token: str, left_s: float) -> str:
        # Look at Redis again when renewal is due (or sooner), so a renewal by any process is seen.
        self._cached = (token, time.monotonic() + max(0.0, left_s - self._renew_ahead_s))
        return token
