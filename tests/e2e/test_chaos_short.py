"""The chaos tier's short run, inside `make test`: a small backfill and two users' libraries through
real worker processes against the emulator's faults (5xx, drops, slow, malformed and incomplete
bodies, forced 429s, a 429 of an hour on a second client id), one SIGKILL of a worker group, one
Redis FLUSHALL, a PostgreSQL restart, and the full run's end checks (tests/chaos/scenario.py):
nothing lost, wrong, written twice or erased, no job left unfinished, no thread asleep."""

import pytest
from sqlalchemy import text

from tests.chaos.scenario import Plan, Run

SHORT = Plan(
    tracks=3_000,  # 60 jobs, about 20 s of work at the fleet's pace
    users={"u1": "bob", "u2": "carol"},  # 50 and 200 saved tracks
    groups=2, processes=1, threads=4,
    fleet_rate="20/1s", emulator_limit=600,
    kill_every_s=None, kill_at_s=(9.0,),
    pg_restart_at_s=12.0, redis_flush_at_s=6.0, redis_outage_at_s=None,
    forced_429_at_s=3.0, window_burst_at_s=None, reconcile_every_s=10.0,
    popularity_at_share=0.3, popularity_limit=500,
    drain_timeout_s=150.0,
)


@pytest.mark.timeout(240)
def test_a_short_chaos_run_loses_nothing():
    with Run(SHORT) as run:
        report = run.execute()
        assert report.stall_outside_outages_s <= SHORT.max_stall_s, report.lines()
        assert run.stuck_jobs() == []  # and the broker view a failed drain would print works
        assert report.kills == 1 and report.faults.get("incomplete") and report.rate_limited.get("forced")
        # The checks bite: a value changed, one erased and a saved track lost are each reported.
        with run.engine.begin() as conn:
            conn.execute(text("UPDATE songs SET title = 'wrong' WHERE \"spotifyId\" = :i"), {"i": run.ids[1]})
            conn.execute(text('UPDATE songs SET album = NULL WHERE "spotifyId" = :i'), {"i": sorted(run.outside)[0]})
            conn.execute(text("DELETE FROM spotify_saved_tracks WHERE ctid IN "
                              "(SELECT ctid FROM spotify_saved_tracks LIMIT 1)"))
        problems = "\n".join(run.verify())
        assert "stored values differ" in problems and "erased" in problems and "missing" in problems, problems
