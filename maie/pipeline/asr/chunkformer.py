"""The ``chunkformer`` ASR backend: ChunkFormer long-form CTC ASR (extra ``chunkformer``).

ChunkFormer (masked chunking Conformer) transcribes hours of audio in bounded memory; its default
model is Vietnamese. The library's own entry points are used: ``endless_decode`` for one recording
(segments with start and end times when ``MAIE_CHUNKFORMER_RETURN_TIMESTAMPS`` is on) and
``batch_decode`` for several recordings at once (text only, so it is used for batches when
timestamps are off; with timestamps on, a batch is decoded recording by recording on the one
loaded model). torch, torchaudio and chunkformer are imported in ``load()`` only; torchaudio
through :func:`~maie.pipeline.asr.torchaudio_cpu.import_torchaudio`, so the CUDA-built wheels of
the package index still import under a CPU build of torch (docs/asr.md, "ChunkFormer on a CPU").
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import structlog

from maie.errors import ModelLoadError, PermanentError
from maie.pipeline.asr.base import AsrBackend, AsrInput, Availability, BackendSpec
from maie.pipeline.asr.checkpoint import files_hash
from maie.pipeline.asr.chunkformer_options import (
    CHECKPOINT_NAMES,
    COMPUTE_TYPE,
    INSTALL_HINT,
    ChunkformerOptions,
    locate,
    model_problem,
    torch_stack,
)
from maie.pipeline.asr.segments import whole_segment
from maie.pipeline.asr.wav_windows import SAMPLE_RATE, WavWindows
from maie.pipeline.model_names import public_location
from maie.schemas import AsrArtifact, AsrVersion, Segment

if TYPE_CHECKING:
    from collections.abc import Hashable, Sequence

    import numpy.typing as npt

    from maie.config import Settings

__all__ = ["SPEC", "ChunkformerBackend", "check_availability", "create_chunkformer_backend", "parse_clock"]

log = structlog.get_logger(__name__)


class ChunkformerBackend(AsrBackend[ChunkformerOptions]):
    """ChunkFormer as a stage: ``load()`` the model, ``process()`` WAVs, ``unload()``."""

    backend_id = "chunkformer"

    def __init__(self, options: ChunkformerOptions) -> None:
        super().__init__(options)
        self._model: Any = None
        self._model_dir: Path | None = None
        self._checkpoint: str | None = None
        self._device = options.device
        self._device_fallback = options.device_fallback

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._model is not None

    def cache_key(self) -> Hashable:
        """The backend id and the full options."""
        return (self.backend_id, self.options)

    def load(self) -> None:
        """Import the stack, locate (or download) the model, move it to the device, hash it.

        Raises:
            ModelLoadError: when the stack cannot be imported, the model is absent or unreadable,
                or a forced CUDA device cannot be used.
        """
        if self._model is not None:
            return
        opts = self.options
        started = time.perf_counter()
        try:
            from maie.pipeline.asr.torchaudio_cpu import import_torchaudio  # noqa: PLC0415

            import_torchaudio()
            from chunkformer import ChunkFormerModel  # noqa: PLC0415 - optional extra, heavy
        except (ImportError, OSError, RuntimeError) as exc:
            raise ModelLoadError(f"chunkformer cannot be imported ({exc}); {INSTALL_HINT}") from exc
        try:
            model_dir = locate(opts)
            model = ChunkFormerModel.from_pretrained(str(model_dir))
            checkpoint = files_hash(_model_files(model_dir), cache_dir=opts.cache_dir)
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            raise ModelLoadError(f"cannot load ChunkFormer model {opts.model!r}: {exc}") from exc
        self._model = self._to_device(model).eval()
        self._model_dir, self._checkpoint = model_dir, checkpoint
        log.info(
            "asr.loaded",
            backend="chunkformer",
            model=opts.variant,
            model_path=str(model_dir),
            device=self._device,
            load_s=round(time.perf_counter() - started, 3),
        )

    def _to_device(self, model: Any) -> Any:  # noqa: ANN401 - torch module
        """Move ``model`` to the chosen device; an ``auto`` CUDA that fails falls back to CPU."""
        if self._device != "cuda":
            return model
        try:
            return model.to("cuda")
        except (RuntimeError, AssertionError) as exc:  # torch raises AssertionError without CUDA
            if not self.options.device_auto:
                raise ModelLoadError(
                    f"MAIE_CHUNKFORMER_DEVICE=cuda but CUDA is not usable ({exc}); set it to auto or cpu"
                ) from exc
            self._device, self._device_fallback = "cpu", f"cuda→cpu: {exc}"
            log.warning("asr.device_fallback", backend="chunkformer", reason=self._device_fallback)
            return model.to("cpu")

    def unload(self) -> None:
        """Drop the model and give its memory back. Safe to call when nothing is loaded."""
        if self._model is None:
            return
        self._model = None
        gc.collect()
        torch = sys.modules.get("torch")
        if self._device == "cuda" and torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
        log.info("asr.unloaded", backend="chunkformer", model=self.options.variant)

    def version_info(self) -> AsrVersion:
        """The loaded model with the configured decoding."""
        return self._version("endless_decode")

    def process(self, data: AsrInput) -> AsrArtifact:
        """Transcribe one recording with ``endless_decode``, window by window.

        ``endless_decode`` loads the whole file and computes its features and CTC output at once
        (memory grows with the length), so a recording longer than ``window_s`` is decoded in
        windows (:mod:`maie.pipeline.asr.wav_windows`), each written to a temporary WAV beside the
        recording; segment times are moved by each window's start.

        Raises:
            RuntimeError: if called before ``load()``.
            PermanentError: if the WAV is missing.
        """
        model = self._require_model()
        _require_wav(data.wav_path)
        opts = self.options
        started = time.perf_counter()
        segments: list[Segment] = []
        texts: list[str] = []
        with WavWindows(data.wav_path, window_s=opts.window_s) as audio:
            for first, samples in audio.windows():
                output = self._decode_window(model, data.wav_path, samples, whole=samples.size == audio.size)
                if opts.return_timestamps:
                    offset = first / SAMPLE_RATE
                    for segment in _timed_segments(output, data.duration_s, offset=offset):
                        segments.append(msgspec.structs.replace(segment, id=len(segments) + 1))
                else:
                    texts.append(str(output).strip())
        elapsed = time.perf_counter() - started
        if not opts.return_timestamps:
            segments = whole_segment(" ".join(t for t in texts if t), data.duration_s)
        return self._artifact(segments, data.duration_s, elapsed, "endless_decode")

    def _decode_window(self, model: Any, wav: Path, samples: npt.NDArray[np.float32], *, whole: bool) -> Any:  # noqa: ANN401 - torch module, library output
        """``endless_decode`` of one window: the recording itself when it is one window, else a copy."""
        opts = self.options
        kwargs = {
            **opts.decode_kwargs(),
            "return_timestamps": opts.return_timestamps,
            "max_silence_duration": opts.max_silence_duration_s,
        }
        if whole:
            return model.endless_decode(str(wav), **kwargs)
        with tempfile.NamedTemporaryFile(
            dir=wav.parent, prefix=f".{wav.stem}.", suffix=".wav", delete=False
        ) as file:
            part = Path(file.name)
        try:
            with wave.open(str(part), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(SAMPLE_RATE)
                out.writeframes(np.round(samples * 32768.0).astype("<i2").tobytes())
            return model.endless_decode(str(part), **kwargs)
        finally:
            part.unlink(missing_ok=True)

    def process_batch(self, items: Sequence[AsrInput]) -> list[AsrArtifact | Exception]:
        """Several recordings: one ``batch_decode`` pass when timestamps are off, else one by one.

        Recordings whose WAV is missing get their error in place and are left out of the pass;
        recordings longer than ``window_s`` are decoded alone, window by window (``batch_decode``
        holds each recording whole).
        """
        if self.options.return_timestamps or len(items) < 2:  # noqa: PLR2004 - one item needs no batch
            return super().process_batch(items)
        model = self._require_model()
        results: list[AsrArtifact | Exception] = []
        ready: list[tuple[int, AsrInput]] = []
        for index, item in enumerate(items):
            if item.duration_s > self.options.window_s:
                results.extend(super().process_batch([item]))
                continue
            try:
                _require_wav(item.wav_path)
            except PermanentError as exc:
                results.append(exc)
                continue
            results.append(PermanentError("not decoded"))  # replaced below
            ready.append((index, item))
        if not ready:
            return results
        started = time.perf_counter()
        texts = model.batch_decode([str(item.wav_path) for _, item in ready], **self.options.decode_kwargs())
        elapsed = time.perf_counter() - started
        total = sum(item.duration_s for _, item in ready) or 1.0
        for (index, item), text in zip(ready, texts, strict=True):
            share = elapsed * item.duration_s / total  # the pass's time, split by audio length
            results[index] = self._artifact(
                whole_segment(text, item.duration_s), item.duration_s, share, "batch_decode"
            )
        log.info(
            "asr.batch_decoded",
            backend="chunkformer",
            recordings=len(ready),
            processing_time_s=round(elapsed, 3),
        )
        return results

    def _require_model(self) -> Any:  # noqa: ANN401 - torch module
        if self._model is None:
            msg = "ChunkformerBackend used before load()"
            raise RuntimeError(msg)
        return self._model

    def _artifact(self, segments: list[Segment], duration: float, elapsed: float, method: str) -> AsrArtifact:
        log.info(
            "asr.finished",
            backend="chunkformer",
            duration_s=round(duration, 3),
            processing_time_s=round(elapsed, 3),
            rtf=round(elapsed / duration, 4) if duration > 0 else None,
            segments=len(segments),
        )
        return AsrArtifact(
            text=" ".join(seg.text for seg in segments),
            segments=segments,
            language=self.options.language,
            duration_s=duration,
            processing_time_s=elapsed,
            version=self._version(method),
        )

    def _version(self, method: str) -> AsrVersion:
        if self._model_dir is None or self._checkpoint is None:
            msg = "the checkpoint is known only after load()"
            raise RuntimeError(msg)
        opts = self.options
        return AsrVersion(
            name="chunkformer",
            model_variant=opts.variant,
            model_path=public_location(self._model_dir),
            checkpoint_hash=self._checkpoint,
            compute_type=COMPUTE_TYPE,
            device=self._device,
            decoding_params={
                "method": method,
                **opts.decode_kwargs(),
                "return_timestamps": opts.return_timestamps and method == "endless_decode",
                "max_silence_duration_s": opts.max_silence_duration_s,
            },
            fallback=self._device_fallback,
        )


def parse_clock(value: str) -> float:
    """ChunkFormer's ``hh:mm:ss:mmm`` timestamps in seconds.

    Raises:
        ValueError: if ``value`` is not four colon-separated numbers.
    """
    hours, minutes, seconds, millis = (int(part) for part in value.split(":"))
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def _timed_segments(items: Any, duration: float, *, offset: float = 0.0) -> list[Segment]:  # noqa: ANN401 - library output
    """``[{"decode", "start", "end"}, ...]`` as segments, moved by ``offset`` s, clamped to the recording."""
    segments: list[Segment] = []
    for item in items:
        text = str(item["decode"]).strip()
        if not text:
            continue
        start = min(max(offset + parse_clock(item["start"]), 0.0), duration)
        end = min(max(offset + parse_clock(item["end"]), start), duration)
        segments.append(Segment(id=len(segments) + 1, start=start, end=end, text=text))
    return segments


def _require_wav(path: Path) -> None:
    if not path.is_file():
        raise PermanentError(f"preprocessed audio {path} is missing")


def _model_files(model_dir: Path) -> list[Path]:
    """Files that shape the output: the weights, config, vocabulary and CMVN statistics if present."""
    weights = next(model_dir / n for n in CHECKPOINT_NAMES if (model_dir / n).is_file())
    extra = [model_dir / n for n in ("config.yaml", "vocab.txt", "global_cmvn") if (model_dir / n).is_file()]
    return [weights, *extra]


def create_chunkformer_backend(settings: Settings) -> ChunkformerBackend:
    """Build an unloaded ChunkFormer backend (no model I/O; ``auto`` asks torch once per process)."""
    return ChunkformerBackend(ChunkformerOptions.from_settings(settings))


def check_availability(settings: Settings) -> Availability:
    """Whether ChunkFormer can run: the stack imports, the device is usable, the model is there."""
    stack = torch_stack()
    opts = ChunkformerOptions.from_settings(settings, stack=stack)
    reason = stack.problem
    if reason is None and opts.device == "cuda" and stack.cuda_devices == 0:
        reason = (
            f"MAIE_CHUNKFORMER_DEVICE=cuda but torch cannot use CUDA here ({stack.cuda_reason}); "
            "set MAIE_CHUNKFORMER_DEVICE=auto or cpu"
        )
    if reason is None:
        reason = model_problem(opts)
    return Availability(
        variant=opts.model,
        device=opts.device,
        compute_type=COMPUTE_TYPE,
        reason=reason,
        languages=(opts.language,),
    )


#: Registry entry of this backend.
SPEC = BackendSpec(
    backend_id="chunkformer",
    name="ChunkFormer (masked chunking Conformer, CTC)",
    description=(
        "Long-form ASR for hours of audio in bounded memory; Vietnamese by default. Segments with "
        "times; several recordings per pass with batch_decode. Runs on CUDA or CPU (torch)."
    ),
    capabilities=("long_form", "batch_decode"),
    languages=None,
    hardware=("cuda", "cpu"),
    factory=create_chunkformer_backend,
    probe=check_availability,
)
