"""Responses in Spotify's shapes: API errors, token errors, rate limits, and deliberate faults."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

JSON = "application/json; charset=utf-8"
TRANSPORT_SCOPE_KEY = "emulator.transport"  # put there by server.EmulatorHttpToolsProtocol


def json_bytes(content: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(content, status_code=status, media_type=JSON, headers=headers)


def json_obj(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return json_bytes(orjson.dumps(obj), status, headers)


def api_error(status: int, message: str, headers: dict[str, str] | None = None, reason: str | None = None) -> Response:
    """`{"error":{"status":N,"message":"..."}}` (with `reason` when Spotify sends one)."""
    error: dict[str, Any] = {"status": status, "message": message}
    if reason:
        error["reason"] = reason
    return json_obj({"error": error}, status, headers)


def token_error(error: str, description: str, status: int = 400) -> Response:
    """The accounts service's flat error body."""
    return json_obj({"error": error, "error_description": description}, status)


def retry_after(wait_s: float | None) -> dict[str, str]:
    """Retry-After in whole seconds, rounded up: the client may call again after that."""
    return {} if wait_s is None else {"Retry-After": str(max(0, math.ceil(wait_s - 1e-9)))}


def rate_limited(wait_s: float | None, empty_body: bool = False) -> Response:
    headers = retry_after(wait_s)
    if empty_body:
        return Response(b"", status_code=429, headers=headers)
    return api_error(429, "API rate limit exceeded", headers)


def quota_exceeded(wait_s: float | None) -> Response:
    return api_error(429, "Too many requests", retry_after(wait_s), reason="QUOTA_EXCEEDED")


def server_error(status: int) -> Response:
    messages = {500: "Server error.", 502: "Bad gateway.", 503: "Service unavailable"}
    return api_error(status, messages.get(status, "Server error."))


def malformed(response: Response) -> Response:
    """A 200 whose JSON body is cut in half, as a proxy that dropped the tail would send."""
    body = bytes(response.body)
    return json_bytes(body[: max(1, len(body) // 2)], 200)


class DroppedConnection(Response):
    """Closes the connection without sending a byte of response.

    Under our uvicorn protocol the transport is in the scope and is aborted (the client sees
    a connection reset / remote protocol error). Under any other server, the fallback sends
    headers that promise a body and then fails, so the server closes the connection mid-way.
    """

    def __init__(self) -> None:
        super().__init__(b"", status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = scope.get(TRANSPORT_SCOPE_KEY)
        if transport is not None:
            transport.abort()
            # Let connection_lost run, so the server knows not to answer a 500 on its own.
            for _ in range(3):
                await asyncio.sleep(0)
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
        raise ConnectionAbortedError("emulated dropped connection")
