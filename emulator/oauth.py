"""OAuth as the Spotify accounts service does it: clients, codes, tokens, grants.

- Clients: a fixed set (`clients`), or, with `open_registration` (the default, so every test can
  use its own client id), any client id with a non-empty secret; the first secret seen for a
  client id sticks, a different one is `invalid_client`. PKCE public clients send only client_id.
- /authorize either answers straight away for the emulated user named by `emulated_user`
  (default "demo"), or holds the request while a consent page is shown (emulator/consent.py)
  and issues the code when the page's form posts back. Codes are single-use and bound to
  client, redirect URI and challenge.
- A grant is (client id, user). Revoking it makes its refresh and access tokens invalid at once.
  Refresh tokens expire `refresh_token_ttl_s` after the authorisation that issued the family;
  refreshing never extends that. PKCE refresh tokens rotate (the old one is then revoked);
  confidential refreshes return a new one only with `rotate_confidential_refresh`.
Times are the emulator's clock (tests may move it); store TTLs are only clean-up.
Errors are `TokenError` (flat body of the token endpoint) and `AuthorizeError`.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import orjson

from emulator import keys as K
from emulator.config import EmulatorConfig
from emulator.store import Store

SCOPES = frozenset(
    "ugc-image-upload user-read-playback-state user-modify-playback-state "
    "user-read-currently-playing app-remote-control streaming playlist-read-private "
    "playlist-read-collaborative playlist-modify-private playlist-modify-public "
    "user-follow-modify user-follow-read user-read-playback-position user-top-read "
    "user-read-recently-played user-library-modify user-library-read user-read-email "
    "user-read-private user-personalized user-soa-link user-soa-unlink "
    "soa-manage-entitlements soa-manage-partner soa-create-partner".split()
)
USER_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
USER_RULE = "emulated_user must be 1..64 of [A-Za-z0-9_.-]"
DEFAULT_USER = "demo"
CLEANUP_MARGIN_S = 3600.0


class TokenError(Exception):
    """Answer of the token endpoint: HTTP 400 (401 for invalid_client) with a flat body."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


class AuthorizeError(Exception):
    """/authorize cannot redirect (bad client or redirect URI): an error page, HTTP 400."""


@dataclass(frozen=True)
class AuthorizationRequest:
    """A checked /authorize request: who asks, for what, and where the answer goes."""

    client_id: str
    redirect_uri: str
    state: str | None
    scopes: tuple[str, ...]
    challenge: str | None

    def back(self, **query: str) -> str:
        """The redirect URI with `query` and the request's state."""
        if self.state is not None:
            query["state"] = self.state
        return self.redirect_uri + ("&" if "?" in self.redirect_uri else "?") + urlencode(query)


@dataclass(frozen=True)
class AccessToken:
    client_id: str
    user: str | None  # None for client-credentials tokens
    scopes: frozenset[str]


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def check_redirect_uri(uri: str) -> None:
    """Spotify's rules since November 2025: http only for loopback IP literals, never localhost."""
    parts = urlsplit(uri)
    if not parts.scheme or (parts.scheme in ("http", "https") and not parts.hostname):
        raise AuthorizeError("INVALID_CLIENT: Invalid redirect URI")
    if parts.hostname == "localhost":
        raise AuthorizeError("INVALID_CLIENT: Insecure redirect URI")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "::1"):
        raise AuthorizeError("INVALID_CLIENT: Insecure redirect URI")


class OAuth:
    def __init__(self, store: Store) -> None:
        self._store = store

    # --- clients ---
    def client_known(self, cfg: EmulatorConfig, client_id: str) -> bool:
        return bool(client_id) and (client_id in cfg.clients or cfg.open_registration)

    def authenticate(self, cfg: EmulatorConfig, client_id: str, secret: str) -> None:
        """A confidential client's id and secret, or TokenError invalid_client."""
        if not client_id or not secret:
            raise TokenError("invalid_client", "Invalid client", 400)
        if client_id in cfg.clients:
            if not secrets.compare_digest(cfg.clients[client_id], secret):
                raise TokenError("invalid_client", "Invalid client secret", 400)
            return
        if not cfg.open_registration:
            raise TokenError("invalid_client", "Invalid client", 400)
        key = K.client_secret(client_id)
        self._store.set_nx(key, secret)
        if not secrets.compare_digest(self._store.get(key) or "", secret):
            raise TokenError("invalid_client", "Invalid client secret", 400)

    # --- /authorize ---
    def authorization_request(self, cfg: EmulatorConfig, params: dict[str, str]) -> AuthorizationRequest | str:
        """The checked request, or the URL to send the browser back to with an error.

        Raises AuthorizeError when there is no safe place to send it back to (bad client or redirect URI).
        """
        client_id = params.get("client_id", "")
        if not self.client_known(cfg, client_id):
            raise AuthorizeError("INVALID_CLIENT: Invalid client")
        redirect_uri = params.get("redirect_uri", "")
        check_redirect_uri(redirect_uri)
        request = AuthorizationRequest(client_id, redirect_uri, params.get("state"),
                                       tuple(params.get("scope", "").split()), params.get("code_challenge"))
        if params.get("response_type") != "code":
            return request.back(error="unsupported_response_type")
        if any(s not in SCOPES for s in request.scopes):
            return request.back(error="invalid_scope")
        if request.challenge is not None and params.get("code_challenge_method") != "S256":
            return request.back(error="invalid_request", error_description="code_challenge_method must be S256")
        return request

    def authorize(self, cfg: EmulatorConfig, params: dict[str, str], now: float) -> str:
        """Automatic consent: the URL to redirect to (with code or error), or AuthorizeError.

        The emulated user is `emulated_user` (default "demo"); `emulated_consent=deny` refuses.
        """
        request = self.authorization_request(cfg, params)
        if isinstance(request, str):
            return request
        if params.get("emulated_consent") == "deny":
            return request.back(error="access_denied")
        return self.consent(cfg, request, params.get("emulated_user") or DEFAULT_USER, now)

    def consent(self, cfg: EmulatorConfig, request: AuthorizationRequest, user: str, now: float) -> str:
        """`user` agreed: the URL back to the app with a new single-use code."""
        if not USER_RE.match(user):
            return request.back(error="invalid_request", error_description=USER_RULE)
        code = secrets.token_urlsafe(48)
        record = {
            "client_id": request.client_id, "redirect_uri": request.redirect_uri, "scopes": list(request.scopes),
            "user": user, "challenge": request.challenge, "expires_at": now + cfg.code_ttl_s,
        }
        self._store.set(K.auth_code(code), orjson.dumps(record).decode(), ttl_s=cfg.code_ttl_s + CLEANUP_MARGIN_S)
        return request.back(code=code)

    def hold_for_consent(self, cfg: EmulatorConfig, request: AuthorizationRequest, now: float) -> str:
        """Keep a request while the consent page is shown; the id its form posts back (single use)."""
        request_id = secrets.token_urlsafe(24)
        record = {**dataclasses.asdict(request), "expires_at": now + cfg.code_ttl_s}
        self._store.set(K.consent_request(request_id), orjson.dumps(record).decode(),
                        ttl_s=cfg.code_ttl_s + CLEANUP_MARGIN_S)
        return request_id

    def take_held(self, request_id: str, now: float) -> AuthorizationRequest | None:
        """The request a consent page was shown for, once; None when unknown, used or expired."""
        raw = self._store.pop(K.consent_request(request_id)) if request_id else None
        record = orjson.loads(raw) if raw else None
        if record is None or now >= record.pop("expires_at"):
            return None
        return AuthorizationRequest(**{**record, "scopes": tuple(record["scopes"])})

    # --- /api/token ---
    def client_credentials(self, cfg: EmulatorConfig, client_id: str, secret: str, now: float) -> dict:
        self.authenticate(cfg, client_id, secret)
        return self._access(cfg, client_id, None, [], None, now)

    def exchange_code(
        self, cfg: EmulatorConfig, form: dict[str, str], client_id: str, secret: str | None, now: float
    ) -> tuple[dict, str]:
        """(token response, user) for grant_type=authorization_code."""
        verifier = form.get("code_verifier")
        if secret:
            self.authenticate(cfg, client_id, secret)
        elif not verifier or not self.client_known(cfg, client_id):
            raise TokenError("invalid_client", "Invalid client", 400)
        raw = self._store.pop(K.auth_code(form.get("code", "")))  # single use: gone on first try
        record = orjson.loads(raw) if raw else None
        if record is None or record["client_id"] != client_id or now >= record["expires_at"]:
            raise TokenError("invalid_grant", "Invalid authorization code")
        if form.get("redirect_uri", "") != record["redirect_uri"]:
            raise TokenError("invalid_grant", "Invalid redirect URI")
        pkce = record["challenge"] is not None
        if pkce and (not verifier or s256(verifier) != record["challenge"]):
            raise TokenError("invalid_grant", "code_verifier was incorrect")
        if not pkce and not secret:
            raise TokenError("invalid_client", "Invalid client", 400)
        user = record["user"]
        grant_key = K.grant(client_id, user)
        self._store.set_nx(grant_key, secrets.token_hex(8))
        generation = self._store.get(grant_key)
        response = self._access(cfg, client_id, user, record["scopes"], generation, now)
        response["scope"] = " ".join(record["scopes"])
        response["refresh_token"] = self._new_refresh(cfg, client_id, user, record["scopes"], generation, now, pkce)
        return response, user

    def refresh(
        self, cfg: EmulatorConfig, form: dict[str, str], client_id: str, secret: str | None, now: float
    ) -> tuple[dict, str]:
        """(token response, user) for grant_type=refresh_token."""
        token = form.get("refresh_token", "")
        raw = self._store.get(K.refresh_token(token)) if token else None
        record = orjson.loads(raw) if raw else None
        if record is None:
            raise TokenError("invalid_grant", "Invalid refresh token")
        if secret:
            self.authenticate(cfg, client_id, secret)
        elif not record["pkce"]:
            raise TokenError("invalid_client", "Invalid client", 400)
        if record["client_id"] != client_id:
            raise TokenError("invalid_grant", "Invalid refresh token")
        user = record["user"]
        revoked = (
            record.get("revoked")
            or self._store.get(K.grant(client_id, user)) != record["grant"]
            or now >= record["authorized_at"] + cfg.refresh_token_ttl_s
        )
        if revoked:
            raise TokenError("invalid_grant", "Refresh token revoked")
        response = self._access(cfg, client_id, user, record["scopes"], record["grant"], now)
        response["scope"] = " ".join(record["scopes"])
        if record["pkce"] or cfg.rotate_confidential_refresh:
            response["refresh_token"] = self._new_refresh(
                cfg, client_id, user, record["scopes"], record["grant"], record["authorized_at"], record["pkce"]
            )
            if record["pkce"]:  # single-use: the old one is revoked, and says so
                record["revoked"] = True
                self._store.set(K.refresh_token(token), orjson.dumps(record).decode(), ttl_s=self._refresh_ttl(cfg))
        return response, user

    def _access(self, cfg, client_id, user, scopes, generation, now) -> dict:
        token = secrets.token_urlsafe(64)
        record = {"c": client_id, "u": user, "s": scopes, "e": now + cfg.access_token_ttl_s, "g": generation}
        self._store.set(
            K.access_token(token), orjson.dumps(record).decode(), ttl_s=cfg.access_token_ttl_s + CLEANUP_MARGIN_S
        )
        return {"access_token": token, "token_type": "Bearer", "expires_in": int(cfg.access_token_ttl_s)}

    @staticmethod
    def _refresh_ttl(cfg: EmulatorConfig) -> float:
        return cfg.refresh_token_ttl_s + CLEANUP_MARGIN_S

    def _new_refresh(self, cfg, client_id, user, scopes, generation, authorized_at, pkce) -> str:
        token = secrets.token_urlsafe(96)
        record = {
            "client_id": client_id, "user": user, "scopes": scopes, "grant": generation,
            "authorized_at": authorized_at, "pkce": pkce,
        }
        self._store.set(K.refresh_token(token), orjson.dumps(record).decode(), ttl_s=self._refresh_ttl(cfg))
        return token

    # --- API calls ---
    def check_access(self, token: str, now: float) -> AccessToken | str:
        """The token's grant, or the 401 message ("classic" wording)."""
        raw = self._store.get(K.access_token(token))
        if raw is None:
            return "Invalid access token"
        record = orjson.loads(raw)
        if now >= record["e"]:
            return "The access token expired"
        if record["u"] is not None and self._store.get(K.grant(record["c"], record["u"])) != record["g"]:
            return "Invalid access token"  # the user's grant was revoked
        return AccessToken(record["c"], record["u"], frozenset(record["s"]))

    # --- control ---
    def revoke(self, user: str, client_id: str | None = None) -> int:
        """Revoke a user's grant for one client or every client; the number revoked."""
        if client_id is not None:
            keys = [K.grant(client_id, user)] if self._store.get(K.grant(client_id, user)) else []
        else:
            keys = [k for k in self._store.keys(K.OAUTH + "grant:") if k.endswith(":" + user)]
        self._store.delete(*keys)
        return len(keys)

    def reset(self) -> None:
        self._store.delete_prefix(K.OAUTH)
