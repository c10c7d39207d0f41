"""The transcribe stage on a worker: lease, batch of waiting tasks, fallback chain, stored artifacts.

For one task's ``transcribe`` message:

1. If its transcript is stored already (a redelivered message, or a batch did it), reuse it.
2. Take the task's lease (:mod:`maie.worker.asr_claims`), waiting while another worker holds it.
3. With ``MAIE_ASR_BATCH_MAX_TASKS`` > 1, also lease other tasks waiting for the same backend and
   the same model variant (``model``): one pass runs one model.
4. Load the requested backend (the request's variant of it); if it is unavailable or fails to
   load, try the backends of ``MAIE_ASR_FALLBACK`` in order (each with its default model). The
   fallback is logged (``asr.fallback``) and recorded in ``versions.asr_backend.fallback`` beside
   any CUDA → CPU fallback of the backend itself.
5. Transcribe all leased tasks in one pass (``process_batch``), store each transcript, release.

A companion task's own message still arrives later and finds its transcript stored; its stage
bookkeeping (running → done) stays with that message, so every task's record reads as usual.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from maie.errors import ModelLoadError, NotFoundError, PermanentError, UnprocessableError
from maie.pipeline.asr.base import AsrInput
from maie.pipeline.asr.registry import REGISTRY, BackendRegistry
from maie.schemas import AsrArtifact, PreprocessArtifact, StageName

if TYPE_CHECKING:
    from maie.config import Settings
    from maie.pipeline.asr.base import AsrBackend
    from maie.schemas import TaskRecord
    from maie.store import TaskStore
    from maie.worker.asr_claims import AsrClaims
    from maie.worker.residency import ModelCache

__all__ = ["SCAN_FACTOR", "Transcriber", "waiting_group"]

log = structlog.get_logger(__name__)

#: Waiting tasks looked at per free batch slot (some are taken by other workers or finished).
SCAN_FACTOR = 4


def waiting_group(record: TaskRecord) -> str:
    """Which tasks may share a pass with ``record``: the same backend and model variant.

    The tasks waiting for ASR are listed per group (``maie:asr:ready:<group>``), so a batch is
    only ever made of tasks one loaded model can transcribe.
    """
    request = record.request
    return request.asr_backend if request.model is None else f"{request.asr_backend}:{request.model}"


class Transcriber:
    """Runs the transcribe stage for tasks, with leases, batching and the fallback chain."""

    def __init__(
        self,
        settings: Settings,
        store: TaskStore,
        models: ModelCache,
        claims: AsrClaims,
        *,
        registry: BackendRegistry = REGISTRY,
    ) -> None:
        self.settings = settings
        self.store = store
        self.models = models
        self.claims = claims
        self.registry = registry

    def mark_ready(self, record: TaskRecord) -> None:
        """List the task as waiting for ASR (after its audio is preprocessed)."""
        self.claims.mark_ready(record.task_id, waiting_group(record))

    def run(self, record: TaskRecord) -> AsrArtifact:
        """The task's transcript: stored already, or made now (maybe with others), then stored.

        Raises:
            PermanentError: if the preprocessed audio is missing.
            ModelLoadError: if no backend of the chain can be loaded.
        """
        task_id = record.task_id
        existing = self._stored(task_id)
        if existing is not None:
            log.info("stage.reused_artifact")
            return existing
        if not self.claims.claim_or_wait(task_id, lambda: self._stored(task_id) is not None):
            log.info("stage.reused_artifact", made_by="another worker's batch")
            return self._require_stored(task_id)
        held = [task_id]
        with self.claims.holding(held):
            existing = self._stored(task_id)  # stored between the first look and the lease
            if existing is not None:
                return existing
            item = self._input(record)
            companions = self._companions(record, held)
            results = self._transcribe(record, [item, *(c[1] for c in companions)])
            for (other, _), result in zip(companions, results[1:], strict=True):
                self._store_companion(other, result)
            mine = results[0]
            if isinstance(mine, Exception):
                raise mine
            self._store(record, mine)
            return mine

    def _stored(self, task_id: str) -> AsrArtifact | None:
        return self.store.get_artifact(task_id, StageName.TRANSCRIBE, AsrArtifact)

    def _require_stored(self, task_id: str) -> AsrArtifact:
        artifact = self._stored(task_id)
        if artifact is None:  # the lease holder stored it, then the record expired
            raise PermanentError("the transcript vanished from the store; submit the recording again")
        return artifact

    def _input(self, record: TaskRecord) -> AsrInput:
        audio = self.store.get_artifact(record.task_id, StageName.PREPROCESS, PreprocessArtifact)
        if audio is None or not Path(audio.wav_path).is_file():
            raise PermanentError("the preprocessed audio is missing; submit the recording again")
        request = record.request
        return AsrInput(
            wav_path=Path(audio.wav_path),
            language=request.language,
            word_timestamps=request.word_timestamps,
            duration_s=audio.duration_s,
            hotwords=request.hotwords,
            initial_prompt=request.initial_prompt,
            beam_size=request.beam_size,
            task=request.task,
        )

    def _companions(self, record: TaskRecord, held: list[str]) -> list[tuple[TaskRecord, AsrInput]]:
        """Lease up to ``MAIE_ASR_BATCH_MAX_TASKS - 1`` other tasks waiting for the same backend and model."""
        free = self.settings.asr.batch_max_tasks - 1
        if free <= 0:
            return []
        group = waiting_group(record)
        companions: list[tuple[TaskRecord, AsrInput]] = []
        for task_id in self.claims.waiting(group, free * SCAN_FACTOR):
            if len(companions) >= free:
                break
            if task_id == record.task_id:
                continue
            other = self._candidate(task_id, group)
            if other is None or not self.claims.try_claim(task_id):
                continue
            held.append(task_id)
            try:
                if self._stored(task_id) is not None:  # finished just before the lease
                    continue
                companions.append((other, self._input(other)))
            except PermanentError:
                continue  # its own message reports the problem
        if companions:
            log.info("asr.batch_claimed", tasks=[record.task_id, *(c[0].task_id for c in companions)])
        return companions

    def _candidate(self, task_id: str, group: str) -> TaskRecord | None:
        """The record of a waiting task that can join a batch, dropping stale entries."""
        try:
            other = self.store.get(task_id)
        except NotFoundError:
            self.claims.mark_done(task_id, group)
            return None
        if other.status.terminal or self._stored(task_id) is not None:
            self.claims.mark_done(task_id, group)
            return None
        if waiting_group(other) != group:  # listed under a group it does not belong to: never batch it
            return None
        return other

    def _chain(self, requested: str) -> list[str]:
        return [requested, *(b for b in self.settings.asr.fallback_chain() if b != requested)]

    def _create(self, backend_id: str, variant: str | None) -> AsrBackend[Any]:
        """An unloaded backend: the request's variant of it, or its default one.

        Raises:
            ModelLoadError: a variant this worker's settings do not name (they changed since submit).
        """
        try:
            chosen = self.registry.variant(backend_id, self.settings, variant)
        except UnprocessableError as exc:
            raise ModelLoadError(f"{exc.detail}; the worker's settings differ from the API's") from exc
        return self.registry.create(backend_id, self.settings if chosen is None else chosen.settings)

    def _transcribe(self, record: TaskRecord, items: list[AsrInput]) -> list[AsrArtifact | Exception]:
        """Run ``items`` on the first backend of the chain that loads; the fallback is recorded."""
        requested = record.request.asr_backend
        failures: list[tuple[str, str]] = []
        for backend_id in self._chain(requested):
            if failures:  # a fallback: skip it cheaply when its own check says it cannot run
                info = self.registry.info(backend_id, self.settings)
                if not info.available:
                    failures.append((backend_id, info.unavailable_reason or "unavailable"))
                    continue
            with contextlib.ExitStack() as stack:
                try:
                    variant = record.request.model if backend_id == requested else None
                    backend = self._create(backend_id, variant)
                    model = stack.enter_context(self.models.use(backend))
                except ModelLoadError as exc:
                    failures.append((backend_id, exc.detail))
                    log.warning("asr.backend_failed", backend=backend_id, reason=exc.detail)
                    continue
                started = time.perf_counter()
                if len(items) == 1:
                    results: list[AsrArtifact | Exception] = [model.process(items[0])]
                else:
                    results = model.process_batch(items)
                    log.info(
                        "asr.batch_finished",
                        backend=backend_id,
                        tasks=len(items),
                        seconds=round(time.perf_counter() - started, 3),
                    )
            note = None
            if failures:
                tried = [name for name, _ in failures]
                note = f"{'→'.join([*tried, backend_id])}: " + "; ".join(f"{n}: {r}" for n, r in failures)
                log.warning("asr.fallback", requested=requested, used=backend_id, reason=note)
            return [_with_fallback(result, note) for result in results]
        raise ModelLoadError(
            "no ASR backend could be loaded: " + "; ".join(f"{name}: {reason}" for name, reason in failures),
            extra={"tried": [name for name, _ in failures]},
        )

    def _store(self, record: TaskRecord, artifact: AsrArtifact) -> None:
        self.store.put_artifact(record.task_id, StageName.TRANSCRIBE, artifact)
        self.claims.mark_done(record.task_id, waiting_group(record))
        log.info("asr.stored", segments=len(artifact.segments), language=artifact.language)

    def _store_companion(self, record: TaskRecord, result: AsrArtifact | Exception) -> None:
        if isinstance(result, Exception):
            # Not failed here: the task's own message transcribes it again and reports the error.
            log.warning("asr.batch_item_failed", batched_task=record.task_id, error=str(result))
            return
        self.store.put_artifact(record.task_id, StageName.TRANSCRIBE, result)
        self.claims.mark_done(record.task_id, waiting_group(record))
        log.info("asr.stored", batched_task=record.task_id, segments=len(result.segments))


def _with_fallback(result: AsrArtifact | Exception, note: str | None) -> AsrArtifact | Exception:
    """``result`` with the backend fallback added to any device fallback already recorded."""
    if note is None or isinstance(result, Exception):
        return result
    combined = "; ".join(part for part in (note, result.version.fallback) if part)
    return msgspec.structs.replace(result, version=msgspec.structs.replace(result.version, fallback=combined))
