"""The `incomplete` fault: valid JSON, one track spoiled, every body shape the API answers."""

from __future__ import annotations

import random

import orjson
import pytest

from emulator.faults import SPOILS, FaultDice, incomplete_body, parse_fault_spec
from pipeline.errors import MalformedResponse
from pipeline.spotify.models import Track


def _track(n: int) -> dict:
    return {"id": f"{n:022d}", "name": f"t{n}", "artists": [{"name": "a"}], "album": {"name": "b"},
            "duration_ms": 1000 + n, "popularity": 5}


def _spoiled(before: list[dict], after: list[dict]) -> list[tuple[dict, dict]]:
    return [(b, a) for b, a in zip(before, after, strict=True) if a != b]


@pytest.mark.parametrize("shape", ["several", "one", "saved", "search"])
def test_one_track_of_every_body_shape_is_spoiled_and_the_json_stays_valid(shape):
    tracks = [_track(n) for n in range(5)]
    wrap = {
        "several": lambda ts: {"tracks": ts},
        "one": lambda ts: ts[0],
        "saved": lambda ts: {"items": [{"added_at": "2026-01-01T00:00:00Z", "track": t} for t in ts], "total": 5},
        "search": lambda ts: {"tracks": {"items": ts, "total": 5}},
    }[shape]
    unwrap = {
        "several": lambda p: p["tracks"],
        "one": lambda p: [p],
        "saved": lambda p: [i["track"] for i in p["items"]],
        "search": lambda p: p["tracks"]["items"],
    }[shape]
    rng = random.Random(3)
    for _ in range(20):
        original = wrap([dict(t) for t in tracks])
        after = unwrap(orjson.loads(incomplete_body(orjson.dumps(original), rng)))
        [(before, spoiled)] = _spoiled(unwrap(original), after)
        changed = {k for k in before.keys() | spoiled.keys() if before.get(k) != spoiled.get(k)}
        assert len(changed) == 1 and changed <= {field for field, _ in SPOILS}


def test_every_spoil_is_a_track_the_pipeline_refuses():
    # The pipeline's own reading of a track (pipeline/spotify/models.py) must notice each one,
    # else the fault would test nothing.
    for field, wrong in SPOILS:
        track = _track(1)
        if wrong is None:
            del track[field]
        else:
            track[field] = wrong
        with pytest.raises(MalformedResponse):
            Track.from_json(track)


def test_a_body_without_tracks_loses_one_top_level_field():
    body = orjson.dumps({"display_name": "x", "id": "u", "country": "SE"})
    assert len(orjson.loads(incomplete_body(body, random.Random(1)))) == 2


def test_the_dice_spoil_reproducibly_with_a_seed_and_the_spec_accepts_the_kind():
    body = orjson.dumps({"tracks": [_track(n) for n in range(50)]})
    assert FaultDice(9).spoil(body) == FaultDice(9).spoil(body)
    assert parse_fault_spec("incomplete:0.01@/v1/tracks")[0].kind == "incomplete"
