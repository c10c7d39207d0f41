"""The diarize stage on a worker, and the speakers the stages after it see.

The stage runs beside transcribe (:data:`maie.actor_table.BESIDE`) on the preprocessed WAV (and,
for ``channels``, the upload as received), through the backend registry's fallback chain, and
stores a :class:`~maie.schemas.DiarizationArtifact` once; a redelivered message finds it and
does nothing again. The stages after the join (enhance, summarize, finalize) take the ASR
segments with speakers assigned from it (:meth:`Diarizer.transcript`), all the same way.

Models are held by the worker's model cache under the residency rules. A backend that runs on
the CPU only (``embedded``, ``channels``) has a cache of its own: the main cache runs one model
stage at a time because a GPU is shared, and a CPU diarizer shares no GPU, so it runs while ASR
holds the main one. ``pyannote``, which may use the GPU, goes through the main cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from maie.errors import PermanentError
from maie.pipeline.diarization import REGISTRY, DiarizationInput, SpeakerCount, assign_speakers
from maie.schemas import DiarizationArtifact, PreprocessArtifact, StageName

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from maie.config import Settings
    from maie.pipeline.diarization import DiarizationBackend, DiarizerRegistry
    from maie.schemas import AsrArtifact, TaskRecord
    from maie.store import TaskStore
    from maie.worker.residency import ModelCache

__all__ = ["Diarizer"]

log = structlog.get_logger(__name__)


class Diarizer:
    """Runs the diarize stage for tasks and hands its speakers to the later stages."""

    def __init__(
        self,
        settings: Settings,
        store: TaskStore,
        models: ModelCache,
        cpu_models: ModelCache,
        *,
        registry: DiarizerRegistry = REGISTRY,
    ) -> None:
        self.settings = settings
        self.store = store
        #: The worker's cache of model stages (one at a time: they may share a GPU).
        self.models = models
        #: The cache of diarizers that run on the CPU only.
        self.cpu_models = cpu_models
        self.registry = registry

    def run(self, record: TaskRecord) -> DiarizationArtifact:
        """Who spoke when in the task's audio: stored already, or found now and stored.

        Raises:
            PermanentError: if the preprocessed audio is missing; ``mono_input`` for ``channels``
                on a mono recording.
            ModelLoadError: if no backend of the chain can be loaded.
        """
        task_id = record.task_id
        existing = self.store.get_artifact(task_id, StageName.DIARIZE, DiarizationArtifact)
        if existing is not None:
            log.info("stage.reused_artifact")
            return existing
        audio = self.store.get_artifact(task_id, StageName.PREPROCESS, PreprocessArtifact)
        if audio is None or not Path(audio.wav_path).is_file():
            raise PermanentError("the preprocessed audio is gone; submit the recording again")
        request = record.request
        backend = request.diarization_backend or self.settings.diarization.backend
        data = DiarizationInput(
            wav_path=Path(audio.wav_path),
            # The upload as received: only ``channels`` reads it (the WAV is mixed down to mono).
            source_path=Path(record.audio_path),
            speakers=SpeakerCount.checked(request.num_speakers, request.min_speakers, request.max_speakers),
        )
        artifact = self.registry.run(backend, self.settings, data, use=self._use)
        self.store.put_artifact(task_id, StageName.DIARIZE, artifact)
        log.info(
            "diarization.stored",
            backend=artifact.version.backend,
            speakers=artifact.num_speakers,
            turns=len(artifact.turns),
            warnings=len(artifact.warnings),
        )
        return artifact

    def artifact(self, record: TaskRecord) -> DiarizationArtifact | None:
        """The task's diarization, or None when it does not ask for one.

        Raises:
            PermanentError: if the task was diarized and the result is gone.
        """
        if StageName.DIARIZE not in {s.name for s in record.stages}:
            return None
        found = self.store.get_artifact(record.task_id, StageName.DIARIZE, DiarizationArtifact)
        if found is None:
            raise PermanentError("the diarization result is missing; submit the recording again")
        return found

    def transcript(self, record: TaskRecord, asr: AsrArtifact) -> AsrArtifact:
        """``asr`` with a speaker on each segment and word (split where one changes), when diarized."""
        found = self.artifact(record)
        if found is None:
            return asr
        return msgspec.structs.replace(asr, segments=assign_speakers(asr.segments, found.turns).segments)

    def _use(self, backend: DiarizationBackend[Any]) -> AbstractContextManager[DiarizationBackend[Any]]:
        """Hold ``backend`` loaded for one call, in the cache its hardware calls for."""
        cpu_only = set(self.registry.get_spec(backend.backend_id).hardware) == {"cpu"}
        return (self.cpu_models if cpu_only else self.models).use(backend)
