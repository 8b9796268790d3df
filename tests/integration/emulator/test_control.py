"""The control API: stats, config while running, reset, ids, users' libraries."""

from __future__ import annotations

T0 = 1_800_000_000.0


def test_stats_count_what_the_emulator_saw(emu):
    emu.clock(freeze_at=T0)
    emu.configure(rate_limit=3)
    token = emu.app_token("stats-app")
    user = emu.user_tokens(client_id="stats-user-app", user="alice")
    emu.http.post("/api/token", auth=("stats-user-app", "secret"),
                  data={"grant_type": "refresh_token", "refresh_token": user["refresh_token"]})
    ids = emu.ids(51)
    assert emu.get("/v1/tracks", token, ids=",".join(ids[:50])).status_code == 200
    assert emu.get("/v1/tracks", token, ids=",".join(ids[:7])).status_code == 200
    assert emu.get("/v1/tracks", token, ids=",".join(ids)).status_code == 400
    assert emu.get("/v1/tracks", token, ids=ids[0]).status_code == 429
    assert emu.get("/v1/me", user["access_token"]).status_code == 200

    stats = emu.stats()
    assert stats["requests"]["/v1/tracks"] == {"200": 2, "400": 1, "429": 1}
    assert stats["requests"]["/v1/me"] == {"200": 1}
    assert stats["requests"]["/api/token"] == {"200": 3}
    assert stats["requests"]["/authorize"] == {"303": 1}
    assert stats["rate_limited"] == {"window": 1}
    assert stats["tokens"] == {
        "client_credentials": {"stats-app": {"-": 1}},
        "authorization_code": {"stats-user-app": {"alice": 1}},
        "refresh_token": {"stats-user-app": {"alice": 1}},
    }
    batch = stats["batch_ids"]["/v1/tracks"]
    assert batch == {"histogram": {"7": 1, "50": 1}, "requests": 2, "ids": 57, "ids_per_request": 28.5}
    assert stats["max_requests_in_window"]["by_client"] == {"stats-app": 4, "stats-user-app": 1}


def test_busiest_window_is_exact(emu):
    emu.configure(rate_limit=None)
    emu.clock(freeze_at=T0)
    token, track = emu.app_token("busy-app"), emu.ids(1)[0]

    def calls(at: float, n: int) -> None:
        emu.clock(freeze_at=T0 + at)
        for _ in range(n):
            assert emu.get(f"/v1/tracks/{track}", token).status_code == 200

    calls(0, 3)
    calls(20, 2)
    calls(30, 4)  # (0, 30] holds 2 + 4: the calls of t = 0 are out at exactly 30
    calls(45, 1)  # (15, 45] holds 2 + 4 + 1 = 7
    calls(61, 5)  # (31, 61] holds 1 + 5 = 6
    window = emu.stats()["max_requests_in_window"]
    assert window == {"window_s": 30.0, "max": 7, "by_client": {"busy-app": 7}}


def test_config_changes_while_running_and_validation(emu):
    config = emu.configure(tier="dev-legacy", rate_limit=10, faults="503:0.5@/v1/tracks", slow_s=2)
    assert config["tier"] == "dev-legacy" and config["rate_limit"] == 10 and config["slow_s"] == 2.0
    assert config["faults"] == [{"kind": "503", "p": 0.5, "endpoint": "/v1/tracks"}]
    assert emu.http.get("/_emulator/config").json()["tier"] == "dev-legacy"
    for bad in ({"tier": "gold"}, {"no_such_field": 1}, {"access_token_ttl_s": 0}, {"redis_url": "redis://x"}):
        assert emu.http.post("/_emulator/config", json=bad).status_code == 400
    assert emu.http.post("/_emulator/config", content=b"[1]").status_code == 400


def test_reset_clears_stats_windows_and_forced_answers_and_grants_if_asked(emu):
    emu.configure(rate_limit=1)
    token, user = emu.app_token(), emu.user_tokens()
    track = emu.ids(1)[0]
    assert emu.get(f"/v1/tracks/{track}", token).status_code == 200
    assert emu.get(f"/v1/tracks/{track}", token).status_code == 429
    emu.http.post("/_emulator/force", json={"kind": "500", "count": 5})
    assert emu.http.post("/_emulator/reset", json={}).json() == {"ok": True}
    assert emu.stats()["requests_total"] == 0
    assert emu.get(f"/v1/tracks/{track}", token).status_code == 200  # window and forced 500s gone
    assert emu.get("/v1/me", user["access_token"]).status_code == 200  # grants survive a plain reset
    emu.http.post("/_emulator/reset", json={"grants": True, "config": True})
    assert emu.get("/v1/me", user["access_token"]).status_code == 401
    assert emu.http.get("/_emulator/config").json()["rate_limit"] == 180


def test_ids_and_library_listing(emu):
    listed = emu.http.get("/_emulator/ids", params={"count": 5, "offset": 10}).json()
    assert listed["catalog_size"] == 10_000 and listed["offset"] == 10 and len(listed["ids"]) == 5
    assert listed["ids"] == emu.ids(15)[10:]
    demo = emu.http.get("/_emulator/users/demo/library", params={"limit": 3}).json()
    assert demo["total"] == 2000 and len(demo["ids"]) == 3
    assert demo["added_at"] == sorted(demo["added_at"], reverse=True)
    fresh = emu.http.get("/_emulator/users/someone-new/library").json()
    assert fresh["total"] == 200  # any name is a user, with the default library size
    assert emu.http.get("/_emulator/health").json()["ok"] is True
