"""Signed webhooks from a real worker to a real local HTTP receiver: retries, dedup ids, refusals."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from tests.fixtures import bad_media
from tests.fixtures.paths import shared_audio
from tests.fixtures.postgres import fresh_database
from tests.fixtures.receiver import Receiver, serve
from tests.fixtures.services import HEADERS_A

if TYPE_CHECKING:
    from collections.abc import Iterator

SECRET = "test-webhook-secret"  # noqa: S105 - a test key, not a credential


@pytest.fixture(scope="module")
def hook_env(service_env, tmp_path_factory) -> Iterator[dict[str, str]]:
    """A private Redis and data folder (only this module's worker sees its messages), signed
    webhooks allowed to reach 127.0.0.1, fast back-off, and a 5 s duration limit."""
    from maie.up.redis import EmbeddedRedis

    folder = tmp_path_factory.mktemp("webhooks")
    server = EmbeddedRedis(folder / "redis")
    server.start()
    yield {
        **service_env,
        "MAIE_REDIS_URL": server.url,
        "MAIE_DATABASE_URL": fresh_database(service_env["MAIE_DATABASE_URL"]),
        "MAIE_DATA_DIR": str(folder / "data"),
        "MAIE_WEBHOOK_SECRET": SECRET,
        "MAIE_WEBHOOK_ALLOW_PRIVATE": "true",
        "MAIE_WEBHOOK_MIN_BACKOFF_MS": "100",
        "MAIE_WEBHOOK_MAX_BACKOFF_MS": "400",
        "MAIE_WEBHOOK_MAX_RETRIES": "4",
        "MAIE_MAX_DURATION_S": "5",
    }
    server.stop()


@pytest.fixture(scope="module")
def hook_api(hook_env, start_process):
    """API and worker on the module's Redis, stopped before it is."""
    api = start_process("api", hook_env)
    worker = start_process("worker", hook_env)
    yield api
    worker.stop()
    api.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """Answers the first two requests of every event with 500."""
    yield from serve(Receiver(secret=SECRET, fail_first=2))


def _wait_webhook(api, task_id, state, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api.client.get(f"/v1/status/{task_id}", headers=HEADERS_A).json()
        hooks = body.get("webhooks") or []
        if hooks and hooks[0]["state"] == state:
            return body
        time.sleep(0.1)
    raise AssertionError(f"webhook of {task_id} never reached {state}: {body}")


def _wait_broker_idle(redis_url, timeout=30.0):
    """Wait until the broker holds no message: none queued, delayed, or fetched and not yet acked."""
    import redis

    from maie.store.keys import BROKER_NAMESPACE as NAMESPACE

    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    while held := [
        key
        for key in client.scan_iter(match=f"{NAMESPACE}:*.msgs")
        if not key.endswith(b".XQ.msgs") and client.hlen(key)  # dead letters are never retried
    ]:
        assert time.monotonic() < deadline, f"the broker still holds messages in {held}"
        time.sleep(0.05)
    client.close()


class TestDelivery:
    """At least once, signed, retried with back-off, one logical delivery per event id."""

    def test_completed_after_two_failures(self, hook_env, hook_api, receiver):
        accepted = hook_api.submit(
            shared_audio("lhotse/common_voice_en_651325.mp3"), callback_url=receiver.url
        )
        assert accepted.status_code == 202, accepted.text
        task_id = accepted.json()["task_id"]
        status = _wait_webhook(hook_api, task_id, "delivered")
        assert status["status"] == "COMPLETE"

        assert all(d.signature_ok for d in receiver.deliveries), "every request is signed with the secret"
        assert [d.answered for d in receiver.deliveries] == [500, 500, 200]
        assert len({d.event_id for d in receiver.deliveries}) == 1, "retries carry the same event id"
        accepted_events = receiver.accepted()
        assert len(accepted_events) == 1
        (delivered,) = next(iter(accepted_events.values()))
        assert delivered.event == "task.completed"
        assert delivered.headers["Content-Type"] == "application/json"
        body = delivered.body
        assert body["event"] == "task.completed"
        assert body["task_id"] == task_id
        assert body["status"] == "COMPLETE"
        assert body["status_url"] == f"/v1/status/{task_id}"
        assert body["result_version"] == 1
        assert body["event_id"] == delivered.event_id

        (hook,) = status["webhooks"]
        assert hook["event_id"] == delivered.event_id
        assert [a.get("status_code") for a in hook["attempts"]] == [500, 500, 200], "attempts on the task"
        assert hook["delivered_at"]
        _wait_broker_idle(hook_env["MAIE_REDIS_URL"])  # no further attempt can come after this
        assert len(receiver.deliveries) == 3

    def test_failed_task_is_announced(self, hook_api, receiver, tmp_path):
        lying = bad_media.write_flac_with_false_length(tmp_path, shared_audio("jfk.flac"), claim=44100 * 2)
        accepted = hook_api.submit(lying, callback_url=receiver.url)
        assert accepted.status_code == 202, accepted.text
        task_id = accepted.json()["task_id"]
        status = _wait_webhook(hook_api, task_id, "delivered")
        assert status["status"] == "FAILED"
        (event,) = receiver.accepted().values()
        assert event[0].event == "task.failed"
        assert event[0].body["error_code"] == "audio_too_long"
        assert event[0].body["result_version"] is None

    def test_gives_up_after_max_retries(self, hook_api):
        gen = serve(Receiver(secret=SECRET, fail_first=1000))
        always_failing = next(gen)
        try:
            task_id = hook_api.submit(
                shared_audio("lhotse/common_voice_en_651325.mp3"), callback_url=always_failing.url
            ).json()["task_id"]
            status = _wait_webhook(hook_api, task_id, "failed")
        finally:
            gen.close()
        (hook,) = status["webhooks"]
        assert len(hook["attempts"]) == 5, "the first attempt and MAIE_WEBHOOK_MAX_RETRIES=4 retries"
        assert len(always_failing.deliveries) == 5
        assert status["status"] == "COMPLETE", "a webhook that fails does not fail its task"

    def test_deleted_task_is_announced(self, hook_env, hook_api, receiver):
        """DELETE sends task.deleted, signed and retried like any event, after the task is gone."""
        accepted = hook_api.submit(
            shared_audio("lhotse/common_voice_en_651325.mp3"), callback_url=receiver.url
        )
        assert accepted.status_code == 202, accepted.text
        task_id = accepted.json()["task_id"]
        _wait_webhook(hook_api, task_id, "delivered")
        assert hook_api.client.delete(f"/v1/tasks/{task_id}", headers=HEADERS_A).status_code == 204

        deadline = time.monotonic() + 60
        while not any(d.event == "task.deleted" and d.answered == 200 for d in receiver.deliveries):
            assert time.monotonic() < deadline, f"no task.deleted delivered: {receiver.deliveries}"
            time.sleep(0.1)
        deleted = [d for d in receiver.deliveries if d.event == "task.deleted"]
        assert [d.answered for d in deleted] == [500, 500, 200], "retried with back-off"
        assert all(d.signature_ok for d in deleted)
        assert len({d.event_id for d in deleted}) == 1
        body = deleted[-1].body
        assert body["task_id"] == task_id
        assert body["event"] == "task.deleted"
        assert body["status"] == "COMPLETE", "what the task was when it was deleted"
        assert body["occurred_at"]
        assert hook_api.client.get(f"/v1/status/{task_id}", headers=HEADERS_A).status_code == 404


@pytest.fixture(scope="module")
def strict_api(hook_env, start_process):
    """An API that signs webhooks but refuses private targets (the default)."""
    env = {k: v for k, v in hook_env.items() if k != "MAIE_WEBHOOK_ALLOW_PRIVATE"}
    api = start_process("api", env)
    yield api
    api.stop()


class TestRefusals:
    """callback_url is checked at submit time."""

    @pytest.mark.parametrize(
        ("url", "words"),
        [
            ("http://127.0.0.1:9/hook", "loopback"),
            ("http://localhost:9/hook", "loopback"),
            ("http://10.1.2.3/hook", "private"),
            ("http://169.254.169.254/latest/meta-data", "cloud metadata"),
            ("http://169.254.10.1/hook", "link-local"),
            ("http://[2002:7f00:1::1]/hook", "6to4"),
            ("http://[fec0::1]/hook", "site-local"),
            ("http://[::ffff:127.0.0.1]/hook", "loopback"),
            ("ftp://example.com/hook", "http:// or https://"),
            ("http:///no-host", "no host"),
            ("http://no-such-host.invalid/hook", "cannot be resolved"),
        ],
    )
    def test_private_and_malformed_targets(self, strict_api, url, words):
        response = strict_api.submit(shared_audio("lhotse/common_voice_en_651325.mp3"), callback_url=url)
        assert response.status_code == 422, response.text
        assert words in response.json()["detail"]

    def test_refusal_does_not_tell_what_a_name_resolves_to(self, strict_api):
        """Naming the address would make the check a DNS oracle for the internal network."""
        response = strict_api.submit(shared_audio("jfk_16k.wav"), callback_url="http://localhost:9/hook")
        assert response.status_code == 422
        body = response.json()
        assert "'localhost'" in body["detail"]
        assert "127.0.0.1" not in response.text
        assert "::1" not in response.text
        assert body["extra"] == {"host": "localhost", "rule": "loopback"}

    def test_no_secret_no_webhooks(self, api):
        """The shared test server has no MAIE_WEBHOOK_SECRET: unsigned webhooks are refused."""
        response = api.submit(shared_audio("jfk_16k.wav"), callback_url="https://example.com/hook")
        assert response.status_code == 422
        assert "MAIE_WEBHOOK_SECRET" in response.json()["detail"]
