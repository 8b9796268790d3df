"""Emulated users and their saved-track libraries, computed, never stored.

Any user name is a user (created on the fly); its library size comes from the config. The
library is a permutation of catalog indexes: item k (k = 0 is the oldest save) is
(a*k + b) mod catalog_size with a coprime to the size, so no track is saved twice.
Saves are spaced about SAVE_SPACING_S apart from a per-user start date, so growing a user's
library size adds *newer* saves on top, as a user saving more tracks would.
Listings are newest first, as Spotify's are.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

from emulator.catalog import iso_utc

LIBRARY_START_S = 1514764800  # 2018-01-01T00:00:00Z
SAVE_SPACING_S = 3 * 3600
DEFAULT_USERS = ("demo", "alice", "bob", "empty")


@dataclass(frozen=True)
class Library:
    user: str
    size: int
    catalog_size: int
    _a: int
    _b: int
    _start_s: int
    _salt: bytes

    @classmethod
    def of(cls, user: str, size: int, catalog_size: int, seed: str) -> Library:
        d = hashlib.blake2b(f"{seed}/user/{user}".encode(), digest_size=32).digest()
        a = (int.from_bytes(d[:8], "big") % catalog_size) | 1
        while math.gcd(a, catalog_size) != 1:
            a += 1
        return cls(
            user=user, size=min(size, catalog_size), catalog_size=catalog_size,
            _a=a % catalog_size or 1, _b=int.from_bytes(d[8:16], "big") % catalog_size,
            _start_s=LIBRARY_START_S + int.from_bytes(d[16:20], "big") % (90 * 86400),
            _salt=d[20:32],
        )

    def _item(self, k: int) -> tuple[int, str]:
        """(track index, added_at) of save number k, k = 0 being the oldest."""
        jitter = int.from_bytes(hashlib.blake2b(k.to_bytes(8, "big"), key=self._salt, digest_size=4).digest(), "big")
        # jitter < spacing keeps added_at strictly increasing with k.
        added = self._start_s + k * SAVE_SPACING_S + jitter % SAVE_SPACING_S
        return (self._a * k + self._b) % self.catalog_size, iso_utc(added)

    def page(self, offset: int, limit: int) -> list[tuple[int, str]]:
        """Newest first: position p is save number size - 1 - p."""
        stop = min(self.size, offset + limit)
        return [self._item(self.size - 1 - p) for p in range(offset, stop)]


def profile(user: str, view: str, scopes: frozenset[str]) -> dict[str, Any]:
    """PrivateUser as an app of `view` with `scopes` sees it (platform notes: scopes, tiers)."""
    d = hashlib.blake2b(f"profile/{user}".encode(), digest_size=8).digest()
    out: dict[str, Any] = {
        "display_name": user.replace("_", " ").title(),
        "external_urls": {"spotify": f"https://open.spotify.com/user/{user}"},
        "href": f"https://api.spotify.com/v1/users/{user}",
        "id": user,
        "images": [],
        "type": "user",
        "uri": f"spotify:user:{user}",
    }
    out["account_id"] = d.hex()  # added May 2026, for every app whatever its tier (platform notes)
    if view == "dev-2026":
        return out  # country, email, product and followers are left out
    out["followers"] = {"href": None, "total": d[0] % 200}
    if "user-read-private" in scopes:
        out["country"] = ("SE", "US", "GB", "DE", "FR", "BR")[d[1] % 6]
        out["product"] = "premium" if d[2] < 160 else "free"
        out["explicit_content"] = {"filter_enabled": False, "filter_locked": False}
    if "user-read-email" in scopes:
        out["email"] = f"{user}@example.com"
    return out
