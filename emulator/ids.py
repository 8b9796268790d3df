"""Spotify-like ids: 22 base62 characters that encode a catalog index and a keyed checksum.

An id is base62(hi << 64 | lo), left-padded with '0' to 22 characters, where
  hi = scramble(index)          a keyed bijection on 64 bits, so ids look random
  lo = blake2b(hi, key)[:8]     a keyed checksum, so a well-formed id that the emulator never
                                issued is recognised as "not in the catalog" without a lookup.
Decoding is O(1): no table of ids is ever held, whatever the catalog size.
Different kinds (track, album, artist) use different keys, so their ids never collide.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
ID_LENGTH = 22
_ID_RE = re.compile(r"^[0-9A-Za-z]{22}$")
_MASK64 = (1 << 64) - 1


def is_well_formed(value: str) -> bool:
    return bool(_ID_RE.match(value))


def b62encode(number: int, width: int = ID_LENGTH) -> str:
    chars = []
    while number:
        number, rem = divmod(number, 62)
        chars.append(ALPHABET[rem])
    return "".join(reversed(chars)).rjust(width, "0")


def b62decode(text: str) -> int:
    number = 0
    for char in text:
        number = number * 62 + _INDEX[char]
    return number


def _inv_xorshift(y: int, shift: int) -> int:
    x = y
    for _ in range(64 // shift + 1):
        x = y ^ (x >> shift)
    return x & _MASK64


class IdCodec:
    """index <-> id for one kind of object in one catalog (seed)."""

    def __init__(self, seed: str, kind: str) -> None:
        digest = hashlib.blake2b(f"{seed}/{kind}".encode(), digest_size=40).digest()
        self._mac_key = digest[:16]
        self._add = int.from_bytes(digest[16:24], "big")
        self._mul1 = int.from_bytes(digest[24:32], "big") | 1  # odd: invertible mod 2^64
        self._mul2 = int.from_bytes(digest[32:40], "big") | 1
        self._inv1 = pow(self._mul1, -1, 1 << 64)
        self._inv2 = pow(self._mul2, -1, 1 << 64)
        # Bounded caches: the hot path decodes the same ids again and again.
        self.encode = lru_cache(maxsize=200_000)(self._encode)
        self.decode = lru_cache(maxsize=200_000)(self._decode)

    def _scramble(self, index: int) -> int:
        x = (index + self._add) & _MASK64
        x = (x * self._mul1) & _MASK64
        x ^= x >> 29
        x = (x * self._mul2) & _MASK64
        x ^= x >> 32
        return x

    def _unscramble(self, x: int) -> int:
        x = _inv_xorshift(x, 32)
        x = (x * self._inv2) & _MASK64
        x = _inv_xorshift(x, 29)
        x = (x * self._inv1) & _MASK64
        return (x - self._add) & _MASK64

    def _mac(self, hi: int) -> int:
        digest = hashlib.blake2b(hi.to_bytes(8, "big"), key=self._mac_key, digest_size=8).digest()
        return int.from_bytes(digest, "big")

    def _encode(self, index: int) -> str:
        hi = self._scramble(index)
        return b62encode((hi << 64) | self._mac(hi))

    def _decode(self, value: str) -> int | None:
        """The index of a well-formed id, or None if this codec never issued it."""
        number = b62decode(value)
        if number >> 128:
            return None
        hi, lo = number >> 64, number & _MASK64
        if self._mac(hi) != lo:
            return None
        return self._unscramble(hi)
