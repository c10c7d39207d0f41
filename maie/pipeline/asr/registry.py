"""The ASR backends MAIE knows, what they can do, and whether they can run here.

Adding a backend is one module that defines an :class:`~maie.pipeline.asr.base.AsrBackend` and a
``SPEC``, plus one line in :data:`REGISTRY` below. Availability checks touch the disk and maybe
the network, so their answers are cached for :data:`AVAILABILITY_TTL_S` seconds per settings.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from maie.errors import BackendUnavailableError, UnprocessableError
from maie.pipeline.asr import chunkformer, pocketsphinx, whisper
from maie.pipeline.model_names import public_location
from maie.schemas import ModelInfo, ModelVariant

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from maie.config import Settings
    from maie.pipeline.asr.base import AsrBackend, Availability, BackendSpec, Variant

__all__ = [
    "AVAILABILITY_TTL_S",
    "REGISTRY",
    "BackendRegistry",
    "create",
    "describe",
    "ensure_available",
    "get_spec",
]

#: Seconds an availability answer is reused: short enough to notice fetched weights within a
#: minute, long enough that polling ``/v1/models`` does not probe the hub on every request.
AVAILABILITY_TTL_S = 60.0

log = structlog.get_logger(__name__)


class BackendRegistry:
    """Backends by id, with cached availability checks. Thread-safe."""

    def __init__(
        self,
        specs: Iterable[BackendSpec] = (),
        *,
        ttl_s: float = AVAILABILITY_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._specs: dict[str, BackendSpec] = {}
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[tuple[str, Settings], tuple[float, ModelInfo]] = {}
        self._lock = threading.Lock()
        for spec in specs:
            self.register(spec)

    def register(self, spec: BackendSpec) -> None:
        """Add a backend.

        Raises:
            ValueError: if its id is already registered.
        """
        if spec.backend_id in self._specs:
            msg = f"ASR backend {spec.backend_id!r} is already registered"
            raise ValueError(msg)
        self._specs[spec.backend_id] = spec

    def ids(self) -> list[str]:
        """Registered backend ids, in registration order."""
        return list(self._specs)

    def get_spec(self, backend_id: str) -> BackendSpec:
        """The spec of ``backend_id``.

        Raises:
            BackendUnavailableError: if no backend has that id; the message lists the known ones.
        """
        try:
            return self._specs[backend_id]
        except KeyError:
            known = ", ".join(self._specs) or "none"
            raise BackendUnavailableError(
                f"unknown ASR backend {backend_id!r}; known backends: {known}",
                extra={"known_backends": list(self._specs)},
            ) from None

    def create(self, backend_id: str, settings: Settings) -> AsrBackend[Any]:
        """Build an unloaded backend (no model I/O; call ``load()`` or use it as a context manager).

        Raises:
            BackendUnavailableError: if ``backend_id`` is unknown.
        """
        return self.get_spec(backend_id).factory(settings)

    def info(self, backend_id: str, settings: Settings, *, refresh: bool = False) -> ModelInfo:
        """One backend as ``/v1/models`` shows it, availability checked (or cached).

        Args:
            backend_id: The backend.
            settings: The settings it would run with.
            refresh: Ignore a cached answer.

        Raises:
            BackendUnavailableError: if ``backend_id`` is unknown.
        """
        spec = self.get_spec(backend_id)
        key = (backend_id, settings)
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and not refresh and now - cached[0] < self._ttl_s:
                return cached[1]
        info = _model_info(spec, _probe(spec, settings))
        with self._lock:
            self._cache[key] = (now, info)
        return info

    def describe(self, settings: Settings, *, refresh: bool = False) -> list[ModelInfo]:
        """Every registered backend as ``/v1/models`` shows it, each model variant checked."""
        described = []
        for backend_id in self._specs:
            info = self.info(backend_id, settings, refresh=refresh)
            if self._specs[backend_id].variants is not None:
                variants = [
                    _variant_info(variant, self.info(backend_id, variant.settings, refresh=refresh), n == 0)
                    for n, variant in enumerate(self.variants(backend_id, settings))
                ]
                info = msgspec.structs.replace(info, variants=variants)
            described.append(info)
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
            with_variants = [b for b, spec in self._specs.items() if spec.variants is not None]
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

    def ensure_available(self, backend_id: str, settings: Settings) -> ModelInfo:
        """The backend's info if it can run here.

        Raises:
            BackendUnavailableError: if it is unknown or unavailable, with the reason.
        """
        info = self.info(backend_id, settings)
        if not info.available:
            raise BackendUnavailableError(
                f"ASR backend {backend_id!r} is not available: {info.unavailable_reason}",
                extra={"backend_id": backend_id},
            )
        return info


def _probe(spec: BackendSpec, settings: Settings) -> Availability:
    started = time.perf_counter()
    availability = spec.probe(settings)
    log.debug(
        "asr.availability_checked",
        backend=spec.backend_id,
        available=availability.reason is None,
        reason=availability.reason,
        check_s=round(time.perf_counter() - started, 3),
    )
    return availability


def _variant_info(variant: Variant, info: ModelInfo, default: bool) -> ModelVariant:
    return ModelVariant(
        name=variant.name,
        model=public_location(variant.model),
        default=default,
        available=info.available,
        unavailable_reason=info.unavailable_reason,
        size_bytes=info.size_bytes,
    )


def _model_info(spec: BackendSpec, availability: Availability) -> ModelInfo:
    return ModelInfo(
        backend_id=spec.backend_id,
        name=spec.name,
        default_variant=public_location(availability.variant),
        description=spec.description,
        capabilities=list(spec.capabilities),
        available=availability.reason is None,
        unavailable_reason=availability.reason,
        device=availability.device,
        compute_type=availability.compute_type,
        languages=_languages(spec, availability),
        size_bytes=availability.size_bytes,
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
