"""The API host: /v1/... endpoints, each behind the same guard.

Guard order for every call (what Spotify's edge would do first comes first):
  token (401) -> log the call for the busiest-window stat -> forced answers -> penalty box,
  daily quota, rolling window (429) -> random faults -> the dev-mode user allowlist (403) ->
  the endpoint (tier 403s, scope 403s, 400/404, 200).
Every answer is counted in the stats under the route path and its status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator import keys as K
from emulator import responses as R
from emulator.config import EmulatorConfig
from emulator.faults import ForcedRule
from emulator.ids import is_well_formed
from emulator.oauth import AccessToken
from emulator.ratelimit import subject_for
from emulator.state import EmulatorState
from emulator.users import Library, profile

MAX_TRACK_IDS = 50
MAX_FEATURE_IDS = 100
SEARCH_LIMITS = {"extended": 50, "dev-legacy": 50, "dev-2026": 10}
MAX_SEARCH_OFFSET = 1000
UNREGISTERED_USER = "Check settings on developer.spotify.com/dashboard, the user may not be registered."


@dataclass(frozen=True)
class Call:
    """What an endpoint needs to know about the call it answers."""

    request: Request
    config: EmulatorConfig
    token: AccessToken
    now: float

    @property
    def tier(self) -> str:
        return self.config.tier_for(self.token.client_id)

    @property
    def view(self) -> str:
        return "dev-2026" if self.tier == "dev-2026" else "full"

    @property
    def hour(self) -> int:
        return int(self.now // 3600)

    def base_url(self) -> str:
        return (self.config.public_base_url or str(self.request.base_url)).rstrip("/")


Handler = Callable[[EmulatorState, Call], Response]


def unauthorized(config: EmulatorConfig, message: str) -> Response:
    if config.auth_error_style == "newer":
        return R.api_error(
            401, "Missing/invalid/expired access token",
            {"WWW-Authenticate": 'Bearer realm="spotify", error="invalid_token"'},
        )
    return R.api_error(401, message)


def authenticate(state: EmulatorState, request: Request, config: EmulatorConfig, now: float) -> AccessToken | Response:
    header = request.headers.get("authorization")
    if not header:
        return unauthorized(config, "No token provided")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return unauthorized(config, "Only valid bearer authentication supported")
    checked = state.oauth.check_access(token.strip(), now)
    return unauthorized(config, checked) if isinstance(checked, str) else checked


async def forced_answer(rule: ForcedRule, run: Callable[[], Response]) -> Response:
    if rule.kind == "429":
        return R.rate_limited(rule.retry_after_s, empty_body=rule.body == "empty")
    if rule.kind == "quota":
        return R.quota_exceeded(rule.retry_after_s)
    return await fault_answer(rule.kind, run, slow_s=None)


async def fault_answer(kind: str, run: Callable[[], Response], slow_s: float | None) -> Response:
    if kind in ("500", "502", "503"):
        return R.server_error(int(kind))
    if kind == "drop":
        return R.DroppedConnection()
    if kind == "slow":
        await asyncio.sleep(slow_s if slow_s is not None else 30.0)
        return run()
    response = run()  # malformed
    return R.malformed(response) if response.status_code == 200 else response


def guarded(state: EmulatorState, endpoint: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def answer(request: Request) -> Response:
        config = state.config
        now = state.now(config)
        response = await _answer(request, config, now)
        status = "dropped" if isinstance(response, R.DroppedConnection) else response.status_code
        state.stats.request(endpoint, status)
        return response

    async def _answer(request: Request, config: EmulatorConfig, now: float) -> Response:
        token = authenticate(state, request, config, now)
        if isinstance(token, Response):
            return token
        client_id = token.client_id
        state.stats.client_request(client_id, now, config.rate_window_s)
        call = Call(request, config, token, now)

        def run() -> Response:
            return handler(state, call)

        forced = state.take_forced(config, endpoint, client_id)
        if forced is not None:
            if forced.kind in ("429", "quota"):
                state.stats.limited("forced" if forced.kind == "429" else "forced_quota", now)
            else:
                state.stats.fault(forced.kind)
            return await forced_answer(forced, run)

        refusal = state.limiter.check(config, client_id, now)
        if refusal is not None:
            state.stats.limited(refusal.kind, now)
            if refusal.kind == "quota":
                return R.quota_exceeded(refusal.wait_s)
            wait_s = None if state.dice.chance(config.p_429_no_retry_after) else refusal.wait_s
            return R.rate_limited(wait_s, empty_body=state.dice.chance(config.p_429_empty_body))

        kind = state.dice.roll(config.faults, endpoint)
        if kind is not None:
            state.stats.fault(kind)
            return await fault_answer(kind, run, config.slow_s)

        if token.user is not None:
            cap = config.user_caps.get(call.tier)
            if cap is not None:
                subject = subject_for(config, client_id)
                if not state.store.sadd_capped(K.app_users(subject), token.user, cap):
                    return R.api_error(403, UNREGISTERED_USER)
        return run()

    return answer


# --- endpoints ---
def _split_ids(raw: str | None) -> list[str] | None:
    if not raw:
        return None
    ids = raw.split(",")
    return ids if all(is_well_formed(i) for i in ids) else None


def several_tracks(state: EmulatorState, call: Call) -> Response:
    if call.tier == "dev-2026":
        return R.api_error(403, "Forbidden")
    raw = call.request.query_params.get("ids")
    if raw and raw.count(",") >= MAX_TRACK_IDS:
        return R.api_error(400, "too many ids requested")
    ids = _split_ids(raw)
    if ids is None:
        return R.api_error(400, "invalid id")
    state.stats.batch("/v1/tracks", len(ids))
    catalog, view, hour = state.catalog, call.view, call.hour
    market = "market" in call.request.query_params
    parts = []
    for track_id in ids:
        index = catalog.track_index(track_id)
        parts.append(b"null" if index is None else catalog.track_json(index, view, market, hour))
    return R.json_bytes(b'{"tracks":[' + b",".join(parts) + b"]}")


def one_track(state: EmulatorState, call: Call) -> Response:
    track_id = call.request.path_params["id"]
    if not is_well_formed(track_id):
        return R.api_error(400, "invalid id")
    index = state.catalog.track_index(track_id)
    if index is None:
        return R.api_error(404, "non existing id")
    market = "market" in call.request.query_params
    return R.json_bytes(state.catalog.track_json(index, call.view, market, call.hour))


def several_audio_features(state: EmulatorState, call: Call) -> Response:
    if call.tier == "dev-2026":
        return R.api_error(403, "Forbidden")
    raw = call.request.query_params.get("ids")
    if raw and raw.count(",") >= MAX_FEATURE_IDS:
        return R.api_error(400, "too many ids requested")
    ids = _split_ids(raw)
    if ids is None:
        return R.api_error(400, "invalid id")
    state.stats.batch("/v1/audio-features", len(ids))
    catalog = state.catalog
    parts = []
    for track_id in ids:
        index = catalog.track_index(track_id)
        parts.append(b"null" if index is None else catalog.audio_features_json(index))
    return R.json_bytes(b'{"audio_features":[' + b",".join(parts) + b"]}")


def me(state: EmulatorState, call: Call) -> Response:
    if call.token.user is None:
        return R.api_error(401, "Unauthorized.")  # client-credentials tokens carry no user
    return R.json_obj(profile(call.token.user, call.view, call.token.scopes))


def _int_param(call: Call, name: str, default: int) -> int | None:
    raw = call.request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        return None


def _paging(call: Call, path: str, extra: dict[str, str], offset: int, limit: int, total: int, items: bytes,
            max_offset: int | None = None) -> bytes:
    """A Paging object around `items`; no `next` past the end, nor past `max_offset` (which would be a 400)."""
    base = call.base_url() + path

    def link(at: int) -> str:
        return base + "?" + urlencode({**extra, "offset": at, "limit": limit})

    more = offset + limit < total and (max_offset is None or offset + limit <= max_offset)
    next_url = link(offset + limit) if more else None
    prev_url = link(max(0, offset - limit)) if offset > 0 else None
    head = orjson.dumps({"href": link(offset), "limit": limit, "next": next_url, "offset": offset,
                           "previous": prev_url, "total": total})
    return head[:-1] + b',"items":[' + items + b"]}"


def saved_tracks(state: EmulatorState, call: Call) -> Response:
    if call.token.user is None:
        return R.api_error(401, "Unauthorized.")
    if "user-library-read" not in call.token.scopes:
        return R.api_error(403, "Insufficient client scope")
    limit, offset = _int_param(call, "limit", 20), _int_param(call, "offset", 0)
    if limit is None or not 1 <= limit <= 50:
        return R.api_error(400, "Invalid limit")
    if offset is None or offset < 0:
        return R.api_error(400, "Invalid offset")
    config = call.config
    user = call.token.user
    library = Library.of(user, config.library_size(user), config.catalog_size, config.catalog_seed)
    market = call.request.query_params.get("market")
    extra = {"market": market} if market else {}
    catalog, view, hour = state.catalog, call.view, call.hour
    items = b",".join(
        b'{"added_at":"' + added_at.encode() + b'","track":'
        + catalog.track_json(index, view, bool(market), hour) + b"}"
        for index, added_at in library.page(offset, limit)
    )
    return R.json_bytes(_paging(call, "/v1/me/tracks", extra, offset, limit, library.size, items))


def search(state: EmulatorState, call: Call) -> Response:
    params = call.request.query_params
    query = params.get("q", params.get("query"))  # Spotify's own next links say "query="
    if not query:
        return R.api_error(400, "No search query")
    types = params.get("type")
    if not types:
        return R.api_error(400, "Missing parameter type")
    if "track" not in types.split(","):
        return R.api_error(400, "Bad search type field " + types + " (the emulator searches tracks only)")
    max_limit = SEARCH_LIMITS[call.tier]
    limit, offset = _int_param(call, "limit", min(20, max_limit)), _int_param(call, "offset", 0)
    if limit is None or not 1 <= limit <= max_limit:
        return R.api_error(400, "Invalid limit")
    if offset is None or not 0 <= offset <= MAX_SEARCH_OFFSET:
        return R.api_error(400, "Invalid offset")
    total, indexes = state.catalog.search(query, offset, limit)
    market = params.get("market")
    extra = {"query": query, "type": "track", **({"market": market} if market else {})}
    items = b",".join(state.catalog.track_json(i, call.view, bool(market), call.hour) for i in indexes)
    page = _paging(call, "/v1/search", extra, offset, limit, total, items, MAX_SEARCH_OFFSET)
    return R.json_bytes(b'{"tracks":' + page + b"}")


ENDPOINTS: list[tuple[str, Handler]] = [
    ("/v1/tracks", several_tracks),
    ("/v1/tracks/{id}", one_track),
    ("/v1/audio-features", several_audio_features),
    ("/v1/me", me),
    ("/v1/me/tracks", saved_tracks),
    ("/v1/search", search),
]


def routes(state: EmulatorState) -> list[Route]:
    return [Route(path, guarded(state, path, handler), methods=["GET"]) for path, handler in ENDPOINTS]
