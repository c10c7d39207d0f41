"""What the actors call: each stage run once per task, idempotently, against the store.

A message can be delivered twice (a worker killed before it acknowledged, a retry after a timeout),
so each method first looks for the artifact its stage stores and, if it is there, returns it
without doing the work again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from maie import __version__
from maie.errors import PermanentError
from maie.hardware import cuda_available
from maie.pipeline.preprocess import PreprocessInput, PreprocessOptions, Preprocessor
from maie.schemas import (
    AsrArtifact,
    Feature,
    Metrics,
    PreprocessArtifact,
    Results,
    ResultVersion,
    StageName,
    Versions,
)
from maie.worker.asr_claims import AsrClaims
from maie.worker.residency import ModelCache
from maie.worker.tracker import StageTracker
from maie.worker.transcription import Transcriber

if TYPE_CHECKING:
    from maie.config import Settings
    from maie.schemas import TaskRecord
    from maie.store import TaskStore

__all__ = ["WorkerRuntime"]

log = structlog.get_logger(__name__)

#: Name of the normalised audio in a task folder.
WAV_NAME = "preprocessed.wav"


class WorkerRuntime:
    """Settings, store, stage tracker and model cache of one worker process."""

    def __init__(self, settings: Settings, store: TaskStore) -> None:
        self.settings = settings
        self.store = store
        self.tracker = StageTracker(store, keep_audio=settings.storage.keep_audio)
        residency = settings.worker.model_residency or ("sequential" if cuda_available() else "resident")
        log.info("worker.residency", mode=residency)
        self.models = ModelCache(residency, max_models=settings.worker.resident_max_models)
        claims = AsrClaims(
            store.client,
            lease_s=settings.worker.worker_heartbeat_timeout_s,
            ttl_s=settings.storage.result_ttl_s,
        )
        self.transcriber = Transcriber(settings, store, self.models, claims)

    def preprocess(self, record: TaskRecord) -> PreprocessArtifact:
        """Decode the upload to 16 kHz mono WAV (once)."""
        existing = self.store.get_artifact(record.task_id, StageName.PREPROCESS, PreprocessArtifact)
        if existing is not None and Path(existing.wav_path).is_file():
            log.info("stage.reused_artifact")
            self.transcriber.mark_ready(record)
            return existing
        source = Path(record.audio_path)
        if not source.is_file():
            raise PermanentError("the uploaded file is gone from the data folder; submit the recording again")
        options = PreprocessOptions.from_settings(self.settings.audio)
        with Preprocessor(options) as stage:
            artifact = stage.process(PreprocessInput(source=source, target=source.parent / WAV_NAME))
        self.store.put_artifact(record.task_id, StageName.PREPROCESS, artifact)
        self.transcriber.mark_ready(record)
        return artifact

    def transcribe(self, record: TaskRecord) -> AsrArtifact:
        """Run ASR on the normalised audio (once): leases, batching and fallbacks in the transcriber."""
        return self.transcriber.run(record)

    def finalize(self, record: TaskRecord) -> None:
        """Assemble result version 1 from the stage artifacts and complete the task."""
        audio = self.store.get_artifact(record.task_id, StageName.PREPROCESS, PreprocessArtifact)
        asr = self.store.get_artifact(record.task_id, StageName.TRANSCRIBE, AsrArtifact)
        if audio is None or asr is None:
            raise PermanentError("a stage result is missing; submit the recording again")
        features = set(record.request.features)
        processing = sum(s.duration_s or 0.0 for s in record.stages)
        result = ResultVersion(
            version=1,
            created_at=datetime.now(UTC),
            kind="pipeline",
            template_id=record.request.template_id,
            results=Results(
                raw_transcript=asr.text if Feature.RAW_TRANSCRIPT in features else None,
                language=asr.language,
                segments=asr.segments,
            ),
            versions=Versions(pipeline_version=__version__, asr_backend=asr.version),
            metrics=Metrics(
                input_duration_seconds=round(audio.duration_s, 3),
                processing_time_seconds=round(processing, 3),
                rtf=round(processing / audio.duration_s, 4) if audio.duration_s else 0.0,
                vad_coverage=asr.vad_coverage,
                asr_confidence_avg=asr.confidence_avg,
            ),
        )
        if not self.store.put_result(record.task_id, result):
            log.info("result.already_stored", version=result.version)
        self.tracker.complete(record.task_id, result.version)

    def close(self) -> None:
        """Unload resident models and close the store."""
        self.models.clear()
        self.store.close()
