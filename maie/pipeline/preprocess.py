"""Preprocess stage: probe an upload, check its length, decode it to a 16 kHz mono 16-bit WAV.

Uploads are hostile. FFmpeg may read only the uploaded file itself (``protocol_whitelist=file``) and
only with the demuxers in :data:`ACCEPTED_FORMATS`, so playlists and scripts (HLS, ffconcat, ...)
that would make it open other files or URLs are refused before their header is read. Decoding is
bounded by the accepted duration (checked on the header *and* on the decoded samples) and by a wall
clock limit, and streams frame by frame into the WAV so memory stays flat for hours of audio.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import wave
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final

import av
import msgspec
import structlog

from maie.errors import AudioTooLongError, AudioTooShortError, UnsupportedMediaError
from maie.pipeline.stage import Stage
from maie.schemas import AudioInfo, PreprocessArtifact

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from maie.config import AudioSettings

__all__ = [
    "ACCEPTED_FORMATS",
    "PreprocessInput",
    "PreprocessOptions",
    "Preprocessor",
    "check_duration",
    "convert",
    "probe",
]

log = structlog.get_logger(__name__)

#: Demuxers FFmpeg may use on an upload. FFmpeg accepts a demuxer when any of its comma-separated
#: names is listed, so ``mov`` admits "mov,mp4,m4a,3gp,3g2,mj2" and ``matroska`` admits
#: "matroska,webm". Left out on purpose: demuxers that open further files or URLs (hls, concat,
#: dash, image2, ...), image and ``*_pipe`` demuxers, devices, lavfi, raw PCM without a header, and
#: demuxers whose streams may appear mid-file (mpegts, mpeg, flv): PyAV 18's ``demux()`` reads past
#: its stream table when that happens (an IndexError found by fuzzing damaged .ts files).
ACCEPTED_FORMATS: Final = (
    "aac", "ac3", "aiff", "amr", "amrnb", "amrwb", "asf", "au", "avi", "caf", "eac3", "flac",
    "loas", "matroska", "mov", "mp3", "ogg", "w64", "wav", "wv",
)  # fmt: skip

#: Options of every container MAIE opens; the probe caps bound the work done before decoding.
_CONTAINER_OPTIONS: Final = {
    "protocol_whitelist": "file",
    "format_whitelist": ",".join(ACCEPTED_FORMATS),
    "probesize": str(5 * 1024 * 1024),  # bytes read to find the streams
    "analyzeduration": str(10 * 1_000_000),  # microseconds of media read to find the streams
    "max_streams": "64",
}

#: Packets in a row that may fail to decode before the file is judged not to be audio at all.
MAX_BAD_PACKETS_IN_A_ROW: Final = 50

#: Bytes per sample of the output WAV (16-bit PCM).
_SAMPLE_WIDTH: Final = 2

_NOT_AUDIO: Final = "the file is not audio MAIE can decode"


class PreprocessOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What the preprocess stage accepts and produces."""

    #: Shortest accepted recording, in seconds (MAIE_MIN_DURATION_S).
    min_duration_s: float
    #: Longest accepted recording, in seconds (MAIE_MAX_DURATION_S); enforced while decoding too.
    max_duration_s: float
    #: Sample rate of the output WAV, in Hz.
    sample_rate: int = 16000
    #: Wall-clock seconds one decode may take before the file is refused (MAIE_DECODE_TIME_LIMIT_S).
    decode_time_limit_s: float = 600.0

    @classmethod
    def from_settings(cls, audio: AudioSettings) -> PreprocessOptions:
        """Build the options from the service's audio settings."""
        return cls(
            min_duration_s=audio.min_duration_s,
            max_duration_s=audio.max_duration_s,
            decode_time_limit_s=audio.decode_time_limit_s,
        )


class PreprocessInput(msgspec.Struct, frozen=True, kw_only=True):
    """Paths of one preprocess run."""

    #: The upload as received.
    source: Path
    #: Where the normalised WAV is written; its folder must exist.
    target: Path


def _refuse(reason: str) -> UnsupportedMediaError:
    return UnsupportedMediaError(f"{_NOT_AUDIO} ({reason})")


def _reason(exc: av.FFmpegError) -> str:
    # str(exc) carries the server-side path; the user only needs FFmpeg's reason.
    return (exc.strerror or type(exc).__name__).lower()


@contextlib.contextmanager
def _open(path: Path) -> Iterator[tuple[av.container.InputContainer, av.AudioStream]]:
    if not path.is_file():
        msg = f"no uploaded file at {path}"
        raise FileNotFoundError(msg)
    if path.stat().st_size == 0:
        raise _refuse("the file is empty")
    try:
        # An absolute path keeps FFmpeg from reading "name:rest" as a protocol prefix. A Python file
        # object would block nested opens at the protocol level too, but PyAV then raises OSError
        # from the wild seeks of damaged CAF/W64 headers; the format whitelist already keeps out
        # every demuxer that opens other files.
        container = av.open(
            str(path.absolute()),
            "r",
            container_options=dict(_CONTAINER_OPTIONS),
            metadata_errors="replace",  # tags are not ours to validate: a bad byte must not fail
        )
    except av.error.ArgumentError as exc:  # format_whitelist refusals come back as EINVAL
        raise _refuse("its format is not an accepted audio or video container") from exc
    except av.FFmpegError as exc:
        raise _refuse(f"could not be opened: {_reason(exc)}") from exc
    with container:
        stream = container.streams.best("audio")
        if not isinstance(stream, av.AudioStream):
            raise _refuse("no audio stream found")
        yield container, stream


def _stated_duration(container: av.container.InputContainer, stream: av.AudioStream) -> float | None:
    """The duration the container states for the audio stream, or None when it states none."""
    if stream.duration is not None and stream.duration > 0 and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:  # headers can say anything
        return container.duration / av.time_base
    return None


def _info(container: av.container.InputContainer, stream: av.AudioStream, duration_s: float) -> AudioInfo:
    context = stream.codec_context
    return AudioInfo(
        container=container.format.name,
        codec=context.codec.canonical_name,
        duration_s=duration_s,
        channels=context.channels,
        sample_rate=context.sample_rate,
        bit_rate=context.bit_rate or container.bit_rate or None,
    )


class _Decoder:
    """Decoded frames of one audio stream, bounded by a wall-clock limit.

    A packet the decoder rejects (FFmpeg mostly says "invalid data"; damaged Opus, WavPack or AMR
    also give "not yet implemented", EPERM or private codes) is skipped and the rest of the audio
    kept: a recording with one damaged second is still worth transcribing. A demuxer error ends the
    stream as if the file ended there (a truncated upload). Only when :data:`MAX_BAD_PACKETS_IN_A_ROW`
    packets fail in a row, or nothing decodes at all, is the file refused. One packet stuck inside
    FFmpeg cannot be interrupted here; the actor's time limit is the backstop for that.
    """

    def __init__(
        self, container: av.container.InputContainer, stream: av.AudioStream, limit_s: float
    ) -> None:
        self.container = container
        self.stream = stream
        self.limit_s = limit_s
        self.deadline = time.monotonic() + limit_s
        #: Packets the decoder rejected and that were skipped.
        self.skipped = 0

    def __iter__(self) -> Iterator[av.AudioFrame]:
        packets = self.container.demux(self.stream)
        in_a_row = 0
        ended = False
        while not ended:
            if time.monotonic() > self.deadline:
                raise UnsupportedMediaError(
                    f"decoding the file took longer than {self.limit_s:g} s (MAIE_DECODE_TIME_LIMIT_S)"
                )
            packet: av.Packet[av.AudioStream] | None
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.FFmpegError as exc:
                log.warning("preprocess.demux_stopped", reason=_reason(exc))
                packet, ended = None, True  # None drains what the decoder still holds
            try:
                frames = self.stream.decode(packet)
            except av.FFmpegError as exc:
                self.skipped += 1
                in_a_row += 1
                if in_a_row >= MAX_BAD_PACKETS_IN_A_ROW:
                    raise _refuse(
                        f"{in_a_row} packets in a row could not be decoded: {_reason(exc)}"
                    ) from exc
                continue
            in_a_row = 0
            yield from frames


def _resampled(frames: Iterable[av.AudioFrame], rate: int) -> Iterator[av.AudioFrame]:
    """Yield ``frames`` as s16 mono at ``rate``, flushing at the end.

    PyAV's resampler is built for the first frame's format; chained streams (two MP3s glued
    together, a chained Ogg) may change rate or layout midway, so a new one is built when they do.
    """
    resampler: av.AudioResampler | None = None
    shape: tuple[str, str, int] | None = None
    for frame in frames:
        frame_shape = (frame.format.name, frame.layout.name, frame.sample_rate)
        if resampler is None or frame_shape != shape:
            if resampler is not None:
                yield from resampler.resample(None)
            resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
            shape = frame_shape
        frame.pts = None  # gaps left by skipped packets must not make the resampler pad or drop
        yield from resampler.resample(frame)
    if resampler is not None:
        yield from resampler.resample(None)


def probe(
    path: Path,
    *,
    check_decode: bool = True,
    max_duration_s: float | None = None,
    decode_time_limit_s: float = 600.0,
) -> AudioInfo:
    """Describe the audio in ``path`` without converting it.

    Args:
        path: The uploaded file.
        check_decode: Decode the first audio frames too, so a file whose header parses but whose
            data does not decode is refused.
        max_duration_s: When the container states no duration it is measured by decoding; the
            count stops once it passes this bound (then the reported duration is just over it).
        decode_time_limit_s: Wall-clock seconds the decoding may take.

    Returns:
        What the file holds; ``duration_s`` is the stated duration, or the decoded one.

    Raises:
        UnsupportedMediaError: when the file is not audio MAIE can decode.
        FileNotFoundError: when ``path`` is not a file.
    """
    with _open(path) as (container, stream):
        stated = _stated_duration(container, stream)
        info = _info(container, stream, stated or 0.0)  # before decoding can change the context
        if stated is None or check_decode:
            decoded = 0.0
            for frame in _Decoder(container, stream, decode_time_limit_s):
                decoded += frame.samples / frame.sample_rate
                if decoded and (stated is not None or (max_duration_s and decoded > max_duration_s)):
                    break
            if decoded == 0:
                raise _refuse("no audio could be decoded")
            if stated is None:
                info = msgspec.structs.replace(info, duration_s=round(decoded, 6))
        return info


def check_duration(info: AudioInfo, options: PreprocessOptions) -> None:
    """Refuse audio outside the accepted duration.

    Raises:
        AudioTooShortError: when ``info.duration_s`` is below ``options.min_duration_s``.
        AudioTooLongError: when ``info.duration_s`` is above ``options.max_duration_s``.
    """
    extra = {"duration_s": info.duration_s}
    if info.duration_s < options.min_duration_s:
        raise AudioTooShortError(
            f"the audio is {info.duration_s:.2f} s long, shorter than the {options.min_duration_s:g} s "
            "accepted (set by MAIE_MIN_DURATION_S)",
            extra={**extra, "min_duration_s": options.min_duration_s},
        )
    if info.duration_s > options.max_duration_s:
        raise AudioTooLongError(
            f"the audio is {info.duration_s:.2f} s long, longer than the {options.max_duration_s:g} s "
            "accepted (set by MAIE_MAX_DURATION_S)",
            extra={**extra, "max_duration_s": options.max_duration_s},
        )


class Preprocessor(Stage[PreprocessOptions, PreprocessInput, PreprocessArtifact]):
    """Turns an upload into the 16 kHz mono 16-bit WAV every ASR backend reads."""

    def process(self, data: PreprocessInput) -> PreprocessArtifact:
        """Probe, check and convert ``data.source`` into ``data.target``.

        The WAV is written under a temporary name beside the target and renamed into place, so the
        target is either absent or complete; running again overwrites it.

        Raises:
            UnsupportedMediaError: when the file is not audio MAIE can decode in time.
            AudioTooShortError: when the audio is shorter than the options allow.
            AudioTooLongError: when the header or the decoded audio is longer than allowed.
            FileNotFoundError: when the source is missing or the target's folder does not exist.
        """
        options = self.options
        started = time.monotonic()
        with tempfile.NamedTemporaryFile(
            dir=data.target.parent, prefix=f".{data.target.name}.", suffix=".part", delete=False
        ) as file:
            partial = Path(file.name)
        try:
            with _open(data.source) as (container, stream):
                stated = _stated_duration(container, stream)
                info = _info(container, stream, stated or 0.0)  # before decoding can change the context
                if stated is not None:  # refuse a header that claims too much before decoding
                    check_duration(info, options)
                decoder = _Decoder(container, stream, options.decode_time_limit_s)
                with partial.open("wb") as file:
                    decoded = self._write(decoder, file) / options.sample_rate
                    file.flush()
                    os.fsync(file.fileno())
            check_duration(msgspec.structs.replace(info, duration_s=decoded), options)
            partial.replace(data.target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        if stated is None:
            info = msgspec.structs.replace(info, duration_s=decoded)
        log.info(
            "preprocess.finished",
            container=info.container,
            codec=info.codec,
            stated_duration_s=stated,
            duration_s=decoded,
            skipped_packets=decoder.skipped,
            elapsed_s=round(time.monotonic() - started, 3),
        )
        return PreprocessArtifact(
            source=info, wav_path=str(data.target), duration_s=decoded, sample_rate=options.sample_rate
        )

    def _write(self, decoder: _Decoder, file: BinaryIO) -> int:
        """Resample ``decoder``'s frames into a WAV on ``file``; return the samples written."""
        limit = self.options.max_duration_s * self.options.sample_rate
        samples = 0
        with wave.open(file, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(_SAMPLE_WIDTH)
            wav.setframerate(self.options.sample_rate)
            for frame in _resampled(decoder, self.options.sample_rate):
                # Planes are padded for alignment: take exactly the frame's samples.
                wav.writeframesraw(memoryview(frame.planes[0])[: frame.samples * _SAMPLE_WIDTH])
                samples += frame.samples
                if samples > limit:
                    log.warning("preprocess.too_long", decoded_s=samples / self.options.sample_rate)
                    raise AudioTooLongError(
                        f"the audio decodes to more than the {self.options.max_duration_s:g} s accepted "
                        "(set by MAIE_MAX_DURATION_S)",
                        extra={"max_duration_s": self.options.max_duration_s},
                    )
        if samples == 0:
            raise _refuse("no audio could be decoded")
        return samples


def convert(options: PreprocessOptions, data: PreprocessInput) -> PreprocessArtifact:
    """Run the preprocess stage once on ``data``: the entry point the decode sandbox runs in a child.

    Raises:
        UnsupportedMediaError, AudioTooShortError, AudioTooLongError, FileNotFoundError: as
            :meth:`Preprocessor.process`.
    """
    with Preprocessor(options) as stage:
        return stage.process(data)
