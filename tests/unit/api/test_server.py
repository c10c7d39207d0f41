"""The uvicorn configuration `maie api` runs with: MAIE_HTTP_* settings reach the server."""

from __future__ import annotations

import asyncio

from litestar import Litestar, Response, get
from litestar.response import Stream
from uvicorn.server import ServerState

from maie.api.http_protocol import GuardedH11Protocol
from maie.api.server import server_config
from maie.config import Settings


class TestServerConfig:
    def test_settings_reach_uvicorn_and_the_protocol(self):
        settings = Settings.from_env(
            {
                "MAIE_PORT": "8123",
                "MAIE_HTTP_KEEP_ALIVE_TIMEOUT_S": "3",
                "MAIE_HTTP_HEADER_TIMEOUT_S": "7",
                "MAIE_HTTP_BODY_TIMEOUT_S": "11",
                "MAIE_HTTP_BODY_MIN_BYTES_PER_S": "900",
                "MAIE_HTTP_MAX_CONNECTIONS": "64",
            },
            env_file=None,
        )
        config = server_config(Litestar(), settings)
        assert config.port == 8123
        assert config.timeout_keep_alive == 3
        assert config.limit_concurrency == 65, "uvicorn refuses at >= its limit: 64 are served"
        protocol = config.http
        assert isinstance(protocol, type)
        assert issubclass(protocol, GuardedH11Protocol)
        limits = protocol.limits
        assert (limits.header_timeout_s, limits.body_timeout_s) == (7, 11)
        assert (limits.body_min_bytes_per_s, limits.max_connections) == (900, 64)

    def test_defaults(self):
        server = Settings.from_env({}, env_file=None).server
        assert server.http_keep_alive_timeout_s == 5
        assert server.http_header_timeout_s == 20
        assert server.http_body_timeout_s == 30
        assert server.http_body_min_bytes_per_s == 500
        assert server.http_max_connections == 1000

    def test_no_uvicorn_access_log(self):
        """MAIE logs each request itself (``http.request``); uvicorn's access line would repeat it."""
        config = server_config(Litestar(), Settings.from_env({}, env_file=None))
        assert config.access_log is False


class RecordingTransport:
    """TEST DOUBLE of an asyncio transport: keeps each write as it was made."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        if data:  # asyncio's transports make no system call for an empty write either
            self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default=None):
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def set_write_buffer_limits(self, *args, **kwargs) -> None: ...


class TestJoinedWrites:
    """A sized response leaves in one write (head and body); a streamed one's head leaves at once."""

    @staticmethod
    async def _serve(handler, request: bytes, *, until) -> RecordingTransport:
        settings = Settings.from_env({}, env_file=None)
        config = server_config(Litestar([handler]), settings)
        config.load()
        protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={})
        transport = RecordingTransport()
        protocol.connection_made(transport)
        protocol.data_received(request)
        deadline = asyncio.get_running_loop().time() + 10
        while not until(transport):
            assert asyncio.get_running_loop().time() < deadline, transport.writes
            await asyncio.sleep(0.01)
        protocol.connection_lost(None)
        return transport

    async def test_head_and_body_in_one_write(self):
        @get("/poll")
        async def poll() -> dict[str, str]:
            return {"status": "COMPLETE"}

        transport = await self._serve(
            poll, b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n", until=lambda t: b"COMPLETE" in b"".join(t.writes)
        )
        (only,) = transport.writes
        assert only.startswith(b"HTTP/1.1 200 ")
        assert only.endswith(b'{"status":"COMPLETE"}')

    async def test_a_bodiless_answer_is_one_write_too(self):
        @get("/same")
        async def same() -> Response[bytes]:
            return Response(b"", status_code=304, headers={"ETag": '"e"'})

        transport = await self._serve(
            same, b"GET /same HTTP/1.1\r\nHost: x\r\n\r\n", until=lambda t: bool(t.writes)
        )
        (only,) = transport.writes
        assert only.startswith(b"HTTP/1.1 304 ")

    async def test_a_streamed_head_is_not_held_back(self):
        release = asyncio.Event()

        async def events():
            await release.wait()
            yield b"data: 1\n\n"

        @get("/events")
        async def stream() -> Stream:
            return Stream(events(), media_type="text/event-stream")

        transport = await self._serve(
            stream, b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n", until=lambda t: bool(t.writes)
        )
        release.set()
        assert transport.writes[0].startswith(b"HTTP/1.1 200 "), "the head left before any event"
        assert b"data: 1" not in transport.writes[0]
