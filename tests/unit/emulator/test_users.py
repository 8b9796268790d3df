"""Users' libraries and profiles."""

from __future__ import annotations

from emulator.users import Library, profile


def test_library_newest_first_unique_and_deterministic():
    library = Library.of("demo", 500, 10_000, "s")
    items = library.page(0, 500)
    assert len(items) == 500 and len({i for i, _ in items}) == 500
    dates = [d for _, d in items]
    assert dates == sorted(dates, reverse=True) and len(set(dates)) == 500
    assert Library.of("demo", 500, 10_000, "s").page(100, 5) == items[100:105]
    assert library.page(495, 50) == items[495:]
    assert library.page(500, 50) == []


def test_library_never_exceeds_the_catalog_and_users_differ():
    assert Library.of("x", 50, 20, "s").size == 20
    assert Library.of("a", 10, 1000, "s").page(0, 10) != Library.of("b", 10, 1000, "s").page(0, 10)


def test_profile_by_scope_and_tier():
    full = profile("demo", "full", frozenset({"user-read-private", "user-read-email"}))
    assert {"country", "product", "email", "followers"} <= set(full)
    bare = profile("demo", "full", frozenset())
    assert "email" not in bare and "country" not in bare
    dev = profile("demo", "dev-2026", frozenset({"user-read-private", "user-read-email"}))
    assert "account_id" in dev and not {"country", "email", "product", "followers"} & set(dev)


def test_account_id_in_every_tier_and_stable_per_user():
    ids = {view: profile("demo", view, frozenset())["account_id"] for view in ("full", "dev-2026")}
    assert ids["full"] == ids["dev-2026"] and len(ids["full"]) == 16
    assert profile("alice", "full", frozenset())["account_id"] != ids["full"]
