"""The diarization backends MAIE knows, whether they can run here, and the fallback chain.

Adding a backend is one module with a :class:`~maie.pipeline.diarization.base.DiarizationBackend`
and a ``SPEC``, plus one line in :data:`REGISTRY`. The registry is the shared one
(:class:`maie.pipeline.registry.Registry`: availability cached for :data:`AVAILABILITY_TTL_S`
seconds per settings, as for ASR) with what only diarization has: :meth:`DiarizerRegistry.run`
walks ``[requested, *MAIE_DIARIZATION_FALLBACK]`` until a backend loads, and records the fallback.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec
import structlog

from maie.errors import ModelLoadError
from maie.pipeline.diarization import channels, embedded, pyannote_backend
from maie.pipeline.diarization.base import DiarizerSpec
from maie.pipeline.registry import AVAILABILITY_TTL_S, Registry

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from maie.config import Settings
    from maie.pipeline.diarization.base import DiarizationBackend, DiarizationInput
    from maie.schemas import DiarizationArtifact, ModelInfo

__all__ = ["AVAILABILITY_TTL_S", "REGISTRY", "DiarizerRegistry", "describe", "ensure_available"]

log = structlog.get_logger(__name__)


class DiarizerRegistry(Registry[DiarizerSpec]):
    """Diarization backends by id, with cached availability checks and the fallback walk."""

    kind: ClassVar[str] = "diarization"

    def create(self, backend_id: str, settings: Settings) -> DiarizationBackend[Any]:
        """Build an unloaded backend (no I/O).

        Raises:
            BackendUnavailableError: if ``backend_id`` is unknown.
        """
        return self.get_spec(backend_id).factory(settings)

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
