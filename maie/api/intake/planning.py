"""Stage planning: the stages a task runs, decided once from the features it asks for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from maie.schemas import Feature, StageName, StageRecord

if TYPE_CHECKING:
    from collections.abc import Collection

__all__ = ["planned_stages"]

#: Features that need the enhance stage (the clean transcript and what is measured of it).
ENHANCE_FEATURES = frozenset({Feature.CLEAN_TRANSCRIPT, Feature.ENHANCEMENT_METRICS})


def planned_stages(
    features: Collection[Feature], *, fetch: bool = False, diarize: bool = False
) -> list[StageRecord]:
    """The stages a task asking for ``features`` runs, all pending, in the order they run.

    Preprocessing and ASR always run, after the fetch stage for a recording given by URL
    (``fetch``); with ``diarize``, the diarization stage runs beside ASR. The worker sends a task
    from each stage to the next step planned here (:func:`maie.actor_table.next_step`), and to
    finalize after the last.
    """
    stages = [StageRecord(name=StageName.PREPROCESS), StageRecord(name=StageName.TRANSCRIBE)]
    if fetch:
        stages.insert(0, StageRecord(name=StageName.FETCH))
    if diarize:
        stages.append(StageRecord(name=StageName.DIARIZE))
    if ENHANCE_FEATURES & set(features):
        stages.append(StageRecord(name=StageName.ENHANCE))
    if Feature.SUMMARY in features:
        stages.append(StageRecord(name=StageName.SUMMARIZE))
    return stages
