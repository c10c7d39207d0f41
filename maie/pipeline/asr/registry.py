"""The ASR backends MAIE knows, what they can do, and whether they can run here.

Adding a backend is one module that defines an :class:`~maie.pipeline.asr.base.AsrBackend` and a
``SPEC``, plus one line in :data:`REGISTRY` below. The registry is the shared one
(:class:`maie.pipeline.registry.Registry`: ids, specs, availability cached for
:data:`AVAILABILITY_TTL_S` seconds per settings) with what only ASR has: model variants chosen per
request (``model=``) and the languages a configured model speaks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from maie.errors import UnprocessableError
from maie.pipeline.asr import chunkformer, pocketsphinx, whisper
from maie.pipeline.asr.base import BackendSpec
from maie.pipeline.model_names import public_location
from maie.pipeline.registry import AVAILABILITY_TTL_S, Found, Registry
from maie.schemas import ModelInfo, ModelVariant

if TYPE_CHECKING:
    from maie.config import Settings
    from maie.pipeline.asr.base import AsrBackend, Availability, Variant

__all__ = [
    "AVAILABILITY_TTL_S",
    "REGISTRY",
    "BackendRegistry",
    "create",
    "describe",
    "ensure_available",
    "get_spec",
]


class BackendRegistry(Registry[BackendSpec]):
    """ASR backends by id, with cached availability checks and model variants. Thread-safe."""

    kind: ClassVar[str] = "ASR"

    def create(self, backend_id: str, settings: Settings) -> AsrBackend[Any]:
        """Build an unloaded backend (no model I/O; call ``load()`` or use it as a context manager).

        Raises:
            BackendUnavailableError: if ``backend_id`` is unknown.
        """
        return self.get_spec(backend_id).factory(settings)

    def describe(self, settings: Settings, *, refresh: bool = False) -> list[ModelInfo]:
        """Every registered backend as ``/v1/models`` shows it, each model variant checked."""
        described = []
        for info in super().describe(settings, refresh=refresh):
            backend_id = info.backend_id
            if self.get_spec(backend_id).variants is None:
                described.append(info)
                continue
            variants = [
                _variant_info(variant, self.info(backend_id, variant.settings, refresh=refresh), n == 0)
                for n, variant in enumerate(self.variants(backend_id, settings))
            ]
            described.append(msgspec.structs.replace(info, variants=variants))
        return described

    def variants(self, backend_id: str, settings: Settings) -> tuple[Variant, ...]:
        """The model variants of ``backend_id``, default first; empty for a backend with one model.

        Raises:
            BackendUnavailableError: if ``backend_id`` is unknown.
        """
        spec = self.get_spec(backend_id)
        return () if spec.variants is None else spec.variants(settings)

    def variant(self, backend_id: str, settings: Settings, name: str | None) -> Variant | None:
        """The variant ``name`` of ``backend_id`` (the default one when ``name`` is None).

        Returns:
            The variant, whose settings build and check that model; None for a backend without
            variants when no name is given.

        Raises:
            UnprocessableError: for a name the backend does not have, listing those it has.
            BackendUnavailableError: if ``backend_id`` is unknown.
        """
        variants = self.variants(backend_id, settings)
        if not variants:
            if name is None:
                return None
            with_variants = [b for b in self.ids() if self.get_spec(b).variants is not None]
            raise UnprocessableError(
                f"asr_backend {backend_id!r} has no model variants to choose from; model applies to "
                f"{', '.join(with_variants)}",
                extra={"backends_with_models": with_variants},
            )
        if name is None:
            return variants[0]
        for variant in variants:
            if variant.name == name:
                return variant
        known = [v.name for v in variants]
        raise UnprocessableError(
            f"unknown model {name[:64]!r} for asr_backend {backend_id!r}; known models: {', '.join(known)} "
            "(GET /v1/models)",
            extra={"known_models": known},
        )

    def _model_info(self, spec: BackendSpec, found: Found) -> ModelInfo:
        """The shared entry, with the model's languages and its size on disk."""
        availability: Availability = found  # type: ignore[assignment]  # ASR probes return Availability
        return msgspec.structs.replace(
            super()._model_info(spec, found),
            languages=_languages(spec, availability),
            size_bytes=availability.size_bytes,
        )


def _variant_info(variant: Variant, info: ModelInfo, default: bool) -> ModelVariant:
    return ModelVariant(
        name=variant.name,
        model=public_location(variant.model),
        default=default,
        available=info.available,
        unavailable_reason=info.unavailable_reason,
        size_bytes=info.size_bytes,
    )


def _languages(spec: BackendSpec, availability: Availability) -> list[str] | None:
    """The configured model's languages when the probe knows them, else the spec's."""
    languages = availability.languages if availability.languages is not None else spec.languages
    return None if languages is None else list(languages)


#: The process-wide registry. Register new backends here.
REGISTRY = BackendRegistry([whisper.SPEC, pocketsphinx.SPEC, chunkformer.SPEC])


def get_spec(backend_id: str) -> BackendSpec:
    """:meth:`BackendRegistry.get_spec` on :data:`REGISTRY`."""
    return REGISTRY.get_spec(backend_id)


def create(backend_id: str, settings: Settings) -> AsrBackend[Any]:
    """:meth:`BackendRegistry.create` on :data:`REGISTRY`."""
    return REGISTRY.create(backend_id, settings)


def describe(settings: Settings, *, refresh: bool = False) -> list[ModelInfo]:
    """:meth:`BackendRegistry.describe` on :data:`REGISTRY`."""
    return REGISTRY.describe(settings, refresh=refresh)


def ensure_available(backend_id: str, settings: Settings) -> ModelInfo:
    """:meth:`BackendRegistry.ensure_available` on :data:`REGISTRY`."""
    return REGISTRY.ensure_available(backend_id, settings)
