"""From a response to a decision: every branch, no I/O."""

import json

import pytest

from pipeline import errors
from pipeline.spotify.responses import (
    api_error,
    api_result,
    parse_retry_after,
    rate_limit_reason,
    token_result,
)

DEFAULT = 30


def body(obj) -> bytes:
    return json.dumps(obj).encode()


def decide(status, payload=b"", headers=None):
    return api_error(status, headers or {}, payload, "/tracks", DEFAULT)


def test_a_success_returns_the_json_object():
    assert api_result(200, {}, body({"tracks": []}), "/tracks", DEFAULT) == {"tracks": []}


def test_a_success_with_a_decoder_returns_what_it_makes_of_the_bytes_and_an_error_never_reaches_it():
    decoded: list[bytes] = []
    decode = lambda raw: decoded.append(raw) or "typed"  # noqa: E731
    assert api_result(200, {}, b'{"tracks": []}', "/tracks", DEFAULT, decode=decode) == "typed"
    with pytest.raises(errors.ServerError):
        api_result(503, {}, b'{"tracks": []}', "/tracks", DEFAULT, decode=decode)
    assert decoded == [b'{"tracks": []}']


@pytest.mark.parametrize("payload", [b"", b"not json", b"[1, 2]", b"{\"tracks\": "])
def test_a_success_with_an_unreadable_body_is_malformed_and_transient(payload):
    with pytest.raises(errors.MalformedResponse) as caught:
        api_result(200, {}, payload, "/tracks", DEFAULT)
    assert caught.value.transient


def test_429_with_retry_after_is_rate_limited_for_that_long():
    error = decide(429, body({"error": {"status": 429, "message": "API rate limit exceeded"}}), {"retry-after": "7"})
    assert isinstance(error, errors.RateLimited)
    assert (error.retry_after_s, error.reason, error.transient) == (7.0, "rate_limit", True)


def test_429_quota_exceeded_is_told_apart():
    payload = body({"error": {"status": 429, "message": "Too many requests", "reason": "QUOTA_EXCEEDED"}})
    error = decide(429, payload, {"retry-after": "79892"})
    assert (error.retry_after_s, error.reason) == (79892.0, "quota_exceeded")


@pytest.mark.parametrize("headers", [{}, {"retry-after": "0"}, {"retry-after": ""}, {"retry-after": "-5"},
                                     {"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"}])
def test_429_without_a_usable_retry_after_takes_the_default(headers):
    error = decide(429, b"", headers)
    assert (error.retry_after_s, error.reason) == (DEFAULT, "rate_limit")


def test_retry_after_parsing():
    assert parse_retry_after("3600", 30) == 3600.0
    assert parse_retry_after(" 12 ", 30) == 12.0
    assert parse_retry_after(None, 45) == 45.0
    assert rate_limit_reason(None) == "rate_limit"
    assert rate_limit_reason({"error": "x"}) == "rate_limit"


@pytest.mark.parametrize(("status", "cls", "permanent"), [
    (400, errors.BadRequest, True),
    (401, errors.Unauthorized, False),
    (403, errors.Forbidden, True),
    (404, errors.NotFound, True),
    (405, errors.BadRequest, True),
    (500, errors.ServerError, False),
    (502, errors.ServerError, False),
    (503, errors.ServerError, False),
])
def test_each_status_maps_to_one_error(status, cls, permanent):
    error = decide(status, body({"error": {"status": status, "message": "the message"}}))
    assert type(error) is cls and error.transient is not permanent and error.message.endswith("the message")


def test_403_names_the_endpoint_and_keeps_the_message():
    error = decide(403, body({"error": {"status": 403, "message": "Forbidden"}}))
    assert (error.endpoint, error.message) == ("/tracks", "Forbidden")


def test_an_error_without_a_body_still_decides():
    assert isinstance(decide(502, b"<html>bad gateway</html>"), errors.ServerError)
    assert decide(204) is None


def token(status, payload=b"", headers=None):
    return token_result(status, headers or {}, payload, DEFAULT)


def test_token_success_and_errors():
    assert token(200, body({"access_token": "a", "expires_in": 3600}))["access_token"] == "a"
    with pytest.raises(errors.InvalidGrant) as caught:
        token(400, body({"error": "invalid_grant", "error_description": "Refresh token revoked"}))
    assert not caught.value.transient and "Refresh token revoked" in str(caught.value)
    with pytest.raises(errors.InvalidClient):
        token(400, body({"error": "invalid_client", "error_description": "Invalid client"}))
    with pytest.raises(errors.AuthError):
        token(400, body({"error": "unsupported_grant_type"}))
    with pytest.raises(errors.ServerError):
        token(503)
    with pytest.raises(errors.MalformedResponse):
        token(200, b"{}")


def test_a_token_429_is_read_like_an_api_429():
    with pytest.raises(errors.RateLimited) as caught:
        token(429, body({"error": {"status": 429, "message": "Too many requests", "reason": "QUOTA_EXCEEDED"}}),
              {"retry-after": "81654"})
    assert (caught.value.retry_after_s, caught.value.reason, caught.value.endpoint) == (
        81654.0, "quota_exceeded", "/api/token")
    with pytest.raises(errors.RateLimited) as caught:
        token(429, b"", {"retry-after": "0"})
    assert (caught.value.retry_after_s, caught.value.reason) == (DEFAULT, "rate_limit")
