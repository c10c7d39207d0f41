"""What a live session is asked for (:class:`StreamRequest`) and the limits it runs under."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Annotated

import msgspec

if TYPE_CHECKING:
    from maie.config import Settings

__all__ = [
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "SAMPLE_RATE",
    "Encoding",
    "StreamOptions",
    "StreamRequest",
]

#: The rate every recognizer works at and the recording is kept at.
SAMPLE_RATE = 16000
#: Lowest client rate accepted (telephony).
MIN_SAMPLE_RATE = 8000
#: Highest client rate accepted (studio audio).
MAX_SAMPLE_RATE = 192_000


class Encoding(enum.StrEnum):
    """How the client's binary frames carry audio."""

    #: 16-bit signed little-endian PCM, mono, at the request's ``sample_rate``.
    PCM_S16LE = "pcm_s16le"
    #: 32-bit float little-endian PCM in [-1, 1], mono (what a browser's AudioWorklet produces).
    PCM_F32LE = "pcm_f32le"
    #: One raw Opus packet per frame (WebCodecs ``AudioEncoder``, WebRTC payloads); any Opus rate.
    OPUS = "opus"
    #: WebM/Opus as a browser's ``MediaRecorder`` slices it: the chunks in order form one file.
    WEBM = "webm"


class StreamRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One session's choices, from the client's ``start`` message."""

    #: ASR backend id (``whisper`` or ``pocketsphinx``).
    backend: str
    encoding: Encoding = Encoding.PCM_S16LE
    #: Rate of PCM frames; ignored for Opus and WebM, which carry their own.
    sample_rate: Annotated[int, msgspec.Meta(ge=MIN_SAMPLE_RATE, le=MAX_SAMPLE_RATE)] = SAMPLE_RATE
    #: ISO 639-1 code; ``None`` uses the backend's configured language, else Whisper detects it once.
    language: str | None = None
    #: Words with times in final segments.
    word_timestamps: bool = False
    #: Whisper only: words to favour, and the prompt before anything is committed.
    hotwords: str | None = None
    initial_prompt: str | None = None


class StreamOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Limits and cadence of every session of a process (from ``MAIE_STREAM_*``)."""

    max_session_s: float = 3600.0
    max_backlog_s: float = 30.0
    max_frame_bytes: int = 256 * 1024
    partial_interval_s: float = 1.0
    endpoint_silence_ms: int = 500
    window_trim_s: float = 15.0

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamOptions:
        """The stream settings, with the session length held to what a task may store."""
        stream = settings.stream
        return cls(
            max_session_s=min(stream.max_session_s, settings.audio.max_duration_s),
            max_backlog_s=stream.max_backlog_s,
            max_frame_bytes=stream.max_frame_bytes,
            partial_interval_s=stream.partial_interval_s,
            endpoint_silence_ms=stream.endpoint_silence_ms,
            window_trim_s=stream.window_trim_s,
        )
