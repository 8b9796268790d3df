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


def test_bytes_lines_are_decoded_one_by_one_and_a_line_that_is_not_utf8_is_one_bad_line():
    reader = IdReader([f"{ID}\n".encode(), b"caf\xe9\n", bytes(range(256)) + b"\n", f"spotify:track:{ID}\n".encode()],
                      label="ids.txt line")
    assert list(reader) == [ID, ID]
    assert [(b.where, b.reason) for b in reader.bad] == [("ids.txt line 2", "not UTF-8 text"),
                                                        ("ids.txt line 3", "not UTF-8 text")]
    assert reader.bad[0].text == "caf\ufffd"


def test_a_byte_order_mark_on_the_first_line_is_dropped_in_bytes_and_in_text():
    assert list(IdReader([b"\xef\xbb\xbf" + ID.encode() + b"\r\n", ID.encode()])) == [ID, ID]
    assert list(IdReader(["\ufeff" + ID])) == [ID]
    later = IdReader([ID, "\ufeff" + ID])  # only a first line's mark is a byte order mark
    assert list(later) == [ID] and later.bad_count == 1
