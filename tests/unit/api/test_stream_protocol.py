"""The ``/v1/stream`` messages, their close codes, and how a request presents its API key."""

from __future__ import annotations

import pytest

from maie.api.guards import presented_key
from maie.api.stream.protocol import (
    CLOSE_INTERNAL,
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN,
    StartMessage,
    StopMessage,
    close_code,
    parse_message,
)
from maie.errors import (
    BackendUnavailableError,
    MaieError,
    QueueFullError,
    StoreUnavailableError,
    StreamFrameError,
    StreamIdleError,
    StreamLimitError,
    StreamOverflowError,
    StreamProtocolError,
    TransientError,
    UnauthorizedError,
)
from maie.pipeline.streaming import Encoding


class TestParse:
    def test_start_with_submission_fields_and_unknown_ones(self):
        message = parse_message(
            '{"type": "start", "sample_rate": 48000, "encoding": "pcm_f32le", "language": "en",'
            ' "asr_backend": "pocketsphinx", "api_key": "k", "client_version": "3.1"}'
        )
        assert isinstance(message, StartMessage)
        assert (message.sample_rate, message.encoding, message.language) == (48000, Encoding.PCM_F32LE, "en")
        assert message.asr_backend == "pocketsphinx"
        assert message.api_key == "k"

    def test_defaults(self):
        message = parse_message('{"type": "start"}')
        assert isinstance(message, StartMessage)
        assert (message.sample_rate, message.encoding, message.api_key) == (16000, Encoding.PCM_S16LE, None)

    def test_stop(self):
        assert isinstance(parse_message(b'{"type": "stop"}'), StopMessage)

    @pytest.mark.parametrize(
        ("text", "says"),
        [
            ("hello", "must be JSON"),
            ('{"type": "pause"}', "not a valid message"),
            ('{"sample_rate": 16000}', "not a valid message"),
            ('{"type": "start", "sample_rate": 100}', "not a valid message"),
            ('{"type": "start", "encoding": "mp3"}', "not a valid message"),
        ],
    )
    def test_bad_messages_say_what_to_send(self, text, says):
        with pytest.raises(StreamProtocolError) as caught:
            parse_message(text)
        assert says in caught.value.detail
        assert caught.value.code == "bad_message"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UnauthorizedError("x"), CLOSE_POLICY),
        (StreamProtocolError("x"), CLOSE_POLICY),
        (StreamFrameError("x"), CLOSE_POLICY),
        (StreamIdleError("x"), CLOSE_POLICY),
        (BackendUnavailableError("x"), CLOSE_POLICY),
        (StreamOverflowError("x"), CLOSE_POLICY),  # a 429, but the client's own doing
        (StreamLimitError("x"), CLOSE_TRY_AGAIN),
        (QueueFullError("x", retry_after_s=1), CLOSE_TRY_AGAIN),
        (StoreUnavailableError("x"), CLOSE_TRY_AGAIN),
        (TransientError("x"), CLOSE_TRY_AGAIN),
        (MaieError("x"), CLOSE_INTERNAL),
    ],
)
def test_close_codes(error, code):
    assert close_code(error) == code


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"X-API-Key": "a"}, "a"),
        ({"Authorization": "Bearer b"}, "b"),
        ({"Authorization": "bearer  c "}, "c"),
        ({"X-API-Key": "a", "Authorization": "Bearer b"}, "a"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, None),
        ({"Authorization": "Bearer "}, None),
        ({}, None),
    ],
)
def test_presented_key(headers, key):
    assert presented_key(headers) == key
