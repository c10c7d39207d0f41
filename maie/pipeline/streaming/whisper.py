"""Live Whisper: Silero endpointing, and LocalAgreement-2 over a re-decoded, growing window.

Whisper has no incremental decoder, so a live session decodes its open window again as audio
arrives (at most every ``partial_interval_s``) and keeps what two consecutive decodes agree on
(:mod:`maie.pipeline.streaming.agreement`). The window is the current stretch of speech: it opens
when Silero hears speech (with ``MAIE_WHISPER_VAD_SPEECH_PAD_MS`` of audio before it) and closes
after ``MAIE_STREAM_ENDPOINT_SILENCE_MS`` of silence, when one last decode of the whole window
commits everything and the segment becomes final. A long stretch without a pause is cut where a
committed Whisper segment ends once the window passes ``MAIE_STREAM_WINDOW_TRIM_S`` (that part
becomes final), and at Whisper's 30 s window at the latest.

Each decode is prompted with the end of the text committed before the window (Whisper's
``initial_prompt``), as whisper_streaming does, so the style and spelling carry over. Decoding
options are the batch backend's (``MAIE_WHISPER_*``), with word timestamps on (agreement needs
word times) and faster-whisper's own VAD off (the window is speech already). A language left open
is detected on the first decode and kept for the session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from maie.pipeline.streaming.agreement import HypothesisBuffer, TimedWord
from maie.pipeline.streaming.options import SAMPLE_RATE
from maie.pipeline.streaming.recognizer import Recognizer
from maie.pipeline.streaming.vad import SpeechGate

if TYPE_CHECKING:
    from maie.pipeline.asr.whisper_options import WhisperOptions
    from maie.pipeline.streaming.events import StreamEvent
    from maie.pipeline.streaming.options import StreamOptions, StreamRequest
    from maie.pipeline.streaming.vad import SileroVad

__all__ = ["WhisperRecognizer"]

#: Longest window, in samples: Whisper sees 30 s at once; a little less leaves room for padding.
_MAX_WINDOW = 28 * SAMPLE_RATE
#: Characters of committed text given as the prompt (whisper_streaming's choice).
_PROMPT_CHARS = 200
#: int16 full scale, to turn samples into floats in [-1, 1].
_FULL_SCALE = 32768.0


class WhisperRecognizer(Recognizer):
    """One session on a shared faster-whisper model.

    Args:
        model: The loaded ``faster_whisper.WhisperModel`` (shared; see ``WhisperBackend.model``).
        options: The batch backend's options (decoding parameters, VAD threshold and padding).
        request: The session's choices.
        stream: Cadence and trimming.
        vad: The process's Silero model.
    """

    def __init__(
        self,
        model: Any,  # noqa: ANN401 - faster-whisper is untyped
        options: WhisperOptions,
        request: StreamRequest,
        stream: StreamOptions,
        vad: SileroVad,
    ) -> None:
        super().__init__(word_timestamps=request.word_timestamps)
        self._model = model
        kwargs = options.transcribe_kwargs(
            language=request.language or options.language, word_timestamps=True, hotwords=request.hotwords
        )
        for key in ("vad_parameters", "batch_size", "initial_prompt"):
            kwargs.pop(key, None)
        kwargs["vad_filter"] = False
        self._kwargs = kwargs
        self._initial_prompt = request.initial_prompt or options.initial_prompt
        self._vad = vad.stream()
        self._gate = SpeechGate(threshold=options.vad_threshold, min_silence_ms=stream.endpoint_silence_ms)
        self._pad = SAMPLE_RATE * options.vad_speech_pad_ms // 1000
        self._min_speech = SAMPLE_RATE * options.vad_min_speech_duration_ms // 1000
        self._interval = round(stream.partial_interval_s * SAMPLE_RATE)
        self._trim = round(stream.window_trim_s * SAMPLE_RATE)
        #: Audio from sample ``_start`` to ``_position``: the open window, or recent pre-roll.
        self._audio = np.zeros(0, dtype=np.float32)
        self._start = 0
        self._position = 0
        self._vad_at = 0
        self._last_decode = 0
        self._hypothesis = HypothesisBuffer()
        #: Committed words of the open segment, not final yet.
        self._pending: list[TimedWord] = []
        self._committed_text = ""

    @property
    def language(self) -> str | None:
        """The forced language, or the one detected on the first decode."""
        language: str | None = self._kwargs["language"]
        return language

    def accept(self, samples: np.ndarray) -> list[StreamEvent]:
        """Run VAD over the new samples, close finished speech, and re-decode an open window."""
        audio = samples.astype(np.float32) / _FULL_SCALE
        self._audio = np.concatenate((self._audio, audio))
        self._position += audio.size
        events: list[StreamEvent] = []
        for prob in self._vad.push(audio):
            at, self._vad_at = self._vad_at, self._vad_at + 512
            change = self._gate.update(float(prob), at)
            if change == "start":
                self._open(max(at - self._pad, self._start))
            elif change == "end":
                events += self._close(min(self._gate.end + self._pad, self._position), self._gate.end)
            elif self._gate.in_speech and at - self._start >= _MAX_WINDOW:
                events += self._close(at, at, reopen=True)
        if not self._gate.in_speech:
            self._keep_from(max(self._position - self._pad, self._start))
        elif self._position - self._last_decode >= self._interval:
            events += self._update()
        return events

    def finish(self) -> list[StreamEvent]:
        """Close the open window at the end of the audio."""
        return self._close(self._position, self._position) if self._gate.in_speech else []

    def _open(self, start: int) -> None:
        self._keep_from(start)
        self._hypothesis = HypothesisBuffer(committed_until=start / SAMPLE_RATE)
        self._pending = []
        self._last_decode = self._gate.start

    def _keep_from(self, sample: int) -> None:
        """Drop audio before ``sample``."""
        if sample > self._start:
            self._audio = self._audio[sample - self._start :]
            self._start = sample

    def _update(self) -> list[StreamEvent]:
        """Decode the open window, commit what agrees, cut a long window, report the open text."""
        self._last_decode = self._position
        words, ends = self._decode(self._audio, self._start)
        self._hypothesis.insert(words)
        self._pending += self._hypothesis.flush()
        events: list[StreamEvent] = []
        if self._position - self._start > self._trim and self._pending:
            events += self._cut(ends)
        shown = self._pending + self._hypothesis.tentative
        start = shown[0].start if shown else self._start / SAMPLE_RATE
        events += self._partial(_text(shown), start, self._position / SAMPLE_RATE, _text(self._pending))
        return events

    def _cut(self, segment_ends: list[float]) -> list[StreamEvent]:
        """Make the committed words up to a Whisper segment end final and drop their audio."""
        committed_until = self._hypothesis.committed_until
        # Not after the last segment: its end is where the window stops, not a boundary.
        cuts = [end for end in segment_ends[:-1] if end <= committed_until]
        if not cuts:
            return []
        cut = cuts[-1]
        done = [w for w in self._pending if w.end <= cut]
        if not done:
            return []
        self._pending = self._pending[len(done) :]
        self._hypothesis.forget_until(cut)
        self._keep_from(round(cut * SAMPLE_RATE))
        self._remember(done)
        return self._final(_text(done), done[0].start, cut, done)

    def _close(self, end: int, speech_end: int, *, reopen: bool = False) -> list[StreamEvent]:
        """Decode the window up to sample ``end`` once more and make all of it final.

        The segment ends with its last word, or where speech ended (``speech_end``, before the
        padding) if that is later: what the recognizer heard, not the silence after it.
        """
        start = self._start
        audio = self._audio[: max(end - start, 0)]
        speech = speech_end - max(self._gate.start, start)
        words: list[TimedWord] = list(self._pending)
        if audio.size and (speech >= self._min_speech or self._partial_open):
            decoded, _ = self._decode(audio, start)
            self._hypothesis.insert(decoded)
            words += self._hypothesis.flush() + self._hypothesis.tentative
        self._remember(words)
        events = self._final(
            _text(words),
            words[0].start if words else start / SAMPLE_RATE,
            max(words[-1].end if words else 0.0, speech_end / SAMPLE_RATE),
            words,
        )
        self._keep_from(end)
        if reopen:
            self._open(end)
        else:
            self._pending = []
        return events

    def _decode(self, audio: np.ndarray, start: int) -> tuple[list[TimedWord], list[float]]:
        """Whisper's words and segment ends for ``audio`` beginning at sample ``start``."""
        offset, length = start / SAMPLE_RATE, audio.size / SAMPLE_RATE
        prompt = self._committed_text[-_PROMPT_CHARS:].strip() or self._initial_prompt
        segments, info = self._model.transcribe(audio, initial_prompt=prompt, **self._kwargs)
        # faster-whisper decodes lazily: the work happens here, consumed once.
        segments = list(segments)
        if self._kwargs["language"] is None:
            self._kwargs["language"] = info.language
        words = [
            TimedWord(
                offset + min(float(w.start), length),
                offset + min(max(float(w.end), float(w.start)), length),
                w.word,
                float(w.probability),
            )
            for segment in segments
            for w in segment.words or ()
        ]
        return words, [offset + min(float(s.end), length) for s in segments]

    def _remember(self, words: list[TimedWord]) -> None:
        """Add final words to the text later windows are prompted with."""
        self._committed_text = (self._committed_text + _text(words, strip=False))[-4 * _PROMPT_CHARS :]


def _text(words: list[TimedWord], *, strip: bool = True) -> str:
    """Words as text: Whisper's words carry their own leading spaces."""
    text = "".join(w.text for w in words)
    return text.strip() if strip else text
