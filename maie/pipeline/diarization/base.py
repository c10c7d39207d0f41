"""What every diarization backend is: a stage from the preprocessed WAV to speaker turns.

A backend module defines one :class:`DiarizationBackend` subclass, its frozen options and a
:class:`DiarizerSpec` that the registry lists. Heavy libraries are imported in ``load()``, never
at module level, so describing backends costs nothing.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar

import msgspec

from maie.errors import UnprocessableError
from maie.pipeline.stage import Stage
from maie.schemas import DiarizationArtifact

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable

    from maie.config import Settings

__all__ = [
    "MAX_SPEAKERS",
    "DiarizationBackend",
    "DiarizationInput",
    "DiarizerAvailability",
    "DiarizerSpec",
    "SpeakerCount",
]

#: Most speakers a request may ask for (num, min or max).
MAX_SPEAKERS = 32

OptionsT = TypeVar("OptionsT")

SpeakerNumber = Annotated[int, msgspec.Meta(ge=1, le=MAX_SPEAKERS)]


class SpeakerCount(msgspec.Struct, frozen=True, kw_only=True):
    """How many speakers a request expects: exactly ``num_speakers``, or between min and max.

    All unset means the backend decides. Build it with :meth:`checked` to get a 422 that says
    what to change instead of a silent contradiction.
    """

    num_speakers: SpeakerNumber | None = None
    min_speakers: SpeakerNumber | None = None
    max_speakers: SpeakerNumber | None = None

    @classmethod
    def checked(
        cls, num_speakers: int | None = None, min_speakers: int | None = None, max_speakers: int | None = None
    ) -> SpeakerCount:
        """Validate the three counts together.

        Raises:
            UnprocessableError: a count outside 1-32, min above max, or num outside [min, max].
        """
        for name, value in (
            ("num_speakers", num_speakers),
            ("min_speakers", min_speakers),
            ("max_speakers", max_speakers),
        ):
            if value is not None and not 1 <= value <= MAX_SPEAKERS:
                raise UnprocessableError(
                    f"{name}={value} is out of range: give a number from 1 to {MAX_SPEAKERS}"
                )
        if min_speakers is not None and max_speakers is not None and min_speakers > max_speakers:
            raise UnprocessableError(
                f"min_speakers={min_speakers} is above max_speakers={max_speakers}: "
                "lower min_speakers or raise max_speakers"
            )
        if num_speakers is not None:
            low, high = min_speakers or 1, max_speakers or MAX_SPEAKERS
            if not low <= num_speakers <= high:
                raise UnprocessableError(
                    f"num_speakers={num_speakers} contradicts min_speakers={min_speakers} / max_speakers="
                    f"{max_speakers}: give num_speakers alone, or a range that contains it"
                )
        return cls(num_speakers=num_speakers, min_speakers=min_speakers, max_speakers=max_speakers)

    def bounds(self, default_max: int = MAX_SPEAKERS) -> tuple[int, int]:
        """The inclusive range of counts to consider: ``(n, n)`` when ``num_speakers`` is set."""
        if self.num_speakers is not None:
            return self.num_speakers, self.num_speakers
        low = self.min_speakers or 1
        return low, max(low, self.max_speakers or default_max)

    def as_params(self) -> dict[str, int | None]:
        """The counts as recorded in the diarization version."""
        return {
            "num_speakers": self.num_speakers,
            "min_speakers": self.min_speakers,
            "max_speakers": self.max_speakers,
        }


class DiarizationInput(msgspec.Struct, frozen=True, kw_only=True):
    """What the diarization stage gets."""

    #: The 16 kHz mono WAV written by the preprocess stage.
    wav_path: Path
    #: The upload as received (or a multichannel decode of it): only ``channels`` reads it.
    source_path: Path | None = None
    #: Speaker counts asked by the request.
    speakers: SpeakerCount = msgspec.field(default_factory=SpeakerCount)


class DiarizationBackend(Stage[OptionsT, DiarizationInput, DiarizationArtifact]):
    """A diarization stage. Subclasses set :attr:`backend_id` and implement the abstract methods."""

    #: Registry id, e.g. ``"embedded"``.
    backend_id: ClassVar[str]

    @abstractmethod
    def cache_key(self) -> Hashable:
        """Identify the model this backend loads, so a worker can keep one resident and reuse it."""

    @property
    @abstractmethod
    def loaded(self) -> bool:
        """Whether ``load()`` has run and ``unload()`` has not."""


class DiarizerAvailability(msgspec.Struct, frozen=True, kw_only=True):
    """What a backend's availability check found for the current settings."""

    #: The model the backend would load (a name or a path).
    variant: str
    #: The device it would run on.
    device: str = "cpu"
    #: How it computes (``float32``, ``native``...), shown by ``/v1/models``.
    compute_type: str = "float32"
    #: Why it cannot run here; ``None`` when it can. Says what to do (the command to install).
    reason: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class DiarizerSpec:
    """A registered backend: metadata for ``/v1/models`` plus how to build and check it."""

    #: Id used in requests and config (``MAIE_DIARIZATION_BACKEND``).
    backend_id: str
    #: Human-readable name.
    name: str
    #: One sentence for ``/v1/models``.
    description: str
    #: Among ``speaker_count`` (honours num/min/max), ``overlap`` (overlapping turns),
    #: ``multichannel_input`` (needs the original multichannel file), ``auto_speaker_count``.
    capabilities: tuple[str, ...]
    #: Devices it runs on.
    hardware: tuple[str, ...]
    #: Build an unloaded backend from settings; must do no I/O.
    factory: Callable[[Settings], DiarizationBackend[Any]]
    #: Check whether the backend can run with these settings.
    probe: Callable[[Settings], DiarizerAvailability]
