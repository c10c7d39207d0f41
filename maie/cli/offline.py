"""``maie transcribe FILE``: the pipeline in this process, with no server, Redis or worker.

The same stages a worker runs (PyAV preprocessing, then the configured ASR backend, and with
``--diarize`` the diarization backend) on one file, with the same settings (``MAIE_*``), into the
same :class:`~maie.schemas.ResultVersion` a task stores, so its exports are the server's exports.
For offline use and for checking a model.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click
import msgspec
import structlog

from maie.cli.output import emit, fail, format_option, output_option
from maie.cli.settings import load_settings
from maie.errors import MaieError
from maie.schemas import Feature

if TYPE_CHECKING:
    from maie.config import Settings
    from maie.schemas import ResultVersion

__all__ = ["transcribe", "transcribe_file"]

log = structlog.get_logger(__name__)


def transcribe_file(
    path: Path,
    settings: Settings,
    *,
    language: str | None = None,
    word_timestamps: bool | None = None,
    diarize: bool = False,
    diarization_backend: str | None = None,
    num_speakers: int | None = None,
) -> ResultVersion:
    """Transcribe ``path`` here and now with the configured ASR backend, and find its speakers.

    Args:
        path: The recording.
        settings: Service settings.
        language: ISO 639-1 code of the spoken language; None detects it.
        word_timestamps: Word-level timestamps (None: the backend's default).
        diarize: Also find who spoke when (``diarization_backend``, default MAIE_DIARIZATION_BACKEND).
        diarization_backend: The diarizer, with ``diarize``.
        num_speakers: The exact number of speakers, with ``diarize``; None finds it.

    Raises:
        UnsupportedMediaError: if the file is not decodable audio.
        AudioTooShortError, AudioTooLongError: outside MAIE_MIN_DURATION_S / MAIE_MAX_DURATION_S.
        BackendUnavailableError: if the ASR backend or the diarizer cannot run here (the reason says why).
        UnprocessableError: a speaker count outside 1-32, or ``channels`` on a mono recording.
    """
    # The pipeline (PyAV, the ASR libraries) is imported here only: it keeps `maie --help` fast.
    from maie.pipeline.asr.base import AsrInput  # noqa: PLC0415
    from maie.pipeline.asr.registry import create, ensure_available  # noqa: PLC0415
    from maie.pipeline.diarization import REGISTRY, DiarizationInput, SpeakerCount  # noqa: PLC0415
    from maie.pipeline.preprocess import PreprocessInput, PreprocessOptions, Preprocessor  # noqa: PLC0415
    from maie.pipeline.result_builder import first_version  # noqa: PLC0415

    started = time.perf_counter()
    ensure_available(settings.asr.backend, settings)
    diarizer = (diarization_backend or settings.diarization.backend) if diarize else None
    if diarizer is not None:
        REGISTRY.ensure_available(diarizer, settings)
        speakers = SpeakerCount.checked(num_speakers)
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
        diarization = None
        if diarizer is not None:
            diarization = REGISTRY.run(
                diarizer,
                settings,
                DiarizationInput(wav_path=Path(audio.wav_path), source_path=path, speakers=speakers),
            )
    elapsed = time.perf_counter() - started
    log.info("transcribe.finished", duration_s=round(audio.duration_s, 3), elapsed_s=round(elapsed, 3))
    return first_version(
        kind="offline",
        asr=asr,
        duration_s=audio.duration_s,
        processing_s=elapsed,
        features=(Feature.RAW_TRANSCRIPT,),
        diarization=diarization,
    )


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@format_option("json is the whole result.")
@click.option("--language", help="ISO 639-1 code of the spoken language (default: detect).")
@click.option("--word-timestamps/--no-word-timestamps", default=None, help="Word-level timestamps.")
@click.option("--diarize/--no-diarize", default=False, help="Label who spoke when (implied by --speakers).")
@click.option("--speakers", "num_speakers", type=int, help="Exact number of speakers, 1-32 (default: found).")
@click.option("--diarization-backend", help="Diarizer (default MAIE_DIARIZATION_BACKEND).")
@output_option
def transcribe(  # noqa: PLR0917 - one parameter per option
    file: Path,
    fmt: str,
    language: str | None,
    word_timestamps: bool | None,
    diarize: bool,
    num_speakers: int | None,
    diarization_backend: str | None,
    output: Path | None,
) -> None:
    """Transcribe FILE in this process (no server): the configured ASR backend, MAIE_* settings."""
    from maie.transcripts import ExportFormat, render  # noqa: PLC0415 - keeps `maie --help` fast

    settings = load_settings("transcribe")
    try:
        done = transcribe_file(
            file,
            settings,
            language=language,
            word_timestamps=word_timestamps,
            diarize=diarize or num_speakers is not None or diarization_backend is not None,
            diarization_backend=diarization_backend,
            num_speakers=num_speakers,
        )
    except MaieError as exc:
        raise fail(exc) from exc
    if fmt == "json":
        text = msgspec.json.format(msgspec.json.encode(done), indent=2).decode()
    else:
        text = render(done, ExportFormat(fmt), task_id=file.name).decode()
    emit(text, output)
