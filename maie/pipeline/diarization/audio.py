"""Audio for the diarizers: the preprocessed WAV as floats, and every channel of an upload.

The preprocessed file is the 16 kHz mono 16-bit WAV of the preprocess stage; anything else is a
bug upstream, reported as a permanent error. The ``channels`` backend needs the channels that
preprocessing mixes down, so it decodes the original upload again, with the preprocess stage's
demuxer whitelist and the ``file`` protocol only (uploads are hostile).
"""

from __future__ import annotations

import wave
from typing import TYPE_CHECKING

import av
import numpy as np

from maie.errors import PermanentError, UnsupportedMediaError
from maie.pipeline.preprocess import ACCEPTED_FORMATS

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["SAMPLE_RATE", "decode_channels", "read_mono_wav"]

SAMPLE_RATE = 16000
#: Longest audio decoded here, in samples per channel (the preprocess stage bounds uploads first).
_MAX_SAMPLES = SAMPLE_RATE * 6 * 3600


def read_mono_wav(path: Path) -> np.ndarray:
    """The samples of a 16 kHz mono 16-bit WAV as float32 in [-1, 1].

    Raises:
        PermanentError: if the file is missing or not 16 kHz mono 16-bit.
    """
    if not path.is_file():
        raise PermanentError(f"preprocessed audio {path} is missing")
    try:
        with wave.open(str(path), "rb") as wav:
            shape = (wav.getframerate(), wav.getnchannels(), wav.getsampwidth())
            if shape != (SAMPLE_RATE, 1, 2):
                raise PermanentError(
                    f"preprocessed audio must be 16 kHz mono 16-bit, got {shape} (rate, channels, bytes)"
                )
            raw = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise PermanentError(f"preprocessed audio {path} is not a readable WAV ({exc})") from exc
    return np.frombuffer(raw, np.int16).astype(np.float32) / 32768.0


def decode_channels(path: Path) -> np.ndarray:
    """Every channel of an audio file, resampled to 16 kHz: float32 ``(channels, samples)``.

    Raises:
        UnsupportedMediaError: if the file cannot be decoded as audio.
    """
    try:
        container = av.open(
            str(path),
            options={"protocol_whitelist": "file", "format_whitelist": ",".join(ACCEPTED_FORMATS)},
        )
    except (av.FFmpegError, OSError) as exc:
        raise UnsupportedMediaError(f"cannot decode {path.name} for per-channel diarization ({exc})") from exc
    with container:
        if not container.streams.audio:
            raise UnsupportedMediaError(f"{path.name} has no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=SAMPLE_RATE)
        chunks: list[np.ndarray] = []
        total = 0
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
                    total += out.samples
                if total > _MAX_SAMPLES:
                    raise UnsupportedMediaError(f"{path.name} is too long for per-channel diarization")
            chunks.extend(out.to_ndarray() for out in resampler.resample(None))
        except av.FFmpegError as exc:
            raise UnsupportedMediaError(
                f"cannot decode {path.name} for per-channel diarization ({exc})"
            ) from exc
    if not chunks:
        raise UnsupportedMediaError(f"no audio could be decoded from {path.name}")
    return np.asarray(np.concatenate(chunks, axis=1), np.float32)
