"""What the web app adds to the application, in one place, so the factory registers it in a line.

Under ``/v1``: the caller's tenant and a task's recording (useful to any client, not only the
pages). At the root: the recording behind a signed link, and the pages with their static files
(:mod:`maie.web`). The factory spreads these lists into its routers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from maie.api.routes.audio import AudioController
from maie.api.routes.me import MeController
from maie.api.routes.media import MediaController
from maie.web import template_config, web_router

if TYPE_CHECKING:
    from litestar.types import ControllerRouterHandler

__all__ = ["root_handlers", "template_config", "v1_handlers"]


def v1_handlers() -> list[ControllerRouterHandler]:
    """Routes for the ``/v1`` router (behind its API key guard)."""
    return [AudioController, MeController]


def root_handlers() -> list[ControllerRouterHandler]:
    """Routes at the root, outside the API key guard: signed media links and the web app."""
    return [MediaController, web_router()]
