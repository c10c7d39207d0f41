"""Uploads: streamed from the parsed form into the task folder, then judged by PyAV.

The client's filename is kept only as a label: it is checked for path tricks (a client that sends
``../../etc/passwd`` is told so) but never used to build a path. The probe and the stored name
(``raw.<ext>`` with the extension of the container PyAV found) are those of every recording,
fetched ones included (:mod:`maie.pipeline.recording`).
"""

from __future__ import annotations

import shutil
import unicodedata
from typing import TYPE_CHECKING

import aiofiles
import anyio
import anyio.to_thread

from maie.errors import InvalidRequestError
from maie.pipeline.recording import keep_recording, stored_name

if TYPE_CHECKING:
    from pathlib import Path

    from litestar.datastructures import UploadFile

    from maie.pipeline.preprocess import PreprocessOptions
    from maie.pipeline.sandbox import DecodeSandbox
    from maie.schemas import AudioInfo

__all__ = ["CHUNK_BYTES", "check_filename", "receive_upload", "remove_task_dir", "stored_name"]

#: Bytes copied per read while moving an upload into the task folder.
CHUNK_BYTES = 1024 * 1024
#: Longest filename kept as a label.
MAX_FILENAME = 255


def check_filename(filename: str | None, *, field: str = "file") -> str | None:
    """Return the client's filename (of the part ``field``) as a safe label, or refuse it.

    Raises:
        InvalidRequestError: if the name is blank, holds a path separator, a parent reference or
            control characters, or is too long.
    """
    if filename is None:
        return None
    name = unicodedata.normalize("NFC", filename)
    if not name.strip():
        raise InvalidRequestError(
            f'the filename of field `{field}` is blank: send the file\'s name (curl -F "{field}=@path" does)',
            extra={"field": field},
        )
    unsafe = (
        "/" in name
        or "\\" in name
        or name in {".", ".."}
        or any(unicodedata.category(c).startswith("C") for c in name)
        or len(name) > MAX_FILENAME
    )
    if unsafe:
        raise InvalidRequestError(
            f"unsafe filename {filename[:80]!r} in field `{field}`: send a plain file name without "
            "folders or control characters",
            extra={"field": field},
        )
    return name


async def receive_upload(
    upload: UploadFile, task_dir: Path, options: PreprocessOptions, sandbox: DecodeSandbox | None = None
) -> tuple[Path, AudioInfo]:
    """Copy ``upload`` into ``task_dir`` in chunks, probe it, and keep it as ``raw.<ext>``.

    The probe runs in ``sandbox`` (a child process with time and memory limits) when one is given,
    so a file built to hang or crash FFmpeg fails its own request and nothing else.

    Raises:
        UnsupportedMediaError: if PyAV cannot decode audio from it (415).
        DecodeLimitError: if probing it broke the sandbox's limits or crashed the decoder (415).
        AudioTooShortError: below MAIE_MIN_DURATION_S (422).
        AudioTooLongError: above MAIE_MAX_DURATION_S (422).
    """
    await anyio.Path(task_dir).mkdir(parents=True)
    part = task_dir / "raw.part"
    async with aiofiles.open(part, "wb") as out:
        while chunk := await upload.read(CHUNK_BYTES):
            await out.write(chunk)
    return await anyio.to_thread.run_sync(keep_recording, part, options, sandbox)


def remove_task_dir(task_dir: Path) -> None:
    """Remove a task folder and everything in it, if it exists."""
    shutil.rmtree(task_dir, ignore_errors=True)
