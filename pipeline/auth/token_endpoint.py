"""The accounts service's POST /api/token: one function, bounded retries, errors translated."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from loguru import logger

from pipeline.spotify.http import bounded_retry, send
from pipeline.spotify.responses import token_result
from shared.logging import register_secret


@dataclass(frozen=True)
class TokenGrant:
    """A token response. repr() hides the tokens."""

    access_token: str
    expires_in_s: int
    refresh_token: str | None = None
    scopes: tuple[str, ...] | None = None

    def __repr__(self) -> str:
        return f"TokenGrant(expires_in_s={self.expires_in_s}, refresh_token={'***' if self.refresh_token else None})"

    @classmethod
    def from_json(cls, payload: dict) -> TokenGrant:
        refresh = payload.get("refresh_token")
        scope = payload.get("scope")
        expires = payload.get("expires_in")
        grant = cls(
            access_token=payload["access_token"],
            expires_in_s=int(expires) if isinstance(expires, (int, float)) and expires > 0 else 3600,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            scopes=tuple(scope.split()) if isinstance(scope, str) else None,
        )
        register_secret(grant.access_token)
        register_secret(grant.refresh_token)
        return grant


def basic_auth(client_id: str, client_secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()


class TokenEndpoint:
    """POST form data to {accounts}/api/token. Confidential clients authenticate with Basic;
    without a secret (a public PKCE client) the client id goes in the body. A 429 raises
    RateLimited (Retry-After, reason) at once; the API client puts it in the penalty box."""

    def __init__(self, http: httpx.Client, accounts_base_url: str, client_id: str, client_secret: str | None,
                 *, retry_budget_s: float = 8.0, attempts: int = 4, retry_after_default_s: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep):
        self._http = http
        self._url = accounts_base_url.rstrip("/") + "/api/token"
        self.client_id = client_id
        self._secret = client_secret
        self._retry_budget_s = retry_budget_s
        self._attempts = attempts
        self._retry_after_default_s = retry_after_default_s
        self._sleep = sleep

    def request(self, form: dict[str, str], *, confidential: bool = True) -> TokenGrant:
        headers = {}
        form = dict(form)
        if confidential and self._secret:
            headers["Authorization"] = basic_auth(self.client_id, self._secret)
        else:
            form["client_id"] = self.client_id
        retrying = bounded_retry(attempts=self._attempts, budget_s=self._retry_budget_s, sleep=self._sleep)
        return retrying(self._send, form, headers)

    def _send(self, form: dict, headers: dict) -> TokenGrant:
        started = time.perf_counter()
        response = send(lambda: self._http.post(self._url, data=form, headers=headers), "/api/token")
        logger.debug("spotify token request", grant_type=form.get("grant_type"), status=response.status_code,
                     latency_ms=round((time.perf_counter() - started) * 1000, 1))
        return TokenGrant.from_json(token_result(response.status_code, response.headers, response.content,
                                                 self._retry_after_default_s))
