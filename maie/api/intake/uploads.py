"""Uploads: streamed from the parsed form into the task folder, then judged by PyAV.

The client's filename is kept only as a label: it is checked for path tricks (a client that sends
``../../etc/passwd`` is told so) but never used to build a path. The probe and the stored name
(``raw.<ext>`` with the extension of the container PyAV found) are those of every recording,
fetched ones included (:mod:`maie.pipeline.recording`).

While an upload is copied it is ``audio/<task_id>/raw.part``, next to ``raw.part.owner`` naming the
API process copying it (:class:`~maie.api.intake.idempotency.IntakeOwner`). An API killed then
leaves both behind; :func:`sweep_orphan_uploads` (run by every API on start and periodically)
removes such a folder once its owner's mark is gone, or, with no owner named, once the part has not
changed for longer than any intake can take.
"""

from __future__ import annotations

import os
import shutil
import time
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Final

import aiofiles
import anyio
import anyio.to_thread
import structlog

from maie.errors import InvalidRequestError
from maie.pipeline.recording import keep_recording, stored_name

if TYPE_CHECKING:
    from litestar.datastructures import UploadFile

    from maie.api.intake.idempotency import IntakeOwner
    from maie.pipeline.preprocess import PreprocessOptions
    from maie.pipeline.sandbox import DecodeSandbox
    from maie.schemas import AudioInfo

__all__ = [
    "CHUNK_BYTES",
    "PART_NAME",
    "check_filename",
    "receive_upload",
    "remove_task_dir",
    "stored_name",
    "sweep_orphan_uploads",
]

log = structlog.get_logger(__name__)

#: The upload while it is copied into its task folder.
PART_NAME: Final = "raw.part"
#: Next to the part: the id of the API process copying it.
OWNER_NAME: Final = "raw.part.owner"

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
    upload: UploadFile,
    task_dir: Path,
    options: PreprocessOptions,
    sandbox: DecodeSandbox | None = None,
    *,
    owner: IntakeOwner | None = None,
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
    part = task_dir / PART_NAME
    if owner is not None:
        await anyio.Path(task_dir / OWNER_NAME).write_text(owner.id)
    async with aiofiles.open(part, "wb") as out:
        while chunk := await upload.read(CHUNK_BYTES):
            await out.write(chunk)
    kept = await anyio.to_thread.run_sync(keep_recording, part, options, sandbox)
    await anyio.Path(task_dir / OWNER_NAME).unlink(missing_ok=True)
    return kept


def _parts(audio_dir: Path) -> list[tuple[Path, str | None, float]]:
    """(folder, owner id or None, seconds since the part last changed) of each upload in progress."""
    found = []
    now = time.time()
    try:
        folders = list(os.scandir(audio_dir))
    except FileNotFoundError:
        return []
    for entry in folders:
        folder = Path(entry.path)
        try:
            age = now - (folder / PART_NAME).stat().st_mtime
        except (FileNotFoundError, NotADirectoryError):
            continue
        try:
            owner: str | None = (folder / OWNER_NAME).read_text().strip() or None
        except FileNotFoundError:
            owner = None
        found.append((folder, owner, age))
    return found


async def sweep_orphan_uploads(audio_dir: Path, owner: IntakeOwner, *, grace_s: float) -> int:
    """Remove the upload folders that API processes left when they died mid-upload.

    Args:
        audio_dir: ``MAIE_DATA_DIR/audio``.
        owner: This process (it asks the store whether other owners are alive).
        grace_s: Seconds after which a part with no owner named counts as abandoned.

    Returns:
        How many folders were removed.
    """
    removed = 0
    for folder, owner_id, age in await anyio.to_thread.run_sync(_parts, audio_dir):
        abandoned = age > grace_s if owner_id is None else not await owner.is_alive(owner_id)
        if abandoned:
            await anyio.to_thread.run_sync(remove_task_dir, folder)
            log.info("upload.orphan_removed", task_id=folder.name, owner=owner_id, age_s=round(age, 1))
            removed += 1
    return removed


def remove_task_dir(task_dir: Path) -> None:
    """Remove a task folder and everything in it, if it exists."""
    shutil.rmtree(task_dir, ignore_errors=True)
