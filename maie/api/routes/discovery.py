"""GET /v1/models and /v1/templates: what this server can do, checked rather than assumed.

Whether a model variant is loaded is known to workers only: each worker's heartbeat writes the
models it holds to Redis, and /v1/models counts the live workers that hold each one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio.to_thread
import msgspec
from litestar import Controller, get

from maie.errors import NotFoundError
from maie.pipeline.asr.base import model_label
from maie.pipeline.asr.registry import describe
from maie.pipeline.diarization import describe as describe_diarizers
from maie.schemas import ModelInfo, ModelsResponse, TemplateInfo, TemplatesResponse

if TYPE_CHECKING:
    from litestar.di import NamedDependency
    from litestar.params import FromPath

    from maie.api.services import Services

__all__ = ["DiscoveryController"]


class DiscoveryController(Controller):
    """Models and templates."""

    tags = ("discovery",)

    @get("/models", summary="ASR and diarization backends, with real availability")
    async def models(self, services: NamedDependency[Services]) -> ModelsResponse:
        """List ASR backends and diarizers; ``available`` comes from a check of library, weights and device.

        A diarizer that cannot run here says why in ``unavailable_reason``, with how to install it.
        """
        described = await anyio.to_thread.run_sync(describe, services.settings)
        diarizers = await anyio.to_thread.run_sync(describe_diarizers, services.settings)
        loaded = await services.store.loaded_models()
        return ModelsResponse(models=[_with_loaded(info, loaded) for info in described], diarizers=diarizers)

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


def _with_loaded(info: ModelInfo, loaded: dict[str, int]) -> ModelInfo:
    """``info`` with each variant's count of live workers holding it in memory."""
    if not info.variants:
        return info
    variants = []
    for variant in info.variants:
        workers = loaded.get(model_label(info.backend_id, variant.name), 0)
        variants.append(msgspec.structs.replace(variant, loaded=workers > 0, loaded_workers=workers))
    return msgspec.structs.replace(info, variants=variants)
