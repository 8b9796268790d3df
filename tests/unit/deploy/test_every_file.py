"""The real files under deploy/: every command they run exists with its options, every variable they
set is one the settings read, and together they run each part of the system."""

from __future__ import annotations

from tests.unit.deploy.checker import Found, problems
from tests.unit.deploy.deployfiles import everything


def test_every_spotify_sync_command_in_the_deployment_files_exists_with_its_options():
    found = everything()
    assert len(found.invocations) >= 10, [str(i) for i in found.invocations]
    assert [p for p in problems(Found(found.invocations, []))] == []


def test_every_environment_variable_set_is_one_the_settings_read():
    found = everything()
    assert found.env
    assert [p for p in problems(Found([], found.env))] == []


def test_the_deployment_files_run_each_part_of_the_system():
    ran = [" ".join(i.argv) for i in everything().invocations]
    for command in ("worker --processes", "db upgrade", "enqueue popularity-update",
                    "emulator --host"):
        assert any(r.startswith(command) for r in ran), (command, ran)

