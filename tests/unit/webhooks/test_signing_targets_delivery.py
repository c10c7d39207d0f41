"""Webhook signing, target checks and single attempts against a real local HTTP server."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import msgspec
import pytest
from structlog.testing import capture_logs

from maie.errors import CallbackRefusedError
from maie.outbound import refusal_reason
from maie.schemas import TaskStatus
from maie.webhooks import signing
from maie.webhooks.delivery import WebhookPoster
from maie.webhooks.targets import check_addresses, check_callback_url, parse_callback_url
from tests.fixtures.receiver import Receiver, serve
from tests.fixtures.records import make_record

SECRET = "s3cret"  # noqa: S105 - a test key, not a credential


def _finished(status=TaskStatus.COMPLETE, version=1):
    record = make_record("0b8f3c2e-1d2a-4c55-9b1e-2f1f0e3c7a10")
    record.status = status
    record.result_version = version
    record.completed_at = datetime(2026, 1, 2, tzinfo=UTC)
    return record


class TestSigning:
    """HMAC-SHA256 of the exact body; stable event ids."""

    def test_signature_matches_hmac_of_body(self):
        import hashlib
        import hmac

        body = b'{"event":"task.completed"}'
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert signing.sign(SECRET, body) == expected
        assert signing.verify(SECRET, body, expected)
        assert not signing.verify(SECRET, body + b" ", expected), "any change to the body breaks it"
        assert not signing.verify("other", body, expected)
        assert not signing.verify(SECRET, body, None)

    def test_event_ids_are_stable_per_event(self):
        completed = signing.event_of(_finished())
        assert signing.event_of(_finished()).event_id == completed.event_id
        assert signing.event_of(_finished(version=2)).event_id != completed.event_id, (
            "a new version is a new event"
        )
        failed = signing.event_of(_finished(TaskStatus.FAILED, version=None))
        assert failed.event == "task.failed"
        assert failed.event_id != completed.event_id

    def test_body_has_every_field_and_public_url(self):
        event = signing.event_of(
            _finished(TaskStatus.FAILED, version=None), public_url="https://maie.example/"
        )
        body = msgspec.json.decode(signing.encode(event))
        assert body["result_version"] is None, "null fields are sent, not left out"
        assert body["status_url"] == f"https://maie.example/v1/status/{event.task_id}"
        headers = signing.headers_for(event, signing.encode(event), SECRET)
        assert headers["X-MAIE-Event"] == "task.failed"
        assert headers["X-MAIE-Event-Id"] == event.event_id
        assert signing.verify(SECRET, signing.encode(event), headers["X-MAIE-Signature"])

    def test_unfinished_task_has_no_event(self):
        with pytest.raises(ValueError, match="not finished"):
            signing.event_of(make_record())


class TestTargets:
    """Only public http(s) targets unless private ones are allowed."""

    @pytest.mark.parametrize(
        ("address", "reason"),
        [
            ("127.0.0.1", "loopback"),
            ("::1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("192.168.1.20", "private"),
            ("169.254.169.254", "cloud metadata"),
            ("fe80::1", "link-local"),
            ("100.64.0.1", "shared"),
            ("2002:7f00:1::1", "6to4"),
            ("2002:5db8:d70e::1", "6to4"),
            ("fec0::1", "site-local"),
            ("fd00:ec2::254", "cloud metadata"),
            ("0.0.0.0", "unspecified"),  # noqa: S104 - the address under test
            ("224.0.0.1", "multicast"),
            ("93.184.215.14", None),
            ("2606:4700:4700::1111", None),
        ],
    )
    def test_reasons(self, address, reason):
        assert refusal_reason(ipaddress.ip_address(address)) == reason

    def test_one_private_address_refuses_the_host(self):
        addresses = [ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("10.0.0.5")]
        with pytest.raises(CallbackRefusedError, match="MAIE_WEBHOOK_ALLOW_PRIVATE"):
            check_addresses("mixed.example", addresses, allow_private=False)
        check_addresses("mixed.example", addresses, allow_private=True)

    @pytest.mark.parametrize(
        "address", ["2002:7f00:1::1", "fec0::1", "fe80::1", "169.254.169.254", "fd00:ec2::254"]
    )
    def test_allow_private_never_allows_these(self, address):
        """6to4 and site-local went through before; link-local and metadata stay refused when allowed."""
        with pytest.raises(CallbackRefusedError, match="never calls those"):
            check_addresses("hooks.example", [ipaddress.ip_address(address)], allow_private=True)

    def test_refusal_names_host_and_rule_but_not_the_address(self):
        """Telling the client what 'vm' resolves to would make the check a DNS oracle."""
        with capture_logs() as logs, pytest.raises(CallbackRefusedError) as refused:
            check_addresses("vm", [ipaddress.ip_address("10.20.30.40")], allow_private=False)
        assert "'vm'" in refused.value.detail
        assert "private" in refused.value.detail
        assert "10.20.30.40" not in refused.value.detail
        assert "10.20.30.40" not in str(refused.value.extra)
        assert refused.value.extra == {"host": "vm", "rule": "private"}
        (line,) = [entry for entry in logs if entry["event"] == "outbound.refused"]
        assert line["address"] == "10.20.30.40", "the operator still finds the address in the log"

    @pytest.mark.parametrize(
        "url", ["file:///etc/passwd", "gopher://x", "http://", "https://h/#frag", "x" * 3000]
    )
    def test_malformed(self, url):
        with pytest.raises(CallbackRefusedError):
            parse_callback_url(url)

    async def test_submit_check_resolves_the_host(self):
        with pytest.raises(CallbackRefusedError, match="loopback") as refused:
            await check_callback_url("http://localhost:8080/hook", allow_private=False)
        assert "127.0.0.1" not in refused.value.detail
        assert await check_callback_url("http://localhost:8080/hook", allow_private=True)


class TestPoster:
    """One attempt: resolve, check, connect to the checked address with the original Host."""

    @pytest.fixture
    def receiver(self):
        yield from serve(Receiver(secret=SECRET))

    def test_posts_to_the_checked_address_with_original_host(self, receiver):
        port = int(receiver.url.rsplit(":", 1)[1].split("/")[0])
        resolved = []

        def resolver(host, port_):
            resolved.append((host, port_))
            return [ipaddress.ip_address("127.0.0.1")]

        poster = WebhookPoster(timeout_s=5, allow_private=True, resolver=resolver)
        body = b'{"event_id":"e1"}'
        attempt = poster.post(
            f"http://hooks.example:{port}/hooks/maie",
            body,
            signing.headers_for(signing.event_of(_finished()), body, SECRET),
        )
        poster.close()
        assert attempt.ok, attempt
        assert resolved == [("hooks.example", port)]
        (delivery,) = receiver.deliveries
        assert delivery.headers["Host"] == f"hooks.example:{port}"
        assert delivery.signature_ok

    def test_rebinding_to_a_private_address_is_refused_at_delivery(self, receiver):
        """The host passed at submit time, but now resolves to loopback: nothing is sent."""
        poster = WebhookPoster(
            timeout_s=5,
            allow_private=False,
            resolver=lambda _host, _port: [ipaddress.ip_address("127.0.0.1")],
        )
        with pytest.raises(CallbackRefusedError, match="loopback"):
            poster.post("http://hooks.example/hook", b"{}", {})
        poster.close()
        assert receiver.deliveries == []

    def test_errors_are_failed_attempts(self, receiver):
        poster = WebhookPoster(timeout_s=2, allow_private=True)
        refused = poster.post("http://127.0.0.1:9/hook", b"{}", {})
        assert not refused.ok
        assert refused.status_code is None
        assert refused.error
        unsigned = poster.post(receiver.url, b"{}", {})
        assert unsigned.status_code == 401
        assert unsigned.error == "the receiver answered HTTP 401"
        poster.close()
