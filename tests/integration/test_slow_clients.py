"""Slow and idle clients against a real `maie api`, over raw sockets.

A client that connects and sends nothing, trickles its headers or its body, or announces a body
it never sends must not hold a connection (and a file descriptor) for as long as it likes; past
MAIE_HTTP_MAX_CONNECTIONS new connections are refused at once. Deadlines here are a few seconds;
the tests wait for the server's answer with much longer deadlines, so a slow machine only makes
them slower.
"""

from __future__ import annotations

import json
import socket
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.fixtures.services import KEY_A

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

#: What a test waits, at most, for the server to close a connection it should close in ~2-3 s.
CLOSE_DEADLINE_S = 45.0


@pytest.fixture(scope="module")
def strict_api(service_env, start_process):
    """An API with 2 s header and body deadlines and a minimum upload rate of 2000 bytes/s."""
    env = {
        **service_env,
        "MAIE_HTTP_HEADER_TIMEOUT_S": "2",
        "MAIE_HTTP_BODY_TIMEOUT_S": "2",
        "MAIE_HTTP_BODY_MIN_BYTES_PER_S": "2000",
        "MAIE_HTTP_KEEP_ALIVE_TIMEOUT_S": "1",
    }
    api = start_process("api", env)
    yield api
    api.stop()


def _connect(api) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=5)
    sock.settimeout(0.0)  # non-blocking: recv answers at once
    return sock


def _read_until_closed(sock: socket.socket, *, trickle: Callable[[], bytes | None] | None = None) -> bytes:
    """Everything the server sends until it closes the connection; ``trickle`` says what to send meanwhile."""
    received = b""
    deadline = time.monotonic() + CLOSE_DEADLINE_S
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            chunk = None
        except ConnectionResetError:
            return received
        if chunk == b"":
            return received
        if chunk:
            received += chunk
            continue
        if trickle is not None and (data := trickle()):
            try:
                sock.send(data)
            except (BrokenPipeError, ConnectionResetError):
                return received
        time.sleep(0.2)
    pytest.fail(f"the server kept the connection open {CLOSE_DEADLINE_S} s (received {received[:200]!r})")


def _every(seconds: float, data: bytes) -> Callable[[], bytes | None]:
    """A trickle: ``data`` once every ``seconds``."""
    last = [0.0]

    def next_chunk() -> bytes | None:
        if time.monotonic() - last[0] < seconds:
            return None
        last[0] = time.monotonic()
        return data

    return next_chunk


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


@pytest.mark.slow
class TestDeadlines:
    """Each kind of slow client is cut off; the API keeps serving everyone else."""

    def test_connections_that_send_nothing_are_closed(self, strict_api, sockets):
        sockets += [_connect(strict_api) for _ in range(20)]
        for sock in sockets:
            assert _read_until_closed(sock) == b"", "nothing was asked, nothing is answered"
        assert strict_api.client.get("/health").status_code == 200

    def test_trickled_headers_get_408(self, strict_api, sockets):
        sockets += [_connect(strict_api) for _ in range(5)]
        for sock in sockets:
            sock.send(b"GET /health HTTP/1.1\r\nHost: maie\r\n")
        answers = [_read_until_closed(sock, trickle=_every(0.5, b"X")) for sock in sockets]
        for answer in answers:
            assert answer.startswith(b"HTTP/1.1 408 "), answer
            body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
            assert "MAIE_HTTP_HEADER_TIMEOUT_S" in body["detail"]
        assert strict_api.client.get("/health").status_code == 200

    def _upload_head(self, length: int) -> bytes:
        return (
            "POST /v1/process HTTP/1.1\r\nHost: maie\r\n"
            f"X-API-Key: {KEY_A}\r\n"
            "Content-Type: multipart/form-data; boundary=b0undary\r\n"
            f"Content-Length: {length}\r\n\r\n"
            '--b0undary\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        ).encode()

    def test_body_shorter_than_its_content_length(self, strict_api, sockets, service_env):
        """A body announced at 10 MB that stops after a few bytes: the connection is dropped."""
        sockets += [_connect(strict_api) for _ in range(5)]
        for sock in sockets:
            sock.send(self._upload_head(10_000_000) + b"RIFF")
        for sock in sockets:
            _read_until_closed(sock)
        assert strict_api.client.get("/health").status_code == 200
        assert "http.client_timeout" in strict_api.log()

    def test_trickled_body_is_dropped(self, strict_api, sockets):
        """Ten bytes every half second (20 B/s) never finish a 1 MB body: dropped once under the rate."""
        sock = _connect(strict_api)
        sockets.append(sock)
        sock.send(self._upload_head(1_000_000))
        _read_until_closed(sock, trickle=_every(0.5, b"0123456789"))
        events = [json.loads(line) for line in strict_api.log().splitlines() if line.startswith("{")]
        assert any(e.get("event") == "http.client_timeout" and e.get("phase") == "body" for e in events)

    def test_ordinary_clients_are_unaffected(self, strict_api):
        """Requests that arrive at once, kept-alive and repeated, are served as before."""
        with httpx.Client(base_url=strict_api.url, timeout=30) as client:
            for _ in range(3):
                assert client.get("/health").status_code == 200


@pytest.mark.slow
class TestConnectionCap:
    """MAIE_HTTP_MAX_CONNECTIONS open connections at most; the next is refused before it can idle."""

    def test_connections_over_the_cap_get_503(self, service_env, start_process, sockets):
        """Thirty idle connections against a cap of ten: twenty are refused at once, ten stay open."""
        api = start_process(
            "api", {**service_env, "MAIE_HTTP_MAX_CONNECTIONS": "10", "MAIE_HTTP_HEADER_TIMEOUT_S": "120"}
        )
        api.client.close()  # its kept-alive connection would take one of the ten
        sockets += [_connect(api) for _ in range(30)]
        last = _read_until_closed(sockets[-1])  # connections are taken in order: the others are decided
        assert last.startswith(b"HTTP/1.1 503 "), last
        assert b"retry-after: " in last.lower()
        assert b"MAIE_HTTP_MAX_CONNECTIONS" in last
        refused, still_open = [], []
        for sock in sockets[:-1]:
            try:
                (refused if sock.recv(65536).startswith(b"HTTP/1.1 503 ") else still_open).append(sock)
            except BlockingIOError:
                still_open.append(sock)
        # Ten, or nine while the server still counts the closed connection of the readiness check.
        assert len(still_open) in {9, 10}, (len(still_open), len(refused))
        assert len(refused) == 29 - len(still_open)
        api.stop()
