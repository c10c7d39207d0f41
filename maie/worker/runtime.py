"""The wiring of one worker process: settings, store, bookkeeping, models and the stages, built once.

:class:`WorkerRuntime` makes every long-lived object a worker needs and hands each the others it
uses; the actors (:mod:`maie.worker.actors`) reach the work through it. The work itself lives in
:mod:`maie.worker.stages`, :mod:`maie.worker.transcription`, :mod:`maie.worker.summary_jobs` and
:mod:`maie.worker.webhooks`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from maie.hardware import cuda_available
from maie.metrics import MetricsRecorder
from maie.pipeline.prompts import TemplateCatalog, default_templates_dir
from maie.pipeline.sandbox import DecodeSandbox, SandboxLimits
from maie.store.finished import FinishedNotices
from maie.worker.asr_claims import AsrClaims
from maie.worker.diarization import Diarizer
from maie.worker.residency import ModelCache
from maie.worker.stages import PipelineStages
from maie.worker.summary_jobs import SummaryJobs
from maie.worker.tracker import StageTracker
from maie.worker.transcription import Transcriber
from maie.worker.webhooks import WebhookNotifier

if TYPE_CHECKING:
    from maie.config import Settings
    from maie.store import TaskStore

__all__ = ["WorkerRuntime"]

log = structlog.get_logger(__name__)


class WorkerRuntime:
    """Every long-lived object of one worker process, wired together."""

    def __init__(self, settings: Settings, store: TaskStore) -> None:
        self.settings = settings
        self.store = store
        #: The cluster-wide series this worker adds to (in Redis, next to the task store).
        self.metrics = MetricsRecorder(store.client)
        self.tracker = StageTracker(store, keep_audio=settings.storage.keep_audio, metrics=self.metrics)
        # Requests held open for a result (the OpenAI routes) hear of it at once.
        self.tracker.after_finish(FinishedNotices(store.client).publish)
        residency = settings.worker.model_residency or ("sequential" if cuda_available() else "resident")
        log.info("worker.residency", mode=residency)
        self.models = ModelCache(residency, max_models=settings.worker.resident_max_models)
        #: Diarizers that run on the CPU only, under the same rules but their own lock, so that
        #: they run while an ASR model holds the main cache (maie.worker.diarization).
        self.cpu_models = ModelCache(residency, max_models=settings.worker.resident_max_models)
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
        self.diarizer = Diarizer(settings, store, self.models, self.cpu_models)
        self.webhooks = WebhookNotifier(settings, store)
        self.templates = TemplateCatalog(settings.storage.templates_dir or default_templates_dir())
        self.stages = PipelineStages(
            settings,
            store,
            tracker=self.tracker,
            models=self.models,
            sandbox=self.sandbox,
            transcriber=self.transcriber,
            diarizer=self.diarizer,
            templates=self.templates,
        )
        self.tracker.keep_partial_results(self.stages.partial_result)
        self.summary_jobs = SummaryJobs(store, self.templates, self.stages.run_summary, metrics=self.metrics)

    def close(self) -> None:
        """Unload resident models and close the store."""
        self.models.clear()
        self.cpu_models.clear()
        self.transcriber.claims.close()
        self.webhooks.close()
        self.store.close()
