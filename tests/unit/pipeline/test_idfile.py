"""Reading ids as operators paste them: every form normalised, bad lines remembered by number."""

from pipeline.idfile import IdReader

ID = "4iV5W9uYEdYUVa79Axb7Rh"


def test_ids_uris_and_urls_are_normalised_blank_lines_and_comments_skipped():
    reader = IdReader([f"{ID}\n", "\n", "# a comment\n", f"spotify:track:{ID}\n",
                       f"https://open.spotify.com/track/{ID}?si=abc\n"])
    assert list(reader) == [ID, ID, ID]
    assert (reader.good_count, reader.bad_count, reader.bad) == (3, 0, [])


def test_bad_lines_are_reported_with_their_numbers_and_the_rest_goes_on():
    reader = IdReader([ID, "not-an-id", f"spotify:album:{ID}", ID], label="ids.txt line")
    assert list(reader) == [ID, ID]
    assert [(b.where, b.text) for b in reader.bad] == [("ids.txt line 2", "not-an-id"),
                                                      ("ids.txt line 3", f"spotify:album:{ID}")]
    assert reader.bad_count == 2
