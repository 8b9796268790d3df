"""Faults over real sockets: what a client really sees for each kind."""

from __future__ import annotations

import json

import httpx
import pytest


def _tracks(emu, token, ids, **client_kwargs):
    with httpx.Client(base_url=emu.base_url, **client_kwargs) as client:
        return client.get("/v1/tracks", params={"ids": ",".join(ids)}, headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("status,message", [
    (500, "Server error."), (502, "Bad gateway."), (503, "Service unavailable"),
])
def test_server_errors_with_spotify_bodies(emu, status, message):
    emu.configure(faults=f"{status}:1.0@/v1/tracks")
    token, ids = emu.app_token(), emu.ids(2)
    response = _tracks(emu, token, ids)
    assert response.status_code == status
    assert response.json() == {"error": {"status": status, "message": message}}
    assert emu.get(f"/v1/tracks/{ids[0]}", token).status_code == 200  # another endpoint is fine
    assert emu.stats()["faults"] == {str(status): 1}


def test_slow_answers_outlast_the_client_timeout(emu):
    emu.configure(faults="slow:1.0", slow_s=1.5)
    token, ids = emu.app_token(), emu.ids(2)
    with pytest.raises(httpx.ReadTimeout):
        _tracks(emu, token, ids, timeout=0.5)
    patient = _tracks(emu, token, ids, timeout=5)
    assert patient.status_code == 200 and len(patient.json()["tracks"]) == 2


def test_dropped_connection_gives_no_response_at_all(emu):
    emu.configure(faults="drop:1.0@/v1/tracks")
    token, ids = emu.app_token(), emu.ids(2)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        _tracks(emu, token, ids)
    assert emu.stats()["requests"]["/v1/tracks"] == {"dropped": 1}
    emu.configure(faults="")
    assert _tracks(emu, token, ids).status_code == 200  # the server itself is fine


def test_malformed_json_is_a_200_with_a_truncated_body(emu):
    emu.configure(faults="malformed:1.0@/v1/tracks")
    response = _tracks(emu, emu.app_token(), emu.ids(50))
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_fault_probability_is_honoured(emu):
    emu.configure(faults="503:0.3", fault_seed=7, rate_limit=None)
    token, track = emu.app_token(), emu.ids(1)[0]
    statuses = [emu.get(f"/v1/tracks/{track}", token).status_code for _ in range(300)]
    share = statuses.count(503) / len(statuses)
    assert 0.2 < share < 0.4 and set(statuses) == {200, 503}


def test_faults_leave_the_accounts_host_alone_unless_named(emu):
    emu.configure(faults="500:1.0")
    assert emu.http.post("/api/token", data={"grant_type": "client_credentials"}, auth=("x", "y")).status_code == 200
    emu.configure(faults="503:1.0@/api/token")
    assert emu.http.post("/api/token", data={"grant_type": "client_credentials"}, auth=("x", "y")).status_code == 503


def test_forced_faults_for_the_next_calls(emu):
    token, track = emu.app_token(), emu.ids(1)[0]
    emu.configure(force=[{"kind": "502", "count": 2}, {"kind": "drop", "count": 1, "endpoint": "/v1/me"}])
    assert [emu.get(f"/v1/tracks/{track}", token).status_code for _ in range(3)] == [502, 502, 200]


def test_bad_fault_specs_are_refused(emu):
    for spec in ("teapot:0.5", "500:2", "500"):
        response = emu.http.post("/_emulator/config", json={"faults": spec})
        assert response.status_code == 400 and "error" in response.json()
