"""The web app for people, served at ``/``: sign-in, library, uploads and a task's page.

Pages are Jinja templates rendered by Litestar; a few plain JavaScript modules (no build step)
talk to the same ``/v1`` API as every integration, from the browser, with the API key kept in
``sessionStorage``. See docs/webapp.md.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from maie.web.pages import SecurityHeadersMiddleware, WebController

__all__ = ["STATIC_DIR", "TEMPLATES_DIR", "template_config", "web_router"]

#: The pages.
TEMPLATES_DIR = Path(__file__).parent / "templates"
#: Scripts, styles and the icon.
STATIC_DIR = Path(__file__).parent / "static"


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """Jinja over the web app's templates (autoescaping on, as Litestar sets it)."""
    return TemplateConfig(directory=TEMPLATES_DIR, engine=JinjaTemplateEngine)


def web_router() -> Router:
    """The pages and their static files, each answer with the web app's security headers."""
    static = create_static_files_router(
        path="/static",
        directories=[STATIC_DIR],
        # Revalidated on each load (cheap with the ETag), so a new release is picked up at once.
        cache_control=CacheControlHeader(no_cache=True),
        include_in_schema=False,
    )
    return Router(path="/", route_handlers=[WebController, static], middleware=[SecurityHeadersMiddleware()])
