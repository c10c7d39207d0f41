"""Settings of live transcription sessions (``/v1/stream``): limits, partial cadence, endpointing."""

from __future__ import annotations

from typing import Annotated

import msgspec

from maie.config.fields import env_names

__all__ = ["StreamSettings"]


class StreamSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("STREAM_")):
    """Live transcription: how long a session may run, how far it may fall behind, when it speaks."""

    #: Longest session, in seconds of audio; the stored task must also fit MAIE_MAX_DURATION_S.
    max_session_s: Annotated[float, msgspec.Meta(gt=0)] = 3600.0
    #: Seconds of received audio not yet transcribed that a session holds before it reports an
    #: overflow (a client sending faster than the server transcribes).
    max_backlog_s: Annotated[float, msgspec.Meta(ge=1, le=600)] = 30.0
    #: Largest binary frame accepted, in bytes (1 s of 48 kHz float PCM is 192,000).
    max_frame_bytes: Annotated[int, msgspec.Meta(ge=1024, le=16 * 1024 * 1024)] = 256 * 1024
    #: Seconds of new audio between two partial results of an open segment (Whisper re-decodes
    #: its window at most this often; a slower decode stretches the interval by itself).
    partial_interval_s: Annotated[float, msgspec.Meta(ge=0.1, le=10)] = 1.0
    #: Milliseconds of silence that end a segment with Whisper (Silero VAD); PocketSphinx uses its
    #: own endpointer (MAIE_POCKETSPHINX_VAD_*), as in batch transcription.
    endpoint_silence_ms: Annotated[int, msgspec.Meta(ge=100, le=10_000)] = 500
    #: Whisper's re-decoded window is cut at a committed segment end once it is longer than this,
    #: in seconds (it never grows past Whisper's 30 s window either way).
    window_trim_s: Annotated[float, msgspec.Meta(ge=2, le=28)] = 15.0
