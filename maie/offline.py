"""``maie transcribe FILE``: the pipeline in this process, with no server, Redis or worker.

The same stages a worker runs (PyAV preprocessing, then the configured ASR backend) on one file,
with the same settings (``MAIE_*``), into the same :class:`~maie.schemas.ResultVersion` a task
stores, so its exports are the server's exports. For offline use and for checking a model.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from maie import __version__
from maie.pipeline.asr.base import AsrInput
from maie.pipeline.asr.registry import create, ensure_available
from maie.pipeline.preprocess import PreprocessInput, PreprocessOptions, Preprocessor
from maie.schemas import Metrics, Results, ResultVersion, Versions

if TYPE_CHECKING:
    from maie.config import Settings

__all__ = ["transcribe_file"]

log = structlog.get_logger(__name__)


def transcribe_file(
    path: Path, settings: Settings, *, language: str | None = None, word_timestamps: bool | None = None
) -> ResultVersion:
    """Transcribe ``path`` here and now with the configured ASR backend.

    Raises:
        UnsupportedMediaError: if the file is not decodable audio.
        AudioTooShortError, AudioTooLongError: outside MAIE_MIN_DURATION_S / MAIE_MAX_DURATION_S.
        BackendUnavailableError: if the ASR backend cannot run here (the reason says why).
    """
    started = time.perf_counter()
    ensure_available(settings.asr.backend, settings)
    with tempfile.TemporaryDirectory(prefix="maie-transcribe-") as work:
        with Preprocessor(PreprocessOptions.from_settings(settings.audio)) as stage:
            audio = stage.process(PreprocessInput(source=path, target=Path(work) / "audio.wav"))
        with create(settings.asr.backend, settings) as backend:
            asr = backend.process(
                AsrInput(
                    wav_path=Path(audio.wav_path),
                    language=language,
                    word_timestamps=word_timestamps,
                    duration_s=audio.duration_s,
                )
            )
    elapsed = time.perf_counter() - started
    log.info("transcribe.finished", duration_s=round(audio.duration_s, 3), elapsed_s=round(elapsed, 3))
    return ResultVersion(
        version=1,
        created_at=datetime.now(UTC),
        kind="offline",
        results=Results(raw_transcript=asr.text, language=asr.language, segments=asr.segments),
        versions=Versions(pipeline_version=__version__, asr_backend=asr.version),
        metrics=Metrics(
            input_duration_seconds=round(audio.duration_s, 3),
            processing_time_seconds=round(elapsed, 3),
            rtf=round(elapsed / audio.duration_s, 4) if audio.duration_s else 0.0,
            vad_coverage=asr.vad_coverage,
            asr_confidence_avg=asr.confidence_avg,
        ),
    )
