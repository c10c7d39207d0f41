"""The diarization backends MAIE knows, whether they can run here, and the fallback chain.

Adding a backend is one module with a :class:`~maie.pipeline.diarization.base.DiarizationBackend`
and a ``SPEC``, plus one line in :data:`REGISTRY`. Availability answers are cached for
:data:`AVAILABILITY_TTL_S` seconds per settings, as for ASR. :meth:`DiarizerRegistry.run` walks
``[requested, *MAIE_DIARIZATION_FALLBACK]`` until a backend loads, and records the fallback.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from maie.errors import BackendUnavailableError, ModelLoadError
from maie.pipeline.diarization import channels, embedded, pyannote_backend
from maie.pipeline.model_names import public_location
from maie.schemas import ModelInfo

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from contextlib import AbstractContextManager

    from maie.config import Settings
    from maie.pipeline.diarization.base import DiarizationBackend, DiarizationInput, DiarizerSpec
    from maie.schemas import DiarizationArtifact

__all__ = ["AVAILABILITY_TTL_S", "REGISTRY", "DiarizerRegistry", "describe", "ensure_available"]

#: Seconds an availability answer is reused (as for ASR backends).
AVAILABILITY_TTL_S = 60.0

log = structlog.get_logger(__name__)


class DiarizerRegistry:
    """Diarization backends by id, with cached availability checks. Thread-safe."""

    def __init__(
        self,
        specs: Iterable[DiarizerSpec] = (),
        *,
        ttl_s: float = AVAILABILITY_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._specs: dict[str, DiarizerSpec] = {}
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[tuple[str, Settings], tuple[float, ModelInfo]] = {}
        self._lock = threading.Lock()
        for spec in specs:
            if spec.backend_id in self._specs:
                msg = f"diarization backend {spec.backend_id!r} is already registered"
                raise ValueError(msg)
            self._specs[spec.backend_id] = spec

    def ids(self) -> list[str]:
        """Registered backend ids, in registration order."""
        return list(self._specs)

    def get_spec(self, backend_id: str) -> DiarizerSpec:
        """The spec of ``backend_id``.

        Raises:
            BackendUnavailableError: if no backend has that id; the message lists the known ones.
        """
        try:
            return self._specs[backend_id]
        except KeyError:
            known = ", ".join(self._specs) or "none"
            raise BackendUnavailableError(
                f"unknown diarization backend {backend_id!r}; known backends: {known}",
                extra={"known_backends": list(self._specs)},
            ) from None

    def create(self, backend_id: str, settings: Settings) -> DiarizationBackend[Any]:
        """Build an unloaded backend (no I/O).

        Raises:
            BackendUnavailableError: if ``backend_id`` is unknown.
        """
        return self.get_spec(backend_id).factory(settings)

    def info(self, backend_id: str, settings: Settings, *, refresh: bool = False) -> ModelInfo:
        """One backend as ``/v1/models`` shows it (the ASR entries' shape), availability cached.

        Raises:
            BackendUnavailableError: if ``backend_id`` is unknown.
        """
        spec = self.get_spec(backend_id)
        key, now = (backend_id, settings), self._clock()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and not refresh and now - cached[0] < self._ttl_s:
                return cached[1]
        found = spec.probe(settings)
        info = ModelInfo(
            backend_id=spec.backend_id,
            name=spec.name,
            default_variant=public_location(found.variant),
            description=spec.description,
            capabilities=list(spec.capabilities),
            available=found.reason is None,
            unavailable_reason=found.reason,
            device=found.device,
            compute_type=found.compute_type,
            languages=None,
        )
        log.debug("diarization.availability_checked", backend=backend_id, reason=found.reason)
        with self._lock:
            self._cache[key] = (now, info)
        return info

    def describe(self, settings: Settings, *, refresh: bool = False) -> list[ModelInfo]:
        """Every registered backend as ``/v1/models`` shows it."""
        return [self.info(backend_id, settings, refresh=refresh) for backend_id in self._specs]

    def ensure_available(self, backend_id: str, settings: Settings) -> ModelInfo:
        """The backend's info if it can run here.

        Raises:
            BackendUnavailableError: if it is unknown or unavailable, with the reason (how to install).
        """
        info = self.info(backend_id, settings)
        if not info.available:
            raise BackendUnavailableError(
                f"diarization backend {backend_id!r} is not available: {info.unavailable_reason}",
                extra={"backend_id": backend_id},
            )
        return info

    def chain(self, requested: str, settings: Settings) -> list[str]:
        """``requested`` then ``MAIE_DIARIZATION_FALLBACK``, without repeats."""
        return [requested, *(b for b in settings.diarization.fallback_chain() if b != requested)]

    def run(
        self,
        requested: str,
        settings: Settings,
        data: DiarizationInput,
        *,
        use: Callable[[DiarizationBackend[Any]], AbstractContextManager[DiarizationBackend[Any]]]
        | None = None,
    ) -> DiarizationArtifact:
        """Diarize ``data`` with the first backend of the chain that loads.

        Args:
            requested: The backend the request named.
            settings: Service settings.
            data: The stage input.
            use: Holds a backend loaded for the call (the worker passes its residency cache);
                by default the backend is loaded and unloaded around the call.

        Raises:
            ModelLoadError: when no backend of the chain can be loaded; says why for each.
            PermanentError: bad input (e.g. ``channels`` on mono audio) is not a load failure and
                is raised at once, without trying fallbacks.
        """
        failures: list[tuple[str, str]] = []
        for backend_id in self.chain(requested, settings):
            if failures and not (info := self.info(backend_id, settings)).available:
                failures.append((backend_id, info.unavailable_reason or "unavailable"))
                continue
            with contextlib.ExitStack() as stack:
                try:
                    backend = self.create(backend_id, settings)
                    model = stack.enter_context(use(backend) if use is not None else backend)
                except ModelLoadError as exc:
                    failures.append((backend_id, exc.detail))
                    log.warning("diarization.backend_failed", backend=backend_id, reason=exc.detail)
                    continue
                artifact = model.process(data)
            if not failures:
                return artifact
            note = f"{'→'.join([*(n for n, _ in failures), backend_id])}: " + "; ".join(
                f"{n}: {r}" for n, r in failures
            )
            log.warning("diarization.fallback", requested=requested, used=backend_id, reason=note)
            version = msgspec.structs.replace(artifact.version, fallback_from=requested)
            return msgspec.structs.replace(artifact, version=version, warnings=[*artifact.warnings, note])
        raise ModelLoadError(
            "no diarization backend could be loaded: " + "; ".join(f"{n}: {r}" for n, r in failures),
            extra={"tried": [n for n, _ in failures]},
        )


#: The process-wide registry. Register new backends here.
REGISTRY = DiarizerRegistry([embedded.SPEC, pyannote_backend.SPEC, channels.SPEC])


def describe(settings: Settings, *, refresh: bool = False) -> list[ModelInfo]:
    """:meth:`DiarizerRegistry.describe` on :data:`REGISTRY`."""
    return REGISTRY.describe(settings, refresh=refresh)


def ensure_available(backend_id: str, settings: Settings) -> ModelInfo:
    """:meth:`DiarizerRegistry.ensure_available` on :data:`REGISTRY`."""
    return REGISTRY.ensure_available(backend_id, settings)
