"""The store functions the connections API uses, on real PostgreSQL: what may be shown of a
connection (no token), whose a Spotify account is, deleting, and a user's jobs cancelled."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from pipeline.store import connections, ledger
from pipeline.store.connections import UserTokens, save_connection
from pipeline.store.ledger import NewJob
from shared.clock import utc_now
from shared.crypto import TokenCipher, generate_key


def connect(engine, user: str, spotify_user: str) -> UserTokens:
    now = utc_now().replace(microsecond=0, tzinfo=None)
    tokens = UserTokens(user_id=user, spotify_user_id=spotify_user, access_token="BQ-" + user,
                        refresh_token="AQ-" + user,
                        expires_at=now + timedelta(hours=1), scopes=("user-library-read", "user-read-email"),
                        authorized_at=now, status="active")
    save_connection(engine, TokenCipher((generate_key(),)), tokens)
    return tokens


def test_connection_info_carries_no_token_and_the_refresh_token_dies_180_days_after(engine, clean_db):
    tokens = connect(engine, "u1", "sp-1")
    info = connections.connection_info(engine, "u1")
    assert info is not None
    assert (info.spotify_user_id, info.scopes, info.status) == ("sp-1", ("user-library-read", "user-read-email"),
                                                                "active")
    assert info.refresh_token_expires_at == tokens.authorized_at + timedelta(days=180)
    assert "BQ-u1" not in repr(info) and not hasattr(info, "access_token")
    assert connections.connection_info(engine, "nobody") is None


def test_whose_spotify_account_and_deleting(engine, clean_db):
    connect(engine, "u1", "sp-1")
    assert connections.spotify_account_owner(engine, "sp-1") == "u1"
    assert connections.spotify_account_owner(engine, "sp-2") is None
    assert connections.delete_connection(engine, "u1") is True
    assert connections.delete_connection(engine, "u1") is False
    assert connections.spotify_account_owner(engine, "sp-1") is None
    with engine.connect() as conn:  # the application's users row stays
        assert conn.execute(sa.text("SELECT count(*) FROM users WHERE id = 'u1'")).scalar_one() == 1


def test_cancel_user_jobs_leaves_other_users_and_finished_jobs(engine, clean_db):
    connect(engine, "u1", "sp-1")
    connect(engine, "u2", "sp-2")
    mine = ledger.create_jobs(engine, [NewJob("user_library", {"full": False}, user_id="u1")])
    done = ledger.create_jobs(engine, [NewJob("user_library", {"full": True}, user_id="u1")])
    theirs = ledger.create_jobs(engine, [NewJob("user_library", {"full": False}, user_id="u2")])
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE spotify_sync_jobs SET status = 'completed' WHERE id = :id"), {"id": done[0]})
    assert ledger.latest_user_job(engine, "u1", "user_library").id == done[0]
    assert ledger.cancel_user_jobs(engine, "u1", "disconnected") == mine
    cancelled = ledger.get_job(engine, mine[0])
    assert (cancelled.status, cancelled.error_class, cancelled.error) == ("failed", "Cancelled", "disconnected")
    assert ledger.get_job(engine, done[0]).status == "completed"
    assert ledger.get_job(engine, theirs[0]).status == "pending"
    assert ledger.latest_user_job(engine, "u3", "user_library") is None
