"""One live transcription: frames in, events out, every sample kept.

The two sides run on different threads. :meth:`StreamSession.push` takes a client frame where it
arrives (the endpoint's event loop: decoding PCM and resampling a 20 ms frame costs tens of
microseconds), writes it to the recording and queues it. :meth:`StreamSession.poll` transcribes
what is queued, in a worker thread, and returns the events. The queue is the bound on how far
transcription may fall behind: past ``max_backlog_s`` of queued audio, ``push`` raises
:class:`~maie.errors.StreamOverflowError`. Past ``max_session_s`` of audio it raises
:class:`~maie.errors.StreamTooLongError`. Either ends the session's intake (later pushes raise
the same error); what arrived is in the recording either way, and :meth:`finish` still
transcribes what was queued.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from typing import TYPE_CHECKING, Self

import numpy as np

from maie.errors import MaieError, StreamFrameError, StreamOverflowError, StreamTooLongError
from maie.pipeline.streaming.events import FinalEvent
from maie.pipeline.streaming.options import SAMPLE_RATE

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

    from maie.pipeline.streaming.events import StreamEvent
    from maie.pipeline.streaming.frames import FrameDecoder
    from maie.pipeline.streaming.options import StreamOptions, StreamRequest
    from maie.pipeline.streaming.recognizer import Recognizer
    from maie.pipeline.streaming.recording import WavRecording
    from maie.schemas import Segment

__all__ = ["StreamSession"]


class StreamSession:
    """A live session. Built by :meth:`~maie.pipeline.streaming.StreamingEngine.open`.

    ``push`` may be called from one thread while ``poll`` runs in another; each side is
    serialised by its own lock. Use it as a context manager, or call :meth:`finish` or
    :meth:`close`, so the leased decoder goes back to its pool.
    """

    def __init__(
        self,
        *,
        request: StreamRequest,
        options: StreamOptions,
        decoder: FrameDecoder,
        recognizer: Recognizer,
        recording: WavRecording,
    ) -> None:
        self.request = request
        self.options = options
        self._decoder = decoder
        self._recognizer = recognizer
        self._recording = recording
        self._max_samples = round(options.max_session_s * SAMPLE_RATE)
        self._max_backlog = round(options.max_backlog_s * SAMPLE_RATE)
        self._queue: deque[np.ndarray] = deque()
        self._queued = 0
        self._queue_lock = threading.Lock()
        # Re-entrant: finish() closes while holding both. Always taken input first, then decode.
        self._input_lock = threading.RLock()
        self._decode_lock = threading.RLock()
        self._stopped: MaieError | None = None
        self._closed = False
        #: Final segments so far, in order.
        self.finals: list[Segment] = []

    @property
    def recording_path(self) -> Path:
        """The 16 kHz mono WAV of everything received."""
        return self._recording.path

    @property
    def received_s(self) -> float:
        """Seconds of audio received (and recorded)."""
        return self._recording.duration_s

    @property
    def backlog_s(self) -> float:
        """Seconds of audio received but not transcribed yet."""
        return self._queued / SAMPLE_RATE

    @property
    def language(self) -> str | None:
        """The language being recognised, once known."""
        return self._recognizer.language

    def push(self, frame: bytes) -> None:
        """Take one client frame: record it and queue it for transcription.

        Raises:
            StreamFrameError: if the frame is too big or not valid in the session's encoding
                (nothing of it is kept; the session can go on).
            StreamOverflowError: if transcription has fallen ``max_backlog_s`` behind.
            StreamTooLongError: if the session reached ``max_session_s``.
            RuntimeError: if the session is finished or closed.
        """
        with self._input_lock:
            if self._closed:
                msg = "the stream session is closed"
                raise RuntimeError(msg)
            if self._stopped is not None:
                raise self._stopped
            if len(frame) > self.options.max_frame_bytes:
                raise StreamFrameError(
                    f"frames may hold at most {self.options.max_frame_bytes} bytes "
                    f"(MAIE_STREAM_MAX_FRAME_BYTES), got {len(frame)}; send smaller frames"
                )
            self._take(self._decoder.decode(frame))

    def _take(self, samples: np.ndarray) -> None:
        """Record and queue decoded samples, enforcing the length and backlog bounds."""
        room = self._max_samples - self._recording.samples
        too_long = samples.size > room
        samples = samples[: max(room, 0)]
        self._recording.write(samples)
        with self._queue_lock:
            if samples.size:
                self._queue.append(samples)
                self._queued += samples.size
            behind = self._queued > self._max_backlog
        if too_long:
            self._stopped = StreamTooLongError(
                f"the session reached its limit of {self.options.max_session_s:g} s of audio "
                "(MAIE_STREAM_MAX_SESSION_S); start a new session to go on"
            )
        elif behind:
            self._stopped = StreamOverflowError(
                f"audio arrives faster than it is transcribed: {self.backlog_s:.1f} s are waiting, "
                f"more than MAIE_STREAM_MAX_BACKLOG_S={self.options.max_backlog_s:g}; "
                "send at real-time pace"
            )
        if self._stopped is not None:
            raise self._stopped

    def poll(self) -> list[StreamEvent]:
        """Transcribe everything queued so far and return what changed (blocking; call it off the loop)."""
        with self._decode_lock:
            if self._closed:
                return []
            return self._recognize(self._drain())

    def _drain(self) -> np.ndarray:
        with self._queue_lock:
            parts = list(self._queue)
            self._queue.clear()
            self._queued = 0
        if not parts:
            return np.zeros(0, dtype=np.int16)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _recognize(self, samples: np.ndarray, *, last: bool = False) -> list[StreamEvent]:
        events = self._recognizer.accept(samples) if samples.size else []
        if last:
            events += self._recognizer.finish()
        self.finals.extend(e.segment for e in events if isinstance(e, FinalEvent))
        return events

    def finish(self) -> list[StreamEvent]:
        """End of the stream: transcribe the rest, commit the open segment, release everything.

        Samples the decoder still held back (a resampler's tail, the last WebM block) are
        recorded and transcribed too; a stream found invalid at its very end only loses that tail.
        """
        with self._input_lock:
            if self._closed:
                return []
            try:
                tail = self._decoder.flush()
            except StreamFrameError:
                tail = np.zeros(0, dtype=np.int16)
            if self._stopped is None:
                # The tail is recorded and queued as far as the length allows; the bound is moot now.
                with contextlib.suppress(StreamOverflowError, StreamTooLongError):
                    self._take(tail)
        with self._decode_lock:
            try:
                return self._recognize(self._drain(), last=True)
            finally:
                self.close()

    def close(self) -> None:
        """Stop without transcribing what is queued; the recording is kept. Safe to call twice.

        Waits for a ``poll`` in progress, so the decoder is never given back while in use.
        """
        with self._input_lock, self._decode_lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._decoder.close()
            finally:
                try:
                    self._recording.close()
                finally:
                    self._recognizer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
