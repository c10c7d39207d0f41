"""Which incoming request ids are kept."""

from __future__ import annotations

import pytest

from maie.api.request_id import accept_request_id


class TestAcceptRequestId:
    @pytest.mark.parametrize(
        "value",
        ["abc", "a" * 128, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "lb-7:abc/1+x=y@z.q_r"],
    )
    def test_sane_ids_are_kept(self, value):
        assert accept_request_id(value) == value

    @pytest.mark.parametrize(
        "value",
        [
            None,
            "",
            "a" * 129,
            "has space",
            "tab\there",
            "new\nline",
            "-leading",
            "ü",
            "<script>",
            "semi;colon",
        ],
    )
    def test_others_are_replaced(self, value):
        got = accept_request_id(value)
        assert got != value
        assert len(got) == 32
        int(got, 16)

    def test_fresh_ids_differ(self):
        assert accept_request_id(None) != accept_request_id(None)

    def test_a_forked_child_makes_ids_of_its_own(self):
        import os

        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its first fresh id, to the parent
            os.write(write, accept_request_id(None).encode())
            os._exit(0)
        os.close(write)
        os.waitpid(pid, 0)
        child = os.read(read, 64).decode()
        os.close(read)
        mine = accept_request_id(None)
        assert len(child) == 32
        assert child[:16] != mine[:16], "parent and child share no random half"
