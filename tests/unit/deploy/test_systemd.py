"""deploy/systemd/: timers, services and their environment file."""

from __future__ import annotations

from pathlib import Path

from tests.unit.deploy.deployfiles import DEPLOY, unit_entries


def test_each_timer_starts_a_service_that_exists_and_units_read_one_environment_file():
    systemd = DEPLOY / "systemd"
    timers = sorted(systemd.glob("*.timer"))
    assert {t.stem for t in timers} == {"spotify-sync-popularity"}  # the workers reconcile: no timer
    for timer in timers:
        assert (systemd / f"{timer.stem}.service").exists(), timer.name
        assert any(s == "Timer" for s, _, _ in unit_entries(timer.read_text()))
    assert (systemd / "spotify-sync-worker@.service").exists()
    examples = {p.name.removesuffix(".example") for p in systemd.glob("*.env.example")}
    for service in systemd.glob("*.service"):
        files = [v for _, k, v in unit_entries(service.read_text()) if k == "EnvironmentFile"]
        assert files and all(Path(f.lstrip("-")).name in examples for f in files), (service.name, files)
        users = [v for _, k, v in unit_entries(service.read_text()) if k == "User"]
        assert users and users[0] != "root", service.name

