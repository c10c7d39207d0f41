"""A loaded openai backend on the LLM test server, for stage tests."""

from __future__ import annotations

import pytest

from maie.pipeline.llm.openai_backend import OpenAiBackend, OpenAiOptions
from tests.fixtures.llm_server import MODEL


@pytest.fixture
def make_backend(tmp_path):
    """Build and load an OpenAiBackend on a test server; unloaded at the end."""
    made = []

    def make(server, **overrides) -> OpenAiBackend:
        values = {
            "base_url": server.url,
            "model": MODEL,
            "timeout_s": 5.0,
            "retries": 1,
            "retry_backoff_s": 0.0,
            "data_dir": tmp_path,
        }
        values.update(overrides)
        backend = OpenAiBackend(OpenAiOptions(**values))
        backend.load()
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.unload()
