"""The emulator as its own processes: the CLI, and two processes sharing state through Redis."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from emulator.catalog import Catalog
from emulator.config import EmulatorConfig
from emulator.server import start_subprocess


def _token(base: str, client_id: str) -> str:
    response = httpx.post(base + "/api/token", data={"grant_type": "client_credentials"}, auth=(client_id, "s"))
    return response.json()["access_token"]


def test_cli_prints_valid_ids():
    out = subprocess.run([sys.executable, "-m", "emulator.cli", "ids", "--count", "5", "--offset", "3"],
                         capture_output=True, text=True, check=True).stdout.split()
    catalog = Catalog(100_000, "spotify-sync")
    assert len(out) == 5 and [catalog.track_index(i) for i in out] == [3, 4, 5, 6, 7]
    small = subprocess.run([sys.executable, "-m", "emulator.cli", "--catalog-size", "4", "ids", "--count", "10"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert len(small) == 4


def test_cli_server_with_options():
    args = ("--tier", "dev-2026", "--rate-limit", "2", "--faults", "503:0@/v1/tracks", "--consent", "auto")
    with start_subprocess(extra_args=args) as emu:
        config = httpx.get(emu.base_url + "/_emulator/config").json()
        assert config["tier"] == "dev-2026" and config["rate_limit"] == 2 and config["consent"] == "auto"
        authorize = httpx.get(emu.base_url + "/authorize", params={
            "client_id": "cli-app", "response_type": "code", "redirect_uri": "http://127.0.0.1:9/cb"})
        assert authorize.status_code == 303 and "code=" in authorize.headers["location"]  # no page
        token = _token(emu.base_url, "cli-app")
        track = httpx.get(emu.base_url + "/_emulator/ids", params={"count": 1}).json()["ids"][0]
        auth = {"Authorization": f"Bearer {token}"}
        statuses = [httpx.get(f"{emu.base_url}/v1/tracks/{track}", headers=auth).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
    assert emu.process.poll() is not None


def test_two_processes_share_grants_windows_stats_and_config(redis_url, redis_prefix):
    config = EmulatorConfig(rate_limit=3, redis_url=redis_url, redis_prefix=redis_prefix, catalog_size=1000)
    with start_subprocess(config) as one, start_subprocess(config) as two:
        token = _token(one.base_url, "shared-app")  # issued by one, honoured by two
        track = httpx.get(one.base_url + "/_emulator/ids", params={"count": 1}).json()["ids"][0]
        headers = {"Authorization": f"Bearer {token}"}
        statuses = [httpx.get(f"{base}/v1/tracks/{track}", headers=headers).status_code
                    for base in (one.base_url, two.base_url, one.base_url, two.base_url)]
        assert statuses == [200, 200, 200, 429]  # one window for both processes
        stats = httpx.get(two.base_url + "/_emulator/stats").json()
        assert stats["requests"]["/v1/tracks/{id}"] == {"200": 3, "429": 1}
        assert stats["max_requests_in_window"]["by_client"] == {"shared-app": 4}

        httpx.post(one.base_url + "/_emulator/config", json={"tier": "dev-2026", "rate_limit": None})
        deadline = time.monotonic() + 5
        while httpx.get(two.base_url + "/_emulator/config").json()["tier"] != "dev-2026":
            assert time.monotonic() < deadline, "config did not reach the second process"
            time.sleep(0.1)
        batch = httpx.get(f"{two.base_url}/v1/tracks", params={"ids": track}, headers=headers)
        assert batch.status_code == 403

        httpx.post(two.base_url + "/_emulator/reset", json={})
        assert httpx.get(one.base_url + "/_emulator/stats").json()["requests_total"] == 0


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_forced_answers_are_counted_once_across_the_store(store, request):
    extra = {}
    if store == "redis":
        extra = {"redis_url": request.getfixturevalue("redis_url"),
                 "redis_prefix": request.getfixturevalue("redis_prefix")}
    with start_subprocess(EmulatorConfig(**extra)) as emu:
        token = _token(emu.base_url, "forced-app")
        httpx.post(emu.base_url + "/_emulator/force", json={"kind": "429", "count": 2, "retry_after_s": 3600})
        track = httpx.get(emu.base_url + "/_emulator/ids", params={"count": 1}).json()["ids"][0]
        answers = [httpx.get(f"{emu.base_url}/v1/tracks/{track}", headers={"Authorization": f"Bearer {token}"})
                   for _ in range(3)]
        assert [a.status_code for a in answers] == [429, 429, 200]
        assert answers[0].headers["retry-after"] == "3600"
