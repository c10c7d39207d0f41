"""What the diarization stage produces: who spoke when, which model said so, speaker statistics."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from maie.schemas.base import Frozen, Seconds

__all__ = [
    "DiarizationArtifact",
    "DiarizationVersion",
    "SpeakerInfo",
    "SpeakerTurn",
]

#: A speaker label as results carry it: ``SPEAKER_00``, ``SPEAKER_01``, ...
SpeakerLabel = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class SpeakerTurn(Frozen, frozen=True, kw_only=True):
    """One stretch of one speaker's speech. Turns of different speakers may overlap."""

    start: Seconds
    end: Seconds
    speaker: SpeakerLabel


class SpeakerInfo(Frozen, frozen=True, kw_only=True):
    """One speaker of a result, with how much they said."""

    #: The stable label, ``SPEAKER_00`` for the first to speak.
    id: SpeakerLabel
    #: A name given by a rename; ``None`` until then.
    name: str | None = None
    #: Seconds of speech attributed to the speaker (overlapping speech counts for each).
    speaking_time_s: Seconds
    #: Transcript segments attributed to the speaker (0 when counted from turns alone).
    segment_count: Annotated[int, msgspec.Meta(ge=0)] = 0


class DiarizationVersion(Frozen, frozen=True, kw_only=True):
    """Which backend, model and parameters produced the turns."""

    #: Registry id: ``embedded``, ``pyannote`` or ``channels``.
    backend: str
    #: Model name (``resemblyzer-ge2e``, a pyannote pipeline id or folder, ``none``).
    model: str
    #: Where the weights were read from; empty when there are none.
    model_path: str = ""
    #: sha256 of the weights; empty when there are none.
    checkpoint_hash: str = ""
    #: Device it ran on.
    device: str = "cpu"
    #: Every parameter that shaped the output, including the speaker counts asked for.
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    #: Backend that was asked for when this one ran as its fallback.
    fallback_from: str | None = None


class DiarizationArtifact(Frozen, frozen=True, kw_only=True):
    """Output of the diarization stage."""

    #: Turns in time order, labels ``SPEAKER_00``... in order of first appearance.
    turns: list[SpeakerTurn]
    #: Speakers found (0 for a recording without speech).
    num_speakers: Annotated[int, msgspec.Meta(ge=0)]
    #: Duration of the audio diarized, in seconds.
    duration_s: Seconds
    #: Wall-clock seconds the stage took (after loading).
    processing_time_s: Seconds
    version: DiarizationVersion
    #: Best-effort notes for the result, e.g. fewer speakers found than asked for.
    warnings: list[str] = msgspec.field(default_factory=list)
