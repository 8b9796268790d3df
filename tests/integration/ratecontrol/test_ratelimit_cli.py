"""`spotify-sync ratelimit show|clear` as an operator runs it, against real Redis and PostgreSQL
and the served emulator: what the fleet learned, one line per thing or JSON, and forgetting it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.capabilities import AUDIO_FEATURES
from pipeline.errors import RateLimited
from pipeline.store.capabilities import PostgresCapabilityRows
from pipeline.wiring import build_client
from shared.settings import parse_rate_limit
from tests.integration.spotify.conftest import pointed_at

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]


def run(settings, *args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOTIFY_", "DATABASE_URL", "REDIS_"))}
    env.update(settings.as_environ())
    return subprocess.run([sys.executable, "-m", "cli", "ratelimit", *args], check=False, env=env,
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def show(settings) -> dict:
    result = run(settings, "show", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_show_names_each_thing_the_fleet_learned_and_clear_forgets_them_all(settings, engine, clean_db,
                                                                            start_emulator):
    emulator = start_emulator(rate_limit=None)
    settings = pointed_at(settings, emulator, spotify_rate_limit=parse_rate_limit("auto:start=20,max=100"),
                          spotify_developer_account="acme")
    client = build_client(settings, engine=engine)
    [track_id] = emulator.ids(1)
    client.get_track(track_id)  # the learned budget now exists, in Redis and PostgreSQL
    client.capabilities.forbid(AUDIO_FEATURES, "403 on /audio-features")
    emulator.post("/_emulator/force", {"kind": "429", "count": 1, "retry_after_s": 120})
    with pytest.raises(RateLimited):  # this app meets the rate limit ...
        client.get_track(track_id)
    sibling = build_client(settings.replace(spotify_client_id="another-app-of-acme"), engine=engine)
    emulator.post("/_emulator/force", {"kind": "quota", "count": 1, "retry_after_s": 7200})
    with pytest.raises(RateLimited) as quota:  # ... and another app of its developer account spends the quota
        sibling.get_track(track_id)
    assert quota.value.reason == "quota_exceeded"

    document = show(settings)
    assert document["penalty_box"]["shut"] and 100 < document["penalty_box"]["blocked_for_s"] <= 120
    assert document["quota"]["shut"] and document["quota"]["reason"] == "quota_exceeded"
    assert document["developer_account"] == "acme"
    assert document["budget"]["learned"] and document["budget"]["kept_in"] == "redis"
    assert AUDIO_FEATURES in [c["capability"] for c in document["capabilities"]]
    lines = run(settings, "show").stdout.splitlines()
    assert any(line.strip().startswith("penalty box: shut for") for line in lines), lines
    assert any(line.strip().startswith("quota (acme): spent (quota_exceeded); comes back in") for line in lines)
    assert any(line.strip().startswith("budget: 10 requests per 30s") and "learned, kept in redis" in line
               for line in lines), lines

    cleared = run(settings, "clear", "--json")
    assert cleared.returncode == 0, cleared.stderr
    assert {k: v > 0 for k, v in json.loads(cleared.stdout)["cleared"].items()} == {
        "penalty": True, "quota": True, "budget": True, "capabilities": True}
    document = show(settings)
    assert not document["penalty_box"]["shut"] and not document["quota"]["shut"]
    assert document["budget"]["kept_in"] is None and document["capabilities"] == []
    assert PostgresCapabilityRows(engine).load(settings.spotify_client_id) == {}
    again = run(settings, "clear")
    assert again.returncode == 0 and "penalty: nothing to clear" in again.stdout
