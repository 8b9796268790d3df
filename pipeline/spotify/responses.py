"""What a response means: the value to return or the error to raise. Pure: no I/O, no clock.

The client sends, this module decides. Every branch has a unit test in
tests/unit/spotify/test_responses.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from pipeline.errors import (
    AuthError,
    BadRequest,
    Forbidden,
    InvalidClient,
    InvalidGrant,
    MalformedResponse,
    NotFound,
    RateLimited,
    ServerError,
    SpotifyError,
    Unauthorized,
)

QUOTA_EXCEEDED = "quota_exceeded"
RATE_LIMIT = "rate_limit"


def parse_json(body: bytes) -> Any:
    """The JSON body, or None for an empty or malformed one (invalid UTF-8 included). orjson,
    not the standard library's json: a worker parses every answer it gets, and this was about a
    quarter of its busy time (a /tracks answer of 50 is ~100 KB); orjson reads it several times
    faster. It is stricter only where Spotify never goes (NaN, Infinity, a byte order mark)."""
    if not body or not body.strip():
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:  # a ValueError: malformed, or not UTF-8
        return None


def parse_retry_after(header: str | None, default_s: float) -> float:
    """Retry-After in seconds. Missing, 0, negative or unparseable -> the default.

    A 0 is taken as "unknown": calling again at once while limited makes Spotify's wait longer.
    """
    if header is None:
        return float(default_s)
    try:
        value = float(header.strip())
    except ValueError:
        return float(default_s)  # an HTTP date: Spotify sends none; do not guess
    return value if value > 0 else float(default_s)


def rate_limit_reason(payload: Any) -> str:
    """'quota_exceeded' for a development-mode daily quota 429, else 'rate_limit'."""
    error = payload.get("error") if isinstance(payload, dict) else None
    reason = error.get("reason") if isinstance(error, dict) else None
    return QUOTA_EXCEEDED if reason == "QUOTA_EXCEEDED" else RATE_LIMIT


def rate_limited(headers: Mapping[str, str], payload: Any, endpoint: str, retry_after_default_s: float) -> RateLimited:
    """What a 429 (from the API or the accounts service) stands for: its Retry-After and reason."""
    return RateLimited(parse_retry_after(headers.get("retry-after"), retry_after_default_s),
                       rate_limit_reason(payload), endpoint=endpoint)


def _message(payload: Any, default: str) -> str:
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    return default


def api_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    endpoint: str,
    retry_after_default_s: float,
) -> SpotifyError | RateLimited | None:
    """The error a Web API response stands for, or None when it is a success."""
    if 200 <= status < 300:
        return None
    payload = parse_json(body)
    message = _message(payload, f"HTTP {status}")
    if status == 429:
        return rate_limited(headers, payload, endpoint, retry_after_default_s)
    if status == 401:
        return Unauthorized(message, status=401, endpoint=endpoint)
    if status == 403:
        return Forbidden(endpoint, message)
    if status == 404:
        return NotFound(message, status=404, endpoint=endpoint)
    if status >= 500:
        return ServerError(message, status=status, endpoint=endpoint)
    return BadRequest(message, status=status, endpoint=endpoint)


def api_result(status: int, headers: Mapping[str, str], body: bytes, endpoint: str, retry_after_default_s: float,
               *, decode: Callable[[bytes], Any] | None = None) -> Any:
    """The decoded JSON object of a successful response, or what `decode` makes of its bytes
    (typed, pipeline/spotify/models.py: it raises MalformedResponse itself); raises the matching
    SpotifyError otherwise."""
    error = api_error(status, headers, body, endpoint, retry_after_default_s)
    if error is not None:
        raise error
    if decode is not None:
        return decode(body)
    payload = parse_json(body)
    if not isinstance(payload, dict):
        raise MalformedResponse(f"{endpoint}: the body is not a JSON object", status=status, endpoint=endpoint)
    return payload


def token_result(status: int, headers: Mapping[str, str], body: bytes, retry_after_default_s: float) -> dict:
    """The accounts service's token response, or the error it stands for: AuthError, RateLimited
    (read like an API 429), or a transient one."""
    payload = parse_json(body)
    if 200 <= status < 300:
        if not isinstance(payload, dict) or not isinstance(payload.get("access_token"), str):
            raise MalformedResponse("token response without access_token", status=status, endpoint="/api/token")
        return payload
    if status == 429:
        raise rate_limited(headers, payload, "/api/token", retry_after_default_s)
    if status >= 500:
        raise ServerError(f"HTTP {status}", status=status, endpoint="/api/token")
    error = payload.get("error") if isinstance(payload, dict) else None
    description = payload.get("error_description", "") if isinstance(payload, dict) else ""
    if error == "invalid_grant":
        return _raise(InvalidGrant(f"invalid_grant: {description}".strip(), status=status, endpoint="/api/token"))
    if error == "invalid_client":
        return _raise(InvalidClient(f"invalid_client: {description}".strip(), status=status, endpoint="/api/token"))
    return _raise(AuthError(f"{error or 'HTTP ' + str(status)}: {description}".strip(), status=status, endpoint="/api/token"))


def _raise(error: SpotifyError):
    raise error
