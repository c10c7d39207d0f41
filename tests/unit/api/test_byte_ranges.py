"""Byte ranges of RFC 9110 §14: what the audio of a task answers to a player's ``Range``."""

from __future__ import annotations

import pytest

from maie.api.byte_ranges import ByteRange, RangeNotSatisfiableError, parse_range


class TestParseRange:
    """One range is honoured; anything else is answered with the whole file."""

    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            ("bytes=0-99", ByteRange(0, 99)),
            ("bytes=100-", ByteRange(100, 999)),
            ("bytes=-100", ByteRange(900, 999)),
            ("bytes=900-5000", ByteRange(900, 999)),  # a last byte past the end is cut to the end
            ("bytes=-5000", ByteRange(0, 999)),  # a suffix longer than the file is the whole file
            ("BYTES = 5 - 9", ByteRange(5, 9)),
            ("bytes=999-999", ByteRange(999, 999)),
        ],
    )
    def test_one_range(self, header, expected):
        assert parse_range(header, 1000) == expected
        assert expected.length == expected.end - expected.start + 1

    @pytest.mark.parametrize(
        "header",
        [None, "", "bytes=", "bytes=-", "bytes=9-5", "items=0-5", "bytes=0-5,10-20", "bytes=a-b", "0-5"],
    )
    def test_anything_else_is_the_whole_file(self, header):
        assert parse_range(header, 1000) is None

    @pytest.mark.parametrize(
        ("header", "size"),
        [
            ("bytes=1000-", 1000),
            ("bytes=5000-6000", 1000),
            ("bytes=-0", 1000),
            ("bytes=-5", 0),
            ("bytes=0-", 0),
        ],
    )
    def test_beyond_the_end_is_416_with_the_size(self, header, size):
        with pytest.raises(RangeNotSatisfiableError) as caught:
            parse_range(header, size)
        assert caught.value.status_code == 416
        assert caught.value.headers == {"Content-Range": f"bytes */{size}"}
