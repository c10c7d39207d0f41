"""What the ASR and diarization registries share: backends by id, with cached availability checks.

A backend is registered by its spec: an id, a name and a description for ``/v1/models``, its
capabilities, a factory that builds it unloaded (no I/O) and a probe that says whether it can run
with given settings. Probes touch the disk (and maybe the network), so their answers are cached for
``ttl_s`` seconds per (backend, settings). The ASR registry adds model variants and languages
(:mod:`maie.pipeline.asr.registry`); the diarization one adds its fallback walk
(:mod:`maie.pipeline.diarization.registry`).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, ClassVar, Generic, Protocol, TypeVar

import structlog

from maie.errors import BackendUnavailableError
from maie.pipeline.model_names import public_location
from maie.schemas import ModelInfo

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from maie.config import Settings

__all__ = ["AVAILABILITY_TTL_S", "Found", "Registry", "Spec"]

#: Seconds an availability answer is reused: short enough to notice fetched weights within a
#: minute, long enough that polling ``/v1/models`` does not probe the hub on every request.
AVAILABILITY_TTL_S = 60.0

log = structlog.get_logger(__name__)

BackendT_co = TypeVar("BackendT_co", covariant=True)
FoundT_co = TypeVar("FoundT_co", bound="Found", covariant=True)


class Found(Protocol):
    """What an availability check found (each stage's ``Availability`` struct has these)."""

    @property
    def variant(self) -> str:
        """The model the backend would load (a name or a path)."""

    @property
    def device(self) -> str:
        """The device it would run on."""

    @property
    def compute_type(self) -> str:
        """How it would compute."""

    @property
    def reason(self) -> str | None:
        """Why it cannot run here (says what to do); None when it can."""


class Spec(Protocol[BackendT_co, FoundT_co]):
    """A registered backend (each stage's spec dataclass has these)."""

    @property
    def backend_id(self) -> str:
        """Id used in requests and config."""

    @property
    def name(self) -> str:
        """Human-readable name."""

    @property
    def description(self) -> str:
        """One sentence for ``/v1/models``."""

    @property
    def capabilities(self) -> tuple[str, ...]:
        """What it can do."""

    @property
    def factory(self) -> Callable[[Settings], BackendT_co]:
        """Build an unloaded backend from settings; no I/O."""

    @property
    def probe(self) -> Callable[[Settings], FoundT_co]:
        """Check whether it can run with these settings."""


SpecT = TypeVar("SpecT", bound="Spec[object, Found]")


class Registry(Generic[SpecT]):
    """Backends by id, with cached availability checks. Thread-safe.

    Subclasses name their stage (:attr:`kind`) and may add to what ``/v1/models`` shows of a
    backend (:meth:`_model_info`).
    """

    #: The stage, as messages name it ("ASR", "diarization").
    kind: ClassVar[str]

    def __init__(
        self,
        specs: Iterable[SpecT] = (),
        *,
        ttl_s: float = AVAILABILITY_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._specs: dict[str, SpecT] = {}
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[tuple[str, Settings], tuple[float, ModelInfo]] = {}
        self._lock = threading.Lock()
        for spec in specs:
            self.register(spec)

    def register(self, spec: SpecT) -> None:
        """Add a backend.

        Raises:
            ValueError: if its id is already registered.
        """
        if spec.backend_id in self._specs:
            msg = f"{self.kind} backend {spec.backend_id!r} is already registered"
            raise ValueError(msg)
        self._specs[spec.backend_id] = spec

    def ids(self) -> list[str]:
        """Registered backend ids, in registration order."""
        return list(self._specs)

    def get_spec(self, backend_id: str) -> SpecT:
        """The spec of ``backend_id``.

        Raises:
            BackendUnavailableError: if no backend has that id; the message lists the known ones.
        """
        try:
            return self._specs[backend_id]
        except KeyError:
            known = ", ".join(self._specs) or "none"
            raise BackendUnavailableError(
                f"unknown {self.kind} backend {backend_id!r}; known backends: {known}",
                extra={"known_backends": list(self._specs)},
            ) from None

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
        started = time.perf_counter()
        found = spec.probe(settings)
        log.debug(
            "backend.availability_checked",
            stage=self.kind,
            backend=backend_id,
            available=found.reason is None,
            reason=found.reason,
            check_s=round(time.perf_counter() - started, 3),
        )
        info = self._model_info(spec, found)
        with self._lock:
            self._cache[key] = (now, info)
        return info

    def describe(self, settings: Settings, *, refresh: bool = False) -> list[ModelInfo]:
        """Every registered backend as ``/v1/models`` shows it."""
        return [self.info(backend_id, settings, refresh=refresh) for backend_id in self._specs]

    def ensure_available(self, backend_id: str, settings: Settings) -> ModelInfo:
        """The backend's info if it can run here.

        Raises:
            BackendUnavailableError: if it is unknown or unavailable, with the reason (what to do).
        """
        info = self.info(backend_id, settings)
        if not info.available:
            raise BackendUnavailableError(
                f"{self.kind} backend {backend_id!r} is not available: {info.unavailable_reason}",
                extra={"backend_id": backend_id},
            )
        return info

    def _model_info(self, spec: SpecT, found: Found) -> ModelInfo:
        """What ``/v1/models`` shows of ``spec`` given what its probe found."""
        return ModelInfo(
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
