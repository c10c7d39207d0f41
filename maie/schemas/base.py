"""Building blocks of the contract: base Structs, constrained numbers and the enums."""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

__all__ = [
    "Base",
    "Feature",
    "Frozen",
    "Seconds",
    "StageName",
    "StageState",
    "TaskStatus",
    "Unit",
]


#: Seconds, never negative.
Seconds = Annotated[float, msgspec.Meta(ge=0)]


#: A probability or a ratio in [0, 1].
Unit = Annotated[float, msgspec.Meta(ge=0, le=1)]


class Base(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of mutable contract Structs (records the worker updates): defaults left out of the encoding.

    msgspec applies ``kw_only`` to the fields a class defines itself, so each subclass repeats it.
    """


class Frozen(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Base of immutable contract Structs: API answers, artifacts, result versions."""


class TaskStatus(enum.StrEnum):
    """Where a task is. It only ever moves forward, in declaration order."""

    PENDING = "PENDING"
    PREPROCESSING = "PREPROCESSING"
    PROCESSING_ASR = "PROCESSING_ASR"
    PROCESSING_LLM = "PROCESSING_LLM"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"

    @property
    def terminal(self) -> bool:
        """Whether the task will change no more."""
        return self in (TaskStatus.COMPLETE, TaskStatus.FAILED)

    @property
    def rank(self) -> int:
        """Position in the forward-only order (COMPLETE and FAILED share the last rank)."""
        return min(list(TaskStatus).index(self), 4)


class Feature(enum.StrEnum):
    """What a client can ask a task to produce."""

    RAW_TRANSCRIPT = "raw_transcript"
    CLEAN_TRANSCRIPT = "clean_transcript"
    SUMMARY = "summary"
    ENHANCEMENT_METRICS = "enhancement_metrics"


class StageName(enum.StrEnum):
    """Pipeline stages, one actor each, in pipeline order."""

    #: Only for a recording given by ``url``: download it into the task folder.
    FETCH = "fetch"
    PREPROCESS = "preprocess"
    TRANSCRIBE = "transcribe"
    #: Only with ``diarize``: who spoke when, beside the transcribe stage (on the CPU queue).
    DIARIZE = "diarize"
    ENHANCE = "enhance"
    SUMMARIZE = "summarize"


class StageState(enum.StrEnum):
    """Status of one stage of one task."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
