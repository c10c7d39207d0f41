"""The messages of ``/v1/stream``, both ways, and the close codes (docs/streaming.md).

Client → server: a ``start`` message (the submission fields of ``/v1/process`` plus how the audio
is encoded, and the API key for browsers, which cannot set headers on a WebSocket), binary audio
frames, then ``stop``. Server → client: ``ready`` once the session runs, the session's ``partial``
and ``final`` events (:mod:`maie.pipeline.streaming.events`), ``error`` on problems, and ``end``
with the stored task's id. Unknown fields are ignored, so clients may send more than this server
knows; unknown message types are refused.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from maie.errors import MaieError, StreamOverflowError, StreamProtocolError
from maie.pipeline.streaming import SAMPLE_RATE, Encoding
from maie.pipeline.streaming.options import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from maie.schemas import SubmissionOptions

__all__ = [
    "CLOSE_INTERNAL",
    "CLOSE_NORMAL",
    "CLOSE_POLICY",
    "CLOSE_TRY_AGAIN",
    "ClientMessage",
    "EndMessage",
    "ErrorMessage",
    "ReadyMessage",
    "StartMessage",
    "StopMessage",
    "close_code",
    "parse_message",
]

#: The session ended as asked (after ``end``).
CLOSE_NORMAL: Final = 1000
#: The client broke a rule: a bad message or frame, a wrong key, a limit of its own session.
CLOSE_POLICY: Final = 1008
#: The server failed (a recognizer process died, an unexpected error).
CLOSE_INTERNAL: Final = 1011
#: The server is busy (too many sessions, a full queue, a spent rate limit, Redis away): come back.
CLOSE_TRY_AGAIN: Final = 1013


class StartMessage(SubmissionOptions, frozen=True, kw_only=True, tag_field="type", tag="start"):
    """Opens the session: the task's submission fields, the audio's encoding, maybe the API key."""

    encoding: Encoding = Encoding.PCM_S16LE
    #: Rate of PCM frames; Opus and WebM carry their own.
    sample_rate: Annotated[int, msgspec.Meta(ge=MIN_SAMPLE_RATE, le=MAX_SAMPLE_RATE)] = SAMPLE_RATE
    #: The API key, for clients that cannot send headers (browsers); a header wins.
    api_key: str | None = None


class StopMessage(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="stop"):
    """The audio is complete: transcribe the rest, store the task, answer ``end``."""


#: What a client sends as text.
ClientMessage = StartMessage | StopMessage

_DECODER: Final = msgspec.json.Decoder(ClientMessage)


class ReadyMessage(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="ready"):
    """The session runs: audio frames are transcribed from now on (frames sent earlier are kept)."""

    #: The id the stored task will have (it exists once the session ends, even if the connection drops).
    task_id: str
    backend: str
    #: The language being recognised, when known already.
    language: str | None = None


class ErrorMessage(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="error"):
    """What went wrong (``code`` is MAIE's error code); the connection closes after it."""

    code: str
    detail: str


class EndMessage(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="end"):
    """The session is stored as task ``task_id``: its final transcript comes from the batch pipeline."""

    task_id: str
    status_url: str
    #: Seconds of audio received (and stored).
    duration_s: float


def parse_message(text: str | bytes) -> StartMessage | StopMessage:
    """A client's text message.

    Raises:
        StreamProtocolError: if it is not JSON, not one of the messages, or has a bad value.
    """
    try:
        message: StartMessage | StopMessage = _DECODER.decode(text)
    except msgspec.ValidationError as exc:
        raise StreamProtocolError(
            f"not a valid message: {exc}; send {{'type': 'start', ...}}, audio frames as binary "
            "messages, then {'type': 'stop'} (docs/streaming.md)"
        ) from exc
    except msgspec.DecodeError as exc:
        raise StreamProtocolError(f"a text message must be JSON: {exc}") from exc
    return message


def close_code(error: MaieError) -> Literal[1008, 1011, 1013]:
    """The close code after ``error``: the client's fault, the server's, or come back later."""
    if isinstance(error, StreamOverflowError):  # sending too fast is the client's doing
        return CLOSE_POLICY
    if error.status_code in {429, 503}:
        return CLOSE_TRY_AGAIN
    return CLOSE_POLICY if error.status_code < 500 else CLOSE_INTERNAL  # noqa: PLR2004
