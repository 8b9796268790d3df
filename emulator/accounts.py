"""The accounts host: GET /authorize (automatic consent or a consent page), POST /authorize (the
page's answer) and POST /api/token.

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
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from emulator import responses as R
from emulator.api import fault_answer
from emulator.config import EmulatorConfig
from emulator.consent import consent_page, error_page
from emulator.oauth import DEFAULT_USER, AuthorizeError, TokenError
from emulator.state import EmulatorState

TOKEN = "/api/token"
AUTHORIZE = "/authorize"
NO_STORE = {"Cache-Control": "no-store"}  # a held request's id is single use


def wants_automatic_consent(config: EmulatorConfig, params: dict[str, str]) -> bool:
    """No page when the config says so, or when the query names the emulated user or the answer
    (`emulated_user=`, `emulated_consent=`), as `spotify-sync connect --emulated-user` and tests do."""
    return config.consent == "auto" or "emulated_user" in params or "emulated_consent" in params


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
        response = _authorize(dict(request.query_params))
        state.stats.request(AUTHORIZE, response.status_code)
        return response

    def _authorize(params: dict[str, str]) -> Response:
        config = state.config
        now = state.now(config)
        try:
            if wants_automatic_consent(config, params):
                return RedirectResponse(state.oauth.authorize(config, params, now), status_code=303)
            checked = state.oauth.authorization_request(config, params)
        except AuthorizeError as exc:
            return PlainTextResponse(str(exc), status_code=400)
        if isinstance(checked, str):  # an error the app hears about at once, as from Spotify
            return RedirectResponse(checked, status_code=303)
        request_id = state.oauth.hold_for_consent(config, checked, now)
        app_name = config.app_names.get(checked.client_id, checked.client_id)
        return HTMLResponse(consent_page(checked, request_id, app_name), headers=NO_STORE)

    async def answer_consent(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
        response = _answer_consent(form)
        state.stats.request(AUTHORIZE, response.status_code)
        return response

    def _answer_consent(form: dict[str, str]) -> Response:
        config = state.config
        now = state.now(config)
        decision = form.get("decision")
        if decision not in ("agree", "cancel"):
            return HTMLResponse(error_page("decision must be agree or cancel"), status_code=400, headers=NO_STORE)
        held = state.oauth.take_held(form.get("request_id", ""), now)
        if held is None:
            message = "This authorization request is unknown, expired or already answered: start again."
            return HTMLResponse(error_page(message), status_code=400, headers=NO_STORE)
        if decision == "cancel":
            return RedirectResponse(held.back(error="access_denied"), status_code=303)
        user = form.get("user", "").strip() or DEFAULT_USER
        return RedirectResponse(state.oauth.consent(config, held, user, now), status_code=303)

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
        Route(AUTHORIZE, answer_consent, methods=["POST"]),
        Route(TOKEN, token, methods=["POST"]),
    ]
