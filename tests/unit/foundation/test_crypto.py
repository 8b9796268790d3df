"""Token encryption: first key encrypts, every key decrypts, rotation moves to the first key."""

import pytest

from shared.crypto import TokenCipher, TokenDecryptError, generate_key


def test_round_trip_and_ciphertext_differs():
    cipher = TokenCipher((generate_key(),))
    token = "BQD-access-token-value"
    sealed = cipher.encrypt(token)
    assert token not in sealed and cipher.decrypt(sealed) == token


def test_rotation_to_a_new_first_key_lets_the_old_one_go():
    old, new = generate_key(), generate_key()
    sealed_old = TokenCipher((old,)).encrypt("refresh-me")
    both = TokenCipher((new, old))
    assert both.decrypt(sealed_old) == "refresh-me" and not both.is_current(sealed_old)
    rotated = both.rotate(sealed_old)
    assert both.is_current(rotated)
    assert TokenCipher((new,)).decrypt(rotated) == "refresh-me"


def test_an_unknown_key_is_a_clear_error_that_leaks_nothing():
    sealed = TokenCipher((generate_key(),)).encrypt("secret-token")
    with pytest.raises(TokenDecryptError) as caught:
        TokenCipher((generate_key(),)).decrypt(sealed)
    assert "secret-token" not in str(caught.value) and "SPOTIFY_TOKEN_KEYS" in str(caught.value)
