"""The other store modules against real PostgreSQL: capabilities (save, load, forget), the
freshness rule's verdicts, and connections counted by status."""

from datetime import datetime, timedelta

from sqlalchemy import text

from pipeline import mapping
from pipeline.store import connections, freshness, ledger, songs
from pipeline.store.capabilities import CapabilityState, PostgresCapabilityRows
from pipeline.store.connections import UserTokens
from shared.clock import utc_now
from shared.crypto import TokenCipher, generate_key

AT = datetime(2026, 11, 30, 12, 0, 0)


def test_capability_rows_are_saved_per_client_replaced_and_forgotten(clean_db):
    rows = PostgresCapabilityRows(clean_db)
    forbidden = CapabilityState("audio_features", False, "403", AT, AT + timedelta(days=1))
    rows.save("client-a", forbidden)
    rows.save("client-a", CapabilityState("popularity", True, None, AT, None))
    rows.save("client-b", CapabilityState("audio_features", True, None, AT, None))
    assert rows.load("client-a") == {"audio_features": forbidden,
                                     "popularity": CapabilityState("popularity", True, None, AT, None)}
    rows.save("client-a", CapabilityState("audio_features", True, None, AT + timedelta(days=1), None))
    assert rows.load("client-a")["audio_features"].allowed
    assert rows.forget("client-a", "audio_features") == 1
    assert set(rows.load("client-a")) == {"popularity"} and set(rows.load("client-b")) == {"audio_features"}
    assert rows.forget("client-a") == 1 and rows.load("client-a") == {}


def test_the_freshness_verdicts(clean_db):
    engine = clean_db
    ids = [f"{i:022d}" for i in range(5)]
    now = utc_now()
    songs.write_songs(engine, mapping.merge_rows(
        [{"id": ids[0], "name": "n", "artists": [{"name": "a"}]}], None, now, features_checked=True))  # fresh
    songs.write_songs(engine, mapping.merge_rows(
        [{"id": ids[1], "name": "n", "artists": [{"name": "a"}]}], None, now))  # fresh, no features
    songs.write_songs(engine, mapping.merge_rows(
        [{"id": ids[2], "name": "n", "artists": [{"name": "a"}]}], None, datetime(2020, 1, 1)))  # stale
    songs.write_tracks(engine, [], [ids[3]], now + timedelta(hours=1))  # unknown to Spotify, just now
    verdicts = freshness.freshness(engine, ids, ttl_s=86400)
    assert [(v.track_fresh, v.song_exists, v.features_due) for v in (verdicts[i] for i in ids)] == [
        (True, True, False), (True, True, True), (False, True, True), (True, False, False), (False, False, False)]
    with engine.connect() as conn:  # the producers' rule is the same definition
        due = conn.execute(text(f"SELECT i FROM unnest(CAST(:ids AS text[])) AS t(i) "
                                f"WHERE {freshness.track_work_due('i')} ORDER BY i"),
                           {"ids": ids, "ttl_s": 86400}).scalars().all()
    assert due == [ids[1], ids[2], ids[4]]
    # A claim asked for them brings the same verdicts, from its own statement.
    [job_id] = ledger.create_jobs(engine, [ledger.NewJob("track_sync", {"ids": ids})])
    claimed = ledger.claim(engine, job_id, 60, max_retries=5, freshness_ttl_s=86400).job
    assert claimed.freshness == verdicts
    # After the track is written: features are due for a song new now, not for one that had them.
    assert [verdicts[i].features_due_after_write(True) for i in ids] == [False, True, True, True, True]
    assert [verdicts[i].features_due_after_write(False) for i in ids] == [False, True, True, False, False]


def test_connections_are_counted_by_status_and_expiry(clean_db):
    cipher = TokenCipher((generate_key(),))
    now = connections.db_now(clean_db)
    for user, authorised_days_ago, status in (("u1", 1, "active"), ("u2", 170, "active"), ("u3", 10, "needs_reauth")):
        connections.save_connection(clean_db, cipher, UserTokens(
            user, f"spotify-{user}", "access", "refresh", now + timedelta(hours=1), ("user-library-read",),
            now - timedelta(days=authorised_days_ago), status))
    assert connections.count_by_status(clean_db) == {"active": 2, "needs_reauth": 1, "expiring_soon": 1}
