"""Signed links to the connect page: `/connect?user=U&expires=E&sig=S`.

A caller with an API token asks for one (`POST /v1/connections/{userId}/connect-link`) and hands
it to the user or opens it itself (the demo, an operator): whoever holds the link may connect
Spotify for that one user until it expires, and see that user's connection status, nothing else.
The page takes no API token because a browser cannot send one.

The signature is HMAC-SHA256 over the user and the expiry, keyed with a key derived from the
newest SPOTIFY_TOKEN_KEYS key; every configured key is tried when checking, so rotating the token
keys does not break the links already handed out. Compared with `hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from urllib.parse import urlencode

LINK_LIFETIME_S = 1800  # long enough to go through Spotify's consent, short enough to be harmless


def _signature(key: str, user_id: str, expires_s: int) -> str:
    link_key = hashlib.sha256(b"spotify-sync connect link\n" + key.encode()).digest()  # not the Fernet key itself
    return hmac.new(link_key, f"{user_id}\n{expires_s}".encode(), hashlib.sha256).hexdigest()


def link_params(keys: Sequence[str], user_id: str, now_s: float, lifetime_s: int = LINK_LIFETIME_S) -> dict[str, str]:
    """The query parameters of a link for `user_id` valid for `lifetime_s` from `now_s`."""
    expires_s = int(now_s) + lifetime_s
    return {"user": user_id, "expires": str(expires_s), "sig": _signature(keys[0], user_id, expires_s)}


def link_query(keys: Sequence[str], user_id: str, now_s: float, **extra: str) -> str:
    return urlencode({**link_params(keys, user_id, now_s), **extra})


def link_valid(keys: Sequence[str], user_id: str | None, expires: str | None, sig: str | None, now_s: float) -> bool:
    """Whether the link's signature is one of ours for this user and it has not expired."""
    if not (user_id and expires and sig) or not expires.isascii() or not expires.isdigit() or len(expires) > 12:
        return False
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(_signature(key, user_id, int(expires)).encode(), sig.encode())
    return matched and int(expires) > now_s
