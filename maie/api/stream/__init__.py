"""Live transcription over WebSocket (``/v1/stream``): the protocol, the sessions, where they run.

See docs/streaming.md. :mod:`~maie.api.stream.route` is the route both apps mount (the API, and
``maie stream``'s :func:`~maie.api.stream.app.create_stream_app`).
"""

from __future__ import annotations

from maie.api.stream.app import create_stream_app
from maie.api.stream.route import STREAM_PATH, stream_socket
from maie.api.stream.service import StreamService

__all__ = ["STREAM_PATH", "StreamService", "create_stream_app", "stream_socket"]
