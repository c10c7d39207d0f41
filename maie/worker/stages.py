"""The pipeline stages on a worker: each run once per task, idempotently, against the store.

A message can be delivered twice (a worker killed before it acknowledged, a retry after a timeout),
so each method first looks for the artifact its stage stores and, if it is there, returns it
without doing the work again. ASR (leases, batching, fallbacks) is :mod:`maie.worker.transcription`;
diarization, and the speakers every later stage sees, :mod:`maie.worker.diarization`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import structlog

from maie.actor_table import BESIDE
from maie.errors import NotFoundError, PermanentError
from maie.pipeline.fetch import Fetcher, FetchInput, FetchOptions
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
from maie.pipeline.recording import keep_recording
from maie.pipeline.result_builder import first_version, partial_version
from maie.schemas import (
    AsrArtifact,
    DiarizationArtifact,
    EnhanceArtifact,
    FetchArtifact,
    PreprocessArtifact,
    StageName,
    SummaryArtifact,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from maie.config import Settings
    from maie.pipeline.llm import LlmBackend
    from maie.pipeline.llm.backends import Task
    from maie.pipeline.prompts import TemplateCatalog
    from maie.pipeline.sandbox import DecodeSandbox
    from maie.schemas import StageRecord, TaskRecord
    from maie.store import TaskStore
    from maie.worker.diarization import Diarizer
    from maie.worker.residency import ModelCache
    from maie.worker.tracker import StageTracker
    from maie.worker.transcription import Transcriber

__all__ = ["WAV_NAME", "PipelineStages"]

log = structlog.get_logger(__name__)

#: Name of the normalised audio in a task folder.
WAV_NAME = "preprocessed.wav"

T = TypeVar("T")


class PipelineStages:
    """The stages of one worker process, each run once per task against the store."""

    def __init__(
        self,
        settings: Settings,
        store: TaskStore,
        *,
        tracker: StageTracker,
        models: ModelCache,
        sandbox: DecodeSandbox,
        transcriber: Transcriber,
        diarizer: Diarizer,
        templates: TemplateCatalog,
    ) -> None:
        self.settings = settings
        self.store = store
        self.tracker = tracker
        self.models = models
        #: Where uploads are decoded: a child process with MAIE_DECODE_* limits, so a poison file
        #: fails its own task and never the worker.
        self.sandbox = sandbox
        self.transcriber = transcriber
        self.diarizer = diarizer
        self.templates = templates

    def fetch(self, record: TaskRecord) -> FetchArtifact:
        """Download a recording given by URL into the task folder and probe it as an upload (once).

        The file is probed in the decode sandbox and kept as ``raw.<ext>`` exactly like an
        upload; the record then points at it, and forgets the URL as given (credentials and all).

        Raises:
            MaieError: the ``fetch_*`` errors of :mod:`maie.errors` (the permanent ones fail the
                task, the others are retried), and those of an upload's probe
                (``unsupported_media``, ``decode_limit``, ``audio_too_short``, ``audio_too_long``).
        """
        existing = self.store.get_artifact(record.task_id, StageName.FETCH, FetchArtifact)
        if existing is not None and Path(existing.audio_path).is_file():
            log.info("stage.reused_artifact")
        else:
            if record.fetch_url is None:
                raise PermanentError("the recording's URL is gone from the task; submit it again")
            folder = Path(record.audio_path).parent
            folder.mkdir(parents=True, exist_ok=True)
            with Fetcher(FetchOptions.from_settings(self.settings)) as fetcher:
                media = fetcher.process(FetchInput(url=record.fetch_url, dest_dir=folder))
            options = PreprocessOptions.from_settings(self.settings.audio)
            raw, info = keep_recording(media.path, options, self.sandbox)
            existing = FetchArtifact(
                source_url=media.source_url,
                via=media.via,
                audio_path=str(raw),
                source=info,
                size_bytes=media.size_bytes,
                content_type=media.content_type,
                extractor=media.extractor,
                title=media.title,
                redirects=media.redirects,
            )
            self.store.put_artifact(record.task_id, StageName.FETCH, existing)
        fetched = existing

        def point_at_file(task: TaskRecord) -> None:
            task.audio_path, task.source, task.fetch_url = fetched.audio_path, fetched.source, None

        self.store.update(record.task_id, point_at_file)
        log.info("fetch.kept", via=fetched.via, container=fetched.source.container, size=fetched.size_bytes)
        return fetched

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

    def diarize(self, record: TaskRecord) -> DiarizationArtifact:
        """Find who spoke when in the normalised audio (once), beside ASR."""
        return self.diarizer.run(record)

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
        artifact = self.run_summary(data)
        self.store.put_artifact(record.task_id, StageName.SUMMARIZE, artifact)
        return artifact

    def run_summary(self, data: SummarizeInput) -> SummaryArtifact:
        """Summarize ``data`` with the summary LLM (also the body of a re-summarization job)."""
        options = SummarizeOptions.from_settings(self.settings.llm)
        return self._with_llm("summary", lambda llm: Summarizer(options, llm).process(data))

    def _asr(self, record: TaskRecord) -> AsrArtifact:
        """The transcript, with speakers when the task was diarized (as the LLM stages see it)."""
        asr = self.store.get_artifact(record.task_id, StageName.TRANSCRIBE, AsrArtifact)
        if asr is None:
            raise PermanentError("the transcript is missing; submit the recording again")
        return self.diarizer.transcript(record, asr)

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

    def _llm_artifacts(self, record: TaskRecord) -> tuple[EnhanceArtifact | None, SummaryArtifact | None]:
        """The enhance and summarize artifacts of the stages the task planned (None where missing)."""
        planned = {s.name for s in record.stages}
        enhanced = summary = None
        if StageName.ENHANCE in planned:
            enhanced = self.store.get_artifact(record.task_id, StageName.ENHANCE, EnhanceArtifact)
        if StageName.SUMMARIZE in planned:
            summary = self.store.get_artifact(record.task_id, StageName.SUMMARIZE, SummaryArtifact)
        return enhanced, summary

    @staticmethod
    def _processing_s(record: TaskRecord) -> float:
        return processing_seconds(record.stages)

    def finalize(self, record: TaskRecord) -> None:
        """Assemble result version 1 from the stage artifacts and complete the task."""
        audio = self.store.get_artifact(record.task_id, StageName.PREPROCESS, PreprocessArtifact)
        asr = self.store.get_artifact(record.task_id, StageName.TRANSCRIBE, AsrArtifact)
        if audio is None or asr is None:
            raise PermanentError("a stage result is missing; submit the recording again")
        planned = {s.name for s in record.stages}
        enhanced, summary = self._llm_artifacts(record)
        if (StageName.ENHANCE in planned and enhanced is None) or (
            StageName.SUMMARIZE in planned and summary is None
        ):
            raise PermanentError("an LLM stage result is missing; submit the recording again")
        result = first_version(
            kind="pipeline",
            asr=asr,
            duration_s=audio.duration_s,
            processing_s=self._processing_s(record),
            features=record.request.features,
            template_id=record.request.template_id,
            enhanced=enhanced,
            summary=summary,
            diarization=self.diarizer.artifact(record),
        )
        if not self.store.put_result(record.task_id, result):
            log.info("result.already_stored", version=result.version)
        self.tracker.complete(
            record.task_id, result.version, rtf=result.metrics.rtf if result.metrics else None
        )

    def partial_result(self, task_id: str) -> int | None:
        """Keep what a failing task's finished stages produced as result version 1 (``partial``).

        Called by the tracker before it marks the task FAILED. Once transcription finished, the
        transcript (and a clean transcript or summary that finished too) is stored, so the failed
        task shows it, can be exported and summarized again. A version 1 already stored (an earlier
        attempt's, or a finalize that stored its version and then failed) is kept as it is.

        Returns:
            The version number (1), or None when the task is gone, finished, or has no transcript.
        """
        try:
            record = self.store.get(task_id)
        except NotFoundError:
            return None
        if record.status.terminal:
            return None
        audio = self.store.get_artifact(task_id, StageName.PREPROCESS, PreprocessArtifact)
        asr = self.store.get_artifact(task_id, StageName.TRANSCRIBE, AsrArtifact)
        if audio is None or asr is None:
            return None
        enhanced, summary = self._llm_artifacts(record)
        try:
            diarization = self.diarizer.artifact(record)
        except PermanentError:  # diarizing is what failed: the transcript is kept without speakers
            diarization = None
        result = partial_version(
            asr=asr,
            duration_s=audio.duration_s,
            processing_s=self._processing_s(record),
            features=record.request.features,
            template_id=record.request.template_id,
            enhanced=enhanced,
            summary=summary,
            diarization=diarization,
        )
        if not self.store.put_result(task_id, result):
            log.info("result.already_stored", version=result.version)
        log.info("result.partial_kept", version=result.version)
        return result.version


def processing_seconds(stages: Sequence[StageRecord]) -> float:
    """Seconds a task's pipeline took: its stages' durations, stages that ran beside each other once.

    Stages of :data:`~maie.actor_table.BESIDE` count as the span of their (last) runs put together,
    so diarizing beside ASR adds only the time it went on after ASR. A fetch's time is the source's
    and the network's, not processing: it stays out (and out of the RTF).
    """
    total = 0.0
    spans: list[tuple[float, float]] = []
    for stage in stages:
        if stage.job_id is not None or stage.name == StageName.FETCH or stage.duration_s is None:
            continue
        if stage.name in BESIDE and stage.finished_at is not None:
            end = stage.finished_at.timestamp()
            spans.append((end - stage.duration_s, end))
        else:
            total += stage.duration_s
    reach = float("-inf")
    for start, end in sorted(spans):
        total += max(0.0, end - max(start, reach))
        reach = max(reach, end)
    return total
