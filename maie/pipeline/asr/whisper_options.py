"""Frozen options of the Whisper backend, resolved once from :class:`~maie.config.WhisperSettings`.

Everything ``auto`` in the settings is made concrete here (device, compute type, default model),
so the options say exactly what will run and can be recorded in result versions. The model is the
first variant of MAIE_WHISPER_MODELS (:func:`whisper_variants` gives each variant the settings
that put it first), else MAIE_WHISPER_MODEL.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from maie.hardware import resolve_device
from maie.pipeline.asr.base import Variant
from maie.pipeline.asr.model_files import local_model_dir

if TYPE_CHECKING:
    from maie.config import Settings, WhisperSettings
    from maie.hardware import CudaProbe

__all__ = [
    "DEFAULT_CPU_MODEL",
    "DEFAULT_GPU_MODEL",
    "WHISPER_LANGUAGES",
    "WhisperOptions",
    "whisper_variants",
]

#: Model used on a GPU when MAIE_WHISPER_MODEL is unset: near large-v3 accuracy at a fraction of the cost.
DEFAULT_GPU_MODEL = "large-v3-turbo"
#: Model used on a CPU when MAIE_WHISPER_MODEL is unset: the largest that stays near real time.
DEFAULT_CPU_MODEL = "small"
_LANGUAGE_CODES = (
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th "
    "ur hr bg lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr "
    "pa si km sn yo so af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt "
    "haw ln ha ba jw su yue"
)
#: Languages of multilingual Whisper, in Whisper's token order (``yue`` exists from large-v3 on).
WHISPER_LANGUAGES = tuple(_LANGUAGE_CODES.split())

log = structlog.get_logger(__name__)


class WhisperOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How the Whisper backend loads its model and decodes. All values are concrete (no ``auto``)."""

    #: Model name (``small``, ``large-v3-turbo``, ``org/repo``) or a local CTranslate2 folder.
    model: str
    #: The variant's name in MAIE_WHISPER_MODELS; ``None`` names it after the model (:attr:`variant`).
    name: str | None = None
    #: ``cuda`` or ``cpu``.
    device: str
    #: CTranslate2 compute type, e.g. ``float16`` or ``int8``.
    compute_type: str
    #: Why ``auto`` did not give the GPU (e.g. ``"cuda→cpu: no CUDA device"``); recorded in versions.
    device_fallback: str | None = None
    #: Whether ``device`` came from ``auto``: then a GPU that fails at load time falls back to the CPU.
    device_auto: bool = False
    #: Whether ``compute_type`` came from ``auto`` (a CPU fallback then uses int8, else the CPU
    #: equivalent of the configured type).
    compute_type_auto: bool = False
    beam_size: int = 5
    #: Fallback temperatures, tried in order when a window's output looks like a failure.
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    condition_on_previous_text: bool = True
    #: ISO 639-1 code; ``None`` detects the language.
    language: str | None = None
    word_timestamps: bool = False
    vad_filter: bool = True
    vad_threshold: float = 0.5
    vad_min_speech_duration_ms: int = 250
    vad_min_silence_duration_ms: int = 2000
    vad_speech_pad_ms: int = 400
    #: Token limit per 30 s window; ``None`` is the model's own limit.
    max_new_tokens: int | None = None
    #: CTranslate2 intra-op threads on CPU; 0 lets it choose.
    cpu_threads: int = 0
    #: Where model names are downloaded to (``MAIE_DATA_DIR/models``).
    download_root: Path = Path("data/models")
    #: Where the checkpoint-hash cache lives (``MAIE_DATA_DIR/cache``); ``None`` keeps it in memory.
    cache_dir: Path | None = None
    #: Batch size of faster-whisper's ``BatchedInferencePipeline``; ``None`` decodes sequentially.
    #: Batching splits audio by VAD, so it needs ``vad_filter``.
    batch_size: int | None = None
    #: Words to favour (``hotwords``), unless a request gives its own.
    hotwords: str | None = None
    #: Prompt of the first window (``initial_prompt``), unless a request gives its own.
    initial_prompt: str | None = None
    #: 30 s windows of speech, spread over the recording, that language detection looks at.
    language_detection_segments: int = 3
    #: Seconds of audio transcribed per faster-whisper call (MAIE_ASR_WINDOW_S): bounds memory.
    window_s: float = 300.0

    def __post_init__(self) -> None:
        if self.batch_size is not None and not self.vad_filter:
            msg = "batched Whisper inference splits audio with VAD: batch_size needs vad_filter=True"
            raise ValueError(msg)
        if not self.temperatures:
            msg = "temperatures needs at least one value"
            raise ValueError(msg)

    @classmethod
    def from_settings(
        cls,
        whisper: WhisperSettings,
        data_dir: Path,
        *,
        cuda: CudaProbe | None = None,
    ) -> WhisperOptions:
        """Resolve the settings into concrete options, logging how ``auto`` was decided.

        Args:
            whisper: The ``MAIE_WHISPER_*`` settings.
            data_dir: ``MAIE_DATA_DIR``; models are downloaded under ``models/``, hashes cached
                under ``cache/``.
            cuda: CUDA probe to decide ``auto`` with; ``None`` probes this host.

        Returns:
            The options.
        """
        options = cls.resolve(whisper, data_dir, cuda=cuda)
        if whisper.device == "auto" or whisper.compute_type == "auto":
            log.info(
                "asr.device_resolved",
                device=options.device,
                compute_type=options.compute_type,
                reason=options.device_fallback,
            )
        return options

    @classmethod
    def resolve(
        cls,
        whisper: WhisperSettings,
        data_dir: Path,
        *,
        cuda: CudaProbe | None = None,
    ) -> WhisperOptions:
        """Like :meth:`from_settings`, without the log line (for periodic availability checks)."""
        choice = resolve_device(whisper.device, whisper.compute_type, cuda=cuda)
        default_model = DEFAULT_GPU_MODEL if choice.device == "cuda" else DEFAULT_CPU_MODEL
        named = whisper.model_variants()
        name, model = named[0] if named else (None, whisper.model or default_model)
        return cls(
            model=model,
            name=name,
            device=choice.device,
            compute_type=choice.compute_type,
            device_fallback=choice.fallback,
            device_auto=whisper.device == "auto",
            compute_type_auto=whisper.compute_type == "auto",
            beam_size=whisper.beam_size,
            temperatures=whisper.temperatures(),
            condition_on_previous_text=whisper.condition_on_previous_text,
            language=whisper.language,
            word_timestamps=whisper.word_timestamps,
            vad_filter=whisper.vad_filter,
            vad_threshold=whisper.vad_threshold,
            vad_min_speech_duration_ms=whisper.vad_min_speech_duration_ms,
            vad_min_silence_duration_ms=whisper.vad_min_silence_duration_ms,
            vad_speech_pad_ms=whisper.vad_speech_pad_ms,
            max_new_tokens=whisper.max_new_tokens,
            cpu_threads=whisper.cpu_threads,
            download_root=data_dir / "models",
            cache_dir=data_dir / "cache",
            batch_size=whisper.batch_size,
            hotwords=whisper.hotwords,
            initial_prompt=whisper.initial_prompt,
            language_detection_segments=whisper.language_detection_segments,
        )

    @property
    def variant(self) -> str:
        """The variant's name: its name in MAIE_WHISPER_MODELS, else the model's name or folder name."""
        if self.name is not None:
            return self.name
        folder = local_model_dir(self.model)
        return self.model if folder is None else folder.resolve().name

    def vad_parameters(self) -> dict[str, Any]:
        """Silero VAD options for faster-whisper (also used by language detection, VAD on or off)."""
        return {
            "threshold": self.vad_threshold,
            "min_speech_duration_ms": self.vad_min_speech_duration_ms,
            "min_silence_duration_ms": self.vad_min_silence_duration_ms,
            "speech_pad_ms": self.vad_speech_pad_ms,
        }

    def transcribe_kwargs(
        self,
        *,
        language: str | None,
        word_timestamps: bool,
        hotwords: str | None = None,
        initial_prompt: str | None = None,
        beam_size: int | None = None,
        task: str | None = None,
    ) -> dict[str, Any]:
        """Keyword arguments for faster-whisper's ``transcribe``, also recorded as decoding params.

        Args:
            language: The language to force, or ``None`` to detect.
            word_timestamps: Whether to align words.
            hotwords: Words to favour; ``None`` uses the configured ones.
            initial_prompt: Prompt of the first window; ``None`` uses the configured one.
            beam_size: Beam width; ``None`` uses the configured one.
            task: ``translate`` for English text from any language; ``None`` transcribes.

        Returns:
            JSON-ready keyword arguments (lists, not tuples, so the record equals what was passed).
            Prompt keys appear only when a prompt is set.
        """
        kwargs: dict[str, Any] = {
            "task": task or "transcribe",
            "language": language,
            "beam_size": self.beam_size if beam_size is None else beam_size,
            "temperature": list(self.temperatures),
            "condition_on_previous_text": self.condition_on_previous_text,
            "word_timestamps": word_timestamps,
            "vad_filter": self.vad_filter,
            "max_new_tokens": self.max_new_tokens,
        }
        if self.vad_filter:
            kwargs["vad_parameters"] = self.vad_parameters()
        if self.batch_size is not None:
            kwargs["batch_size"] = self.batch_size
        if hotwords := hotwords or self.hotwords:
            kwargs["hotwords"] = hotwords
        if initial_prompt := initial_prompt or self.initial_prompt:
            kwargs["initial_prompt"] = initial_prompt
        return kwargs


def whisper_variants(settings: Settings) -> tuple[Variant, ...]:
    """The Whisper models a request can choose from, default first, each with the settings that load it.

    With MAIE_WHISPER_MODELS unset, the one model (MAIE_WHISPER_MODEL, or the default for the
    device) is the only variant, named after the model.
    """
    whisper = settings.whisper
    named = whisper.model_variants()
    if not named:
        options = WhisperOptions.resolve(whisper, settings.storage.data_dir)
        return (Variant(options.variant, options.model, settings),)
    return tuple(
        Variant(name, model, msgspec.structs.replace(settings, whisper=whisper.with_default_variant(name)))
        for name, model in named
    )
