"""Recognizers in child processes: for engines that hold the GIL while they decode.

PocketSphinx's Python binding keeps the GIL for the whole of every call (``process_raw``,
``end_utt``, ``hyp``): measured from another thread, 1 s of audio fed at once stalled it for
1.9 s, and ``end_utt`` for about 1 s. In threads of a server process that would freeze its event
loop, and sessions could not decode in parallel. So each PocketSphinx session runs in a child
process of a :class:`ProcessPool`, which keeps its children (and their loaded decoders) for the
next session. The session talks to its child over a pipe: samples in, msgpack-encoded events
out; waiting on the pipe releases the GIL.

Whisper does not need this: CTranslate2 and ONNX Runtime release the GIL while they compute, and
one model in the process serves every session (a child per session would load it again).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
from typing import TYPE_CHECKING, Any

import msgspec

from maie.errors import TransientError
from maie.pipeline.streaming.events import StreamEvent
from maie.pipeline.streaming.recognizer import Recognizer

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    import numpy as np

    from maie.config import Settings
    from maie.pipeline.streaming.options import StreamOptions, StreamRequest

__all__ = ["ProcessPool", "ProcessRecognizer"]

_EVENTS = msgspec.msgpack.Decoder(list[StreamEvent])
#: Seconds a stopping child may take to leave before it is killed.
_STOP_S = 5.0


class _Server:
    """What runs in a child: one session at a time on a decoder it keeps loaded."""

    def __init__(self, settings: Settings) -> None:
        # The child imports what it uses; the backend is built as the registry builds it.
        from maie.pipeline.asr.pocketsphinx import create_pocketsphinx_backend  # noqa: PLC0415
        from maie.pipeline.streaming.pocketsphinx import DecoderPool  # noqa: PLC0415

        self.pool = DecoderPool(lambda: create_pocketsphinx_backend(settings), max_idle=1)
        self.encoder = msgspec.msgpack.Encoder()
        self.recognizer: Recognizer | None = None

    def handle(self, op: str, args: tuple[Any, ...]) -> Any:  # noqa: ANN401 - replies depend on the operation
        """Run one operation of the session protocol."""
        from maie.pipeline.streaming.pocketsphinx import PocketsphinxRecognizer  # noqa: PLC0415

        if op == "open":
            self.recognizer = PocketsphinxRecognizer(self.pool, *args)
            return self.recognizer.language
        if op == "warm":
            self.pool.release(self.pool.acquire())
            return None
        if self.recognizer is None:
            msg = f"no session is open in this recognizer process (got {op!r})"
            raise RuntimeError(msg)
        if op == "accept":
            return self.encoder.encode(self.recognizer.accept(_samples(args[0])))
        if op == "finish":
            return self.encoder.encode(self.recognizer.finish())
        self.recognizer.close()
        self.recognizer = None
        return None


def _serve(conn: Connection, settings: Settings) -> None:
    """A child's main loop: requests in, ``("ok", reply)`` or ``("error", exception)`` out."""
    server = _Server(settings)
    while True:
        try:
            op, args = conn.recv()
        except EOFError:
            break
        if op == "stop":
            break
        try:
            reply = server.handle(op, args)
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the session, pickled
            conn.send(("error", exc))
        else:
            conn.send(("ok", reply))
    if server.recognizer is not None:
        server.recognizer.close()
    server.pool.close()


def _samples(data: bytes) -> np.ndarray:
    import numpy as np  # noqa: PLC0415 - only the child needs it here

    return np.frombuffer(data, dtype="<i2")


class _Child:
    """The parent's handle on one child process."""

    def __init__(self, context: Any, settings: Settings) -> None:  # noqa: ANN401 - a multiprocessing context
        self.conn, child_end = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(child_end, settings), name="maie-stream-recognizer", daemon=True
        )
        self.process.start()
        child_end.close()

    def call(self, op: str, *args: Any) -> Any:  # noqa: ANN401 - replies depend on the operation
        try:
            self.conn.send((op, args))
            status, reply = self.conn.recv()
        except (EOFError, OSError) as exc:
            self.process.join(1.0)  # let it be reaped, so the exit code is known
            raise TransientError(
                f"the live recognizer process stopped (exit code {self.process.exitcode}); "
                "start a new session"
            ) from exc
        if status == "error":
            raise reply
        return reply

    @property
    def alive(self) -> bool:
        return bool(self.process.is_alive())

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # already gone
            self.conn.send(("stop", ()))
        self.process.join(_STOP_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(_STOP_S)
        self.conn.close()


class ProcessPool:
    """Child processes with a loaded PocketSphinx decoder each, one per session at a time. Thread-safe.

    Args:
        settings: What the children build their backend from (``MAIE_POCKETSPHINX_*``).
        max_idle: Children kept while no session uses them; more are stopped on release.
    """

    def __init__(self, settings: Settings, *, max_idle: int = 4) -> None:
        self._settings = settings
        self._max_idle = max_idle
        # spawn, not fork: the parent runs threads (an event loop, pollers) that fork would copy mid-step.
        self._context = multiprocessing.get_context("spawn")
        self._idle: list[_Child] = []
        self._lock = threading.Lock()

    def acquire(self) -> _Child:
        """A live child: an idle one, else a new one (starting and loading take about a second)."""
        with self._lock:
            while self._idle:
                child = self._idle.pop()
                if child.alive:
                    return child
                child.stop()
        return _Child(self._context, self._settings)

    def release(self, child: _Child) -> None:
        """Take a child back once its session closed."""
        with self._lock:
            if child.alive and len(self._idle) < self._max_idle:
                self._idle.append(child)
                return
        child.stop()

    def warm(self) -> None:
        """Start one child and load its decoder now."""
        child = self.acquire()
        try:
            child.call("warm")
        finally:
            self.release(child)

    def close(self) -> None:
        """Stop the idle children."""
        with self._lock:
            idle, self._idle = self._idle, []
        for child in idle:
            child.stop()


class ProcessRecognizer(Recognizer):
    """A PocketSphinx session in a child process; the same events as in-process, over a pipe."""

    def __init__(self, pool: ProcessPool, request: StreamRequest, stream: StreamOptions) -> None:
        super().__init__(word_timestamps=request.word_timestamps)
        self._pool = pool
        self._child: _Child | None = pool.acquire()
        try:
            self._language: str | None = self._child.call("open", request, stream)
        except BaseException:
            self._pool.release(self._child)
            self._child = None
            raise

    @property
    def language(self) -> str | None:
        """The model's language."""
        return self._language

    def accept(self, samples: np.ndarray) -> list[StreamEvent]:
        """Decode in the child."""
        return _EVENTS.decode(self._live().call("accept", samples.astype("<i2", copy=False).tobytes()))

    def finish(self) -> list[StreamEvent]:
        """Commit the open utterance in the child."""
        return _EVENTS.decode(self._live().call("finish"))

    def close(self) -> None:
        """End the child's session and give the child back (a dead one is dropped)."""
        child, self._child = self._child, None
        if child is None:
            return
        try:
            if child.alive:
                child.call("close")
        except TransientError:
            pass  # it died; release() drops it
        finally:
            self._pool.release(child)

    def _live(self) -> _Child:
        if self._child is None:
            msg = "the recognizer is closed"
            raise RuntimeError(msg)
        return self._child
