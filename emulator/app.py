"""The Starlette app: both Spotify hosts' paths and the control API, from one process.

`create_app(config)` is what servers and tests use; the EmulatorState is at `app.state.emulator`.
Unknown paths answer Spotify's 404 body (`{"error":{"status":404,"message":"Service not found"}}`).
A path with a trailing slash (`/v1/me/`) is served as the path without it, as Spotify does;
Starlette's own answer would be a 307 with an empty body, which some clients do not follow.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from emulator import accounts, api, control
from emulator import responses as R
from emulator.config import EmulatorConfig
from emulator.state import EmulatorState
from emulator.store import Store


async def _http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    message = {404: "Service not found", 405: "Method not allowed"}.get(status, "Server error.")
    return R.api_error(status, message)


class StripTrailingSlash:
    """ASGI middleware: `/v1/tracks/` and `/v1/tracks` are one route (the root `/` stays)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            stripped = path.rstrip("/") or "/"
            scope = {**scope, "path": stripped, "raw_path": stripped.encode()}
        await self.app(scope, receive, send)


def _lifespan(state: EmulatorState):
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        state.close()

    return lifespan


def create_app(config: EmulatorConfig | None = None, store: Store | None = None) -> Starlette:
    state = EmulatorState(config or EmulatorConfig(), store)
    app = Starlette(
        routes=[*accounts.routes(state), *api.routes(state), *control.routes(state)],
        exception_handlers={HTTPException: _http_error},
        lifespan=_lifespan(state),
        middleware=[Middleware(StripTrailingSlash)],
    )
    app.state.emulator = state
    return app
