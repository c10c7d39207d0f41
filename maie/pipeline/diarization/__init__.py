"""Speaker diarization: who spoke when, and which transcript segment is whose.

Typical use (the worker holds backends through its residency cache instead)::

    from maie.pipeline.diarization import REGISTRY, DiarizationInput, SpeakerCount, assign_speakers

    data = DiarizationInput(wav_path=wav, speakers=SpeakerCount.checked(num_speakers=2))
    artifact = REGISTRY.run("embedded", settings, data)
    assignment = assign_speakers(asr.segments, artifact.turns)

Backends import their heavy pieces in ``load()``, so importing this package stays cheap.
"""

from __future__ import annotations

from maie.pipeline.diarization.base import (
    MAX_SPEAKERS,
    DiarizationBackend,
    DiarizationInput,
    DiarizerAvailability,
    DiarizerSpec,
    SpeakerCount,
)
from maie.pipeline.diarization.channels import MonoInputError
from maie.pipeline.diarization.registry import REGISTRY, DiarizerRegistry, describe, ensure_available
from maie.pipeline.diarization.rttm import RttmError, read_rttm, write_rttm
from maie.pipeline.diarization.speakers import SpeakerAssignment, assign_speakers, relabel, speaker_stats

__all__ = [
    "MAX_SPEAKERS",
    "REGISTRY",
    "DiarizationBackend",
    "DiarizationInput",
    "DiarizerAvailability",
    "DiarizerRegistry",
    "DiarizerSpec",
    "MonoInputError",
    "RttmError",
    "SpeakerAssignment",
    "SpeakerCount",
    "assign_speakers",
    "describe",
    "ensure_available",
    "read_rttm",
    "relabel",
    "speaker_stats",
    "write_rttm",
]
