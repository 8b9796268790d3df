"""Every endpoint's responses, in every tier, validated against the official OpenAPI files.

The 2025.5.18 file describes what extended-quota and dev-legacy apps get; the 2026.5.31 file
what dev-2026 apps get. openapi-core finds the operation from method and path and validates
the body against that operation's response schema for the status (200 bodies and the
documented 401/403/429 error bodies alike).

Batch arrays: the spec has no `null` entries in `tracks` / `audio_features` (a gap of the spec,
which spotify-platform.md fills: unknown ids and tracks without analysis are `null`). We check
the nulls' positions in test_endpoints.py and validate here the response with the null items
taken out, so every non-null item is still validated.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

import emulator
from emulator.config import EmulatorConfig
from emulator.ids import IdCodec

SPEC_DIR = Path(emulator.__file__).resolve().parent / "openapi"  # copies of the official files
SPEC_FILES = {
    "extended": "spotify-web-api-2025.5.18.yml",
    "dev-legacy": "spotify-web-api-2025.5.18.yml",
    "dev-2026": "spotify-web-api-2026.5.31.yml",
}
TIERS = list(SPEC_FILES)
UNKNOWN = IdCodec("elsewhere", "track").encode(1)


@pytest.fixture(scope="module")
def specs() -> dict[str, OpenAPI]:
    loaded = {name: OpenAPI.from_file_path(str(SPEC_DIR / name)) for name in set(SPEC_FILES.values())}
    return {tier: loaded[name] for tier, name in SPEC_FILES.items()}


def _without_nulls(body: bytes) -> bytes:
    data = orjson.loads(body)
    for key in ("tracks", "audio_features"):
        if isinstance(data, dict) and isinstance(data.get(key), list):
            data[key] = [item for item in data[key] if item is not None]
    return orjson.dumps(data)


def validate(spec: OpenAPI, response, path: str, params: dict | None = None, path_pattern: str | None = None) -> None:
    assert response.headers["content-type"].startswith("application/json")
    request = MockRequest("https://api.spotify.com", "get", "/v1" + path, args=params or {},
                          path_pattern=None if path_pattern is None else "/v1" + path_pattern)
    mock = MockResponse(_without_nulls(response.content), status_code=response.status_code,
                        headers=dict(response.headers), content_type="application/json")
    spec.validate_response(request, mock)  # raises on any mismatch


@pytest.fixture
def emu_config() -> EmulatorConfig:
    return EmulatorConfig(catalog_size=10_000, rate_limit=None)


@pytest.mark.parametrize("tier", TIERS)
def test_every_endpoint_validates_against_its_tiers_spec(emu, specs, tier):
    spec = specs[tier]
    emu.configure(tier=tier)
    app, user = emu.app_token(), emu.user_tokens(user="schema-user")["access_token"]
    ids = emu.ids(49, offset=40) + [UNKNOWN]
    checked = []

    def check(token, path, expected_status, params=None, pattern=None):
        response = emu.get("/v1" + path, token, **(params or {}))
        assert response.status_code == expected_status, (path, response.text)
        validate(spec, response, path, params, pattern)
        checked.append((path, expected_status))

    batch = 403 if tier == "dev-2026" else 200
    check(app, "/tracks", batch, {"ids": ",".join(ids)})
    check(app, "/tracks", batch, {"ids": ",".join(ids), "market": "SE"})
    check(app, "/audio-features", batch, {"ids": ",".join(emu.ids(100))})
    check(app, f"/tracks/{ids[0]}", 200, pattern="/tracks/{id}")
    check(app, f"/tracks/{ids[1]}", 200, {"market": "US"}, pattern="/tracks/{id}")
    check(user, "/me", 200)
    check(user, "/me/tracks", 200)
    check(user, "/me/tracks", 200, {"limit": 50, "offset": 1950})  # the last page: next is null
    check(user, "/me/tracks", 200, {"limit": 7, "market": "SE"})
    limit = 10 if tier == "dev-2026" else 50
    check(app, "/search", 200, {"q": "love", "type": "track", "limit": limit})
    check(app, "/search", 200, {"q": "isrc:NOPE00000000", "type": "track"})  # no hits
    # documented error bodies
    check(None, "/tracks", 401, {"ids": ids[0]})
    check("expired-or-bogus", "/me", 401)
    no_scope = emu.user_tokens(scope="user-read-private")["access_token"]
    check(no_scope, "/me/tracks", 403)
    emu.configure(force_429={"count": 1, "retry_after_s": 5})
    check(app, f"/tracks/{ids[0]}", 429, pattern="/tracks/{id}")
    emu.configure(force=[{"kind": "quota", "retry_after_s": 20000}])
    check(app, "/search", 429, {"q": "x", "type": "track"})
    assert len(checked) == 16


def test_validation_catches_a_wrong_body(emu, specs):
    """The check above can fail: a body missing a required paging field is refused."""
    token = emu.user_tokens()["access_token"]
    response = emu.get("/v1/me/tracks", token)
    data = orjson.loads(response.content)
    del data["total"]

    class Tampered:
        status_code = 200
        headers = {"content-type": "application/json"}
        content = orjson.dumps(data)

    with pytest.raises(Exception) as caught:
        validate(specs["extended"], Tampered(), "/me/tracks")
    assert "total" in repr(caught.value) or "Invalid" in type(caught.value).__name__
