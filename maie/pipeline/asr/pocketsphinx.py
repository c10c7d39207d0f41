"""The ``pocketsphinx`` ASR backend: CMU PocketSphinx, a small offline recognizer (extra ``pocketsphinx``).

Its wheel ships a US English acoustic model, language model and dictionary, so it runs anywhere
with no download and no GPU. Accuracy is far below Whisper; MAIE uses it as a CPU fallback and as
the real recognizer of its test suite, where a word error rate against reference transcripts
catches preprocessing that damages audio (see docs/asr.md).

Decoding follows the library's recipe for long audio: its voice activity ``Endpointer`` splits the
WAV into utterances (at most :data:`MAX_UTTERANCE_S` long, so memory stays bounded), and the
``Decoder`` transcribes each one; an utterance becomes a segment, its words (with times and
posterior probabilities) come from the decoder's word alignment.
"""

from __future__ import annotations

import time
import wave
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from maie.errors import ModelLoadError, PermanentError
from maie.pipeline.asr.base import AsrBackend, AsrInput, Availability, BackendSpec, missing_library
from maie.pipeline.asr.checkpoint import files_hash
from maie.pipeline.asr.pocketsphinx_options import COMPUTE_TYPE, INSTALL_HINT, PocketsphinxOptions
from maie.pipeline.asr.segments import clamp, weighted_confidence
from maie.pipeline.model_names import public_location
from maie.schemas import AsrArtifact, AsrVersion, Segment, Word

if TYPE_CHECKING:
    from collections.abc import Hashable, Iterator
    from pathlib import Path

    from maie.config import Settings

__all__ = [
    "SAMPLE_RATE",
    "SPEC",
    "PocketsphinxBackend",
    "PocketsphinxOptions",
    "check_availability",
    "create_pocketsphinx_backend",
    "utterance_segment",
]

#: Sample rate the shipped acoustic model was trained on, and the rate MAIE's WAVs have.
SAMPLE_RATE = 16000
#: Decoder frames per second (PocketSphinx's default ``-frate``): word times are in these frames.
FRAMES_PER_SECOND = 100
#: Longest utterance decoded at once, in seconds; longer speech is cut, so memory stays bounded.
MAX_UTTERANCE_S = 60.0

log = structlog.get_logger(__name__)


class PocketsphinxBackend(AsrBackend[PocketsphinxOptions]):
    """PocketSphinx as a stage: ``load()`` the decoder, ``process()`` WAVs, ``unload()``."""

    backend_id = "pocketsphinx"

    def __init__(self, options: PocketsphinxOptions) -> None:
        super().__init__(options)
        self._decoder: Any = None
        self._checkpoint: str | None = None

    @property
    def loaded(self) -> bool:
        """Whether the decoder is in memory."""
        return self._decoder is not None

    @property
    def decoder(self) -> Any:  # noqa: ANN401 - pocketsphinx is untyped
        """The loaded ``pocketsphinx.Decoder``, for callers that feed it themselves.

        A decoder holds the state of the utterance it is decoding, so it serves one caller at a
        time; live sessions lease one backend each.

        Raises:
            RuntimeError: if called before ``load()``.
        """
        if self._decoder is None:
            msg = "PocketsphinxBackend.decoder used before load()"
            raise RuntimeError(msg)
        return self._decoder

    def cache_key(self) -> Hashable:
        """The backend id and the full options (all of them shape the output)."""
        return (self.backend_id, self.options)

    def load(self) -> None:
        """Load the acoustic model, language model and dictionary, and hash them.

        Raises:
            ModelLoadError: when the library is missing or a model file is absent or unreadable.
        """
        if self._decoder is not None:
            return
        if problem := missing_library("pocketsphinx", hint=INSTALL_HINT):
            raise ModelLoadError(problem)
        if problem := self.options.problem():
            raise ModelLoadError(problem)
        from pocketsphinx import Decoder  # noqa: PLC0415 - optional extra, loaded on demand

        opts = self.options
        started = time.perf_counter()
        try:
            decoder = Decoder(
                hmm=str(opts.model),
                lm=str(opts.lm),
                dict=str(opts.dictionary),
                samprate=SAMPLE_RATE,
                loglevel="FATAL",
            )
            checkpoint = files_hash(opts.model_files(), cache_dir=opts.cache_dir)
        except (OSError, RuntimeError, ValueError) as exc:
            raise ModelLoadError(f"cannot load the PocketSphinx model {str(opts.model)!r}: {exc}") from exc
        self._decoder, self._checkpoint = decoder, checkpoint
        log.info(
            "asr.loaded",
            backend="pocketsphinx",
            model=opts.model.name,
            model_path=str(opts.model),
            load_s=round(time.perf_counter() - started, 3),
        )

    def unload(self) -> None:
        """Drop the decoder. Safe to call when nothing is loaded."""
        if self._decoder is None:
            return
        self._decoder = None
        log.info("asr.unloaded", backend="pocketsphinx", model=self.options.model.name)

    def version_info(self) -> AsrVersion:
        """The loaded model with the configured decoding."""
        return self._version(word_timestamps=False)

    def process(self, data: AsrInput) -> AsrArtifact:
        """Transcribe ``data.wav_path`` utterance by utterance.

        Raises:
            RuntimeError: if called before ``load()``.
            PermanentError: if the WAV is missing or not 16 kHz mono 16-bit.
        """
        if self._decoder is None:
            msg = "PocketsphinxBackend.process() called before load()"
            raise RuntimeError(msg)
        from pocketsphinx import Endpointer  # noqa: PLC0415 - optional extra, loaded on demand

        opts = self.options
        want_words = bool(data.word_timestamps)
        started = time.perf_counter()
        # Feature extraction keeps state between utterances (noise estimate, cepstral mean), so
        # without a reset a transcript would depend on the recordings this decoder heard before.
        self._decoder.reinit_feat()
        endpointer = Endpointer(
            window=opts.vad_window_s, ratio=opts.vad_ratio, vad_mode=opts.vad_mode, sample_rate=SAMPLE_RATE
        )
        segments: list[Segment] = []
        speech_s = 0.0
        with _OpenWav(data.wav_path) as (reader, duration):
            for utterance in utterances(reader, endpointer):
                speech_s += utterance.end_time - utterance.start_time
                segment = self._decode(utterance, len(segments) + 1, duration, want_words=want_words)
                if segment is not None:
                    segments.append(segment)
        elapsed = time.perf_counter() - started
        artifact = AsrArtifact(
            text=" ".join(seg.text for seg in segments),
            segments=segments,
            language=opts.language,
            language_probability=None,
            duration_s=duration,
            vad_coverage=min(speech_s / duration, 1.0) if duration > 0 else None,
            confidence_avg=weighted_confidence(segments),
            processing_time_s=elapsed,
            version=self._version(word_timestamps=want_words),
        )
        log.info(
            "asr.finished",
            backend="pocketsphinx",
            duration_s=round(duration, 3),
            processing_time_s=round(elapsed, 3),
            rtf=round(elapsed / duration, 4) if duration > 0 else None,
            segments=len(segments),
        )
        return artifact

    def _decode(self, utterance: Any, index: int, duration: float, *, want_words: bool) -> Segment | None:  # noqa: ANN401 - pocketsphinx is untyped
        """One utterance of the segmenter as a segment, or ``None`` when nothing was recognised."""
        decoder = self._decoder
        decoder.start_utt()
        decoder.process_raw(utterance.pcm, full_utt=True)
        decoder.end_utt()
        return utterance_segment(
            decoder,
            index,
            float(utterance.start_time),
            float(utterance.end_time),
            limit=duration,
            want_words=want_words,
        )

    def _version(self, *, word_timestamps: bool) -> AsrVersion:
        if self._checkpoint is None:
            msg = "the checkpoint is known only after load()"
            raise RuntimeError(msg)
        opts = self.options
        return AsrVersion(
            name="pocketsphinx",
            model_variant=opts.model.name,
            model_path=public_location(opts.model),
            checkpoint_hash=self._checkpoint,
            compute_type=COMPUTE_TYPE,
            device="cpu",
            decoding_params={
                "lm": public_location(opts.lm),
                "dictionary": public_location(opts.dictionary),
                "vad_mode": opts.vad_mode,
                "vad_window_s": opts.vad_window_s,
                "vad_ratio": opts.vad_ratio,
                "word_timestamps": word_timestamps,
            },
        )


@dataclass(frozen=True, slots=True)
class Utterance:
    """A stretch of speech: its times in the recording and its 16-bit samples."""

    start_time: float
    end_time: float
    pcm: bytes


def utterances(
    reader: _PcmReader,
    endpointer: Any,  # noqa: ANN401 - pocketsphinx is untyped
    *,
    max_s: float = MAX_UTTERANCE_S,
) -> Iterator[Utterance]:
    """The speech of ``reader`` as utterances of at most ``max_s`` seconds, as the endpointer finds them.

    PocketSphinx's own ``Segmenter`` holds an utterance in memory until the speech ends, so a
    recording without a pause (music, noise, a long monologue) was held whole, and speech still
    going on at the very end of a file whose length is a whole number of frames was never
    returned. Here an utterance longer than ``max_s`` is cut (and carried on in the next one),
    and the end of the file closes the last one.
    """
    frame_bytes = endpointer.frame_bytes
    limit = int(max_s * SAMPLE_RATE) * 2
    held: list[bytes] = []
    held_bytes = 0
    emitted = 0  # bytes of the current speech region already returned in earlier pieces
    while True:
        frame = reader.read(frame_bytes)
        last = len(frame) < frame_bytes
        if last:
            # end_stream() wants at least one sample; a sample of silence costs nothing.
            speech = endpointer.end_stream(frame or b"\0\0") if endpointer.in_speech or frame else None
        else:
            speech = endpointer.process(frame)
        if speech is not None:
            held.append(speech)
            held_bytes += len(speech)
        if held and (held_bytes >= limit or not endpointer.in_speech or last):
            start = float(endpointer.speech_start) + emitted / 2 / SAMPLE_RATE
            pcm = b"".join(held)
            yield Utterance(start_time=start, end_time=start + len(pcm) / 2 / SAMPLE_RATE, pcm=pcm)
            emitted = emitted + held_bytes if endpointer.in_speech and not last else 0
            held, held_bytes = [], 0
        if last:
            return


class _PcmReader:
    """``read(n_bytes)`` over a WAV's samples, the stream interface PocketSphinx's Segmenter wants."""

    def __init__(self, wav: wave.Wave_read) -> None:
        self._wav = wav

    def read(self, n_bytes: int) -> bytes:
        return self._wav.readframes(n_bytes // 2)


class _OpenWav:
    """Context manager yielding a PCM reader and the duration of a 16 kHz mono 16-bit WAV."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._wav: wave.Wave_read | None = None

    def __enter__(self) -> tuple[_PcmReader, float]:
        if not self.path.is_file():
            raise PermanentError(f"preprocessed audio {self.path} is missing")
        try:
            self._wav = wave.open(str(self.path), "rb")
        except (wave.Error, EOFError) as exc:
            raise PermanentError(f"preprocessed audio {self.path} is not a readable WAV ({exc})") from exc
        shape = (self._wav.getframerate(), self._wav.getnchannels(), self._wav.getsampwidth())
        if shape != (SAMPLE_RATE, 1, 2):
            self._wav.close()
            raise PermanentError(
                f"preprocessed audio must be 16 kHz mono 16-bit, got {shape} (rate, channels, bytes)"
            )
        return _PcmReader(self._wav), self._wav.getnframes() / SAMPLE_RATE

    def __exit__(self, *exc: object) -> None:
        if self._wav is not None:
            self._wav.close()


def utterance_segment(
    decoder: Any,  # noqa: ANN401 - pocketsphinx is untyped
    index: int,
    start: float,
    end: float,
    *,
    limit: float,
    want_words: bool,
) -> Segment | None:
    """The utterance a decoder has just ended (``end_utt``) as a segment, or ``None`` if it was empty.

    Args:
        decoder: The decoder, after ``end_utt()``.
        index: The segment's id.
        start: Where the utterance started in the recording, in seconds (word frames count from it).
        end: Where it ended.
        limit: The recording's length so far; times are kept within it.
        want_words: Keep the words in the segment (they always give the confidence).
    """
    hypothesis = decoder.hyp()
    if hypothesis is None or not hypothesis.hypstr.strip():
        return None
    words = [
        Word(
            start=(w_start := clamp(start + item.start_frame / FRAMES_PER_SECOND, 0.0, limit)),
            end=clamp(start + (item.end_frame + 1) / FRAMES_PER_SECOND, w_start, limit),
            word=_spelling(item.word),
            probability=clamp(item.prob, 0.0, 1.0),
        )
        for item in decoder.seg()
        if not _is_filler(item.word)
    ]
    start = clamp(start, 0.0, limit)
    return Segment(
        id=index,
        start=start,
        end=clamp(end, start, limit),
        text=hypothesis.hypstr.strip(),
        confidence=sum(w.probability for w in words) / len(words) if words else None,
        words=words if want_words else None,
    )


def _is_filler(word: str) -> bool:
    """Sentence markers (``<s>``), silence (``<sil>``) and noise words (``[NOISE]``, ``++UH++``)."""
    return word.startswith(("<", "[", "+"))


def _spelling(word: str) -> str:
    """``read(2)`` → ``read``: the dictionary marks alternative pronunciations with ``(n)``."""
    base, sep, rest = word.partition("(")
    return base if sep and rest.endswith(")") else word


def create_pocketsphinx_backend(settings: Settings) -> PocketsphinxBackend:
    """Build an unloaded PocketSphinx backend from settings (no model I/O).

    Raises:
        ModelLoadError: if the extra is not installed and no model files are configured.
    """
    return PocketsphinxBackend(PocketsphinxOptions.from_settings(settings))


def check_availability(settings: Settings) -> Availability:
    """Whether PocketSphinx can run: library importable and model files present."""
    ps = settings.pocketsphinx
    variant = str(ps.model or "en-us")
    reason = missing_library("pocketsphinx", hint=INSTALL_HINT)
    if reason is None:
        opts = PocketsphinxOptions.from_settings(settings)
        variant = opts.model.name
        reason = opts.problem()
    return Availability(
        variant=variant, device="cpu", compute_type=COMPUTE_TYPE, reason=reason, languages=(ps.language,)
    )


#: Registry entry of this backend.
SPEC = BackendSpec(
    backend_id="pocketsphinx",
    name="PocketSphinx (CMU Sphinx)",
    description=(
        "Small offline recognizer with a shipped US English model: CPU only, no punctuation, "
        "far less accurate than Whisper. A fallback and the test suite's real recognizer."
    ),
    capabilities=("word_timestamps", "long_form", "vad", "streaming"),
    languages=("en",),
    hardware=("cpu",),
    factory=create_pocketsphinx_backend,
    probe=check_availability,
)
