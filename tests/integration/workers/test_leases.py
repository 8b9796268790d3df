"""The lease keeper renews, in one statement, only the leases that are due: a run claimed a
moment ago keeps the lease of its claim (no row written), one held for a sixth of JOB_LEASE is
renewed, and a run taken over meanwhile is reported lost."""

from sqlalchemy import text

from pipeline.store import ledger
from workers.leases import LeaseKeeper


class Clock:
    def __init__(self):
        self.now = 1000.0


def claimed(engine, count):
    ids = ledger.create_jobs(engine, [ledger.NewJob("track_sync", {"ids": [f"{i:022d}"]}) for i in range(count)])
    return [ledger.claim(engine, job_id, 60, max_retries=5).job for job_id in ids]


def lease_of(engine, job_id):
    with engine.connect() as conn:
        return conn.execute(text('SELECT "leaseUntil" FROM spotify_sync_jobs WHERE id = :i'), {"i": job_id}).scalar()


def test_only_due_leases_are_renewed_and_a_lost_one_is_reported(clean_db):
    clock = Clock()
    keeper = LeaseKeeper(clean_db, 60, monotonic=lambda: clock.now)
    old, new = claimed(clean_db, 2)
    with keeper.holding(old):
        clock.now += 10  # a sixth of the lease
        with keeper.holding(new):
            keeper.renew_now()
            assert lease_of(clean_db, old.id) > old.lease_until  # due: renewed
            assert lease_of(clean_db, new.id) == new.lease_until  # claimed just now: untouched
            with clean_db.begin() as conn:  # another worker takes the new run over
                conn.execute(text("UPDATE spotify_sync_jobs SET attempts = attempts + 1 WHERE id = :i"), {"i": new.id})
            renewed = lease_of(clean_db, old.id)
            clock.now += 5
            keeper.renew_now()
            assert not keeper.lost(new.id)  # not due yet: not looked at
            assert lease_of(clean_db, old.id) == renewed  # renewed 5 s ago: not due
            clock.now += 5
            keeper.renew_now()
            assert keeper.lost(new.id) and not keeper.lost(old.id)
