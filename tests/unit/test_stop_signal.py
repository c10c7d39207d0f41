"""The stop request of `maie up` and `maie worker`: signals caught without taking a lock."""

from __future__ import annotations

import os
import signal
import threading

from maie.stop_signal import StopSignal


class TestStopSignal:
    """Real signals to this process, through the handlers StopSignal installs."""

    def test_sigterm_wakes_the_wait(self):
        """A SIGTERM sent while the main thread sleeps in wait() ends the wait with a stop."""
        with StopSignal() as stop:
            assert not stop.wait(0)
            threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGTERM)).start()
            assert stop.wait(60)
            assert stop.requested

    def test_request_from_another_thread(self):
        with StopSignal() as stop:
            threading.Timer(0.05, stop.request).start()
            assert stop.wait(30)

    def test_handlers_come_back_when_no_stop_came(self):
        before = signal.getsignal(signal.SIGTERM)
        with StopSignal():
            assert signal.getsignal(signal.SIGTERM) is not before
        assert signal.getsignal(signal.SIGTERM) is before

    def test_after_a_stop_further_signals_are_ignored(self):
        """A second SIGTERM while the process finishes must not kill it."""
        before = signal.getsignal(signal.SIGTERM)
        try:
            with StopSignal() as stop:
                signal.raise_signal(signal.SIGTERM)
                assert stop.wait(5)
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
            signal.raise_signal(signal.SIGTERM)  # ignored: this test goes on
        finally:
            signal.signal(signal.SIGTERM, before)
