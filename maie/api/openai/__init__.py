"""The OpenAI-compatible audio API under ``/openai/v1`` (apart from MAIE's own ``/v1``).

``GET /models``, ``GET /models/{model}``, ``POST /audio/transcriptions`` and
``POST /audio/translations``, spoken so that OpenAI's own SDKs and the tools built on them
(``OpenAI(base_url="http://127.0.0.1:8000/openai/v1", api_key=KEY)``) work unchanged: keys as
``Authorization: Bearer``, errors in OpenAI's shape. Every request is an ordinary MAIE submission
underneath (see docs/api.md).
"""

from __future__ import annotations

from litestar import Router

from maie.api.guards import api_key_guard, rate_limit_guard
from maie.api.openai.audio import AudioController
from maie.api.openai.docs import OPENAI_PREFIX, document_openai_errors
from maie.api.openai.errors import openai_exception_handlers
from maie.api.openai.models import ModelsController

__all__ = ["OPENAI_PREFIX", "document_openai_errors", "openai_router"]


def openai_router(*, max_body_bytes: int) -> Router:
    """The ``/openai/v1`` routes, with MAIE's key and rate-limit guards and OpenAI's error shape."""
    return Router(
        path=OPENAI_PREFIX,
        route_handlers=[ModelsController, AudioController],
        guards=[api_key_guard, rate_limit_guard],
        exception_handlers=openai_exception_handlers,
        security=[{"Bearer": []}, {"ApiKey": []}],
        request_max_body_size=max_body_bytes,
    )
