"""The polling path: status bodies kept per ETag, result reads only when the record changed, lean metrics."""

from __future__ import annotations

import asyncio
import inspect
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import msgspec
from litestar import Litestar, get
from litestar.params import FromPath  # noqa: TC002 - Litestar reads the handler's hints at run time
from litestar.plugins.prometheus import PrometheusConfig
from litestar.testing import TestClient
from prometheus_client import REGISTRY

from maie.api.app import create_app
from maie.api.guards import api_key_guard, rate_limit_guard
from maie.api.http_metrics import HttpMetricsMiddleware
from maie.api.queries import status_body, status_etag
from maie.api.request_id import add_request_id_header
from maie.api.status_bodies import StatusBodies
from maie.config import Settings
from maie.schemas import (
    Feature,
    Results,
    ResultVersion,
    StageName,
    StageRecord,
    TaskRecord,
    TaskRequest,
    TaskStatus,
    Versions,
)


def _record(**changes: Any) -> TaskRecord:
    record = TaskRecord(
        task_id="0b0c8f57-8a39-4d7e-9d0f-6a1f0f1f2a3b",
        tenant="acme",
        status=TaskStatus.COMPLETE,
        submitted_at=datetime(2026, 1, 1, tzinfo=UTC),
        request=TaskRequest(features=[Feature.RAW_TRANSCRIPT], asr_backend="whisper"),
        audio_path="audio/x/raw.wav",
        stages=[StageRecord(name=StageName.PREPROCESS)],
        result_version=1,
    )
    return msgspec.structs.replace(record, **changes)


class CountingStore:
    """Test double of the task store: serves one result version and counts ``get_result`` calls."""

    def __init__(self) -> None:
        self.result_reads = 0

    async def get_result(self, task_id: str, version: int) -> ResultVersion | None:
        self.result_reads += 1
        return ResultVersion(
            version=version,
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
            kind="pipeline",
            results=Results(raw_transcript=f"text of {task_id} v{version}"),
            versions=Versions(pipeline_version="test"),
        )


def _services(store: CountingStore) -> Any:
    return SimpleNamespace(store=store, status_bodies=StatusBodies())


class TestStatusBody:
    def test_a_repeated_poll_does_not_read_the_result_again(self):
        """The second read of an unchanged task answers the kept bytes without a store call."""
        store = CountingStore()
        services = _services(store)
        record = _record()
        first = asyncio.run(status_body(services, record, status_etag(record)))
        again = asyncio.run(status_body(services, record, status_etag(record)))
        assert again == first
        assert store.result_reads == 1
        assert msgspec.json.decode(first)["results"]["raw_transcript"].endswith("v1")

    def test_a_changed_record_is_built_again(self):
        """A new result version changes the record's ETag: the body is read and built anew."""
        store = CountingStore()
        services = _services(store)
        one = _record()
        asyncio.run(status_body(services, one, status_etag(one)))
        two = _record(result_version=2)
        body = asyncio.run(status_body(services, two, status_etag(two)))
        assert store.result_reads == 2
        assert msgspec.json.decode(body)["results"]["raw_transcript"].endswith("v2")
        assert msgspec.json.decode(body)["result_version"] == 2

    def test_a_task_without_result_reads_nothing(self):
        store = CountingStore()
        record = _record(status=TaskStatus.PROCESSING_ASR, result_version=None)
        body = asyncio.run(status_body(_services(store), record, status_etag(record)))
        assert store.result_reads == 0
        assert msgspec.json.decode(body)["status"] == "PROCESSING_ASR"


class TestStatusBodies:
    def test_stale_etag_misses(self):
        bodies = StatusBodies()
        bodies.put("t", '"a"', b"one")
        assert bodies.get("t", '"a"') == b"one"
        assert bodies.get("t", '"b"') is None

    def test_bounded_by_bytes_least_recent_out(self):
        bodies = StatusBodies(max_bytes=40)
        for name in "abcd":
            bodies.put(name, "e", b"x" * 10)
        bodies.get("a", "e")  # a is used again: b is now the oldest
        bodies.put("e", "e", b"x" * 10)
        assert bodies.size <= 40
        assert bodies.get("b", "e") is None
        assert bodies.get("a", "e") == b"x" * 10

    def test_a_body_too_large_is_not_kept(self):
        bodies = StatusBodies(max_bytes=40)
        bodies.put("t", "e", b"x" * 11)
        assert len(bodies) == 0
        assert bodies.size == 0


class TestNoThreadHops:
    def test_guards_and_hook_are_coroutines(self):
        """Litestar runs plain-function guards and before-send hooks in a worker thread."""
        assert inspect.iscoroutinefunction(api_key_guard)
        assert inspect.iscoroutinefunction(add_request_id_header)

    def test_no_rate_limit_guard_when_off(self):
        def guards(rate_limit: str) -> list[Any]:
            settings = Settings.from_env({"MAIE_RATE_LIMIT": rate_limit, "MAIE_API_KEYS": "k"}, env_file=None)
            app = create_app(
                settings, redis_url="redis://127.0.0.1:1/0", database_url="postgresql://127.0.0.1:1/maie"
            )
            handler = next(r for r in app.routes if r.path == "/v1/status/{task_id:str}").route_handlers[0]
            return [getattr(g, "func", g) for g in handler.resolve_guards()]

        assert rate_limit_guard not in guards("off")
        assert rate_limit_guard in guards("100/minute")


def _samples(prefix: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if sample.name.startswith(prefix) and not sample.name.endswith("_created"):
                name = sample.name.removeprefix(prefix)
                if "duration" in name and not name.endswith("_count"):
                    continue  # timings differ between the two apps
                found[(name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


class TestHttpMetrics:
    def test_same_series_as_litestar_middleware(self):
        """The lean middleware counts exactly what Litestar's own does, label for label."""

        @get("/items/{item_id:int}")
        async def item(item_id: FromPath[int]) -> dict[str, int]:
            if item_id == 0:
                raise RuntimeError("boom")
            return {"id": item_id}

        def app(prefix: str, middleware: type | None) -> Litestar:
            extra = {} if middleware is None else {"middleware_class": middleware}
            config = PrometheusConfig(
                app_name="t", prefix=prefix, group_path=True, exclude=["^/skip$"], **extra
            )
            return Litestar([item], middleware=[config.middleware])

        for prefix, middleware in (("stock_http", None), ("lean_http", HttpMetricsMiddleware)):
            with TestClient(app(prefix, middleware), raise_server_exceptions=False) as client:
                for path in ("/items/1", "/items/2", "/items/0", "/missing"):
                    client.get(path)
        stock, lean = _samples("stock_http"), _samples("lean_http")
        assert stock
        assert lean == stock


class TestStatusHandlerLean:
    def test_status_resolves_no_dependency_or_path_parameter(self):
        """GET /v1/status takes only the request: no provider call and no path-parameter parsing per poll."""
        settings = Settings.from_env({"MAIE_API_KEYS": "k"}, env_file=None)
        app = create_app(
            settings, redis_url="redis://127.0.0.1:1/0", database_url="postgresql://127.0.0.1:1/maie"
        )
        route = next(r for r in app.routes if r.path == "/v1/status/{task_id:str}")
        _, kwargs_model = route.route_handler_map["GET"]
        assert not kwargs_model.dependency_batches
        assert not kwargs_model.expected_path_params
        assert kwargs_model.expected_reserved_kwargs == {"request"}
