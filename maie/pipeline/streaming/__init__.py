"""Live transcription: PCM (or Opus) frames in, ``partial`` and ``final`` events out.

Pure, like the rest of ``maie.pipeline``: the WebSocket endpoint drives it. Typical use::

    engine = StreamingEngine(settings)             # once per process; models load on first use
    engine.preload("pocketsphinx")                 # optional, off the event loop
    session = engine.open(StreamRequest(backend="pocketsphinx", sample_rate=8000), wav_path)
    session.push(frame)                            # where frames arrive; cheap
    events = session.poll()                        # in a worker thread; transcribes what is queued
    events += session.finish()                     # after the client's stop; commits the rest
    # session.recording_path now holds the whole audio as a 16 kHz mono WAV

See docs/streaming.md for the protocol, the policies and where sessions run.
"""

from __future__ import annotations

from maie.pipeline.streaming.engine import STREAMING_BACKENDS, StreamingEngine
from maie.pipeline.streaming.events import FinalEvent, PartialEvent, StreamEvent
from maie.pipeline.streaming.options import SAMPLE_RATE, Encoding, StreamOptions, StreamRequest
from maie.pipeline.streaming.session import StreamSession

__all__ = [
    "SAMPLE_RATE",
    "STREAMING_BACKENDS",
    "Encoding",
    "FinalEvent",
    "PartialEvent",
    "StreamEvent",
    "StreamOptions",
    "StreamRequest",
    "StreamSession",
    "StreamingEngine",
]
