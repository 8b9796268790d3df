"""The control API under /_emulator: stats, config, forced answers, reset, grants, ids, clock.

Never rate-limited, never faulted. Bodies are JSON; errors are `{"error": "..."}` with 400.
  GET  /_emulator/health
  GET  /_emulator/stats
  GET  /_emulator/config                  the running config
  POST /_emulator/config                  {"tier": "dev-2026", "rate_limit": 10, "faults": "503:0.1", ...}
                                          also "force": {...} or [{...}] to append forced answers
  POST /_emulator/force                   {"kind": "429", "count": 1, "retry_after_s": 3600,
                                           "body": "json"|"empty", "client_id": null, "endpoint": null}
  POST /_emulator/reset                   {"grants": false, "config": false}
  POST /_emulator/revoke                  {"user": "demo", "client_id": null}
  POST /_emulator/clock                   {"advance_s": 30} | {"freeze_at": 1.7e9} | {"freeze": true}
                                          | {"unfreeze": true} | {"offset_s": 0}
  GET  /_emulator/ids?count=N&offset=M    valid track ids, by catalog index
  GET  /_emulator/tracks?count=N&offset=M  tracks by catalog index, with their exact names
  GET  /_emulator/tracks/{id}             one track's exact names (404 when not in the catalog)
  GET  /_emulator/users/{user}/library?offset=&limit=   a user's saved track ids, newest first
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator import responses as R
from emulator.catalog import Catalog
from emulator.config import ConfigError, EmulatorConfig
from emulator.faults import FaultSpecError, ForcedRule
from emulator.ids import is_well_formed
from emulator.oauth import USER_RE
from emulator.state import EmulatorState
from emulator.users import Library

MAX_LISTED_IDS = 100_000
MAX_LISTED_TRACKS = 1_000


def track_names(catalog: Catalog, index: int) -> dict[str, Any]:
    """What a search test needs to know of a track: its id, ISRC and exact names."""
    track = catalog.track(index)
    return {"id": track["id"], "index": index, "isrc": track["external_ids"]["isrc"], "name": track["name"],
            "artists": [a["name"] for a in track["artists"]], "album": track["album"]["name"]}


def _bad(message: str) -> Response:
    return R.json_obj({"error": message}, 400)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    data = orjson.loads(raw)
    if not isinstance(data, dict):
        raise ConfigError("the body must be a JSON object")
    return data


def apply_changes(config: EmulatorConfig, body: dict[str, Any]) -> EmulatorConfig:
    body = dict(body)
    extra = body.pop("force", None)
    if "force_429" in body:  # shorthand: {"force_429": {"count": 1, "retry_after_s": 3600}}
        extra = [{"kind": "429", **body.pop("force_429")}]
    config = config.with_changes(body)
    if extra:
        added = [ForcedRule.from_json(r) for r in (extra if isinstance(extra, list) else [extra])]
        config = config.with_changes({"forced": [r.to_json() for r in (*config.forced, *added)]})
    return config


def routes(state: EmulatorState) -> list[Route]:
    async def health(request: Request) -> Response:
        return R.json_obj({"ok": True, "tier": state.config.tier, "store": type(state.store).__name__})

    async def stats(request: Request) -> Response:
        return R.json_obj(state.stats.snapshot(state.config.rate_window_s))

    async def get_config(request: Request) -> Response:
        return R.json_obj(state.config.to_json())

    async def post_config(request: Request) -> Response:
        try:
            config = state.set_config(apply_changes(state.config, await _body(request)))
        except (ConfigError, FaultSpecError, orjson.JSONDecodeError, TypeError, ValueError) as exc:
            return _bad(str(exc))
        return R.json_obj(config.to_json())

    async def force(request: Request) -> Response:
        try:
            body = await _body(request)
            rule = ForcedRule.from_json(body)
            state.set_config(state.config.with_changes({"forced": [r.to_json() for r in (*state.config.forced, rule)]}))
        except (ConfigError, FaultSpecError, orjson.JSONDecodeError, TypeError, ValueError) as exc:
            return _bad(str(exc))
        return R.json_obj(rule.to_json())

    async def reset(request: Request) -> Response:
        try:
            body = await _body(request)
        except (ConfigError, orjson.JSONDecodeError) as exc:
            return _bad(str(exc))
        state.reset(grants=bool(body.get("grants")), config=bool(body.get("config")))
        return R.json_obj({"ok": True})

    async def revoke(request: Request) -> Response:
        try:
            body = await _body(request)
        except (ConfigError, orjson.JSONDecodeError) as exc:
            return _bad(str(exc))
        user = body.get("user")
        if not isinstance(user, str) or not USER_RE.match(user):
            return _bad("user is required")
        return R.json_obj({"revoked": state.oauth.revoke(user, body.get("client_id"))})

    async def clock(request: Request) -> Response:
        try:
            body = await _body(request)
            config = state.config
            now = state.now(config)
            changes: dict[str, Any] = {}
            if "offset_s" in body:
                changes["clock_offset_s"] = float(body["offset_s"])
            if "advance_s" in body:
                if config.clock_frozen_at is not None:
                    changes["clock_frozen_at"] = config.clock_frozen_at + float(body["advance_s"])
                else:
                    changes["clock_offset_s"] = config.clock_offset_s + float(body["advance_s"])
            if body.get("freeze"):
                changes["clock_frozen_at"] = changes.get("clock_frozen_at", now)
            if "freeze_at" in body:
                changes["clock_frozen_at"] = None if body["freeze_at"] is None else float(body["freeze_at"])
            if body.get("unfreeze"):
                changes["clock_frozen_at"] = None
            config = state.set_config(config.with_changes(changes))
        except (ConfigError, orjson.JSONDecodeError, TypeError, ValueError) as exc:
            return _bad(str(exc))
        return R.json_obj({"now": state.now(config), "frozen": config.clock_frozen_at is not None})

    async def ids(request: Request) -> Response:
        try:
            count = int(request.query_params.get("count", "100"))
            offset = int(request.query_params.get("offset", "0"))
        except ValueError:
            return _bad("count and offset must be integers")
        catalog = state.catalog
        stop = min(catalog.size, offset + max(0, min(count, MAX_LISTED_IDS)))
        return R.json_obj({"catalog_size": catalog.size, "offset": offset,
                           "ids": [catalog.track_id(i) for i in range(max(0, offset), stop)]})

    async def tracks(request: Request) -> Response:
        try:
            count = int(request.query_params.get("count", "10"))
            offset = int(request.query_params.get("offset", "0"))
        except ValueError:
            return _bad("count and offset must be integers")
        if not 0 <= count <= MAX_LISTED_TRACKS or offset < 0:
            return _bad(f"count must be 0..{MAX_LISTED_TRACKS} and offset >= 0")
        catalog = state.catalog
        listed = [track_names(catalog, i) for i in range(offset, min(catalog.size, offset + count))]
        return R.json_obj({"catalog_size": catalog.size, "offset": offset, "tracks": listed})

    async def one_track(request: Request) -> Response:
        track_id = request.path_params["id"]
        if not is_well_formed(track_id):
            return _bad("a track id is 22 characters of base62")
        index = state.catalog.track_index(track_id)
        if index is None:
            return R.json_obj({"error": "no such track in the catalog"}, 404)
        return R.json_obj(track_names(state.catalog, index))

    async def library(request: Request) -> Response:
        user = request.path_params["user"]
        if not USER_RE.match(user):
            return _bad("bad user name")
        config = state.config
        lib = Library.of(user, config.library_size(user), config.catalog_size, config.catalog_seed)
        try:
            offset = int(request.query_params.get("offset", "0"))
            limit = int(request.query_params.get("limit", str(lib.size)))
        except ValueError:
            return _bad("offset and limit must be integers")
        page = lib.page(max(0, offset), max(0, min(limit, MAX_LISTED_IDS)))
        return R.json_obj({
            "user": user, "total": lib.size,
            "ids": [state.catalog.track_id(i) for i, _ in page],
            "added_at": [added for _, added in page],
        })

    return [
        Route("/_emulator/health", health, methods=["GET"]),
        Route("/_emulator/stats", stats, methods=["GET"]),
        Route("/_emulator/config", get_config, methods=["GET"]),
        Route("/_emulator/config", post_config, methods=["POST"]),
        Route("/_emulator/force", force, methods=["POST"]),
        Route("/_emulator/reset", reset, methods=["POST"]),
        Route("/_emulator/revoke", revoke, methods=["POST"]),
        Route("/_emulator/clock", clock, methods=["POST"]),
        Route("/_emulator/ids", ids, methods=["GET"]),
        Route("/_emulator/tracks", tracks, methods=["GET"]),
        Route("/_emulator/tracks/{id}", one_track, methods=["GET"]),
        Route("/_emulator/users/{user}/library", library, methods=["GET"]),
    ]
