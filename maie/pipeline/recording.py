"""A received recording, judged by PyAV and kept as ``raw.<ext>``: for uploads and fetched URLs alike.

Whatever brought the file into its task folder (an upload streamed by the API, a download by the
worker's fetch stage), it is probed the same way before anything else reads it: PyAV decides what
it is (content, not name or MIME type), in the decode sandbox when one is given, and the duration
limits are checked. Only then is it renamed ``raw.<ext>`` after the container found, so a file
that fails the probe never takes the name the preprocess stage reads.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Final

from maie.pipeline.preprocess import check_duration, probe

if TYPE_CHECKING:
    from pathlib import Path

    from maie.pipeline.preprocess import PreprocessOptions
    from maie.pipeline.sandbox import DecodeSandbox
    from maie.schemas import AudioInfo

__all__ = ["keep_recording", "stored_name"]

#: Container names (PyAV) mapped to the extension of the stored file.
_EXTENSIONS: Final = {
    "mov": "mp4",
    "matroska": "mkv",
    "ogg": "ogg",
    "wav": "wav",
    "mp3": "mp3",
    "flac": "flac",
}


def stored_name(info: AudioInfo) -> str:
    """Name of an accepted recording in its task folder: ``raw.<ext>`` of the container found."""
    first = info.container.split(",")[0]
    return f"raw.{_EXTENSIONS.get(first, first if first.isalnum() else 'bin')}"


def keep_recording(
    received: Path, options: PreprocessOptions, sandbox: DecodeSandbox | None = None
) -> tuple[Path, AudioInfo]:
    """Probe ``received`` and, if it is usable audio, rename it ``raw.<ext>`` beside itself (blocking).

    Args:
        received: The complete file, in its task folder, under a name of its own (``raw.part``,
            ``fetched``).
        options: The duration and decode limits.
        sandbox: Where to probe: a child process with time and memory limits, so a file built to
            hang or crash FFmpeg fails alone. ``None`` probes in this process.

    Returns:
        The kept file and what probing found.

    Raises:
        UnsupportedMediaError: if PyAV cannot decode audio from it.
        DecodeLimitError: if probing it broke the sandbox's limits or crashed the decoder.
        AudioTooShortError, AudioTooLongError: outside MAIE_MIN_DURATION_S / MAIE_MAX_DURATION_S.
    """
    # A container that states no duration is measured by decoding; stop counting past the limit.
    check = functools.partial(
        probe,
        received,
        max_duration_s=options.max_duration_s,
        decode_time_limit_s=options.decode_time_limit_s,
    )
    info = check() if sandbox is None else sandbox.run(check)
    check_duration(info, options)
    kept = received.with_name(stored_name(info))
    received.replace(kept)
    return kept, info
