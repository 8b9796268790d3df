"""Ids: 22 base62 characters, index <-> id, unknown-but-well-formed ids recognised."""

from __future__ import annotations

import random

from emulator.ids import IdCodec, b62decode, b62encode, is_well_formed


def test_round_trip_over_a_wide_range_of_indexes():
    codec = IdCodec("seed", "track")
    for index in [0, 1, 2, 99_999, 999_999, 10**8] + random.Random(1).sample(range(10**12), 200):
        track_id = codec.encode(index)
        assert len(track_id) == 22 and is_well_formed(track_id)
        assert codec.decode(track_id) == index


def test_ids_look_random_and_are_unique():
    codec = IdCodec("seed", "track")
    ids = [codec.encode(i) for i in range(5000)]
    assert len(set(ids)) == 5000
    assert len({i[:3] for i in ids}) > 1000  # neighbours share no prefix


def test_foreign_and_tampered_ids_are_not_ours():
    ours, theirs = IdCodec("seed", "track"), IdCodec("other", "track")
    album = IdCodec("seed", "album")
    track_id = ours.encode(42)
    assert theirs.decode(track_id) is None and album.decode(track_id) is None
    tampered = track_id[:-1] + ("A" if track_id[-1] != "A" else "B")
    assert ours.decode(tampered) is None
    assert ours.decode("zzzzzzzzzzzzzzzzzzzzzz") is None  # beyond 128 bits


def test_well_formed():
    assert is_well_formed("4iV5W9uYEdYUVa79Axb7Rh")
    assert not is_well_formed("4iV5W9uYEdYUVa79Axb7R")  # 21
    assert not is_well_formed("4iV5W9uYEdYUVa79Axb7R-")
    assert b62decode(b62encode(123456789)) == 123456789
