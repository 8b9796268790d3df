"""The authorisation-code flow with PKCE (S256) and state, up to a stored connection.

    pkce, state = new_pkce(), new_state()
    url = authorize_url(settings, state, pkce.challenge, scopes)     # the user opens it
    ... the redirect brings back ?code=...&state=... (check the state!)
    grant = exchange_code(endpoint, code, pkce.verifier, settings.spotify_redirect_uri)
    tokens = store_connection(settings, engine, client, user_id, grant)
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy import Engine

from pipeline.auth.token_endpoint import TokenEndpoint, TokenGrant
from pipeline.store import connections
from pipeline.store.connections import UserTokens
from shared.crypto import TokenCipher
from shared.logging import register_secret

DEFAULT_SCOPES = ("user-library-read", "user-read-private", "user-read-email")


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str

    def __repr__(self) -> str:
        return "Pkce(***)"


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def new_pkce() -> Pkce:
    verifier = secrets.token_urlsafe(64)  # 86 characters of [A-Za-z0-9_-]: within 43..128
    register_secret(verifier)
    return Pkce(verifier, s256(verifier))


def new_state() -> str:
    return secrets.token_urlsafe(24)


def authorize_url(accounts_base_url: str, client_id: str, redirect_uri: str, state: str, challenge: str,
                  scopes: tuple[str, ...] = DEFAULT_SCOPES, extra: dict[str, str] | None = None) -> str:
    query = {
        "client_id": client_id, "response_type": "code", "redirect_uri": redirect_uri, "state": state,
        "scope": " ".join(scopes), "code_challenge_method": "S256", "code_challenge": challenge,
        **(extra or {}),
    }
    return accounts_base_url.rstrip("/") + "/authorize?" + urlencode(query)


def exchange_code(endpoint: TokenEndpoint, code: str, verifier: str, redirect_uri: str) -> TokenGrant:
    """Codes are single-use: a second try gives InvalidGrant."""
    return endpoint.request({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                             "code_verifier": verifier})


def store_connection(engine: Engine, cipher: TokenCipher, user_id: str, spotify_user_id: str, grant: TokenGrant,
                     requested_scopes: tuple[str, ...], now: datetime | None = None) -> UserTokens:
    """A new authorisation: tokens encrypted, status active, authorizedAt now (the database's
    clock); the application's users row is created when missing."""
    now = now or connections.db_now(engine)
    tokens = UserTokens(
        user_id=user_id, spotify_user_id=spotify_user_id, access_token=grant.access_token,
        refresh_token=grant.refresh_token, expires_at=now + timedelta(seconds=grant.expires_in_s),
        scopes=grant.scopes if grant.scopes is not None else requested_scopes, authorized_at=now, status="active",
    )
    connections.save_connection(engine, cipher, tokens)
    return tokens
