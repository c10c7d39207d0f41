"""Client frames to 16 kHz mono 16-bit samples: PCM at any rate, raw Opus packets, WebM/Opus chunks.

Resampling is FFmpeg's (PyAV's ``AudioResampler``, libswresample), the same as batch preprocessing,
so a live session hears the audio a stored task would. It keeps its filter state between frames,
so frame boundaries leave no clicks, and its anti-aliasing filter keeps tones above 8 kHz out of
the 16 kHz signal (linear interpolation in numpy was cheaper by about 10 µs per 20 ms frame and
folded them back into the band; see docs/streaming.md).

A WebM stream cannot be cut into independently decodable pieces (``MediaRecorder`` slices it at
arbitrary bytes), so its chunks are fed to one demuxer that runs in a thread of its own and reads
them as one file; the samples it decodes are handed back on the next frame or at :meth:`flush`.
"""

from __future__ import annotations

import io
import threading
from abc import ABC, abstractmethod
from collections import deque
from typing import TYPE_CHECKING, Any

import av
import numpy as np

from maie.errors import StreamFrameError
from maie.pipeline.streaming.options import SAMPLE_RATE, Encoding

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["FrameDecoder", "frame_decoder"]

#: Samples of an empty result.
_NOTHING = np.zeros(0, dtype=np.int16)
#: Rate Opus decodes at, whatever rate it was encoded at.
_OPUS_RATE = 48000
#: Seconds :meth:`FrameDecoder.flush` waits for the WebM demuxer to read the end of the stream.
_DEMUX_JOIN_S = 10.0


class FrameDecoder(ABC):
    """Turns one session's binary frames into 16 kHz mono int16 samples, in order."""

    @abstractmethod
    def decode(self, frame: bytes) -> np.ndarray:
        """The samples this frame completes (possibly none yet: resampling and demuxing lag a little).

        Raises:
            StreamFrameError: if the frame is not valid in this encoding.
        """

    @abstractmethod
    def flush(self) -> np.ndarray:
        """The samples still held back, at the end of the stream.

        Raises:
            StreamFrameError: if the stream turned out invalid at its end.
        """

    def close(self) -> None:  # noqa: B027 - most decoders hold nothing to release
        """Release what the decoder holds. Safe to call twice."""


class _Resampler:
    """FFmpeg's resampler to 16 kHz mono s16, fed numpy arrays or decoded frames."""

    def __init__(self) -> None:
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)

    def samples(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """Resample mono ``samples`` (int16 or float32) taken at ``rate``."""
        fmt = "s16" if samples.dtype == np.int16 else "flt"
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format=fmt, layout="mono")
        frame.sample_rate = rate
        return self.frames([frame])

    def frames(self, frames: Iterable[av.AudioFrame]) -> np.ndarray:
        """Resample decoded frames (any layout: they are mixed down to mono)."""
        out: list[np.ndarray] = []
        for frame in frames:
            # Timestamps of client audio mean nothing here; gaps must not make FFmpeg pad or drop.
            frame.pts = None
            out.extend(o.to_ndarray().reshape(-1) for o in self._resampler.resample(frame))
        return _joined(out)

    def flush(self) -> np.ndarray:
        """What the filter still holds."""
        return _joined([o.to_ndarray().reshape(-1) for o in self._resampler.resample(None)])


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    if not parts:
        return _NOTHING
    return parts[0].astype(np.int16, copy=False) if len(parts) == 1 else np.concatenate(parts)


class _PcmDecoder(FrameDecoder):
    """Raw PCM frames: whole samples only, resampled when the rate is not 16 kHz."""

    def __init__(self, dtype: np.dtype[Any], rate: int) -> None:
        self._dtype = dtype
        self._rate = rate
        self._resampler = None if rate == SAMPLE_RATE and dtype == np.int16 else _Resampler()

    def decode(self, frame: bytes) -> np.ndarray:
        width = self._dtype.itemsize
        if len(frame) % width:
            raise StreamFrameError(
                f"a {self._dtype.name} frame must hold whole {width}-byte samples, got {len(frame)} bytes"
            )
        samples = np.frombuffer(frame, dtype=self._dtype)
        if samples.dtype == np.float32 and not np.isfinite(samples).all():
            raise StreamFrameError("pcm_f32le frames must hold finite numbers (NaN or infinity found)")
        if self._resampler is None:
            return samples.copy()
        if samples.dtype == np.float32:
            samples = np.clip(samples, -1.0, 1.0)
        return self._resampler.samples(samples, self._rate)

    def flush(self) -> np.ndarray:
        return _NOTHING if self._resampler is None else self._resampler.flush()


class _OpusDecoder(FrameDecoder):
    """One Opus packet per frame, decoded by FFmpeg's Opus decoder (48 kHz) and resampled."""

    def __init__(self) -> None:
        self._codec = av.CodecContext.create("opus", "r")
        self._codec.sample_rate = _OPUS_RATE
        self._codec.layout = "mono"
        self._resampler = _Resampler()

    def decode(self, frame: bytes) -> np.ndarray:
        if not frame:
            raise StreamFrameError("an opus frame must hold one Opus packet, got an empty frame")
        try:
            decoded = self._codec.decode(av.Packet(frame))
        except av.FFmpegError as exc:
            raise StreamFrameError(f"not an Opus packet ({exc.strerror})") from exc
        return self._resampler.frames(decoded)

    def flush(self) -> np.ndarray:
        return self._resampler.flush()


class _Pipe(io.RawIOBase):
    """Bytes fed by one thread, read as a file by another; reads wait until data or the end."""

    def __init__(self) -> None:
        super().__init__()
        self._data = bytearray()
        self._ended = False
        self._changed = threading.Condition()

    def readable(self) -> bool:
        return True

    def feed(self, data: bytes) -> None:
        with self._changed:
            self._data += data
            self._changed.notify_all()

    def end(self, *, discard: bool = False) -> None:
        """No more data: reads return what is left, then end of file (nothing left when discarding)."""
        with self._changed:
            self._ended = True
            if discard:
                self._data.clear()
            self._changed.notify_all()

    def readinto(self, buffer: Any) -> int:  # noqa: ANN401 - a writable buffer, as io defines it
        with self._changed:
            while not self._data and not self._ended:
                self._changed.wait()
            count = min(len(buffer), len(self._data))
            buffer[:count] = self._data[:count]
            del self._data[:count]
            return count


class _WebmDecoder(FrameDecoder):
    """WebM/Opus chunks demuxed and decoded by FFmpeg in a thread that reads them as one stream."""

    def __init__(self) -> None:
        self._pipe = _Pipe()
        self._decoded: deque[np.ndarray] = deque()
        self._lock = threading.Lock()
        self._error: str | None = None
        self._thread = threading.Thread(target=self._demux, name="maie-webm-demux", daemon=True)
        self._thread.start()

    def _demux(self) -> None:
        resampler = _Resampler()
        try:
            # Small probe: the Opus track's parameters are in the WebM header, and a larger probe
            # would hold the first samples back until that many bytes had arrived.
            options = {"probesize": "4096", "analyzeduration": "0"}
            with av.open(self._pipe, "r", format="webm", options=options) as container:
                if not container.streams.audio:
                    self._fail("the WebM stream has no audio track")
                    return
                for frame in container.decode(container.streams.audio[0]):
                    self._hand_over(resampler.frames([frame]))
            self._hand_over(resampler.flush())
        except (av.FFmpegError, ValueError, IndexError, OSError) as exc:
            self._fail(f"not a WebM audio stream ({getattr(exc, 'strerror', None) or exc})")

    def _hand_over(self, samples: np.ndarray) -> None:
        if samples.size:
            with self._lock:
                self._decoded.append(samples)

    def _fail(self, reason: str) -> None:
        with self._lock:
            self._error = reason

    def _take(self) -> np.ndarray:
        with self._lock:
            if self._error is not None:
                raise StreamFrameError(self._error)
            parts = list(self._decoded)
            self._decoded.clear()
        return _joined(parts)

    def decode(self, frame: bytes) -> np.ndarray:
        self._pipe.feed(frame)
        return self._take()

    def flush(self) -> np.ndarray:
        self._pipe.end()
        self._thread.join(_DEMUX_JOIN_S)
        return self._take()

    def close(self) -> None:
        self._pipe.end(discard=True)
        self._thread.join(_DEMUX_JOIN_S)


def frame_decoder(encoding: Encoding, sample_rate: int) -> FrameDecoder:
    """A decoder for one session's frames.

    Args:
        encoding: How the frames carry audio.
        sample_rate: Rate of PCM frames (Opus and WebM carry their own).

    Returns:
        A new decoder; call :meth:`FrameDecoder.close` when the session ends.
    """
    if encoding == Encoding.PCM_S16LE:
        return _PcmDecoder(np.dtype("<i2"), sample_rate)
    if encoding == Encoding.PCM_F32LE:
        return _PcmDecoder(np.dtype("<f4"), sample_rate)
    if encoding == Encoding.OPUS:
        return _OpusDecoder()
    return _WebmDecoder()
