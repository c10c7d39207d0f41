"""Shared fixtures: ../shared paths, Redis and PostgreSQL, tiny models, a real worker, an LLM test server.

Also how the suite runs in parallel (tests/fixtures/parallel.py) and pytest's own ``pytester``.
"""

from __future__ import annotations

pytest_plugins = [
    "pytester",
    "tests.fixtures.paths",
    "tests.fixtures.whisper_model",
    "tests.fixtures.chunkformer_model",
    "tests.fixtures.services",
    "tests.fixtures.postgres",
    "tests.fixtures.store",
    "tests.fixtures.llm_server",
    "tests.fixtures.fake_vllm",
    "tests.fixtures.media_server",
    "tests.fixtures.webapp",
    "tests.fixtures.parallel",
]
