"""``/v1/stream`` on the API's port when sessions run in a ``maie stream`` process (``MAIE_STREAM_URL``).

The API accepts the client's WebSocket, opens one to the stream process with the client's
headers (the API key, ``X-Request-ID``, and ``X-Forwarded-For``), and copies messages both ways
unchanged until either side closes; the other side gets the same close code and reason. The
stream process does everything else (authentication included), so clients see one protocol
whichever port they use. What the relay costs was measured (docs/streaming.md): a frame's trip
through it is a fraction of a millisecond.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Final

import msgspec
import structlog
from litestar.exceptions import WebSocketDisconnect
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from maie.api.guards import API_KEY_HEADER, AUTHORIZATION_HEADER
from maie.api.request_id import REQUEST_ID_HEADER
from maie.api.stream.protocol import CLOSE_INTERNAL, CLOSE_NORMAL, CLOSE_TRY_AGAIN, ErrorMessage

if TYPE_CHECKING:
    from litestar import WebSocket
    from websockets.asyncio.client import ClientConnection

    from maie.config import StreamSettings

__all__ = ["STREAM_PATH", "relay"]

log = structlog.get_logger(__name__)

#: Where live sessions are served, on the API and on ``maie stream``.
STREAM_PATH: Final = "/v1/stream"
#: Headers passed on to the stream process.
_FORWARDED: Final = (API_KEY_HEADER, AUTHORIZATION_HEADER, REQUEST_ID_HEADER)
#: Seconds the stream process has to accept the relayed connection.
_OPEN_TIMEOUT_S: Final = 10.0
_NO_STATUS: Final = 1005
_ABNORMAL: Final = 1006


async def relay(socket: WebSocket[Any, Any, Any], settings: StreamSettings, upstream_url: str) -> None:
    """Relay one client connection to the stream process at ``upstream_url`` (never raises)."""
    try:
        await _relay(socket, settings, upstream_url)
    except Exception:
        log.exception("stream.relay_failed")
        with contextlib.suppress(OSError, RuntimeError, WebSocketDisconnect):
            await socket.close(code=CLOSE_INTERNAL)


async def _relay(socket: WebSocket[Any, Any, Any], settings: StreamSettings, upstream_url: str) -> None:
    headers = [(name, value) for name in _FORWARDED if (value := socket.headers.get(name))]
    if socket.client is not None:
        headers.append(("X-Forwarded-For", socket.client.host))
    await socket.accept()
    try:
        upstream = await connect(
            upstream_url.rstrip("/") + STREAM_PATH,
            additional_headers=headers,
            max_size=2 * settings.max_frame_bytes,
            compression=None,
            open_timeout=_OPEN_TIMEOUT_S,
            proxy=None,
        )
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
        log.warning("stream.relay_unavailable", upstream=upstream_url, reason=str(exc))
        detail = "the live-transcription service cannot be reached; try again shortly"
        error = ErrorMessage(code="stream_unavailable", detail=detail)
        with contextlib.suppress(OSError, RuntimeError, WebSocketDisconnect):
            await socket.send_data(msgspec.json.encode(error).decode())
            await socket.close(code=CLOSE_TRY_AGAIN)
        return
    async with upstream:
        to_server = asyncio.get_running_loop().create_task(_client_to_server(socket, upstream))
        try:
            # The stream process ends every session by closing (after the client left, too), and
            # its close goes on to the client; only then is the client side done.
            await _server_to_client(upstream, socket)
        finally:
            to_server.cancel()
            await asyncio.gather(to_server, return_exceptions=True)


async def _client_to_server(socket: WebSocket[Any, Any, Any], upstream: ClientConnection) -> None:
    """Copy the client's messages until it leaves (then close upstream, which stores the session)."""
    with contextlib.suppress(ConnectionClosed, OSError, RuntimeError, WebSocketDisconnect):
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                await upstream.close(code=message.get("code") or 1000)
                return
            data = message.get("bytes")
            text = message.get("text")
            await upstream.send(data if isinstance(data, bytes) else text if isinstance(text, str) else "")


async def _server_to_client(upstream: ClientConnection, socket: WebSocket[Any, Any, Any]) -> None:
    """Copy the stream process's messages, then its close code and reason."""
    try:
        async for data in upstream:
            await socket.send_data(data, mode="binary" if isinstance(data, bytes) else "text")
    except ConnectionClosed:
        pass
    except (OSError, RuntimeError, WebSocketDisconnect):  # the client left; upstream hears of it
        await upstream.close()
        return
    code = upstream.close_code
    # 1005 (no code) and 1006 (no close frame) only describe a close; they cannot be sent.
    code = CLOSE_NORMAL if code == _NO_STATUS else CLOSE_INTERNAL if code in {None, _ABNORMAL} else code
    with contextlib.suppress(OSError, RuntimeError, WebSocketDisconnect):
        await socket.close(code=code, reason=upstream.close_reason or None)
