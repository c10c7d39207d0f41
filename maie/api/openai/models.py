"""``GET /openai/v1/models`` and ``/models/{model}``: ASR backends and model variants, as OpenAI lists models.

Ids are a backend's (its default model), ``whisper-1`` (what OpenAI clients send unasked; it is
Whisper's default model) and ``<backend>:<variant>`` for each variant of ``MAIE_WHISPER_MODELS``;
only models whose availability check passes are listed (``GET /v1/models`` says why others fail).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final

import anyio.to_thread
from litestar import Controller, get

from maie.api.openai.docs import openai_error_responses
from maie.errors import ModelNotFoundError
from maie.openai_formats import ModelCard, ModelList, model_list
from maie.pipeline.asr.registry import describe

if TYPE_CHECKING:
    from litestar.di import NamedDependency
    from litestar.params import FromPath

    from maie.api.services import Services

__all__ = ["ModelsController"]

#: ``created`` of every model: when this process started (MAIE's models have no creation date).
_STARTED: Final = int(time.time())


class ModelsController(Controller):
    """Models."""

    path = "/models"
    tags = ("openai",)

    @get("/", summary="Models (OpenAI-compatible): ASR backends and their model variants")
    async def list_models(self, services: NamedDependency[Services]) -> ModelList:
        """The available models."""
        return await _models(services)

    @get(
        "/{model:str}",
        summary="One model (OpenAI-compatible)",
        responses=openai_error_responses(404),
    )
    async def retrieve_model(self, model: FromPath[str], services: NamedDependency[Services]) -> ModelCard:
        """One model by id.

        Raises:
            ModelNotFoundError: if no available model has that id.
        """
        for card in (await _models(services)).data:
            if card.id == model:
                return card
        raise ModelNotFoundError(f"the model {model[:64]!r} does not exist; GET /openai/v1/models lists them")


async def _models(services: Services) -> ModelList:
    described = await anyio.to_thread.run_sync(describe, services.settings)
    return model_list(described, created=_STARTED)
