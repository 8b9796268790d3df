"""What is stale: ids never synced or synced longer ago than the TTL; everything when forced."""

from datetime import datetime, timedelta

import pytest

from pipeline.freshness import chunks, is_fresh, stale_ids

NOW = datetime(2026, 11, 22, 12, 0, 0)
DAY = 86400


def test_an_id_synced_within_the_ttl_is_fresh_and_one_synced_before_it_is_not():
    assert is_fresh(NOW - timedelta(hours=23), NOW, DAY)
    assert not is_fresh(NOW - timedelta(hours=24), NOW, DAY)
    assert not is_fresh(None, NOW, DAY)


def test_stale_ids_keep_the_order_drop_duplicates_and_skip_fresh_ones():
    synced = {"a": NOW - timedelta(hours=1), "b": NOW - timedelta(days=2), "c": None}
    assert stale_ids(["d", "a", "b", "d", "c"], synced, NOW, DAY) == ["d", "b", "c"]


def test_force_fetches_fresh_ids_too():
    synced = {"a": NOW - timedelta(hours=1)}
    assert stale_ids(["a", "b", "a"], synced, NOW, DAY, force=True) == ["a", "b"]


def test_chunks_are_full_but_the_last():
    assert [len(c) for c in chunks(list(range(120)), 50)] == [50, 50, 20]
    assert chunks([], 50) == []
    with pytest.raises(ValueError):
        chunks([1], 0)
