"""Token encryption at rest: Fernet (AES-128-CBC + HMAC-SHA256) under MultiFernet.

SPOTIFY_TOKEN_KEYS is a comma-separated list of keys: the first encrypts, every one decrypts.
To rotate without downtime: put a new key first, deploy, run `spotify-sync keys rotate`, then
drop the old key.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class TokenDecryptError(Exception):
    """A stored token cannot be decrypted with any configured key (the key was dropped too soon?)."""


def generate_key() -> str:
    return Fernet.generate_key().decode()


class TokenCipher:
    def __init__(self, keys: tuple[str, ...] | list[str]):
        if not keys:
            raise ValueError("at least one key is needed")
        self._fernets = [Fernet(k) for k in keys]
        self._all = MultiFernet(self._fernets)

    def encrypt(self, plaintext: str) -> str:
        return self._all.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._all.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise TokenDecryptError("a stored token could not be decrypted with any key in SPOTIFY_TOKEN_KEYS") from None

    def is_current(self, ciphertext: str) -> bool:
        """Whether the newest (first) key already encrypts this value: rotation can skip it."""
        try:
            self._fernets[0].decrypt(ciphertext.encode())
            return True
        except InvalidToken:
            return False

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt under the first key (keeps the original timestamp)."""
        try:
            return self._all.rotate(ciphertext.encode()).decode()
        except InvalidToken:
            raise TokenDecryptError("a stored token could not be decrypted with any key in SPOTIFY_TOKEN_KEYS") from None
