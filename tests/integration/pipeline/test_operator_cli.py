"""The operator's commands as a user runs them: exit codes 0 / 1 / 2, bad lines by number,
--help everywhere."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.store import ledger

ROOT = Path(__file__).resolve().parents[3]
ID = "4iV5W9uYEdYUVa79Axb7Rh"
OTHER = "0000000000000000000001"


def run(settings, *args, input=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOTIFY_", "DATABASE_URL", "REDIS_"))}
    env.update(settings.as_environ())
    return subprocess.run([sys.executable, "-m", "cli", *args], env=env, input=input, capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


@pytest.mark.parametrize("command", [
    ["enqueue"], ["enqueue", "track-sync"], ["enqueue", "user-library"], ["enqueue", "popularity-update"],
    ["jobs"], ["jobs", "list"], ["jobs", "show"], ["jobs", "retry"], ["jobs", "cancel"], ["jobs", "reconcile"],
    ["status"], ["worker"],
])
def test_every_command_has_help(settings, command):
    result = run(settings, *command, "--help")
    assert result.returncode == 0 and "Usage:" in result.stdout


def test_bad_lines_are_reported_by_number_the_good_ones_enqueued_and_the_exit_code_is_1(settings, clean_db):
    result = run(settings, "enqueue", "track-sync", "--ids-file", "-", "--quiet",
                 input=f"{ID}\nnonsense\n\nspotify:track:{OTHER}\nhttps://open.spotify.com/album/{ID}\n")
    assert result.returncode == 1, result.stderr
    assert "<stdin> line 2: not a Spotify track id, URI or URL: 'nonsense'" in result.stderr
    assert f"<stdin> line 5: not a Spotify track id, URI or URL: 'https://open.spotify.com/album/{ID}'" in result.stderr
    assert "1 job(s) enqueued for 2 id(s)" in result.stdout
    [job] = ledger.list_jobs(clean_db)
    assert job.payload == {"ids": [ID, OTHER], "force": False}


def test_ids_as_arguments_exit_0_and_nothing_usable_is_exit_2(settings, clean_db):
    assert run(settings, "enqueue", "track-sync", ID, f"spotify:track:{OTHER}", "--quiet").returncode == 0
    for args in (["enqueue", "track-sync"], ["enqueue", "track-sync", "bad"], ["enqueue", "user-library"],
                 ["enqueue", "user-library", "--user", "u", "--all"], ["enqueue", "popularity-update", "--older-than", "x"],
                 ["jobs", "show", "no-such-job"], ["jobs", "retry"], ["jobs", "cancel"]):
        result = run(settings, *args)
        assert result.returncode == 2, (args, result.stderr)
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("spotify-sync: ") or "Usage:" in result.stderr, (args, result.stderr)


def test_list_show_cancel_retry_and_reconcile(settings, clean_db):
    run(settings, "enqueue", "track-sync", ID, "--quiet")
    [job] = ledger.list_jobs(clean_db)
    listed = run(settings, "jobs", "list", "--status", "pending")
    assert listed.returncode == 0 and job.id in listed.stdout and "track_sync" in listed.stdout
    shown = run(settings, "jobs", "show", job.id[:8])
    assert shown.returncode == 0 and f'"id": "{job.id}"' in shown.stdout
    assert "1 job(s) cancelled" in run(settings, "jobs", "cancel", job.id).stdout
    assert ledger.get_job(clean_db, job.id).error_class == "Cancelled"
    assert "1 job(s) sent again" in run(settings, "jobs", "retry", "--failed").stdout
    assert ledger.get_job(clean_db, job.id).status == "pending"
    reconciled = run(settings, "jobs", "reconcile")
    assert reconciled.returncode == 0 and "0 pending job(s) re-sent" in reconciled.stdout  # its message is live
    status = run(settings, "status")
    assert status.returncode == 0 and "track_sync        1 [0] / 0 / 0 / 0" in status.stdout
    assert "tracks      2 / 0 / 0 / 0" in status.stdout  # the first message and the retry's (harmless)


def test_a_producer_kept_waiting_by_another_says_so_in_one_line_and_exits_1(settings, clean_db, monkeypatch):
    from click.testing import CliRunner

    from cli import main
    from pipeline import producers

    monkeypatch.setattr(producers, "PRODUCER_LOCK_TIMEOUT_S", 0.2)  # in process: a subprocess would wait 60 s
    with ledger.producer_turn(clean_db, "popularity_update", timeout_s=1):  # another producer, still running
        result = CliRunner().invoke(main, ["enqueue", "popularity-update"], env=settings.as_environ())
    assert result.exit_code == 1
    assert result.stderr.strip() == ("spotify-sync: another popularity_update producer is running (waited 0.2s "
                                     "for it); try again when it has finished")
    assert ledger.list_jobs(clean_db) == []
