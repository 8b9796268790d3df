"""refresh_under_lock on real Postgres: rotated tokens saved before use, the old refresh token
kept when none comes back, a gone grant marks needs_reauth, a fresh token is not refreshed."""

from datetime import datetime, timedelta

import pytest

from pipeline.auth.token_endpoint import TokenGrant
from pipeline.store.connections import UserTokens, load_tokens, refresh_under_lock, save_connection
from shared.clock import utc_now
from shared.crypto import TokenCipher

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 22, 12, 0)


@pytest.fixture
def stored(settings, clean_db):
    cipher = TokenCipher(settings.spotify_token_keys)
    save_connection(clean_db, cipher, UserTokens("u", "spotify-u", "old-access", "old-refresh", NOW - timedelta(minutes=1),
                                                 ("user-library-read",), NOW - timedelta(days=10), "active"))
    return clean_db, cipher


def refresh(stored, grant):
    engine, cipher = stored
    asked = []

    def call(refresh_token):
        asked.append(refresh_token)
        return grant

    tokens = refresh_under_lock(engine, cipher, "u", needs_refresh=lambda t: t.expires_at <= NOW,
                                refresh=call)
    return tokens, asked, load_tokens(engine, cipher, "u")


def test_a_rotated_refresh_token_is_saved(stored):
    tokens, asked, saved = refresh(stored, TokenGrant("new-access", 3600, "new-refresh"))
    assert asked == ["old-refresh"] and saved == tokens
    assert (saved.access_token, saved.refresh_token) == ("new-access", "new-refresh")
    # An hour from the database's clock at the refresh.
    assert abs(saved.expires_at - (utc_now() + timedelta(hours=1))) < timedelta(minutes=1)
    assert saved.authorized_at == NOW - timedelta(days=10)  # refreshing does not extend the grant


def test_the_old_refresh_token_is_kept_when_none_comes_back(stored):
    _, _, saved = refresh(stored, TokenGrant("new-access", 3600, None, ("user-library-read", "user-read-email")))
    assert (saved.access_token, saved.refresh_token, saved.scopes) == (
        "new-access", "old-refresh", ("user-library-read", "user-read-email"))


def test_a_gone_grant_marks_the_connection(stored):
    tokens, _, saved = refresh(stored, None)
    assert tokens.status == saved.status == "needs_reauth" and saved.refresh_token == "old-refresh"
    _, asked, _ = refresh(stored, TokenGrant("x", 3600, "y"))
    assert asked == []  # a connection that needs the user is not refreshed again


def test_a_token_another_worker_refreshed_is_used_as_it_is(stored):
    refresh(stored, TokenGrant("new-access", 3600, "new-refresh"))
    tokens, asked, _ = refresh(stored, TokenGrant("other", 3600, "other"))
    assert asked == [] and tokens.access_token == "new-access"
