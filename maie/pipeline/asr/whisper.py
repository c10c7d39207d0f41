"""The ``whisper`` ASR backend: faster-whisper (CTranslate2) on a 16 kHz mono WAV.

faster-whisper is imported in :meth:`WhisperBackend.load`, not at module level, so the API can
list and check this backend without loading CTranslate2's native libraries.
"""

from __future__ import annotations

import copy
import gc
import math
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import structlog

from maie.errors import ModelLoadError
from maie.hardware import cpu_compute_type, probe_cuda
from maie.pipeline.asr.base import (
    AsrBackend,
    AsrInput,
    Availability,
    BackendSpec,
    missing_library,
    model_label,
)
from maie.pipeline.asr.checkpoint import checkpoint_hash
from maie.pipeline.asr.language import whisper_detector
from maie.pipeline.asr.model_files import locate_model, model_problem, model_size
from maie.pipeline.asr.segments import clamp, unit, weighted_confidence
from maie.pipeline.asr.wav_windows import WavWindows
from maie.pipeline.asr.whisper_options import WHISPER_LANGUAGES, WhisperOptions, whisper_variants
from maie.pipeline.model_names import public_location
from maie.schemas import AsrArtifact, AsrVersion, Segment, Word

if TYPE_CHECKING:
    from collections.abc import Hashable
    from pathlib import Path

    from maie.config import Settings

__all__ = ["SPEC", "WhisperBackend", "check_availability", "create_whisper_backend"]

#: Sample rate faster-whisper works at (MAIE's preprocessed WAVs already have it).
SAMPLE_RATE = 16000
#: What to tell an operator whose faster-whisper install is broken.
_INSTALL_HINT = "faster-whisper ships with MAIE; reinstall the environment (uv sync)"
#: Characters of a window's text that prompt the next window (Whisper's prompt holds 223 tokens).
PROMPT_CARRY_CHARS = 500


@dataclass(frozen=True, slots=True)
class _Pass:
    """What faster-whisper returned for one window: ``(window start s, segment)`` and its info."""

    segments: list[tuple[float, Any]]
    info: Any


log = structlog.get_logger(__name__)


class WhisperBackend(AsrBackend[WhisperOptions]):
    """faster-whisper as a stage: ``load()`` the model, ``process()`` WAVs, ``unload()``."""

    backend_id = "whisper"

    def __init__(self, options: WhisperOptions) -> None:
        super().__init__(options)
        # Model state lives on the instance: two backends never share a model by accident.
        self._model: Any = None
        self._transcriber: Any = None
        self._model_dir: Path | None = None
        self._checkpoint: str | None = None
        # Where the model really runs: a GPU that fails at load time moves it to the CPU.
        self._device = options.device
        self._compute_type = options.compute_type
        self._device_fallback = options.device_fallback

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._model is not None

    @property
    def model_label(self) -> str:
        """The variant as workers report it loaded (``whisper:<variant>``)."""
        return model_label(self.backend_id, self.options.variant)

    @property
    def model(self) -> Any:  # noqa: ANN401 - faster-whisper is untyped
        """The loaded ``faster_whisper.WhisperModel``, for callers that decode windows themselves.

        Live sessions share it: faster-whisper allows ``transcribe`` from several threads at once
        (CTranslate2 queues the calls; ``num_workers`` would run them in parallel).

        Raises:
            RuntimeError: if called before ``load()``.
        """
        if self._model is None:
            msg = "WhisperBackend.model used before load()"
            raise RuntimeError(msg)
        return self._model

    def cache_key(self) -> Hashable:
        """The backend id and the full options.

        The options go in whole, not only model/device/compute type: a worker that finds a resident
        backend under this key reuses that instance, decoding options included, so equal keys must
        mean equal behaviour. Workers build options from fixed settings, so keys still match.
        """
        return (self.backend_id, self.options)

    def load(self) -> None:
        """Locate (or download) the weights, load them, and hash the checkpoint.

        With ``device=auto`` resolved to CUDA, a GPU that turns out unusable when the model is
        loaded (driver, memory, missing libraries) moves the model to the CPU with an adjusted
        compute type; the fallback is logged and recorded in versions.

        Raises:
            ModelLoadError: with what to change, when the weights are absent, a forced device is not
                usable, or CTranslate2 rejects the model.
        """
        if self._model is not None:
            return
        opts = self.options
        self._device, self._compute_type, self._device_fallback = (
            opts.device,
            opts.compute_type,
            opts.device_fallback,
        )
        if opts.device == "cuda" and not (cuda := probe_cuda()).available:
            if not opts.device_auto:
                raise ModelLoadError(
                    f"MAIE_WHISPER_DEVICE=cuda but CUDA is not usable here ({cuda.reason}); "
                    "set MAIE_WHISPER_DEVICE=auto or cpu"
                )
            self._fall_back_to_cpu(cuda.reason or "no CUDA device")
        if problem := missing_library("faster_whisper", "ctranslate2", hint=_INSTALL_HINT):
            raise ModelLoadError(problem)

        started = time.perf_counter()
        try:
            model_dir = locate_model(opts.model, opts.download_root)
            model = self._open(model_dir)
            checkpoint = checkpoint_hash(model_dir, cache_dir=opts.cache_dir)
        except (OSError, RuntimeError, ValueError) as exc:
            # CTranslate2 reports unreadable weights and unsupported devices as RuntimeError/ValueError.
            raise ModelLoadError(f"cannot load Whisper model {opts.model!r}: {exc}") from exc
        from faster_whisper import BatchedInferencePipeline  # noqa: PLC0415 - heavy

        self._model = model
        self._transcriber = model if opts.batch_size is None else BatchedInferencePipeline(model)
        self._model_dir = model_dir
        self._checkpoint = checkpoint
        log.info(
            "asr.loaded",
            backend="whisper",
            model=opts.variant,
            model_path=str(model_dir),
            device=self._device,
            compute_type=self._compute_type,
            multilingual=bool(model.model.is_multilingual),
            load_s=round(time.perf_counter() - started, 3),
        )

    def _open(self, model_dir: Path) -> Any:  # noqa: ANN401 - faster-whisper is untyped
        """Open the model on the chosen device; an ``auto`` GPU that fails is retried on the CPU."""
        from faster_whisper import WhisperModel  # noqa: PLC0415 - heavy

        opts = self.options
        try:
            return WhisperModel(
                str(model_dir),
                device=self._device,
                compute_type=self._compute_type,
                cpu_threads=opts.cpu_threads,
            )
        except (RuntimeError, ValueError) as exc:
            if self._device != "cuda" or not opts.device_auto:
                raise
            self._fall_back_to_cpu(str(exc))
        return WhisperModel(
            str(model_dir), device=self._device, compute_type=self._compute_type, cpu_threads=opts.cpu_threads
        )

    def _fall_back_to_cpu(self, reason: str) -> None:
        opts = self.options
        self._device = "cpu"
        self._compute_type = cpu_compute_type("auto" if opts.compute_type_auto else opts.compute_type)
        self._device_fallback = f"cuda→cpu: {reason}"
        log.warning(
            "asr.device_fallback",
            backend="whisper",
            reason=self._device_fallback,
            compute_type=self._compute_type,
        )

    def unload(self) -> None:
        """Drop the model and give its memory back. Safe to call when nothing is loaded."""
        if self._model is None:
            return
        self._model = self._transcriber = None
        gc.collect()
        if self._device == "cuda":
            _empty_torch_cuda_cache()
        log.info("asr.unloaded", backend="whisper", model=self.options.variant)

    def version_info(self) -> AsrVersion:
        """The loaded model with the configured decoding (request overrides not applied)."""
        opts = self.options
        return self._version(
            opts.transcribe_kwargs(language=opts.language, word_timestamps=opts.word_timestamps)
        )

    def process(self, data: AsrInput) -> AsrArtifact:
        """Transcribe ``data.wav_path``; the request's options override the configured ones.

        Without a language, it is detected over several windows of speech spread across the
        recording (:mod:`maie.pipeline.asr.language`) and then passed to faster-whisper. The WAV
        is transcribed in windows of ``window_s`` (:mod:`maie.pipeline.asr.wav_windows`), so
        memory stays that of one window for any length; segment and word times are moved by each
        window's start. With ``condition_on_previous_text`` a window is prompted with the end of
        the previous one's text, as faster-whisper does between its own 30 s windows.

        Raises:
            RuntimeError: if called before ``load()``.
            PermanentError: if the WAV is missing (preprocessing output already cleaned up).
        """
        if self._transcriber is None:
            msg = "WhisperBackend.process() called before load()"
            raise RuntimeError(msg)
        opts = self.options
        kwargs = opts.transcribe_kwargs(
            language=data.language or opts.language,
            word_timestamps=opts.word_timestamps if data.word_timestamps is None else data.word_timestamps,
            hotwords=data.hotwords,
            initial_prompt=data.initial_prompt,
            beam_size=data.beam_size,
            task=data.task,
        )
        started = time.perf_counter()
        with WavWindows(data.wav_path, window_s=opts.window_s) as audio:
            language, probability = kwargs["language"], 1.0
            if language is None and self._model.model.is_multilingual and audio.size:
                detector = whisper_detector(
                    self._model,
                    windows=opts.language_detection_segments,
                    vad_parameters=opts.vad_parameters(),
                )
                detection = detector.detect(audio)
                language, probability = detection.language, detection.probability
                kwargs["language_detection_segments"] = opts.language_detection_segments
                log.info(
                    "asr.language_detected",
                    language=language,
                    probability=round(probability, 3),
                    windows_s=detection.windows_s,
                )
            call = copy.deepcopy({k: v for k, v in kwargs.items() if k != "language_detection_segments"})
            call["language"] = language
            passes = self._transcribe_windows(audio, call)
        elapsed = time.perf_counter() - started

        raw = [item for window in passes for item in window.segments]
        info = passes[0].info
        duration = sum(float(w.info.duration) for w in passes) or data.duration_s
        converted = [
            _segment(index, seg, duration, offset) for index, (offset, seg) in enumerate(raw, start=1)
        ]
        vad_coverage = None
        if opts.vad_filter and duration > 0:
            vad_coverage = unit(sum(float(w.info.duration_after_vad) for w in passes) / duration)
        artifact = AsrArtifact(
            text="".join(seg.text for _, seg in raw).strip(),
            segments=converted,
            language=info.language,
            language_probability=unit(
                probability if kwargs["language"] is None else info.language_probability
            ),
            duration_s=duration,
            vad_coverage=vad_coverage,
            confidence_avg=weighted_confidence(converted),
            processing_time_s=elapsed,
            version=self._version(kwargs),
        )
        log.info(
            "asr.finished",
            backend="whisper",
            duration_s=round(duration, 3),
            processing_time_s=round(elapsed, 3),
            rtf=round(elapsed / duration, 4) if duration > 0 else None,
            segments=len(converted),
            language=info.language,
            windows=len(passes),
        )
        return artifact

    def _transcribe_windows(self, audio: WavWindows, call: dict[str, Any]) -> list[_Pass]:
        """Run faster-whisper on each window of ``audio``; segments with their window's offset."""
        carry_prompt = self.options.condition_on_previous_text and self.options.batch_size is None
        passes: list[_Pass] = []
        for first, samples in audio.windows():
            offset = first / SAMPLE_RATE
            segments, info = self._transcriber.transcribe(samples, **call)
            # faster-whisper decodes lazily: the work happens while this generator is consumed,
            # so it is consumed exactly once, here, inside the stage.
            # Sorted because word alignment can move a segment's bounds while an empty neighbour keeps
            # its window timestamps, leaving segments out of order; exports (SRT/VTT) need time order.
            raw = sorted(segments, key=lambda seg: (seg.start, seg.end))
            del samples  # the window's samples are not needed past its decoding
            passes.append(_Pass(segments=[(offset, seg) for seg in raw], info=info))
            text = "".join(seg.text for seg in raw).strip()
            call.pop("initial_prompt", None)  # the request's prompt primes the first window only
            if carry_prompt and text:
                call["initial_prompt"] = text[-PROMPT_CARRY_CHARS:]
        if not passes:  # an empty WAV: one pass over no samples, for faster-whisper's info
            segments, info = self._transcriber.transcribe(np.zeros(0, np.float32), **call)
            passes.append(_Pass(segments=[(0.0, seg) for seg in segments], info=info))
        return passes

    def _version(self, decoding_params: dict[str, Any]) -> AsrVersion:
        if self._model_dir is None or self._checkpoint is None:
            msg = "the checkpoint is known only after load()"
            raise RuntimeError(msg)
        opts = self.options
        return AsrVersion(
            name="whisper",
            model_variant=opts.variant,
            model_path=public_location(self._model_dir),
            checkpoint_hash=self._checkpoint,
            compute_type=self._compute_type,
            device=self._device,
            decoding_params={**decoding_params, "window_s": opts.window_s},
            fallback=self._device_fallback,
            native_punctuation=SPEC.has_native_punctuation(opts.variant, opts.model),
        )


def create_whisper_backend(settings: Settings) -> WhisperBackend:
    """Build an unloaded Whisper backend from settings (no I/O besides the CUDA probe)."""
    options = WhisperOptions.from_settings(settings.whisper, settings.storage.data_dir)
    return WhisperBackend(msgspec.structs.replace(options, window_s=float(settings.asr.window_s)))


def check_availability(settings: Settings) -> Availability:
    """Whether Whisper can run with ``settings``: library, device, then weights."""
    opts = WhisperOptions.resolve(settings.whisper, settings.storage.data_dir)
    reason = missing_library("faster_whisper", "ctranslate2", hint=_INSTALL_HINT)
    if reason is None and opts.device == "cuda" and not (cuda := probe_cuda()).available:
        reason = (
            f"MAIE_WHISPER_DEVICE=cuda but CUDA is not usable here ({cuda.reason}); "
            "set MAIE_WHISPER_DEVICE=auto or cpu"
        )
    env_var = "MAIE_WHISPER_MODELS" if opts.name is not None else "MAIE_WHISPER_MODEL"
    if reason is None:
        reason = model_problem(opts.model, opts.download_root, env_var=env_var)
    return Availability(
        variant=opts.variant,
        device=opts.device,
        compute_type=opts.compute_type,
        reason=reason,
        size_bytes=model_size(opts.model, opts.download_root) if reason is None else None,
    )


#: Registry entry of this backend.
SPEC = BackendSpec(
    backend_id="whisper",
    name="Whisper (faster-whisper / CTranslate2)",
    description="Multilingual Whisper on CTranslate2: Silero VAD, word timestamps, language detection.",
    capabilities=(
        "word_timestamps",
        "language_detection",
        "long_form",
        "vad",
        "custom_vocabulary",
        "beam_size",
        "streaming",
        "translate",
    ),
    languages=WHISPER_LANGUAGES,
    hardware=("cuda", "cpu"),
    factory=create_whisper_backend,
    probe=check_availability,
    # Punctuation is a property of the fine-tune, not of faster-whisper: these write it themselves.
    punctuated_variants=("*erax-wow-turbo*",),
    variants=whisper_variants,
)


def _segment(index: int, seg: Any, duration: float, offset: float = 0.0) -> Segment:  # noqa: ANN401 - faster-whisper is untyped
    """Convert one faster-whisper segment, moved by ``offset`` seconds and clamped into ``[0, duration]``.

    With VAD, faster-whisper maps a segment's bounds and each word's times back to the original
    timeline separately, chunk by chunk, so a word can end up just outside its segment; the
    segment is widened to hold its words, so every word lies inside its segment.
    """
    start = clamp(offset + seg.start, 0.0, duration)
    end = clamp(offset + seg.end, start, duration)
    words = None
    if seg.words is not None:
        words = [
            Word(
                start=(w_start := clamp(offset + word.start, 0.0, duration)),
                end=clamp(offset + word.end, w_start, duration),
                word=word.word,
                probability=unit(word.probability),
            )
            for word in seg.words
        ]
        if words:
            start = min(start, *(w.start for w in words))
            end = max(end, *(w.end for w in words))
    return Segment(
        id=index,
        start=start,
        end=end,
        text=seg.text.strip(),
        # exp(mean token log-probability) is the per-token likelihood, already a probability.
        confidence=unit(math.exp(seg.avg_logprob)),
        words=words,
    )


def _empty_torch_cuda_cache() -> None:
    """Return torch's cached GPU blocks, if torch is in this process at all.

    torch is never imported for this: if no one imported it, its allocator holds nothing, and
    importing it would cost seconds and memory. CTranslate2 frees its own memory on deletion.
    """
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
