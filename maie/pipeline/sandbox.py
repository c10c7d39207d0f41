"""Decoding of uploads in a child process held to limits on wall time and memory.

FFmpeg parses whatever a client uploads. A file that makes it spin inside one C call, allocate
without bound or crash must cost only its own request or task, never the API or worker process
that holds other people's work. So the work runs in a short-lived child forked from a
:mod:`multiprocessing` forkserver that has PyAV imported already: about 15 ms per call on top of
the decode (``scripts/bench_decode.py`` measures it). The child caps the memory it may add and its CPU
time with ``setrlimit`` and writes no core dumps; the parent kills it once the wall-clock limit
(plus a grace for the decoder's own, more precise check) has passed.

A child's outcome comes back through a pipe: the function's result, or the exception it raised
(MAIE's errors pickle whole). A child that dies without answering (a signal, the memory cap) is
reported as :class:`~maie.errors.DecodeLimitError`, a permanent error: decoding that file again
would end the same way.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import resource
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import msgspec
import structlog

from maie.config import LogSettings
from maie.errors import DecodeLimitError
from maie.logging import configure_logging

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.connection import Connection

    from maie.config import AudioSettings

__all__ = ["GRACE_S", "PRELOAD", "DecodeSandbox", "SandboxLimits"]

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: Modules the forkserver imports once, so that each child starts with them loaded.
#: - ``import av`` leaves out its subtitle modules, which opening some containers imports: under a
#:   tight memory limit that late import would fail ("failed to map segment") before decoding.
#: - A child re-runs its parent's main script unless the parent ran as ``python -m``; for the
#:   ``maie`` console script that means importing ``maie.cli`` (about 40 ms) per upload, unless
#:   it is here. Missing modules are skipped.
PRELOAD: Final = (
    "maie.pipeline.preprocess",
    "maie.pipeline.sandbox",
    "maie.cli",
    "av.subtitles.codeccontext",
    "av.subtitles.stream",
    "av.subtitles.subtitle",
)
#: Seconds past the wall-clock limit before the child is killed: the decoder checks its own
#: deadline between packets and explains itself better; the kill is for a call that never returns.
GRACE_S: Final = 5.0
#: prctl option: the signal a process gets when its parent dies (linux/prctl.h).
_PR_SET_PDEATHSIG: Final = 1
_MIB: Final = 1024 * 1024

_context = multiprocessing.get_context("forkserver") if sys.platform != "win32" else None
_preload_lock = threading.Lock()
_preload_set: list[bool] = []


def _preload() -> None:
    """Name the modules the forkserver imports; it takes effect when the forkserver starts."""
    with _preload_lock:
        if not _preload_set and _context is not None:
            _context.set_forkserver_preload(list(PRELOAD))
            _preload_set.append(True)


class SandboxLimits(msgspec.Struct, frozen=True, kw_only=True):
    """What one decode may use."""

    #: Wall-clock seconds (MAIE_DECODE_TIME_LIMIT_S); the child is killed ``GRACE_S`` later.
    time_s: float
    #: MiB of memory decoding may allocate (MAIE_DECODE_MEMORY_LIMIT_MB); 0 means no limit.
    memory_mb: int = 0

    @classmethod
    def from_settings(cls, audio: AudioSettings) -> SandboxLimits:
        """The limits configured for decoding uploads."""
        return cls(time_s=audio.decode_time_limit_s, memory_mb=audio.decode_memory_limit_mb)


class _Job(msgspec.Struct, frozen=True, kw_only=True):
    """What a child needs: the limits, how to log, and the caller's log context."""

    limits: SandboxLimits
    log: LogSettings | None
    process: str
    context: dict[str, Any]


def _address_space() -> int:
    """Bytes of address space this process uses now (``/proc/self/statm``), 0 where unknown."""
    try:
        pages = int(Path("/proc/self/statm").read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * resource.getpagesize()


def _limit_resources(limits: SandboxLimits) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # A child orphaned by a killed parent still stops: SIGXCPU at the soft limit, SIGKILL at the hard.
    cpu_s = int(limits.time_s + GRACE_S) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))
    if limits.memory_mb:
        # The child starts with the forkserver's mappings (Python, PyAV, FFmpeg: ~150 MiB, more on
        # some images); the limit is what decoding may add on top of them.
        size = _address_space() + limits.memory_mb * _MIB
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
    if sys.platform.startswith("linux"):
        # The forkserver exits when the last process using it does; its children follow it.
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _child(conn: Connection, fn: Callable[[], object], job: _Job) -> None:
    """Body of the child: limit itself, run ``fn`` and send back ``("ok", result)`` or an error."""
    _limit_resources(job.limits)
    if job.log is not None:
        configure_logging(job.log, process=job.process)
    structlog.contextvars.bind_contextvars(**job.context)
    outcome: tuple[str, object]
    try:
        outcome = ("ok", fn())
    except MemoryError:
        outcome = ("memory", None)
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent, which raises it
        outcome = ("error", exc)
    try:
        conn.send(outcome)
    except Exception as exc:  # noqa: BLE001 - an exception that does not pickle is described instead
        conn.send(("error", RuntimeError(f"{type(outcome[1]).__name__}: {outcome[1]} ({exc})")))
    finally:
        conn.close()


def _noop() -> None:
    """A job that does nothing: starting one warms the forkserver up."""


def _died(exitcode: int | None, limits: SandboxLimits) -> DecodeLimitError:
    """The error for a child that ended without answering."""
    if exitcode is not None and exitcode < 0:
        sig = signal.Signals(-exitcode)
        if sig == signal.SIGXCPU:
            return _too_slow(limits)
        if sig == signal.SIGKILL:
            return DecodeLimitError(
                "decoding the file was killed, most likely for using too much memory "
                f"(MAIE_DECODE_MEMORY_LIMIT_MB={limits.memory_mb})",
                extra={"signal": sig.name},
            )
        return DecodeLimitError(
            f"the decoder crashed on this file ({sig.name}); it is damaged or built to attack decoders",
            extra={"signal": sig.name},
        )
    return DecodeLimitError(f"the decoding process ended without an answer (exit code {exitcode})")


def _too_slow(limits: SandboxLimits) -> DecodeLimitError:
    return DecodeLimitError(
        f"decoding the file took longer than {limits.time_s:g} s (MAIE_DECODE_TIME_LIMIT_S)",
        extra={"time_limit_s": limits.time_s},
    )


def _too_big(limits: SandboxLimits) -> DecodeLimitError:
    return DecodeLimitError(
        f"decoding the file needed more than {limits.memory_mb} MiB of memory (MAIE_DECODE_MEMORY_LIMIT_MB)",
        extra={"memory_limit_mb": limits.memory_mb},
    )


class DecodeSandbox:
    """Runs decoding jobs in limited child processes.

    Args:
        limits: Time and memory of each job.
        log: How children log (the caller's settings); None leaves structlog's defaults.
        process: Process name children put on their log lines.
    """

    def __init__(
        self, limits: SandboxLimits, *, log: LogSettings | None = None, process: str = "maie"
    ) -> None:
        self.limits = limits
        self.log = log
        self.process = process

    def start(self) -> None:
        """Start the forkserver and wait until it has imported :data:`PRELOAD` (about 0.5 s, once).

        Optional: the first :meth:`run` does it otherwise, and pays that time itself.
        """
        self.run(_noop)

    def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (picklable: a module-level function or a ``functools.partial`` of one) in a child.

        Returns:
            What ``fn`` returned.

        Raises:
            DecodeLimitError: when the child ran out of time or memory, or died.
            Exception: whatever ``fn`` raised, re-raised here.
        """
        if _context is None:  # no fork on this platform: run in-process, without limits
            return fn()
        _preload()
        job = _Job(
            limits=self.limits,
            log=self.log,
            process=self.process,
            context=structlog.contextvars.get_contextvars(),
        )
        receiver, sender = _context.Pipe(duplex=False)
        child = _context.Process(target=_child, args=(sender, fn, job), name="maie-decode", daemon=True)
        try:
            child.start()
            sender.close()
            if not receiver.poll(self.limits.time_s + GRACE_S):
                log.warning("sandbox.killed", reason="time limit", time_limit_s=self.limits.time_s)
                raise _too_slow(self.limits)
            try:
                kind, payload = receiver.recv()
            except EOFError:
                child.join()
                log.warning("sandbox.died", exitcode=child.exitcode)
                raise _died(child.exitcode, self.limits) from None
        finally:
            if child.pid is not None:  # started
                child.kill()  # no-op when it has exited
                child.join()
            receiver.close()
            sender.close()
        if kind == "memory":
            raise _too_big(self.limits)
        if kind == "error":
            raise payload  # the exception instance the child sent
        result: T = payload  # what fn returned
        return result
