"""Users connect Spotify in their browser (the web OAuth flow), and callers see and remove connections.

    POST   /v1/connections/{userId}/authorize     bearer: {"authorize_url": ...} for that user
    GET    /auth/spotify/callback?code&state      public: Spotify sends the browser here (API_REDIRECT_URI)
    GET    /v1/connections/{userId}               bearer: the connection, never a token
    DELETE /v1/connections/{userId}               bearer: tokens deleted, the user's unfinished jobs cancelled
    POST   /v1/connections/{userId}/connect-link  bearer: a signed link to the connect page (api/links.py)
    GET    /connect?user&expires&sig              the connect page (api/pages.py); POST /connect/start starts

The callback, on whichever instance gets it: the state is consumed (pipeline/auth/web_flow.py),
the code exchanged with its PKCE verifier, /me read with the new token, the tokens stored
encrypted exactly as `spotify-sync connect` stores them, the user's library sync enqueued, and
the browser sent (303) to the authorisation's return page with `?connected=1` or `?error=<reason>`.
Nothing is stored unless every step before the store succeeded. The return page is one of
CONNECT_RETURN_URL (checked when the flow starts; a callback can name none), the connect page,
or, with neither, the callback's own result page (200, or 400 with the reason).

No code, state, verifier or token is logged or answered: the request log has the route template
only, and each of these values is registered with the log's masking as soon as it is known.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from loguru import logger
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from api import pages
from api.links import link_params, link_query, link_valid
from pipeline.auth.flow import DEFAULT_SCOPES, authorize_url, exchange_code, store_connection
from pipeline.auth.web_flow import STATE_TTL_S, PendingAuthorization, WebFlow
from pipeline.errors import PipelineError, RateLimited, SpotifyError, StoreIntegrity
from pipeline.store import connections as store
from pipeline.store import ledger
from pipeline.store.ledger import Job
from shared.crypto import TokenCipher
from shared.keys import RedisKeys
from shared.logging import register_secret
from shared.settings import Settings, SettingsError

CALLBACK_PATH = "/auth/spotify/callback"
BROWSER_COOKIE = "spotify_sync_connect"  # binds a connect-page sign-in to the browser that started it
USER_ID_PATTERN = r"^[A-Za-z0-9._~@:+-]{1,200}$"
UserId = Annotated[str, Path(alias="userId", pattern=USER_ID_PATTERN, description="The application's user id")]


def iso(moment: datetime | None) -> str | None:
    """Database times are UTC without a zone: say so."""
    return moment.replace(tzinfo=UTC).isoformat() if moment else None


def with_query(url: str, extra: dict[str, str]) -> str:
    """`url` with `extra` added to its query."""
    return url + ("&" if urlsplit(url).query else "?") + urlencode(extra)


class Connector:
    """The flow's parts for one API process. The Spotify client, the token endpoint and the job
    sender are built on first use: a process that never sees a callback never connects to them."""

    def __init__(self, settings: Settings, engine: Any, fast_redis: Any):
        self.settings = settings
        self.engine = engine
        self._fast_redis = fast_redis
        self._lock = threading.Lock()
        self._made: dict[str, Any] = {}

    # --- what must be configured ---

    def require_ready(self) -> tuple[str, TokenCipher]:
        """(the redirect URI, the cipher), or 503 naming the setting that is missing."""
        try:
            expected = (f"API_REDIRECT_URI: expected the redirect URI registered with Spotify for {CALLBACK_PATH} "
                        f"(https://api.example.com{CALLBACK_PATH})")
            if not self.settings.api_redirect_uri:
                raise SettingsError(f"{expected}, but it is not set")
            if not urlsplit(self.settings.api_redirect_uri).path.endswith(CALLBACK_PATH):
                raise SettingsError(f"{expected}, but its path does not end in {CALLBACK_PATH}")
            self.settings.require_client_credentials()
            cipher = TokenCipher(self.settings.require_token_keys())
        except SettingsError as exc:
            raise HTTPException(503, f"connections are not configured: {exc}") from None
        return self.settings.api_redirect_uri, cipher

    def public_url(self, path: str) -> str:
        """`path` on the API as the browser reaches it: API_REDIRECT_URI's base (a proxy's prefix kept)."""
        redirect_uri, _ = self.require_ready()
        return redirect_uri[: -len(CALLBACK_PATH)] + path

    def _once(self, name: str, make: Callable[[], Any]) -> Any:
        with self._lock:
            if name not in self._made:
                self._made[name] = make()
            return self._made[name]

    def _flow(self) -> WebFlow:
        _, cipher = self.require_ready()  # the verifiers it keeps are sealed with the token keys
        return self._once("flow", lambda: WebFlow(self._fast_redis, RedisKeys(self.settings.redis_namespace), cipher))

    def _endpoint(self) -> Any:
        from pipeline.spotify.http import shared_http_client
        from pipeline.wiring import token_endpoint

        return self._once("endpoint", lambda: token_endpoint(self.settings, shared_http_client(self.settings)))

    def _spotify(self) -> Any:
        from pipeline.wiring import build_client
        from shared.redis_conn import connect

        return self._once("spotify", lambda: build_client(self.settings, connect(self.settings), self.engine))

    def _sender(self) -> Any:
        def make() -> Any:
            from workers.actors import declare_actors
            from workers.broker import build_broker
            from workers.sender import JobSender

            broker = build_broker(self.settings)
            declare_actors(broker)
            return JobSender(broker)

        return self._once("sender", make)

    # --- the flow ---

    def start(self, user_id: str, *, return_url: str | None, to_connect_page: bool,
              browser_secret: str | None = None) -> str:
        """A new authorisation for `user_id`: its authorize URL (the state and the challenge in it)."""
        redirect_uri, _ = self.require_ready()
        client_id, _ = self.settings.require_client_credentials()
        started = self._flow().begin(user_id, DEFAULT_SCOPES, return_url=return_url, to_connect_page=to_connect_page,
                                  browser_secret=browser_secret)
        return authorize_url(self.settings.spotify_accounts_base_url, client_id, redirect_uri, started.state,
                             started.challenge, DEFAULT_SCOPES)

    def finish(self, state: str | None, code: str | None, error: str | None,
               browser_secret: str | None = None) -> tuple[PendingAuthorization | None, str | None, str | None]:
        """(the authorisation, the reason it failed or None, the Spotify user id when connected)."""
        redirect_uri, cipher = self.require_ready()
        register_secret(code)
        try:
            pending = self._flow().consume(state, browser_secret)
        except PipelineError as exc:
            logger.warning("OAuth callback: the pending authorisations are unavailable ({})", type(exc).__name__)
            return None, "unavailable", None
        if pending is None:
            return None, "invalid_state", None
        if error is not None:
            return pending, "access_denied" if error == "access_denied" else "spotify_refused", None
        if not code:
            return pending, "missing_code", None
        try:
            grant = exchange_code(self._endpoint(), code, pending.verifier, redirect_uri)
            register_secret(grant.access_token)
            register_secret(grant.refresh_token)
            me = self._spotify().with_access_token(grant.access_token).me()
            owner = store.spotify_account_owner(self.engine, me.id)
            if owner is not None and owner != pending.user_id:
                return pending, "spotify_account_in_use", None
            store_connection(self.engine, cipher, pending.user_id, me.id, grant, pending.scopes)
        except StoreIntegrity:
            return pending, "spotify_account_in_use", None  # another user took this account meanwhile
        except (RateLimited, SpotifyError) as exc:
            logger.warning("OAuth callback for user {}: Spotify said no ({})", pending.user_id, type(exc).__name__)
            transient = exc.transient or isinstance(exc, RateLimited)
            return pending, "spotify_unavailable" if transient else "spotify_refused", None
        except PipelineError as exc:
            logger.warning("OAuth callback for user {}: {}", pending.user_id, type(exc).__name__)
            return pending, "unavailable", None
        logger.info("user {} connected Spotify user {}", pending.user_id, me.id)
        self._enqueue_library_sync(pending.user_id)
        return pending, None, me.id

    def _enqueue_library_sync(self, user_id: str) -> None:
        from pipeline.producers import enqueue_user_library

        try:
            enqueue_user_library(self.engine, self._sender(), user_ids=[user_id], full=False)
        except PipelineError as exc:
            # The connection is stored: the sync can be enqueued later (cron, an operator, a reconnect).
            logger.warning("user {} connected, but the library sync was not enqueued ({})", user_id, type(exc).__name__)

    # --- what callers see ---

    def status(self, user_id: str) -> dict[str, Any]:
        info = store.connection_info(self.engine, user_id)
        found: dict[str, Any] = {"user_id": user_id, "connected": info is not None}
        if info is not None:
            found.update(spotify_user_id=info.spotify_user_id, scopes=list(info.scopes), status=info.status,
                         authorized_at=iso(info.authorized_at), needs_reauth=info.status == "needs_reauth",
                         refresh_token_expires_at=iso(info.refresh_token_expires_at))
        found["library_sync"] = sync_json(ledger.latest_user_job(self.engine, user_id, "user_library"))
        return found

    def disconnect(self, user_id: str) -> dict[str, Any]:
        deleted = store.delete_connection(self.engine, user_id)
        cancelled = ledger.cancel_user_jobs(self.engine, user_id, "the user's Spotify connection was deleted")
        logger.info("user {} disconnected Spotify: {} unfinished jobs cancelled", user_id, len(cancelled))
        return {"user_id": user_id, "deleted": deleted, "cancelled_jobs": len(cancelled)}


def sync_json(job: Job | None) -> dict[str, Any] | None:
    """The library sync's progress as its job row says (the checkpoint counts pages and tracks)."""
    if job is None:
        return None
    result = job.result or {}
    return {"job_id": job.id, "status": job.status, "tracks": int(result.get("tracks") or 0),
            "pages": int(result.get("pages") or 0), "new_links": int(result.get("new_links") or 0),
            "created_at": iso(job.created_at), "started_at": iso(job.started_at),
            "completed_at": iso(job.completed_at), "error": job.error if job.status == "failed" else None}


class AuthorizeRequest(BaseModel):
    return_url: str | None = None


def router(connector: Connector, authorised: Callable[..., Any]) -> APIRouter:
    """The connection routes; `authorised` is the API's bearer-token dependency."""
    settings = connector.settings
    routes = APIRouter()
    accounts_origin = "{0.scheme}://{0.netloc}".format(urlsplit(settings.spotify_accounts_base_url))
    private = {"Cache-Control": "no-store"}

    @routes.post("/v1/connections/{userId}/authorize", dependencies=[Depends(authorised)], tags=["connections"])
    def authorize(user_id: UserId, body: Annotated[AuthorizeRequest | None, Body()] = None) -> Response:
        """An authorize URL for this user, valid once and for 10 minutes. `return_url` must be one of
        CONNECT_RETURN_URL (default: the first; none configured: the callback's own result page)."""
        return_url = body.return_url if body and body.return_url else None
        if return_url is not None and return_url not in settings.connect_return_urls:
            raise HTTPException(422, "return_url: not one of the return pages configured in CONNECT_RETURN_URL")
        chosen = return_url or (settings.connect_return_urls[0] if settings.connect_return_urls else None)
        url = connector.start(user_id, return_url=chosen, to_connect_page=False)
        return JSONResponse({"authorize_url": url}, headers=private)

    @routes.get(CALLBACK_PATH, tags=["connections"], include_in_schema=False)
    def callback(request: Request, state: str | None = None, code: str | None = None,
                 error: str | None = None) -> Response:
        pending, reason, spotify_user_id = connector.finish(state, code, error, request.cookies.get(BROWSER_COOKIE))
        if pending is None or (pending.return_url is None and not pending.to_connect_page):
            return pages.result_page(reason, spotify_user_id)
        outcome = {"connected": "1"} if reason is None else {"error": reason}
        if pending.to_connect_page:
            link = link_query(settings.require_token_keys(), pending.user_id, time.time(), **outcome)
            location = connector.public_url("/connect?") + link
        else:
            location = with_query(pending.return_url or "", outcome)
        # no-referrer: the next page must not learn this URL (it carries the code).
        return RedirectResponse(location, 303, headers={**private, "Referrer-Policy": "no-referrer"})

    @routes.get("/v1/connections/{userId}", dependencies=[Depends(authorised)], tags=["connections"])
    def get_connection(user_id: UserId) -> dict[str, Any]:
        """Connected or not, the Spotify user, scopes, when authorised and when the refresh token dies
        (authorised + 180 days), needs_reauth, and the latest library sync's progress. Never a token."""
        return connector.status(user_id)

    @routes.delete("/v1/connections/{userId}", dependencies=[Depends(authorised)], tags=["connections"])
    def delete_connection(user_id: UserId) -> dict[str, Any]:
        """Delete the user's tokens and cancel the user's pending and running jobs (idempotent)."""
        return connector.disconnect(user_id)

    @routes.post("/v1/connections/{userId}/connect-link", dependencies=[Depends(authorised)], tags=["connections"])
    def connect_link(user_id: UserId) -> dict[str, Any]:
        """A link to the connect page for this user, valid 30 minutes, beside API_REDIRECT_URI."""
        url = connector.public_url("/connect?")
        params = link_params(settings.require_token_keys(), user_id, time.time())
        expires = datetime.fromtimestamp(int(params["expires"]), UTC)
        return {"url": url + urlencode(params), "expires_at": expires.isoformat()}

    @routes.get("/connect", include_in_schema=False)
    def connect_page(user: str | None = None, expires: str | None = None, sig: str | None = None,
                     error: Annotated[str | None, Query(max_length=64)] = None) -> Response:
        keys = settings.spotify_token_keys
        if not keys or not link_valid(keys, user, expires, sig, time.time()):
            return pages.link_invalid_page()
        link = {"user": user or "", "expires": expires or "", "sig": sig or ""}
        refused = None if error is None else (error if error in pages.REASONS else "spotify_refused")
        return pages.connect_page(link["user"], link, connector.status(link["user"]), refused, (accounts_origin,))

    @routes.post("/connect/start", include_in_schema=False)
    async def connect_start(request: Request) -> Response:
        # A plain form post, parsed here: no multipart dependency for three fields.
        form = dict(parse_qsl((await request.body()).decode(errors="replace")))
        keys = settings.spotify_token_keys
        if not keys or not link_valid(keys, form.get("user"), form.get("expires"), form.get("sig"), time.time()):
            return pages.link_invalid_page()
        from starlette.concurrency import run_in_threadpool

        browser_secret = secrets.token_urlsafe(32)
        url = await run_in_threadpool(connector.start, form["user"], return_url=None, to_connect_page=True,
                                      browser_secret=browser_secret)
        answer = RedirectResponse(url, 303, headers=private)
        # Lax: sent on Spotify's top-level redirect back to the callback, never on cross-site subrequests.
        callback = urlsplit(connector.public_url(CALLBACK_PATH))
        answer.set_cookie(BROWSER_COOKIE, browser_secret, max_age=STATE_TTL_S, path=callback.path, httponly=True,
                          samesite="lax", secure=callback.scheme == "https")
        return answer

    return routes
