"""The ``/v1/stream`` WebSocket route: sessions run here, or are relayed to ``maie stream``.

An app that runs sessions (``maie stream``; ``maie api`` without ``MAIE_STREAM_URL``) holds a
:class:`~maie.api.stream.service.StreamService` in ``services.stream``; the route serves each
connection with :class:`~maie.api.stream.connection.LiveConnection`. With ``MAIE_STREAM_URL`` the
API relays the connection to that process instead (:mod:`maie.api.stream.relay`). The route sits
outside the ``/v1`` router's guards: browsers cannot send headers on a WebSocket, so the key may
come in the first message, and the session checks it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar import WebSocket, websocket

from maie.api.stream.connection import LiveConnection
from maie.api.stream.relay import STREAM_PATH, relay

if TYPE_CHECKING:
    from maie.api.services import Services

__all__ = ["STREAM_PATH", "stream_socket"]


@websocket(STREAM_PATH, name="stream")
async def stream_socket(socket: WebSocket[Any, Any, Any]) -> None:
    """Live transcription: ``start``, binary audio frames, ``stop`` (docs/streaming.md)."""
    services: Services = socket.app.state.services
    upstream = services.settings.stream.url
    if services.stream is None and upstream:
        await relay(socket, services.settings.stream, upstream)
        return
    if services.stream is None:  # an app that neither runs nor relays sessions
        await socket.close(code=1011, reason="live transcription is not served here")
        return
    await LiveConnection(socket, services, services.stream).run()
