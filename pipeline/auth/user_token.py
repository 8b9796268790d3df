"""A user's access token, refreshed by one worker at a time.

The refresh runs under the connection row's lock (SELECT ... FOR UPDATE, in
pipeline/store/connections.py): the first worker to take it refreshes and commits the new tokens;
the others wait on the lock, then find a fresh token and use it. A rotated refresh token is
committed before the new access token is handed out; when none comes back the old one is kept.
`invalid_grant` marks the connection needs_reauth and raises InvalidGrant, which workers do not
retry; after that no token request is made for the user until they connect again.
"""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import Engine

from pipeline import metrics
from pipeline.auth.token_endpoint import TokenEndpoint, TokenGrant
from pipeline.errors import InvalidGrant, NotConnected, SpotifyError
from pipeline.store.connections import UserTokens, load_tokens, refresh_under_lock
from shared.clock import utc_now
from shared.crypto import TokenCipher
from shared.logging import register_secret

NEEDS_REAUTH = "needs_reauth"


class UserToken:
    def __init__(self, engine: Engine, cipher: TokenCipher, endpoint: TokenEndpoint, user_id: str,
                 *, refresh_ahead_s: float = 60.0):
        self.user_id = user_id
        self._engine = engine
        self._cipher = cipher
        self._endpoint = endpoint
        self._ahead = timedelta(seconds=refresh_ahead_s)
        self._lock = threading.Lock()
        self._cached: UserTokens | None = None
        self._rejected: str | None = None  # an access token Spotify answered 401 to

    def token(self) -> str:
        with self._lock:
            tokens = self._cached
            if tokens is None or not self._usable(tokens):
                tokens = load_tokens(self._engine, self._cipher, self.user_id)
                if tokens is None:
                    raise NotConnected(f"user {self.user_id} has no Spotify connection")
                self._raise_if_revoked(tokens)
                if not self._usable(tokens):
                    tokens = self._refresh()
            self._cached = tokens
            register_secret(tokens.access_token)
            return tokens.access_token

    def invalidate(self, token: str) -> None:
        with self._lock:
            self._rejected = token
            self._cached = None

    def _usable(self, tokens: UserTokens) -> bool:
        return (tokens.status != NEEDS_REAUTH and tokens.access_token != self._rejected
                and tokens.expires_at - utc_now() > self._ahead)

    def _raise_if_revoked(self, tokens: UserTokens) -> None:
        if tokens.status == NEEDS_REAUTH:
            raise InvalidGrant(f"user {self.user_id} must authorise again (spotify-sync connect --user {self.user_id})")

    def _refresh(self) -> UserTokens:
        def refresh(refresh_token: str | None) -> TokenGrant | None:
            if not refresh_token:
                return None
            try:
                grant = self._endpoint.request({"grant_type": "refresh_token", "refresh_token": refresh_token})
            except InvalidGrant:
                metrics.TOKEN_REFRESHES.labels("user", "invalid_grant").inc()
                return None
            except SpotifyError:
                metrics.TOKEN_REFRESHES.labels("user", "error").inc()
                raise
            metrics.TOKEN_REFRESHES.labels("user", "ok").inc()
            return grant

        tokens = refresh_under_lock(
            self._engine, self._cipher, self.user_id,
            needs_refresh=lambda current: not self._usable(current),
            refresh=refresh,
        )
        if tokens is None:
            raise NotConnected(f"user {self.user_id} has no Spotify connection")
        self._raise_if_revoked(tokens)
        return tokens
