"""Ids as users paste them are normalised; anything else is refused by name."""

import pytest

from pipeline.errors import InvalidId
from pipeline.spotify.ids import batches, normalize_track_id, normalize_track_ids

ID = "4uLU6hMCjMI75M1A2tKUQC"


@pytest.mark.parametrize("raw", [
    ID,
    f"  {ID}\n",
    f"spotify:track:{ID}",
    f"https://open.spotify.com/track/{ID}",
    f"https://open.spotify.com/track/{ID}?si=abc123def",
    f"http://open.spotify.com/intl-de/track/{ID}?si=x",
])
def test_every_pasted_form_gives_the_bare_id(raw):
    assert normalize_track_id(raw) == ID


@pytest.mark.parametrize("raw", [
    "", "abc", ID[:-1], ID + "x", ID[:-1] + "-", f"spotify:album:{ID}", f"https://open.spotify.com/album/{ID}",
    f"https://evil.example/track/{ID}", f"spotify:track:{ID}x", None, 42,
])
def test_anything_else_is_an_error_that_names_the_input(raw):
    with pytest.raises(InvalidId) as caught:
        normalize_track_id(raw)
    assert repr(raw) in str(caught.value)
    assert not caught.value.transient and isinstance(caught.value, ValueError)


def test_a_list_is_normalised_in_order_without_duplicates():
    other = "7ouMYWpwJ422jRcDASZB7P"
    assert normalize_track_ids([f"spotify:track:{ID}", other, ID]) == [ID, other]


def test_batches_are_full_but_the_last():
    assert [len(b) for b in batches(list(range(120)), 50)] == [50, 50, 20]
    assert batches([], 50) == []


def test_a_list_of_bare_ids_is_checked_as_a_whole_and_anything_else_one_by_one():
    other = "7ouMYWpwJ422jRcDASZB7P"
    assert normalize_track_ids(iter([ID, other, ID])) == [ID, other]
    assert normalize_track_ids([]) == []
    for bad in ([f"{ID},{other}"], [ID, f"{other},"], [ID, 42], [ID, ""], [ID + other]):
        with pytest.raises(InvalidId):
            normalize_track_ids(bad)
    assert normalize_track_ids([f" {ID}", other]) == [ID, other]
