"""Operations over real processes: /metrics on the API and the worker, request ids, rate limits."""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from maie.up.redis import EmbeddedRedis
from tests.fixtures.paths import shared_audio
from tests.fixtures.postgres import fresh_database, query
from tests.fixtures.services import HEADERS_A, HEADERS_B, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus endpoint, keyed by name and sorted labels."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def json_lines(text: str) -> list[dict[str, object]]:
    """The JSON log lines of a process (MAIE_LOG_FORMAT=json)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def ops(service_env, start_process, postgres_server, tmp_path_factory) -> Iterator[dict[str, object]]:
    """A private Redis and database, an API and a worker that serves its own /metrics."""
    folder = tmp_path_factory.mktemp("ops")
    server = EmbeddedRedis(folder / "redis")
    server.start()
    metrics_port = free_port()
    env = {
        **service_env,
        "MAIE_REDIS_URL": server.url,
        "MAIE_DATABASE_URL": fresh_database(postgres_server),
        "MAIE_DATA_DIR": str(folder / "data"),
        "MAIE_WORKER_METRICS_PORT": str(metrics_port),
        "MAIE_MAX_DURATION_S": "60",
    }
    api = start_process("api", env)
    worker = start_process("worker", env)
    yield {"server": server, "env": env, "api": api, "worker": worker, "worker_metrics": metrics_port}
    api.stop()
    worker.stop()
    server.stop()


class TestApiMetrics:
    """GET /metrics on the API: HTTP series of the process, MAIE series of the deployment."""

    def test_a_task_moves_every_series(self, ops):
        api = ops["api"]
        before = scrape(f"{api.url}/metrics")
        accepted = api.submit(shared_audio("jfk.flac"))
        assert accepted.status_code == 202, accepted.text
        assert api.wait(accepted.json()["task_id"])["status"] == "COMPLETE"
        after = scrape(f"{api.url}/metrics")

        def delta(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        assert value(after, "maie_cluster_up") == 1
        assert delta("maie_tasks_total", status="accepted") == 1
        assert delta("maie_tasks_total", status="complete") == 1
        assert delta("maie_tasks_total", status="failed") == 0
        for stage in ("preprocess", "transcribe"):
            assert delta("maie_stage_seconds_count", stage=stage) == 1
            assert delta("maie_stage_seconds_sum", stage=stage) > 0
            assert delta("maie_stage_seconds_bucket", stage=stage, le="+Inf") == 1
        # preprocess and finalize wait on maie.cpu, transcribe on maie.gpu
        assert delta("maie_queue_wait_seconds_count", queue="maie.cpu") == 2
        assert delta("maie_queue_wait_seconds_count", queue="maie.gpu") == 1
        assert delta("maie_rtf_count") == 1
        assert delta("maie_rtf_sum") > 0
        assert value(after, "maie_queue_depth") == 0
        assert value(after, "maie_workers_active") == 1
        assert ("maie_queue_messages", (("queue", "maie.gpu"),)) in after
        # HTTP series, grouped by route template rather than by task id
        assert (
            delta(
                "maie_http_requests_total",
                method="POST",
                path="/v1/process",
                status_code="202",
                app_name="maie",
            )
            == 1
        )
        status_polls = value(
            after,
            "maie_http_requests_total",
            method="GET",
            path="/v1/status/{task_id}",
            status_code="200",
            app_name="maie",
        )
        assert status_polls >= 1
        assert not any("/metrics" in dict(labels).get("path", "") for _, labels in after)
        # The finished task is polled once more: its record comes from the cache (a fill, then hits).
        for _ in range(2):
            api.client.get(f"/v1/status/{accepted.json()['task_id']}", headers=HEADERS_A).raise_for_status()
        cached = scrape(f"{api.url}/metrics")
        assert (
            value(cached, "maie_record_cache_reads_total", outcome="hit")
            - value(after, "maie_record_cache_reads_total", outcome="hit")
            >= 1
        )

    def test_histogram_buckets_are_cumulative(self, ops):
        samples = scrape(f"{ops['api'].url}/metrics")
        buckets = sorted(
            (float(dict(labels)["le"]), count)
            for (name, labels), count in samples.items()
            if name == "maie_stage_seconds_bucket" and dict(labels)["stage"] == "preprocess"
        )
        counts = [count for _, count in buckets]
        assert counts == sorted(counts)
        assert counts[-1] == value(samples, "maie_stage_seconds_count", stage="preprocess")

    def test_failed_task_counted_by_stage_and_code(self, ops, tmp_path):
        """A file that passes the upload probe but breaks in the worker fails with its code."""
        from tests.fixtures import bad_media

        api = ops["api"]
        source = bad_media.write_encoded(tmp_path, "tone.flac", "flac", seconds=90)
        # States 2 s in its header but decodes to 90 s, over the 60 s accepted: the upload probe
        # (which trusts a stated length) accepts it, and the worker refuses it while decoding.
        lying = bad_media.write_flac_with_false_length(tmp_path, source, claim=32000)
        before = scrape(f"{api.url}/metrics")
        accepted = api.submit(lying)
        assert accepted.status_code == 202, accepted.text
        status = api.wait(accepted.json()["task_id"])
        assert status["status"] == "FAILED"
        assert status["error_code"] == "audio_too_long"
        after = scrape(f"{api.url}/metrics")

        def delta(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        assert delta("maie_tasks_total", status="failed") == 1
        assert delta("maie_tasks_total", status="complete") == 0
        assert delta("maie_task_failures_total", stage="preprocess", error_code="audio_too_long") == 1

    def test_redis_down_is_a_gap_not_a_zero(self, ops, service_env, start_process, tmp_path):
        server = EmbeddedRedis(tmp_path / "redis")
        server.start()
        api = start_process("api", {**ops["env"], "MAIE_REDIS_URL": server.url})
        server.stop()
        samples = scrape(f"{api.url}/metrics")
        assert value(samples, "maie_cluster_up") == 0
        assert not any(name.startswith("maie_tasks") for name, _ in samples)
        assert any(name.startswith("maie_http_") for name, _ in samples)
        api.stop()


class TestWorkerMetrics:
    """The worker's own endpoint: what only that process knows."""

    def test_counts_messages_and_process(self, ops):
        api = ops["api"]
        url = f"http://127.0.0.1:{ops['worker_metrics']}/metrics"
        before = scrape(url)
        accepted = api.submit(shared_audio("jfk_16k.wav"))
        assert api.wait(accepted.json()["task_id"])["status"] == "COMPLETE"
        after = scrape(url)

        def delta(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        for actor in ("preprocess", "transcribe", "finalize"):
            assert delta("maie_worker_messages_total", actor=actor, outcome="done") == 1
            assert delta("maie_worker_message_seconds_count", actor=actor) == 1
            assert value(after, "maie_worker_messages_in_progress", actor=actor) == 0
        info = [dict(labels) for name, labels in after if name == "maie_worker_info"]
        assert len(info) == 1
        assert info[0]["queues"] == "maie.cpu,maie.gpu"
        assert value(after, "process_resident_memory_bytes") > 0
        # The deployment-wide series are served by the API only, so nothing is counted twice.
        assert not any(name.startswith(("maie_tasks", "maie_stage_seconds")) for name, _ in after)


class TestRequestId:
    """One request id joins a task's API and worker log lines."""

    def test_id_follows_the_task_into_the_worker(self, ops):
        api, worker = ops["api"], ops["worker"]
        request_id = f"trace-{uuid.uuid4().hex}"
        with shared_audio("jfk_16k.wav").open("rb") as fh:
            accepted = api.client.post(
                "/v1/process",
                headers={**HEADERS_A, "X-Request-ID": request_id},
                files={"file": ("jfk.wav", fh)},
                data={"features": "raw_transcript"},
            )
        assert accepted.status_code == 202, accepted.text
        assert accepted.headers["X-Request-ID"] == request_id
        task_id = accepted.json()["task_id"]
        assert api.wait(task_id)["status"] == "COMPLETE"

        [(record,)] = query(
            ops["env"]["MAIE_DATABASE_URL"], "SELECT record FROM tasks WHERE task_id = %s", task_id
        )
        assert record["request_id"] == request_id

        api_lines = [line for line in json_lines(api.log()) if line.get("task_id") == task_id]
        assert {"task.accepted"} <= {line["event"] for line in api_lines}
        assert all(line.get("request_id") == request_id for line in api_lines)
        deadline = time.monotonic() + 10  # the last worker line may trail the status by a moment
        while True:
            worker_lines = [line for line in json_lines(worker.log()) if line.get("task_id") == task_id]
            events = {(line.get("actor"), line["event"]) for line in worker_lines}
            if ("finalize", "task.complete") in events or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        expected = {
            ("preprocess", "stage.started"),
            ("preprocess", "preprocess.finished"),  # written by the decoding child process
            ("transcribe", "stage.started"),
            ("finalize", "task.complete"),
        }
        assert expected <= events
        assert all(line.get("request_id") == request_id for line in worker_lines)

    @pytest.mark.parametrize(
        "sent",
        ["has spaces", "x" * 129, "<script>", "", "ünïcode"],
        ids=["space", "long", "markup", "empty", "utf8"],
    )
    def test_insane_ids_are_replaced(self, ops, sent):
        response = ops["api"].client.get("/health", headers={"X-Request-ID": sent.encode()})
        got = response.headers["X-Request-ID"]
        assert got != sent
        assert len(got) == 32
        int(got, 16)

    def test_every_response_has_one(self, ops):
        client = ops["api"].client
        responses = [
            client.get("/no/such/path"),  # answered by the router, before any middleware
            client.delete("/health"),  # 405, likewise
            client.get("/v1/models"),  # 401
            client.get("/health", headers={"X-Request-ID": "lb-7:abc/1"}),
        ]
        assert [r.status_code for r in responses] == [404, 405, 401, 200]
        ids = [r.headers.get("X-Request-ID") for r in responses]
        assert all(ids)
        assert ids[3] == "lb-7:abc/1"
        assert len(set(ids)) == 4


class TestRateLimit:
    """Per-key limits, shared by every API process through Redis."""

    @pytest.fixture
    def limited(self, ops, start_process):
        env = {**ops["env"], "MAIE_RATE_LIMIT": "8/minute", "MAIE_RATE_LIMIT_SUBMIT": "3/minute"}
        first, second = start_process("api", env), start_process("api", env)
        yield first, second
        first.stop()
        second.stop()

    def test_limits_are_shared_per_key_with_retry_after(self, limited, tmp_path):
        from tests.fixtures import bad_media

        first, second = limited
        text = bad_media.write_text(tmp_path)
        # Submissions alternate between the two processes: the count is shared through Redis.
        codes = [api.submit(text, headers=HEADERS_B).status_code for api in (first, second, first)]
        assert codes == [415, 415, 415], "refused as not audio, but counted"
        refused = second.submit(text, headers=HEADERS_B)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        body = refused.json()
        assert "MAIE_RATE_LIMIT_SUBMIT" in body["detail"]
        assert body["extra"] == {"limit": "3 per minute", "scope": "submissions"}

        # Four requests so far count against the 8 per minute of every /v1 request.
        reads = [
            api.client.get("/v1/templates", headers=HEADERS_B).status_code for api in (first, second) * 2
        ]
        assert reads == [200, 200, 200, 200]
        over = first.client.get("/v1/templates", headers=HEADERS_B)
        assert over.status_code == 429
        assert "MAIE_RATE_LIMIT" in over.json()["detail"]
        assert "Retry-After" in over.headers

        # Another key has its own budget; public routes have none.
        assert first.client.get("/v1/templates", headers=HEADERS_A).status_code == 200
        assert all(second.client.get("/health").status_code == 200 for _ in range(10))
