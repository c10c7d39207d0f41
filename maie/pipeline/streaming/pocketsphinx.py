"""Live PocketSphinx: the library's own endpointer and incremental decoder.

PocketSphinx decodes as audio arrives: its ``Endpointer`` (the same voice activity detector, with
the same ``MAIE_POCKETSPHINX_VAD_*`` settings, as the batch backend's ``Segmenter``) hands over
speech frames; the first opens an utterance (``start_utt``), each is decoded (``process_raw``),
the current best hypothesis (``hyp``) is the partial, and the end of speech ends the utterance
(``end_utt``), whose text and word alignment become the final segment, built by the batch
backend's own :func:`~maie.pipeline.asr.pocketsphinx.utterance_segment`.

Cepstral mean normalisation needs care. The shipped model normalises each utterance by its own
mean (``-cmn batch``), which batch decoding can do because it passes utterances whole
(``full_utt=True``). Live decoding cannot: the first block of audio that is not a whole utterance
switches the decoder to a running estimate for good (``feat_cmn`` in PocketSphinx's ``feat.c``).
That estimate starts at the model's ``cmninit``, far from real recordings, and moves only after
800 frames (8 s) or at the end of an utterance, which wrecked the first utterance (jfk: WER 109
live against 32 in batch). So each session starts with fresh feature state (``reinit_feat``,
which also restores batch mode), holds back its first second of speech, measures its mean with a
batch-mode pass that does no search, and then decodes from the start of that speech; later
utterances follow the running estimate. Holding back delays only the first partial.

That is enough for wideband audio (16 kHz and up), where live finals were as accurate as batch
(docs/streaming.md). Narrowband audio (a PCM client below 16 kHz, upsampled for the 16 kHz model)
is not: the running estimate stays far from each utterance's own mean (jfk at 8 kHz: WER 91 live,
64 batch). For such sessions the partials still come from the live pass, but the final is the
utterance decoded once more, whole and in batch mode, exactly as batch decoding does it; that
costs a second decode, and its time is added to the final's latency.

A ``Decoder`` holds its utterance's state and takes about 90 MiB and half a second to load, so
sessions lease one from a :class:`DecoderPool` that keeps them loaded between sessions; a lease
starts from fresh feature state, so nothing carries over between sessions. The binding holds the
GIL while it decodes, so the engine runs this recognizer in a child process
(:mod:`maie.pipeline.streaming.process`), never in a thread of a server.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from maie.pipeline.asr.pocketsphinx import SAMPLE_RATE, utterance_segment
from maie.pipeline.streaming.options import Encoding
from maie.pipeline.streaming.recognizer import Recognizer

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

    from maie.pipeline.asr.pocketsphinx import PocketsphinxBackend
    from maie.pipeline.streaming.events import StreamEvent
    from maie.pipeline.streaming.options import StreamOptions, StreamRequest

__all__ = ["CALIBRATION_S", "DecoderPool", "PocketsphinxRecognizer"]

#: Seconds of a session's first speech its cepstral mean is measured on before decoding starts.
CALIBRATION_S = 1.0
#: Encodings whose request rate is the audio's real bandwidth.
_PCM = (Encoding.PCM_S16LE, Encoding.PCM_F32LE)


class DecoderPool:
    """Loaded PocketSphinx backends, one per session at a time, kept for the next. Thread-safe.

    Args:
        factory: Builds an unloaded backend (the registry's, so batch and live share settings).
        max_idle: Loaded decoders kept while no session uses them; more are unloaded on release.
    """

    def __init__(self, factory: Callable[[], PocketsphinxBackend], *, max_idle: int = 4) -> None:
        self._factory = factory
        self._max_idle = max_idle
        self._idle: list[PocketsphinxBackend] = []
        self._lock = threading.Lock()

    def acquire(self) -> PocketsphinxBackend:
        """A loaded backend for one session, its feature state fresh (loading a new one takes ~0.5 s)."""
        with self._lock:
            backend = self._idle.pop() if self._idle else None
        if backend is None:
            backend = self._factory()
            backend.load()
        # Fresh cepstral mean and batch normalisation, whatever the last session did.
        backend.decoder.reinit_feat()
        return backend

    def release(self, backend: PocketsphinxBackend) -> None:
        """Take a backend back (its utterance must be ended)."""
        with self._lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(backend)
                return
        backend.unload()

    def close(self) -> None:
        """Unload the idle decoders."""
        with self._lock:
            idle, self._idle = self._idle, []
        for backend in idle:
            backend.unload()


class PocketsphinxRecognizer(Recognizer):
    """One session on a leased PocketSphinx decoder.

    Args:
        pool: Where the decoder is leased from and given back to on :meth:`close`.
        request: The session's choices.
        stream: Partial cadence.
    """

    def __init__(self, pool: DecoderPool, request: StreamRequest, stream: StreamOptions) -> None:
        super().__init__(word_timestamps=request.word_timestamps)
        from pocketsphinx import Endpointer  # noqa: PLC0415 - optional extra, loaded on demand

        self._pool = pool
        self._backend: PocketsphinxBackend | None = pool.acquire()
        self._decoder = self._backend.decoder
        opts = self._backend.options
        self._language = opts.language
        self._endpointer = Endpointer(
            window=opts.vad_window_s, ratio=opts.vad_ratio, vad_mode=opts.vad_mode, sample_rate=SAMPLE_RATE
        )
        self._frame_bytes: int = self._endpointer.frame_bytes
        self._buffer = bytearray()
        self._interval = round(stream.partial_interval_s * SAMPLE_RATE)
        self._position = 0
        self._last_partial = 0
        self._utterance_start: float | None = None
        self._decoding = False
        #: First speech, held back until the cepstral mean is measured (``None`` once it is).
        self._held: bytearray | None = bytearray()
        #: The open utterance's speech, kept when its final is decoded again whole (narrowband).
        self._utterance: bytearray | None = (
            bytearray() if request.encoding in _PCM and request.sample_rate < SAMPLE_RATE else None
        )

    @property
    def language(self) -> str | None:
        """The model's language (``MAIE_POCKETSPHINX_LANGUAGE``)."""
        return self._language

    def accept(self, samples: np.ndarray) -> list[StreamEvent]:
        """Feed whole endpointer frames; report the open utterance's hypothesis now and then."""
        self._buffer += samples.astype("<i2", copy=False).tobytes()
        self._position += samples.size
        events: list[StreamEvent] = []
        size = self._frame_bytes
        whole = len(self._buffer) - len(self._buffer) % size
        for offset in range(0, whole, size):
            events += self._speech(self._endpointer.process(bytes(self._buffer[offset : offset + size])))
        del self._buffer[:whole]
        start = self._utterance_start
        if self._decoding and start is not None and self._position - self._last_partial >= self._interval:
            self._last_partial = self._position
            hypothesis = self._decoder.hyp()
            text = hypothesis.hypstr if hypothesis is not None else ""
            events += self._partial(text, start, self._position / SAMPLE_RATE)
        return events

    def finish(self) -> list[StreamEvent]:
        """Hand the endpointer the last samples and end an utterance still open."""
        if not self._endpointer.in_speech:
            return []
        # end_stream needs at least one sample; one of silence changes nothing.
        tail = bytes(self._buffer) or b"\0\0"
        self._buffer.clear()
        return self._speech(self._endpointer.end_stream(tail), ended=True)

    def close(self) -> None:
        """End a dangling utterance and give the decoder back."""
        if self._backend is None:
            return
        if self._decoding:
            self._decoder.end_utt()
            self._decoding = False
        backend, self._backend = self._backend, None
        self._pool.release(backend)

    def _speech(self, speech: bytes | None, *, ended: bool = False) -> list[StreamEvent]:
        """Decode what the endpointer let through; end the utterance where speech stopped."""
        if speech is None:
            return []
        if self._utterance_start is None:
            self._utterance_start = float(self._endpointer.speech_start)
            self._last_partial = self._position
        over = ended or not self._endpointer.in_speech
        if self._held is not None:
            self._held += speech
            if len(self._held) < CALIBRATION_S * SAMPLE_RATE * 2 and not over:
                return []
            speech, self._held = bytes(self._held), None
            self._calibrate(speech)
        if not self._decoding:
            self._decoder.start_utt()
            self._decoding = True
        self._decoder.process_raw(speech)
        if self._utterance is not None:
            self._utterance += speech
        return self._end_utterance() if over else []

    def _calibrate(self, speech: bytes) -> None:
        """Set the cepstral mean from ``speech``: a batch-mode pass, features only (no search)."""
        self._decoder.start_utt()
        self._decoder.process_raw(speech, no_search=True, full_utt=True)
        self._decoder.end_utt()

    def _end_utterance(self) -> list[StreamEvent]:
        self._decoder.end_utt()
        self._decoding = False
        if self._utterance is not None:
            speech, self._utterance = bytes(self._utterance), bytearray()
            self._decoder.reinit_feat()  # back to batch normalisation for this one decode
            self._decoder.start_utt()
            self._decoder.process_raw(speech, full_utt=True)
            self._decoder.end_utt()
        start, self._utterance_start = self._utterance_start or 0.0, None
        end = float(self._endpointer.speech_end)
        segment = utterance_segment(
            self._decoder,
            self._segments + 1,
            start,
            end,
            limit=max(self._position / SAMPLE_RATE, end),
            want_words=self.word_timestamps,
        )
        return self._final("", start, end) if segment is None else self._commit(segment)
