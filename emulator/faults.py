"""Faults: what can go wrong on purpose, by probability and endpoint, or forced for the next N calls.

Kinds:
  500 / 502 / 503  an error status with Spotify's JSON error body
  slow             sleep `slow_s` seconds, then answer normally (longer than a client's timeout)
  drop             close the connection without any response
  malformed        200 with a truncated JSON body
  incomplete       200 with valid JSON in which one track lacks a field Spotify always sends
                   (`name`, `artists`, `album`, `duration_ms`) or has it with the wrong type
                   (see `incomplete_body`)
  429              (forced only) rate-limit answer with a chosen Retry-After
  quota            (forced only) 429 with "reason":"QUOTA_EXCEEDED"

Spec syntax (CLI `--faults`, or a string for `faults` in POST /_emulator/config):
  KIND:PROBABILITY[@ENDPOINT][,KIND:PROBABILITY[@ENDPOINT]...]
  e.g. "503:0.05,slow:0.01@/v1/tracks,drop:0.02@/v1/audio-features,malformed:0.01"
ENDPOINT is a route path as in the stats ("/v1/tracks", "/v1/tracks/{id}", "/v1/me/tracks",
"/api/token"); without it a rule applies to every /v1 endpoint (never to the accounts host).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

FAULT_KINDS = ("500", "502", "503", "slow", "drop", "malformed", "incomplete")
# What an incomplete track lacks or has wrong: (field, None to delete it or the wrong-typed value).
SPOILS: tuple[tuple[str, Any], ...] = (
    ("name", None), ("artists", None), ("album", None), ("duration_ms", None),
    ("name", 42), ("artists", "an artist"), ("duration_ms", "215000"), ("album", ["an album"]),
)
FORCED_KINDS = FAULT_KINDS + ("429", "quota")


class FaultSpecError(ValueError):
    """The fault spec or a fault rule is malformed."""


def _endpoint_matches(rule_endpoint: str | None, endpoint: str) -> bool:
    if rule_endpoint in (None, "", "*"):
        return endpoint.startswith("/v1/")
    return rule_endpoint == endpoint


@dataclass(frozen=True)
class FaultRule:
    kind: str
    p: float
    endpoint: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise FaultSpecError(f"fault kind must be one of {', '.join(FAULT_KINDS)}: {self.kind}")
        if not 0.0 <= self.p <= 1.0:
            raise FaultSpecError(f"fault probability must be within 0..1: {self.p}")

    def matches(self, endpoint: str) -> bool:
        return _endpoint_matches(self.endpoint, endpoint)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "p": self.p, "endpoint": self.endpoint}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRule:
        try:
            return cls(kind=str(data["kind"]), p=float(data["p"]), endpoint=data.get("endpoint"))
        except KeyError as exc:
            raise FaultSpecError(f"fault rule needs {exc.args[0]}") from exc


@dataclass(frozen=True)
class ForcedRule:
    """The next `count` matching API calls answer `kind` (counted in the shared store)."""

    id: str
    kind: str
    count: int = 1
    retry_after_s: int | None = None  # for 429/quota; None = no Retry-After header
    body: str = "json"  # for 429: "json" or "empty"
    client_id: str | None = None
    endpoint: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FORCED_KINDS:
            raise FaultSpecError(f"forced kind must be one of {', '.join(FORCED_KINDS)}: {self.kind}")
        if self.count < 0:
            raise FaultSpecError("forced count must be >= 0")
        if self.body not in ("json", "empty"):
            raise FaultSpecError("forced body must be json or empty")

    def matches(self, endpoint: str, client_id: str | None) -> bool:
        if self.client_id is not None and self.client_id != client_id:
            return False
        return _endpoint_matches(self.endpoint, endpoint)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "count": self.count,
            "retry_after_s": self.retry_after_s, "body": self.body,
            "client_id": self.client_id, "endpoint": self.endpoint,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ForcedRule:
        kind = str(data.get("kind", data.get("status", "429")))
        retry = data.get("retry_after_s", data.get("retry_after"))
        return cls(
            id=str(data.get("id") or new_forced_id()),
            kind=kind,
            count=int(data.get("count", 1)),
            retry_after_s=None if retry is None else int(retry),
            body=str(data.get("body", "json")),
            client_id=data.get("client_id"),
            endpoint=data.get("endpoint"),
        )


def new_forced_id() -> str:
    return uuid.uuid4().hex[:12]


def parse_fault_spec(spec: str) -> tuple[FaultRule, ...]:
    """'503:0.05,slow:0.01@/v1/tracks' -> rules. An empty spec means no faults."""
    rules = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        head, _, endpoint = part.partition("@")
        kind, sep, prob = head.partition(":")
        if not sep:
            raise FaultSpecError(f"fault '{part}' must look like KIND:PROBABILITY[@ENDPOINT]")
        try:
            p = float(prob)
        except ValueError as exc:
            raise FaultSpecError(f"fault '{part}': probability must be a number") from exc
        rules.append(FaultRule(kind=kind.strip(), p=p, endpoint=endpoint.strip() or None))
    return tuple(rules)


class FaultDice:
    """Rolls the random faults. One instance per app; the lock-free Random is fine because
    every roll happens on the event loop thread."""

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed)

    def reseed(self, seed: int | None) -> None:
        self._random = random.Random(seed)

    def roll(self, rules: tuple[FaultRule, ...], endpoint: str) -> str | None:
        for rule in rules:
            if rule.p > 0 and rule.matches(endpoint) and self._random.random() < rule.p:
                return rule.kind
        return None

    def chance(self, p: float) -> bool:
        return p > 0 and self._random.random() < p

    def spoil(self, body: bytes) -> bytes:
        """An incomplete copy of `body` (see `incomplete_body`), by this dice's randomness."""
        return incomplete_body(body, self._random)


def _tracks_in(payload: Any) -> Iterator[dict[str, Any]]:
    """The track objects of a Web API body: /tracks, /tracks/{id}, /me/tracks items, search."""
    if not isinstance(payload, dict):
        return
    if isinstance(payload.get("id"), str) and "duration_ms" in payload:
        yield payload
    tracks = payload.get("tracks")
    listed = tracks.get("items") if isinstance(tracks, dict) else tracks
    for entry in [*(listed or []), *(payload.get("items") or [])]:
        track = entry.get("track", entry) if isinstance(entry, dict) else None
        if isinstance(track, dict):
            yield track


def incomplete_body(body: bytes, rng: random.Random) -> bytes:
    """`body` (a 200's JSON) with one of its tracks spoiled: a required field deleted or given the
    wrong type (SPOILS). A body without tracks (audio features, /me) loses one top-level field.
    The JSON stays valid: only a client that checks each track notices."""
    payload = orjson.loads(body)
    tracks = list(_tracks_in(payload))
    if tracks:
        field, wrong = rng.choice(SPOILS)
        track = rng.choice(tracks)
        if wrong is None:
            track.pop(field, None)
        else:
            track[field] = wrong
    elif isinstance(payload, dict) and payload:
        payload.pop(rng.choice(sorted(payload)))
    return orjson.dumps(payload)
