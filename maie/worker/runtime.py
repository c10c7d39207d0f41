"""What the actors call: each stage run once per task, idempotently, against the store.

A message can be delivered twice (a worker killed before it acknowledged, a retry after a timeout),
so each method first looks for the artifact its stage stores and, if it is there, returns it
without doing the work again.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import structlog

from maie import __version__
from maie.errors import PermanentError
from maie.hardware import cuda_available
from maie.metrics import MetricsRecorder
from maie.pipeline.llm import (
    EnhanceInput,
    EnhanceOptions,
    Enhancer,
    SummarizeInput,
    SummarizeOptions,
    Summarizer,
    create_llm_backend,
)
from maie.pipeline.llm.enhance import skipped
from maie.pipeline.preprocess import PreprocessInput, PreprocessOptions, convert
from maie.pipeline.prompts import TemplateCatalog, default_templates_dir
from maie.pipeline.sandbox import DecodeSandbox, SandboxLimits
from maie.schemas import (
    AsrArtifact,
    EnhanceArtifact,
    Feature,
    Metrics,
    PreprocessArtifact,
    Results,
    ResultVersion,
    StageName,
    SummaryArtifact,
    Versions,
)
from maie.worker.asr_claims import AsrClaims
from maie.worker.residency import ModelCache
from maie.worker.summary_jobs import SummaryJobs
from maie.worker.tracker import StageTracker
from maie.worker.transcription import Transcriber
from maie.worker.webhooks import WebhookNotifier

if TYPE_CHECKING:
    from collections.abc import Callable

    from maie.config import Settings
    from maie.pipeline.llm import LlmBackend
    from maie.pipeline.llm.backends import Task
    from maie.schemas import TaskRecord
    from maie.store import TaskStore

__all__ = ["WorkerRuntime"]

log = structlog.get_logger(__name__)

#: Name of the normalised audio in a task folder.
WAV_NAME = "preprocessed.wav"

T = TypeVar("T")


class WorkerRuntime:
    """Settings, store, stage tracker and model cache of one worker process."""

    def __init__(self, settings: Settings, store: TaskStore) -> None:
        self.settings = settings
        self.store = store
        #: The cluster-wide series this worker adds to (in Redis, next to the task store).
        self.metrics = MetricsRecorder(store.client)
        self.tracker = StageTracker(store, keep_audio=settings.storage.keep_audio, metrics=self.metrics)
        residency = settings.worker.model_residency or ("sequential" if cuda_available() else "resident")
        log.info("worker.residency", mode=residency)
        self.models = ModelCache(residency, max_models=settings.worker.resident_max_models)
        #: Where uploads are decoded: a child process with MAIE_DECODE_* limits, so a poison file
        #: fails its own task and never the worker.
        self.sandbox = DecodeSandbox(
            SandboxLimits.from_settings(settings.audio), log=settings.log, process="worker"
        )
        claims = AsrClaims(
            store.client,
            lease_s=settings.worker.worker_heartbeat_timeout_s,
            ttl_s=settings.storage.result_ttl_s,
        )
        self.transcriber = Transcriber(settings, store, self.models, claims)
        self.webhooks = WebhookNotifier(settings, store)
        self.templates = TemplateCatalog(settings.storage.templates_dir or default_templates_dir())
        self.summary_jobs = SummaryJobs(store, self.templates, self._summarize, metrics=self.metrics)

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
        job = PreprocessInput(source=source, target=source.parent / WAV_NAME)
        artifact = self.sandbox.run(functools.partial(convert, options, job))
        self.store.put_artifact(record.task_id, StageName.PREPROCESS, artifact)
        self.transcriber.mark_ready(record)
        return artifact

    def transcribe(self, record: TaskRecord) -> AsrArtifact:
        """Run ASR on the normalised audio (once): leases, batching and fallbacks in the transcriber."""
        return self.transcriber.run(record)

    def enhance(self, record: TaskRecord) -> EnhanceArtifact:
        """Clean the transcript with the LLM (once), or skip when the ASR model punctuates itself."""
        existing = self.store.get_artifact(record.task_id, StageName.ENHANCE, EnhanceArtifact)
        if existing is not None:
            log.info("stage.reused_artifact")
            return existing
        asr = self._asr(record)
        data = EnhanceInput(segments=asr.segments, language=asr.language)
        if asr.version.native_punctuation:
            reason = f"ASR model {asr.version.model_variant!r} writes punctuation and casing itself"
            artifact = skipped(data, reason)
            self.tracker.skip(record.task_id, StageName.ENHANCE)
        else:
            options = EnhanceOptions.from_settings(self.settings.llm)
            # The summary stage comes next and likely uses the same model: keep a resident one awake.
            summary_next = StageName.SUMMARIZE in {s.name for s in record.stages}
            artifact = self._with_llm(
                "enhancement", lambda llm: Enhancer(options, llm).process(data), pause=not summary_next
            )
        self.store.put_artifact(record.task_id, StageName.ENHANCE, artifact)
        return artifact

    def summarize(self, record: TaskRecord) -> SummaryArtifact:
        """Fill the task's template from the transcript (clean where enhancement ran), once."""
        existing = self.store.get_artifact(record.task_id, StageName.SUMMARIZE, SummaryArtifact)
        if existing is not None:
            log.info("stage.reused_artifact")
            return existing
        template_id = record.request.template_id
        if template_id is None:
            raise PermanentError("the summary stage needs a template_id; submit the task again with one")
        template = self.templates.get(template_id)
        asr = self._asr(record)
        enhanced = None
        if StageName.ENHANCE in {s.name for s in record.stages}:
            enhanced = self.store.get_artifact(record.task_id, StageName.ENHANCE, EnhanceArtifact)
        data = SummarizeInput(
            segments=enhanced.segments if enhanced else asr.segments, template=template, language=asr.language
        )
        artifact = self._summarize(data)
        self.store.put_artifact(record.task_id, StageName.SUMMARIZE, artifact)
        return artifact

    def _summarize(self, data: SummarizeInput) -> SummaryArtifact:
        options = SummarizeOptions.from_settings(self.settings.llm)
        return self._with_llm("summary", lambda llm: Summarizer(options, llm).process(data))

    def _asr(self, record: TaskRecord) -> AsrArtifact:
        asr = self.store.get_artifact(record.task_id, StageName.TRANSCRIBE, AsrArtifact)
        if asr is None:
            raise PermanentError("the transcript is missing; submit the recording again")
        return asr

    def _with_llm(self, task: Task, work: Callable[[LlmBackend], T], *, pause: bool = True) -> T:
        """Run ``work`` on the task's LLM through the model cache.

        Sequential residency unloads the model after ``work``; resident residency keeps it and,
        with ``pause``, lets it give the GPU back until the next request (vLLM sleep).
        """
        resident = self.models.mode == "resident"
        backend = create_llm_backend(self.settings, task, resident=resident)
        with self.models.use(backend) as llm:
            try:
                return work(llm)
            finally:
                if resident and pause:
                    llm.pause()

    def finalize(self, record: TaskRecord) -> None:
        """Assemble result version 1 from the stage artifacts and complete the task."""
        audio = self.store.get_artifact(record.task_id, StageName.PREPROCESS, PreprocessArtifact)
        asr = self.store.get_artifact(record.task_id, StageName.TRANSCRIBE, AsrArtifact)
        if audio is None or asr is None:
            raise PermanentError("a stage result is missing; submit the recording again")
        planned = {s.name for s in record.stages}
        enhanced = summary = None
        if StageName.ENHANCE in planned:
            enhanced = self.store.get_artifact(record.task_id, StageName.ENHANCE, EnhanceArtifact)
        if StageName.SUMMARIZE in planned:
            summary = self.store.get_artifact(record.task_id, StageName.SUMMARIZE, SummaryArtifact)
        if (StageName.ENHANCE in planned and enhanced is None) or (
            StageName.SUMMARIZE in planned and summary is None
        ):
            raise PermanentError("an LLM stage result is missing; submit the recording again")
        features = set(record.request.features)
        processing = sum(s.duration_s or 0.0 for s in record.stages)
        result = ResultVersion(
            version=1,
            created_at=datetime.now(UTC),
            kind="pipeline",
            template_id=record.request.template_id,
            results=Results(
                raw_transcript=asr.text if Feature.RAW_TRANSCRIPT in features else None,
                clean_transcript=enhanced.text if enhanced and Feature.CLEAN_TRANSCRIPT in features else None,
                summary=summary.summary if summary and Feature.SUMMARY in features else None,
                enhancement_metrics=(
                    enhanced.metrics if enhanced and Feature.ENHANCEMENT_METRICS in features else None
                ),
                language=asr.language,
                segments=asr.segments,
            ),
            versions=Versions(
                pipeline_version=__version__,
                asr_backend=asr.version,
                enhancement_llm=enhanced.version if enhanced else None,
                summarization_llm=summary.version if summary else None,
                template=summary.template if summary else None,
            ),
            metrics=Metrics(
                input_duration_seconds=round(audio.duration_s, 3),
                processing_time_seconds=round(processing, 3),
                rtf=round(processing / audio.duration_s, 4) if audio.duration_s else 0.0,
                vad_coverage=asr.vad_coverage,
                asr_confidence_avg=asr.confidence_avg,
                edit_rate_cleaning=enhanced.metrics.edit_rate if enhanced else None,
            ),
        )
        if not self.store.put_result(record.task_id, result):
            log.info("result.already_stored", version=result.version)
        self.tracker.complete(
            record.task_id, result.version, rtf=result.metrics.rtf if result.metrics else None
        )

    def close(self) -> None:
        """Unload resident models and close the store."""
        self.models.clear()
        self.transcriber.claims.close()
        self.webhooks.close()
        self.store.close()
