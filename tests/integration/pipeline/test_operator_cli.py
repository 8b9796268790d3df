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
    return subprocess.run([sys.executable, "-m", "cli", *args], check=False, env=env, input=input, capture_output=True,
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


FORGED = "bad id\x1b[31m\n2026-12-01 10:00:00.000 | INFO    | workers.actors | job completed\r\x9b2J"


def failed_with_a_forged_error(engine, job_id):
    """The ledger as a worker leaves it after Spotify answered with a hostile error body."""
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(text("""UPDATE spotify_sync_jobs SET status = 'failed', "errorClass" = 'BadRequest',
                             error = :error WHERE id = :id"""), {"error": FORGED, "id": job_id})


def test_jobs_list_and_status_show_control_characters_escaped(settings, clean_db):
    from sqlalchemy import text

    run(settings, "enqueue", "track-sync", ID, "--quiet")
    [job] = ledger.list_jobs(clean_db)
    failed_with_a_forged_error(clean_db, job.id)
    with clean_db.begin() as conn:
        conn.execute(text("UPDATE spotify_backfills SET description = :d"), {"d": FORGED})
    listed = run(settings, "jobs", "list")
    assert listed.returncode == 0, listed.stderr
    [line] = listed.stdout.splitlines()
    assert "BadRequest: bad id\\x1b[31m\\n2026-12-01 10:00:00.000 | INFO" in line and line.endswith("\\r\\x9b2J")
    status = run(settings, "status")
    assert status.returncode == 0, status.stderr
    assert not any(c in status.stdout for c in "\x1b\r\x9b")
    [backfill_line] = [x for x in status.stdout.splitlines() if job.backfill_id in x]
    assert backfill_line.endswith("bad id\\x1b[31m\\n2026-12-01 10:00:00.000 | INFO    | workers.actors | "
                                  "job completed\\r\\x9b2J")


def test_jobs_list_and_show_print_json_documents(settings, clean_db):
    import json
    from datetime import datetime

    run(settings, "enqueue", "track-sync", ID, "--quiet")
    run(settings, "enqueue", "track-sync", OTHER, "--quiet")
    newest, older = ledger.list_jobs(clean_db)
    failed_with_a_forged_error(clean_db, older.id)

    listed = run(settings, "jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    document = json.loads(listed.stdout)
    assert [j["id"] for j in document] == [newest.id, older.id]
    assert list(document[0]) == JOB_KEYS  # stable keys, in a stable order
    assert document[1]["error"] == FORGED and document[1]["status"] == "failed"
    assert document[0]["payload"] == {"ids": [OTHER], "force": False}
    created = datetime.fromisoformat(document[0]["created_at"])
    assert created.tzinfo is not None and created.replace(tzinfo=None) == newest.created_at
    assert "\x1b" not in listed.stdout and "\n" not in listed.stdout.strip()

    assert json.loads(run(settings, "jobs", "list", "--json", "--status", "running").stdout) == []
    shown = run(settings, "jobs", "show", older.id[:8], "--json")
    assert shown.returncode == 0, shown.stderr
    one = json.loads(shown.stdout)
    assert one == document[1]


JOB_KEYS = ["id", "job_type", "status", "payload", "user_id", "backfill_id", "retry_count", "attempts",
            "lease_until", "not_before", "enqueued_at", "error_class", "error", "result", "started_at",
            "completed_at", "created_at", "updated_at"]


def test_status_prints_one_json_document(settings, clean_db):
    import json
    from datetime import datetime

    from sqlalchemy import text

    run(settings, "enqueue", "track-sync", ID, "--quiet")
    [job] = ledger.list_jobs(clean_db)
    with clean_db.begin() as conn:  # the application writes a song itself: queued for the search indexer
        conn.execute(text('INSERT INTO songs ("spotifyId", title, artist) VALUES (:id, \'Song\', \'Artist\')'),
                     {"id": OTHER})
    result = run(settings, "status", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert list(document) == ["queues", "jobs", "backfills", "search", "penalty_box", "budget", "quota",
                              "capabilities", "problems"]
    assert document["search"] == {"queued": 1, "at_most": 100_000}
    assert {q["queue"]: q for q in document["queues"]}["tracks"] == {
        "queue": "tracks", "ready": 1, "delayed": 0, "in_flight": 0, "dead": 0}
    assert document["jobs"]["track_sync"] == {"pending": 1, "parked": 0, "running": 0, "completed": 0, "failed": 0}
    [backfill] = document["backfills"]
    assert backfill["id"] == job.backfill_id and backfill["total_jobs"] == 1 and backfill["finished_jobs"] == 0
    assert datetime.fromisoformat(backfill["created_at"]).tzinfo is not None
    assert document["penalty_box"] == {"client_id": settings.spotify_client_id, "blocked_for_s": 0.0, "reason": None}
    assert document["budget"] == {"client_id": settings.spotify_client_id, "used": 0, "limit": "100/60s",
                                  "requests": 100, "window_s": 60, "learned": False, "kept_in": None,
                                  "limit_measured_at": None}
    assert document["quota"] == {"developer_account": settings.spotify_client_id, "shut": False,
                                 "blocked_for_s": 0.0, "reason": None, "until": None}
    assert document["capabilities"] == [] and document["problems"] == []


def test_json_and_watch_do_not_mix(settings, clean_db):
    result = run(settings, "status", "--json", "--watch")
    assert result.returncode == 2 and "--json" in result.stderr


def test_the_popularity_refresh_takes_songs_older_than_popularity_ttl_by_default(settings, clean_db):
    from sqlalchemy import text

    with clean_db.begin() as conn:  # refreshed two hours ago
        conn.execute(text('INSERT INTO songs (title, artist, "spotifyId", "lastPopularityUpdate") '
                          "VALUES ('t', 'a', :i, (now() AT TIME ZONE 'UTC') - interval '2 hours')"), {"i": ID})
    fresh_enough = run(settings.replace(popularity_ttl_s=3 * 3600), "enqueue", "popularity-update")
    assert fresh_enough.returncode == 0, fresh_enough.stderr
    assert fresh_enough.stdout.startswith("0 popularity job(s)")
    stale = run(settings.replace(popularity_ttl_s=3600), "enqueue", "popularity-update")
    assert stale.stdout.startswith("1 popularity job(s) enqueued for 1 song(s)"), stale.stdout + stale.stderr
