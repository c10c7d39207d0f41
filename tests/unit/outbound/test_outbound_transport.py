"""The guarded transport against a real local server: checked addresses only, and a real deadline."""

from __future__ import annotations

import ipaddress
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import trustme

from maie.errors import CallbackRefusedError, FetchTlsError
from maie.outbound import GuardedTransport, deadline_passed, time_limit
from maie.pipeline.fetch import FetchLimits, FetchOptions
from maie.pipeline.fetch.session import FetchSession
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


@pytest.fixture
def tls_server():
    """A real HTTPS server on 127.0.0.1 whose certificate (from a test CA) names ``media.test``;
    it records the server name (SNI) each TLS handshake asked for."""
    ca = trustme.CA()
    names = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("media.test").configure_cert(context)
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    yield server.server_address[1], client_context, names
    server.shutdown()
    server.server_close()


class TestTls:
    """Connecting to the checked address keeps TLS on the URL's name: SNI and certificate check."""

    def _get(self, url, context, resolver):
        transport = GuardedTransport(callback_rules(allow_private=True), resolver=resolver, verify=context)
        with httpx.Client(transport=transport, timeout=5.0, trust_env=False) as client:
            return client.get(url)

    def test_sni_and_certificate_name_are_the_url_host(self, tls_server):
        port, context, names = tls_server
        resolver = Resolver({"media.test": ["127.0.0.1"]})
        response = self._get(f"https://media.test:{port}/", context, resolver)
        assert response.text == "ok"
        assert names == ["media.test"], "the handshake asked for the name, not the address"

    def test_a_certificate_for_another_name_is_refused(self, tls_server):
        port, context, _names = tls_server
        resolver = Resolver({"other.test": ["127.0.0.1"]})
        with pytest.raises(httpx.ConnectError) as failed:
            self._get(f"https://other.test:{port}/", context, resolver)
        assert "certificate" in str(failed.value).lower()
        session = FetchSession(FetchOptions(limits=FetchLimits(max_bytes=1000)))
        error = session.error_of(failed.value, "other.test")
        session.close()
        assert isinstance(error, FetchTlsError), "a fetch reports it as permanent, not a connection hiccup"
        assert not error.retryable
