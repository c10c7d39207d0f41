"""The status poll's short path answers exactly what the route answers, and hands on all else.

A real app (``create_app``) on this worker's real PostgreSQL and Redis, driven in-process. The
route's own answers come from the same app with the short path made to hand every request on
(a test double of its decision, named as one), so the two can be compared byte for byte.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
import pytest
from litestar.testing import TestClient

from maie.api.app import create_app
from maie.api.poll_path import StatusPollMiddleware
from maie.config import Settings
from maie.schemas import Results, ResultVersion, Segment, TaskStatus, Versions
from tests.fixtures.records import make_record, put_record
from tests.fixtures.store import STORE_DB

KEYS = "key-a:acme,key-b:other"


def _client(database: str, redis_url: str, **env: str) -> TestClient:
    settings = Settings.from_env(
        {"MAIE_API_KEYS": KEYS, "MAIE_REDIS_RESULTS_DB": str(STORE_DB), **env}, env_file=None
    )
    return TestClient(create_app(settings, redis_url=redis_url, database_url=database))


def _finished(store) -> str:
    task_id = str(uuid.uuid4())
    record = make_record(task_id)
    put_record(store, record)
    store.add_result(
        task_id,
        lambda n: ResultVersion(
            version=n,
            created_at=datetime.now(UTC),
            kind="pipeline",
            results=Results(
                raw_transcript="hello there",
                segments=[Segment(id=1, start=0.0, end=1.25, text="hello there")],
            ),
            versions=Versions(pipeline_version="test"),
        ),
    )
    done = msgspec.structs.replace(
        store.get(task_id), status=TaskStatus.COMPLETE, completed_at=datetime.now(UTC), result_version=1
    )
    put_record(store, done)
    return task_id


def _polls(client: TestClient, task_id: str, unknown: str) -> list[tuple[int, list[tuple[str, str]], bytes]]:
    """The answers to a set of polls: 200, 304, Bearer, a stale ETag, and every refusal."""
    first = client.get(f"/v1/status/{task_id}", headers={"X-API-Key": "key-a"})
    etag = first.headers["ETag"]
    asks = [
        (f"/v1/status/{task_id}", {"X-API-Key": "key-a"}),
        (f"/v1/status/{task_id}", {"X-API-Key": "key-a", "If-None-Match": etag}),
        (f"/v1/status/{task_id}", {"Authorization": "Bearer key-a", "If-None-Match": f'"x", {etag}'}),
        (f"/v1/status/{task_id}", {"X-API-Key": "key-a", "If-None-Match": '"stale"'}),
        (f"/v1/status/{task_id}", {"X-API-Key": "key-b"}),  # another tenant's task
        (f"/v1/status/{task_id}", {"X-API-Key": "wrong"}),
        (f"/v1/status/{task_id}", {}),
        (f"/v1/status/{unknown}", {"X-API-Key": "key-a"}),
        ("/v1/status/not-a-uuid", {"X-API-Key": "key-a"}),
    ]
    repeated = [
        ("X-API-Key", "key-a"),
        ("X-API-Key", "wrong"),
        ("If-None-Match", etag),
        ("If-None-Match", '"x"'),
    ]
    answers = []
    for path, headers in asks:
        response = client.get(path, headers={**headers, "X-Request-ID": "poll-1"})
        kept = [(k, v) for k, v in response.headers.multi_items() if k.lower() != "date"]
        answers.append((response.status_code, kept, response.content))
    for headers in (repeated, repeated[::-1]):  # a header sent twice: the first is the one read
        response = client.get(f"/v1/status/{task_id}", headers=[*headers, ("X-Request-ID", "poll-2")])
        kept = [(k, v) for k, v in response.headers.multi_items() if k.lower() != "date"]
        answers.append((response.status_code, kept, response.content))
    return answers


class TestSameAnswers:
    @pytest.mark.parametrize("rate_limit", ["off", "1000/minute"])
    def test_the_short_path_answers_what_the_route_answers(
        self, store, database, redis_server, monkeypatch, rate_limit
    ):
        task_id, unknown = _finished(store), str(uuid.uuid4())
        with _client(database, redis_server.url, MAIE_RATE_LIMIT=rate_limit) as client:
            short = _polls(client, task_id, unknown)
        answered: list[str] = []

        async def never(self, scope, receive, send, next_app):
            """TEST DOUBLE of the short path: it hands every request to the route."""
            answered.append(scope["path"])
            await next_app(scope, receive, send)

        with monkeypatch.context() as patched:
            patched.setattr(StatusPollMiddleware, "handle", never)
            with _client(database, redis_server.url, MAIE_RATE_LIMIT=rate_limit) as client:
                routed = _polls(client, task_id, unknown)
        assert answered, "the double was asked"
        assert [a[0] for a in short[:9]] == [200, 304, 304, 200, 404, 401, 401, 404, 404]
        assert short == routed

    def test_an_unfinished_task_says_when_to_poll_again(self, store, database, redis_server):
        record = make_record(str(uuid.uuid4()))
        put_record(store, record)
        with _client(database, redis_server.url) as client:
            response = client.get(f"/v1/status/{record.task_id}", headers={"X-API-Key": "key-a"})
        assert response.status_code == 200
        assert response.headers["Retry-After"] == "2"
        assert response.json()["status"] == "PENDING"


class TestHandsOn:
    def test_the_short_path_answers_polls_itself_errors_included(
        self, store, database, redis_server, monkeypatch
    ):
        """Were the route to answer, its handler would run: for a poll with a known key it must not.

        An error the short path answers is counted and logged by the route's middlewares with its
        own status, not as a failure of the middleware.
        """
        from prometheus_client import REGISTRY

        from maie.api.routes import status as route

        task_id = _finished(store)
        calls = []
        real = route.status_answer

        async def counted(*args):
            calls.append(args[1])
            return await real(*args)

        def polls(code: str) -> float:
            labels = {
                "method": "GET",
                "path": "/v1/status/{task_id}",
                "status_code": code,
                "app_name": "maie",
            }
            return REGISTRY.get_sample_value("maie_http_requests_total", labels) or 0.0

        monkeypatch.setattr(route, "status_answer", counted)  # the handler's own look-up
        with _client(database, redis_server.url, MAIE_RATE_LIMIT="off") as client:
            before = polls("404")
            assert client.get(f"/v1/status/{task_id}", headers={"X-API-Key": "key-a"}).status_code == 200
            assert client.get("/v1/status/not-a-uuid", headers={"X-API-Key": "key-a"}).status_code == 404
            assert client.get(f"/v1/status/{task_id}", headers={"X-API-Key": "key-b"}).status_code == 404
            assert client.get(f"/v1/status/{task_id}", headers={"X-API-Key": "wrong"}).status_code == 401
        assert calls == [], "the route's handler ran for a poll the short path answers"
        assert polls("404") - before == 2

    def test_a_poll_is_counted_once_against_the_rate_limit(self, store, database, redis_server):
        """Answered by the short path, errors included: each poll counts once, as with the guard."""
        with _client(database, redis_server.url, MAIE_RATE_LIMIT="3/minute") as client:
            codes = [
                client.get(f"/v1/status/{uuid.uuid4()}", headers={"X-API-Key": "key-a"}).status_code
                for _ in range(4)
            ]
            limited = client.get(f"/v1/status/{uuid.uuid4()}", headers={"X-API-Key": "key-a"})
        assert codes == [404, 404, 404, 429]
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
