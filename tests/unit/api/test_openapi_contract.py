"""The OpenAPI schema says what the routes really answer (found wrong by outside checks)."""

from __future__ import annotations

import pytest

from maie.api import create_app
from maie.config import Settings


@pytest.fixture(scope="module")
def paths():
    """The app's schema, built without starting it (no Redis is needed)."""
    app = create_app(
        Settings.from_env({}, env_file=None),
        redis_url="redis://127.0.0.1:9/0",
        database_url="postgresql://127.0.0.1:9/maie",
    )
    schema = app.openapi_schema.to_schema()
    return schema["paths"], schema["components"]["schemas"]


class TestOpenApiContract:
    def test_transcript_json_is_an_object_with_segments(self, paths):
        routes, components = paths
        content = routes["/v1/tasks/{task_id}/transcript.json"]["get"]["responses"]["200"]["content"]
        ref = content["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        export = components[ref]
        assert export["type"] == "object"
        assert {"task_id", "result_version", "language", "text", "segments"} <= set(export["required"])

    def test_batch_export_is_json_lines_or_csv(self, paths):
        routes, _ = paths
        content = routes["/v1/batches/{batch_id}/export"]["get"]["responses"]["200"]["content"]
        assert set(content) == {"application/x-ndjson", "text/csv"}

    @pytest.mark.parametrize("path", ["/health", "/ready"])
    def test_health_answers_head(self, paths, path):
        routes, _ = paths
        assert "head" in routes[path]
