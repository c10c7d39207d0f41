"""The tests' one wait: it returns the first truthy answer and fails past its deadline."""

from __future__ import annotations

import pytest

from tests.fixtures.polling import wait_for


def test_returns_the_first_truthy_answer():
    answers = iter([None, [], ["ready"]])
    assert wait_for(lambda: next(answers), timeout_s=5, failure="never", interval_s=0) == ["ready"]


def test_fails_with_its_message_past_the_deadline():
    asked = []

    def failure() -> str:
        return f"still waiting after {len(asked)} asks"

    with pytest.raises(AssertionError, match="still waiting after 1 asks"):
        wait_for(lambda: asked.append(1), timeout_s=0, failure=failure)
