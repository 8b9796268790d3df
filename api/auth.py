"""Callers present `Authorization: Bearer <token>`, one of API_TOKENS."""

from __future__ import annotations

import hmac
from collections.abc import Sequence


def token_allowed(presented: str | None, allowed: Sequence[str]) -> bool:
    """Whether `presented` is one of `allowed`. Every allowed token is compared, each in
    constant time, so the answer's timing says nothing about which token came close."""
    if not presented:
        return False
    given = presented.encode()
    matched = False
    for token in allowed:
        matched |= hmac.compare_digest(given, token.encode())
    return matched


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
