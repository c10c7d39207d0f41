"""A stop request from SIGINT/SIGTERM (or another thread), safe to make from a signal handler.

Python runs a signal handler in the main thread between two bytecodes, whatever that thread holds
at the time. A handler that takes a lock, such as ``threading.Event.set()``, waits for ever when the
main thread was interrupted inside that same Event's ``wait()`` (it holds the Event's lock there),
and a second signal only queues a second handler behind the first. So the handler here takes no
lock: it sets a flag, and :func:`signal.set_wakeup_fd` makes the interpreter write to a self-pipe
that :meth:`StopSignal.wait` sleeps on with ``select``.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from types import FrameType, TracebackType

__all__ = ["STOP_SIGNALS", "StopSignal"]

#: Signals that ask a MAIE process to stop.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignal:
    """Catches :data:`STOP_SIGNALS` while entered (main thread only) and tells when one came.

    On exit the previous handlers come back, unless a stop was asked for: then further stop
    signals are ignored, so a second SIGTERM cannot cut short what the process does before it exits.

    >>> with StopSignal() as stop:  # doctest: +SKIP
    ...     while not stop.wait(0.5):
    ...         supervise()
    """

    def __init__(self) -> None:
        self._requested = False
        self._read, self._write = os.pipe()
        for fd in (self._read, self._write):
            os.set_blocking(fd, False)
        self._previous_fd = -1
        self._previous: list[Any] = []

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return self._requested

    def request(self) -> None:
        """Ask for a stop, from any thread while entered. Takes no lock."""
        self._requested = True
        if self._write >= 0:
            with contextlib.suppress(OSError):  # a full pipe wakes the waiter anyway
                os.write(self._write, b"\0")

    def wait(self, timeout_s: float | None = None) -> bool:
        """Sleep until a stop is asked for or ``timeout_s`` passes; return :attr:`requested`."""
        if not self._requested and self._read >= 0:
            readable, _, _ = select.select([self._read], [], [], timeout_s)
            if readable:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._read, 512):
                        pass
        return self._requested

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del signum, frame
        self._requested = True  # the wakeup fd already woke wait(); nothing here may take a lock

    def __enter__(self) -> Self:
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._previous = [signal.signal(signum, self._handle) for signum in STOP_SIGNALS]
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for signum, handler in zip(STOP_SIGNALS, self._previous, strict=True):
            # Once stopping, another stop signal must not kill the process while it finishes up.
            signal.signal(signum, signal.SIG_IGN if self._requested else handler)
        signal.set_wakeup_fd(self._previous_fd)
        read, write, self._read, self._write = self._read, self._write, -1, -1
        os.close(read)
        os.close(write)
