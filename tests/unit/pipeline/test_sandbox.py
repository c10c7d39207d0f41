"""The decode sandbox: real child processes, real limits, real crashes."""

from __future__ import annotations

import functools
import os
import time

import pytest
import structlog

from maie.errors import AudioTooLongError, DecodeLimitError
from maie.pipeline.sandbox import DecodeSandbox, SandboxLimits
from tests.fixtures import sandbox_jobs


@pytest.fixture(scope="module")
def sandbox():
    box = DecodeSandbox(SandboxLimits(time_s=30, memory_mb=512))
    box.start()
    return box


class TestOutcomes:
    """What comes back from the child."""

    def test_result_comes_back_from_another_process(self, sandbox):
        result = sandbox.run(functools.partial(sandbox_jobs.answer, 21))
        assert result["value"] == 42
        assert result["pid"] != os.getpid()

    def test_maie_error_comes_back_whole(self, sandbox):
        with pytest.raises(AudioTooLongError) as caught:
            sandbox.run(functools.partial(sandbox_jobs.fail, "too long"))
        assert caught.value.detail == "too long"
        assert caught.value.extra == {"max_duration_s": 1.0}

    def test_log_context_is_carried_into_the_child(self, sandbox):
        with structlog.contextvars.bound_contextvars(task_id="t-1", request_id="r-1"):
            context = sandbox.run(sandbox_jobs.log_context)
        assert context == {"task_id": "t-1", "request_id": "r-1"}


class TestLimits:
    """A job over its limits fails alone and the caller carries on."""

    def test_memory_limit(self, sandbox):
        with pytest.raises(DecodeLimitError, match="MAIE_DECODE_MEMORY_LIMIT_MB") as caught:
            sandbox.run(functools.partial(sandbox_jobs.allocate, 1024))
        assert caught.value.extra["memory_limit_mb"] == 512
        assert sandbox.run(functools.partial(sandbox_jobs.allocate, 64)) == 64 * 1024 * 1024

    def test_no_memory_limit(self):
        box = DecodeSandbox(SandboxLimits(time_s=30, memory_mb=0))
        assert box.run(functools.partial(sandbox_jobs.allocate, 600)) == 600 * 1024 * 1024

    def test_wall_clock_limit_kills_a_blocked_call(self, monkeypatch):
        monkeypatch.setattr("maie.pipeline.sandbox.GRACE_S", 0.5)
        box = DecodeSandbox(SandboxLimits(time_s=0.5))
        started = time.monotonic()
        with pytest.raises(DecodeLimitError, match="MAIE_DECODE_TIME_LIMIT_S"):
            box.run(functools.partial(sandbox_jobs.sleep, 60))
        assert time.monotonic() - started < 30, "the blocked child was killed, not waited for"

    def test_crash_fails_the_job_not_the_caller(self, sandbox):
        with pytest.raises(DecodeLimitError, match="SIGSEGV") as caught:
            sandbox.run(sandbox_jobs.crash)
        assert caught.value.extra["signal"] == "SIGSEGV"
        assert sandbox.run(functools.partial(sandbox_jobs.answer, 1))["value"] == 2
