"""GET /v1/models and /v1/templates: what this server can do, checked rather than assumed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio.to_thread
from litestar import Controller, get

from maie.errors import NotFoundError
from maie.pipeline.asr.registry import describe
from maie.schemas import ModelsResponse, TemplateInfo, TemplatesResponse

if TYPE_CHECKING:
    from litestar.di import NamedDependency
    from litestar.params import FromPath

    from maie.api.services import Services

__all__ = ["DiscoveryController"]


class DiscoveryController(Controller):
    """Models and templates."""

    tags = ("discovery",)

    @get("/models", summary="ASR backends with capabilities and real availability")
    async def models(self, services: NamedDependency[Services]) -> ModelsResponse:
        """List ASR backends; ``available`` comes from a check of library, weights and device."""
        return ModelsResponse(models=await anyio.to_thread.run_sync(describe, services.settings))

    @get("/templates", summary="Summary templates")
    async def templates(self, services: NamedDependency[Services]) -> TemplatesResponse:
        """List the summary templates."""
        return TemplatesResponse(
            templates=[
                TemplateInfo(
                    template_id=t.template_id,
                    name=t.name,
                    description=t.description,
                    schema_url=f"/v1/templates/{t.template_id}",
                )
                for t in services.templates.all()
            ]
        )

    @get("/templates/{template_id:str}", summary="One template with its JSON Schema")
    async def template(
        self, template_id: FromPath[str], services: NamedDependency[Services]
    ) -> dict[str, Any]:
        """Return a template and its JSON Schema."""
        try:
            template = services.templates.get(template_id)
        except NotFoundError:
            raise NotFoundError(f"template {template_id[:64]!r} not found") from None
        return {
            "template_id": template.template_id,
            "name": template.name,
            "description": template.description,
            "schema": template.schema,
        }
