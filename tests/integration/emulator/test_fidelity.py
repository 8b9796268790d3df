"""Fidelity details over real sockets: trailing slashes, `account_id` in every tier."""

from __future__ import annotations

import pytest

from .conftest import REDIRECT_URI, new_client_id


def test_every_api_route_with_a_trailing_slash_answers_as_without_it(emu):
    app = emu.app_token()
    user = emu.user_tokens(user="alice")["access_token"]
    ids = emu.ids(3)
    calls = [
        (app, "/v1/tracks", {"ids": ",".join(ids)}),
        (app, f"/v1/tracks/{ids[0]}", None),
        (app, "/v1/audio-features", {"ids": ",".join(ids)}),
        (user, "/v1/me", None),
        (user, "/v1/me/tracks", {"limit": 3}),
        (app, "/v1/search", {"q": "isrc:NOPE00000000", "type": "track"}),
    ]
    for token, path, params in calls:
        plain = emu.get(path, token, **(params or {}))
        slashed = emu.get(path + "/", token, **(params or {}))
        assert plain.status_code == 200, (path, plain.text)
        assert slashed.status_code == 200, (path + "/", slashed.status_code, slashed.headers)
        assert slashed.headers["content-type"] == plain.headers["content-type"]
        assert slashed.content == plain.content, path
    requests = emu.stats()["requests"]
    assert requests["/v1/me"] == {"200": 2} and requests["/v1/tracks/{id}"] == {"200": 2}


def test_accounts_and_control_routes_take_a_trailing_slash_too(emu):
    token = emu.http.post("/api/token/", data={"grant_type": "client_credentials"}, auth=(new_client_id(), "s"))
    assert token.status_code == 200 and token.json()["token_type"] == "Bearer"
    back = emu.http.get("/authorize/", params={"client_id": "app", "response_type": "code",
                                               "redirect_uri": REDIRECT_URI, "emulated_user": "demo"})
    assert back.status_code == 303 and "code=" in back.headers["location"]
    assert emu.http.get("/_emulator/health/").json()["ok"] is True


def test_unknown_path_with_a_slash_is_still_spotifys_404(emu):
    response = emu.get("/v1/nothing-here/", emu.app_token())
    assert response.status_code == 404 and response.json() == {"error": {"status": 404, "message": "Service not found"}}


@pytest.mark.parametrize("tier", ["extended", "dev-legacy", "dev-2026"])
def test_me_carries_account_id_in_every_tier(emu, tier):
    emu.configure(tier=tier)
    me = emu.get("/v1/me", emu.user_tokens(user="bob", scope="user-read-private")["access_token"]).json()
    assert me["id"] == "bob" and len(me["account_id"]) == 16
    again = emu.get("/v1/me/", emu.user_tokens(user="bob", scope="")["access_token"]).json()
    assert again["account_id"] == me["account_id"]
