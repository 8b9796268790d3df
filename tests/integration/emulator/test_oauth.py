"""OAuth over real sockets: client credentials, authorization code with and without PKCE,
refresh rotation, expiries, revocation, scopes and the 401 bodies."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from emulator.config import SIX_MONTHS_S, EmulatorConfig

from .conftest import REDIRECT_URI, new_client_id, s256


def test_client_credentials_with_basic_auth_or_body(emu):
    basic = emu.http.post("/api/token", data={"grant_type": "client_credentials"}, auth=("app-a", "s3cret"))
    body = emu.http.post("/api/token", data={"grant_type": "client_credentials",
                                             "client_id": "app-b", "client_secret": "s3cret"})
    for response in (basic, body):
        assert response.status_code == 200
        data = response.json()
        assert data["token_type"] == "Bearer" and data["expires_in"] == 3600
        assert "refresh_token" not in data
        assert emu.get("/v1/tracks/" + emu.ids(1)[0], data["access_token"]).status_code == 200


def test_open_registration_keeps_the_first_secret(emu):
    client_id = new_client_id()
    first = emu.http.post("/api/token", data={"grant_type": "client_credentials"}, auth=(client_id, "one"))
    assert first.status_code == 200
    wrong = emu.http.post("/api/token", data={"grant_type": "client_credentials"}, auth=(client_id, "two"))
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_client"
    empty = emu.http.post("/api/token", data={"grant_type": "client_credentials", "client_id": new_client_id()})
    assert empty.json() == {"error": "invalid_client", "error_description": "Invalid client"}


@pytest.mark.parametrize("emu_config", [EmulatorConfig(open_registration=False, clients={"known": "k-secret"})])
def test_fixed_clients_refuse_any_other(emu):
    known = emu.http.post("/api/token", data={"grant_type": "client_credentials"}, auth=("known", "k-secret"))
    assert known.status_code == 200
    other = emu.http.post("/api/token", data={"grant_type": "client_credentials"}, auth=("stranger", "x"))
    assert other.status_code == 400 and other.json()["error"] == "invalid_client"
    assert emu.authorize("stranger").status_code == 400


def test_authorize_redirects_straight_back_with_code_and_state(emu):
    response = emu.authorize("my-app", user="alice")
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    query = parse_qs(location.query)
    assert query["state"][0].startswith("st-") and len(query["code"][0]) > 20


@pytest.mark.parametrize("uri,message", [
    ("http://localhost:3000/callback", "INVALID_CLIENT: Insecure redirect URI"),
    ("http://example.com/callback", "INVALID_CLIENT: Insecure redirect URI"),
    ("not a uri", "INVALID_CLIENT: Invalid redirect URI"),
])
def test_authorize_refuses_localhost_and_plain_http(emu, uri, message):
    response = emu.authorize("my-app", redirect_uri=uri)
    assert response.status_code == 400 and response.text == message


def test_authorize_accepts_loopback_ip_and_https(emu):
    for uri in ("http://[::1]:9000/cb", "https://app.example.com/cb", REDIRECT_URI):
        assert emu.authorize("my-app", redirect_uri=uri).status_code == 303


def test_authorize_errors_go_back_to_the_app(emu):
    bad_scope = urlsplit(emu.authorize("my-app", scope="no-such-scope").headers["location"])
    assert parse_qs(bad_scope.query)["error"] == ["invalid_scope"]
    implicit = urlsplit(emu.authorize("my-app", response_type="token").headers["location"])
    assert parse_qs(implicit.query)["error"] == ["unsupported_response_type"]
    denied = urlsplit(emu.authorize("my-app", emulated_consent="deny").headers["location"])
    assert parse_qs(denied.query)["error"] == ["access_denied"]


def test_code_exchange_is_single_use_and_bound_to_the_redirect_uri(emu):
    client_id = new_client_id()
    code = emu.code(client_id)
    wrong_uri = emu.http.post("/api/token", auth=(client_id, "s"), data={
        "grant_type": "authorization_code", "code": emu.code(client_id), "redirect_uri": REDIRECT_URI + "/other"})
    assert wrong_uri.json() == {"error": "invalid_grant", "error_description": "Invalid redirect URI"}
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    first = emu.http.post("/api/token", auth=(client_id, "s"), data=form)
    assert first.status_code == 200
    assert set(first.json()) == {"access_token", "token_type", "expires_in", "scope", "refresh_token"}
    again = emu.http.post("/api/token", auth=(client_id, "s"), data=form)
    assert again.status_code == 400
    assert again.json() == {"error": "invalid_grant", "error_description": "Invalid authorization code"}


def test_pkce_public_client_and_wrong_verifier(emu):
    client_id = new_client_id()
    code = emu.code(client_id, code_challenge=s256("v" * 50), code_challenge_method="S256")
    wrong = emu.http.post("/api/token", data={"grant_type": "authorization_code", "code": code,
                                              "redirect_uri": REDIRECT_URI, "client_id": client_id,
                                              "code_verifier": "w" * 50})
    assert wrong.json()["error"] == "invalid_grant"
    tokens = emu.pkce_tokens(client_id)
    assert tokens["scope"] == "user-library-read"
    assert emu.get("/v1/me/tracks", tokens["access_token"]).status_code == 200


def test_pkce_refresh_rotates_and_revokes_the_old_token(emu):
    tokens = emu.pkce_tokens()
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": tokens["client_id"]}
    first = emu.http.post("/api/token", data=form)
    assert first.status_code == 200
    new_refresh = first.json()["refresh_token"]
    assert new_refresh != tokens["refresh_token"]
    reused = emu.http.post("/api/token", data=form)
    assert reused.json() == {"error": "invalid_grant", "error_description": "Refresh token revoked"}
    chained = emu.http.post("/api/token", data=form | {"refresh_token": new_refresh})
    assert chained.status_code == 200 and emu.get("/v1/me", chained.json()["access_token"]).status_code == 200
    garbage = emu.http.post("/api/token", data=form | {"refresh_token": "nope"})
    assert garbage.json() == {"error": "invalid_grant", "error_description": "Invalid refresh token"}


def test_confidential_refresh_omits_the_refresh_token_unless_set(emu):
    tokens = emu.user_tokens()
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    plain = emu.http.post("/api/token", auth=(tokens["client_id"], "secret"), data=form)
    assert plain.status_code == 200 and "refresh_token" not in plain.json()
    again = emu.http.post("/api/token", auth=(tokens["client_id"], "secret"), data=form)
    assert again.status_code == 200  # still valid
    emu.configure(rotate_confidential_refresh=True)
    rotated = emu.http.post("/api/token", auth=(tokens["client_id"], "secret"), data=form)
    assert rotated.json()["refresh_token"] != tokens["refresh_token"]
    no_secret = emu.http.post("/api/token", data=form | {"client_id": tokens["client_id"]})
    assert no_secret.json()["error"] == "invalid_client"


def test_access_tokens_expire(emu):
    emu.configure(access_token_ttl_s=1)
    token = emu.app_token()
    track = "/v1/tracks/" + emu.ids(1)[0]
    assert emu.get(track, token).status_code == 200
    emu.clock(advance_s=1.5)
    expired = emu.get(track, token)
    assert expired.status_code == 401
    assert expired.json() == {"error": {"status": 401, "message": "The access token expired"}}


def test_refresh_tokens_expire_six_months_after_authorisation_and_refresh_does_not_extend(emu):
    tokens = emu.user_tokens()
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    emu.clock(advance_s=SIX_MONTHS_S - 60)
    assert emu.http.post("/api/token", auth=(tokens["client_id"], "secret"), data=form).status_code == 200
    emu.clock(advance_s=61)
    late = emu.http.post("/api/token", auth=(tokens["client_id"], "secret"), data=form)
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"


def test_refresh_token_lifetime_is_settable(emu):
    emu.configure(refresh_token_ttl_s=10)
    tokens = emu.pkce_tokens()
    emu.clock(advance_s=11)
    late = emu.http.post("/api/token", data={"grant_type": "refresh_token", "client_id": tokens["client_id"],
                                             "refresh_token": tokens["refresh_token"]})
    assert late.json()["error"] == "invalid_grant"


def test_revoking_a_grant_kills_refresh_and_access_tokens(emu):
    tokens = emu.user_tokens(user="carol")
    other = emu.user_tokens(user="dave")
    response = emu.http.post("/_emulator/revoke", json={"user": "carol"})
    assert response.json() == {"revoked": 1}
    refresh = emu.http.post("/api/token", auth=(tokens["client_id"], "secret"),
                            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert refresh.json() == {"error": "invalid_grant", "error_description": "Refresh token revoked"}
    assert emu.get("/v1/me", tokens["access_token"]).json()["error"]["message"] == "Invalid access token"
    assert emu.get("/v1/me", other["access_token"]).status_code == 200
    again = emu.user_tokens(client_id=tokens["client_id"], user="carol")  # the user authorises again
    assert emu.get("/v1/me", again["access_token"]).json()["id"] == "carol"


def test_scopes_are_enforced_on_saved_tracks(emu):
    tokens = emu.user_tokens(scope="user-read-private")
    response = emu.get("/v1/me/tracks", tokens["access_token"])
    assert response.status_code == 403
    assert response.json() == {"error": {"status": 403, "message": "Insufficient client scope"}}
    me = emu.get("/v1/me", tokens["access_token"]).json()
    assert "country" in me and "email" not in me  # email needs user-read-email


def test_client_credentials_tokens_cannot_call_me_endpoints(emu):
    token = emu.app_token()
    for path in ("/v1/me", "/v1/me/tracks"):
        response = emu.get(path, token)
        assert response.status_code == 401
        assert response.json() == {"error": {"status": 401, "message": "Unauthorized."}}


def test_401_bodies(emu):
    track = "/v1/tracks/" + emu.ids(1)[0]
    assert emu.get(track, None).json() == {"error": {"status": 401, "message": "No token provided"}}
    assert emu.get(track, "bogus").json() == {"error": {"status": 401, "message": "Invalid access token"}}
    basic = emu.http.get(track, headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401
    emu.configure(auth_error_style="newer")
    newer = emu.get(track, "bogus")
    assert newer.json() == {"error": {"status": 401, "message": "Missing/invalid/expired access token"}}
    assert newer.headers["www-authenticate"] == 'Bearer realm="spotify", error="invalid_token"'


def test_unknown_grant_type(emu):
    response = emu.http.post("/api/token", data={"grant_type": "password"}, auth=("a", "b"))
    assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"
