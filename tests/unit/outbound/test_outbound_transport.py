"""The guarded transport against a real local server: checked addresses only, and a real deadline."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from maie.errors import CallbackRefusedError
from maie.outbound import GuardedTransport, deadline_passed, time_limit
from maie.webhooks.delivery import WebhookPoster
from maie.webhooks.targets import callback_rules

LOOPBACK = ipaddress.ip_address("127.0.0.1")


class Resolver:
    """A test double for DNS: maps names to fixed answers and counts the look-ups."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, host, port):
        self.calls.append((host, port))
        return [ipaddress.ip_address(a) for a in self.answers[host]]


def _client(resolver, *, allow_private=True, timeout=5.0):
    transport = GuardedTransport(callback_rules(allow_private=allow_private), resolver=resolver)
    return httpx.Client(transport=transport, timeout=timeout, trust_env=False)


class TestGuardedTransport:
    """What is checked is what is connected to; the URL's host name is kept everywhere else."""

    def test_connects_to_the_resolved_address_with_the_original_host(self, media_server):
        """``media.test`` exists only in the test resolver: reaching the server proves the pinning."""
        resolver = Resolver({"media.test": ["127.0.0.1"]})
        with _client(resolver) as client:
            response = client.get(media_server.url("/clip.wav", host="media.test"))
        assert response.status_code == 200
        assert response.content == media_server.clip
        assert resolver.calls == [("media.test", media_server.port)]
        assert media_server.requests[-1].headers["Host"] == f"media.test:{media_server.port}"

    def test_tries_the_next_allowed_address_when_one_refuses(self, media_server):
        """The server listens on 127.0.0.1 only; 127.0.0.2 refuses the connection."""
        resolver = Resolver({"media.test": ["127.0.0.2", "127.0.0.1"]})
        with _client(resolver) as client:
            assert client.get(media_server.url("/clip.wav", host="media.test")).status_code == 200

    def test_a_refused_address_raises_the_rules_error_and_sends_nothing(self, media_server):
        """A name that now resolves to a private address (rebinding) is refused at connect time."""
        resolver = Resolver({"media.test": ["127.0.0.1"]})
        with (
            _client(resolver, allow_private=False) as client,
            pytest.raises(CallbackRefusedError, match=r"'media\.test' resolves to a loopback"),
        ):
            client.get(media_server.url("/clip.wav", host="media.test"))
        assert media_server.requests == []

    def test_one_refused_address_among_allowed_ones_refuses_the_host(self, media_server):
        resolver = Resolver({"media.test": ["127.0.0.1", "169.254.169.254"]})
        with _client(resolver) as client, pytest.raises(CallbackRefusedError, match="cloud metadata"):
            client.get(media_server.url("/clip.wav", host="media.test"))
        assert media_server.requests == []

    def test_time_limit_ends_a_response_whose_headers_trickle(self, media_server):
        """httpx's read timeout (30 s) never fires: a byte comes every 50 ms. The deadline does."""
        resolver = Resolver({"media.test": ["127.0.0.1"]})
        with _client(resolver, timeout=30.0) as client, time_limit(0.5):
            with pytest.raises(httpx.ReadTimeout):
                client.get(media_server.url("/slow-headers", host="media.test"))
            assert deadline_passed()
        assert not deadline_passed(), "the limit ends with its block"

    def test_nested_time_limits_keep_the_earlier_deadline(self):
        with time_limit(0.0):
            with time_limit(60.0):
                assert deadline_passed()
            assert deadline_passed()


class TestWebhookPoster:
    """Webhooks go through the same transport: rules at connect time, and one deadline per attempt."""

    def test_a_trickling_receiver_cannot_hold_an_attempt_past_its_timeout(self, media_server):
        poster = WebhookPoster(
            timeout_s=0.5, allow_private=True, resolver=Resolver({"hooks.test": ["127.0.0.1"]})
        )
        attempt = poster.post(media_server.url("/slow-headers", host="hooks.test"), b"{}", {})
        poster.close()
        assert not attempt.ok
        assert attempt.status_code is None
        assert "ReadTimeout" in (attempt.error or "")

    def test_refusal_at_delivery_names_no_address(self, media_server):
        poster = WebhookPoster(
            timeout_s=5, allow_private=False, resolver=Resolver({"hooks.test": ["10.1.2.3"]})
        )
        with pytest.raises(CallbackRefusedError) as refused:
            poster.post(media_server.url("/clip.wav", host="hooks.test"), b"{}", {})
        poster.close()
        assert "'hooks.test' resolves to a private address" in refused.value.detail
        assert "10.1.2.3" not in refused.value.detail
