"""Settings of live transcription sessions (``/v1/stream``): where they run, limits, cadence, endpointing."""

from __future__ import annotations

from typing import Annotated

import msgspec

from maie.config.fields import Port, env_names

__all__ = ["STREAMING_BACKEND_IDS", "StreamSettings"]

#: ASR backends that can transcribe live (``maie.pipeline.streaming.STREAMING_BACKENDS`` is this).
STREAMING_BACKEND_IDS = ("whisper", "pocketsphinx")


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
    #: Live sessions one process runs at once (``maie stream``, or ``maie api`` when it runs them
    #: itself); more are refused with ``too_many_sessions``.
    max_sessions: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 8
    #: Live sessions one API key may have open at once, counted in Redis across every process.
    max_sessions_per_key: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 4
    #: Seconds a session may go without a message from its client (audio or control) before it
    #: ends with ``stream_idle``; also how long the client has to send ``start``.
    idle_timeout_s: Annotated[float, msgspec.Meta(ge=1, le=3600)] = 30.0
    #: Port of ``maie stream`` (its bind address is MAIE_HOST).
    port: Port = 8002
    #: WebSocket URL of a ``maie stream`` process (``ws://127.0.0.1:8002``) to which the API relays
    #: ``/v1/stream``; unset, the API runs live sessions itself. ``maie up`` sets it.
    url: str | None = None
    #: Backends whose models ``maie stream`` loads at start (comma-separated: ``pocketsphinx``,
    #: ``whisper``), so the first session does not wait for them.
    preload: str = ""

    def __post_init__(self) -> None:
        if self.url is not None and not self.url.startswith(("ws://", "wss://")):
            msg = f"MAIE_STREAM_URL must start with ws:// or wss://, got {self.url!r}"
            raise ValueError(msg)
        unknown = sorted(set(self.preload_backends()) - set(STREAMING_BACKEND_IDS))
        if unknown:
            msg = (
                f"MAIE_STREAM_PRELOAD names {', '.join(unknown)}; backends that stream: "
                f"{', '.join(STREAMING_BACKEND_IDS)}"
            )
            raise ValueError(msg)

    def preload_backends(self) -> tuple[str, ...]:
        """MAIE_STREAM_PRELOAD as a list, in order, without repeats."""
        return tuple(dict.fromkeys(name.strip() for name in self.preload.split(",") if name.strip()))
