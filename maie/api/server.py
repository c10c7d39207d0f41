"""The HTTP server of ``maie api``: uvicorn with MAIE's connection limits.

uvicorn's own options cover the idle kept-alive connection (``timeout_keep_alive``) and the number
of requests served at once (``limit_concurrency``); :mod:`maie.api.http_protocol` adds deadlines for
headers and bodies and refuses connections over the cap before they can sit idle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import uvicorn

from maie.api.http_protocol import ClientLimits, guarded_protocol

if TYPE_CHECKING:
    from litestar import Litestar

    from maie.config import Settings

__all__ = ["GRACEFUL_SHUTDOWN_S", "run_api", "server_config"]

#: Seconds running requests get to finish on SIGTERM.
GRACEFUL_SHUTDOWN_S = 10


def server_config(app: Litestar, settings: Settings, *, port: int | None = None) -> uvicorn.Config:
    """The uvicorn configuration for ``app``: bind address, timeouts and limits from ``settings``.

    ``port`` replaces MAIE_PORT (``maie stream`` listens on MAIE_STREAM_PORT).
    """
    server = settings.server
    return uvicorn.Config(
        app,
        host=server.host,
        port=server.port if port is None else port,
        log_config=None,  # MAIE's logging (structlog) is configured already
        # MAIE logs each request itself (maie.api.request_id); uvicorn's line would repeat it,
        # and building it costs every request a logger call even when the level drops it.
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        timeout_keep_alive=server.http_keep_alive_timeout_s,
        # uvicorn answers 503 when the open connections reach this; the protocol already closed
        # those over MAIE_HTTP_MAX_CONNECTIONS, so that many are served.
        limit_concurrency=server.http_max_connections + 1,
        http=guarded_protocol(ClientLimits.from_settings(server)),
        # /v1/stream: the websockets library, sans-I/O. A message above ws_max_size closes the
        # connection (1009) before MAIE sees it; frames between MAIE_STREAM_MAX_FRAME_BYTES and it
        # get MAIE's own error. Audio does not compress: no per-message deflate.
        ws="websockets-sansio",
        ws_max_size=max(2 * settings.stream.max_frame_bytes, 1024 * 1024),
        ws_per_message_deflate=False,
    )


def run_api(app: Litestar, settings: Settings, *, port: int | None = None) -> None:
    """Serve ``app`` until SIGTERM or Ctrl-C."""
    uvicorn.Server(server_config(app, settings, port=port)).run()
