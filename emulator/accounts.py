"""The accounts host: GET /authorize and POST /api/token.

Client authentication on /api/token: `Authorization: Basic base64(id:secret)` or
client_id/client_secret in the form body (both accepted); PKCE public clients send client_id
and code_verifier only. Faults and forced answers reach the token endpoint only when a rule
names "/api/token" explicitly; it has no rate limit here.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from emulator import responses as R
from emulator.api import fault_answer
from emulator.oauth import AuthorizeError, TokenError
from emulator.state import EmulatorState

TOKEN = "/api/token"
AUTHORIZE = "/authorize"


def _client_auth(request: Request, form: dict[str, str]) -> tuple[str, str | None]:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise TokenError("invalid_client", "Invalid client") from exc
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            raise TokenError("invalid_client", "Invalid client")
        return client_id, secret
    return form.get("client_id", ""), form.get("client_secret") or None


def routes(state: EmulatorState) -> list[Route]:
    async def authorize(request: Request) -> Response:
        config = state.config
        try:
            url = state.oauth.authorize(config, dict(request.query_params), state.now(config))
        except AuthorizeError as exc:
            state.stats.request(AUTHORIZE, 400)
            return PlainTextResponse(str(exc), status_code=400)
        state.stats.request(AUTHORIZE, 303)
        return RedirectResponse(url, status_code=303)

    async def token(request: Request) -> Response:
        response = await _token(request)
        state.stats.request(TOKEN, "dropped" if isinstance(response, R.DroppedConnection) else response.status_code)
        return response

    async def _token(request: Request) -> Response:
        config = state.config
        now = state.now(config)
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
        try:
            client_id, secret = _client_auth(request, form)
        except TokenError as exc:
            return R.token_error(exc.error, exc.description, exc.status)

        def run() -> Response:
            return _grant(form, client_id, secret, now)

        forced = state.take_forced(config, TOKEN, client_id)
        if forced is not None:
            state.stats.fault(forced.kind)
            if forced.kind in ("429", "quota"):
                return R.rate_limited(forced.retry_after_s, empty_body=forced.body == "empty")
            return await fault_answer(forced.kind, run, slow_s=config.slow_s)
        kind = state.dice.roll(config.faults, TOKEN)
        if kind is not None:
            state.stats.fault(kind)
            return await fault_answer(kind, run, config.slow_s)
        return run()

    def _grant(form: dict[str, str], client_id: str, secret: str | None, now: float) -> Response:
        config = state.config
        grant_type = form.get("grant_type")
        try:
            if grant_type == "client_credentials":
                body = state.oauth.client_credentials(config, client_id, secret or "", now)
                user = None
            elif grant_type == "authorization_code":
                body, user = state.oauth.exchange_code(config, form, client_id, secret, now)
            elif grant_type == "refresh_token":
                body, user = state.oauth.refresh(config, form, client_id, secret, now)
            else:
                return R.token_error(
                    "unsupported_grant_type",
                    "grant_type parameter must be client_credentials, authorization_code or refresh_token",
                )
        except TokenError as exc:
            return R.token_error(exc.error, exc.description, exc.status)
        state.stats.token(grant_type, client_id, user)
        return R.json_obj(body)

    return [
        Route(AUTHORIZE, authorize, methods=["GET"]),
        Route(TOKEN, token, methods=["POST"]),
    ]
