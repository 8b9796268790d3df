"""Tokens through the storage layer: plaintext in and out, ciphertext in the table, key rotation."""

from datetime import timedelta

import sqlalchemy as sa

from pipeline.store.connections import UserTokens, load_tokens, rotate_keys, save_connection
from shared.clock import utc_now
from shared.crypto import TokenCipher, TokenDecryptError, generate_key


def tokens(user: str, access: str, refresh: str) -> UserTokens:
    now = utc_now().replace(microsecond=0)
    return UserTokens(user_id=user, spotify_user_id=f"spotify-{user}", access_token=access, refresh_token=refresh,
                      expires_at=now + timedelta(hours=1), scopes=("user-library-read",), authorized_at=now,
                      status="active")


def stored(engine) -> list[tuple[str, str]]:
    with engine.begin() as conn:
        return [tuple(r) for r in conn.execute(
            sa.text('SELECT "accessToken", "refreshToken" FROM spotify_connections ORDER BY "userId"'))]


def test_tokens_read_back_and_are_ciphertext_at_rest(engine, clean_db):
    cipher = TokenCipher((generate_key(),))
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO users (id) VALUES ('u1')"))
    save_connection(engine, cipher, tokens("u1", "BQ-access-1", "AQ-refresh-1"))
    loaded = load_tokens(engine, cipher, "u1")
    assert (loaded.access_token, loaded.refresh_token, loaded.scopes) == ("BQ-access-1", "AQ-refresh-1",
                                                                          ("user-library-read",))
    [(access, refresh)] = stored(engine)
    assert "BQ-access-1" not in access and "AQ-refresh-1" not in refresh
    assert "BQ-access-1" not in repr(loaded)


def test_rotate_keys_in_batches_then_the_old_key_can_go(engine, clean_db):
    old, new = generate_key(), generate_key()
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO users (id) SELECT 'u' || n FROM generate_series(1, 7) n"))
    for n in range(1, 8):
        save_connection(engine, TokenCipher((old,)), tokens(f"u{n}", f"access-{n}", f"refresh-{n}"))
    before = stored(engine)

    both = TokenCipher((new, old))
    assert rotate_keys(engine, both, batch_size=3) == 7
    assert rotate_keys(engine, both, batch_size=3) == 0  # run again: nothing left to do
    after = stored(engine)
    assert all(a != b for a, b in zip(before, after, strict=True))

    only_new = TokenCipher((new,))
    for n in range(1, 8):
        loaded = load_tokens(engine, only_new, f"u{n}")
        assert (loaded.access_token, loaded.refresh_token) == (f"access-{n}", f"refresh-{n}")
    try:
        load_tokens(engine, TokenCipher((old,)), "u1")
        raise AssertionError("the old key alone should no longer decrypt")
    except TokenDecryptError:
        pass
