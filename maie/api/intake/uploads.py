"""Uploads: streamed from the parsed form into the task folder, then judged by PyAV.

The client's filename is kept only as a label: it is checked for path tricks (a client that sends
``../../etc/passwd`` is told so) but never used to build a path. The probe and the stored name
(``raw.<ext>`` with the extension of the container PyAV found) are those of every recording,
fetched ones included (:mod:`maie.pipeline.recording`).

While an upload is copied it is ``audio/<task_id>/raw.part``, next to ``raw.part.owner`` naming the
API process copying it (:class:`~maie.api.intake.idempotency.IntakeOwner`); the mark stays until the
task's record is stored (:func:`release_intake`). A batch is staged in ``batches/<batch_id>/``,
marked the same way (``.owner``), and each of its task folders is marked until the batch is stored.
An API killed mid-intake leaves them behind; :func:`sweep_orphan_uploads` and
:func:`sweep_orphan_batches` (run by every API on start and periodically) remove such a folder once
its owner's mark is gone, or, with no owner named, once it has not changed for longer than any
intake can take. A task folder whose record was stored after all keeps its files (only the stale
mark goes).
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
    "BATCH_OWNER_NAME",
    "CHUNK_BYTES",
    "OWNER_NAME",
    "PART_NAME",
    "check_filename",
    "mark_intake",
    "receive_upload",
    "release_intake",
    "remove_task_dir",
    "stored_name",
    "sweep_orphan_batches",
    "sweep_orphan_uploads",
]

log = structlog.get_logger(__name__)

#: The upload while it is copied into its task folder.
PART_NAME: Final = "raw.part"
#: Next to the part: the id of the API process copying it.
OWNER_NAME: Final = "raw.part.owner"
#: In a batch's staging folder: the id of the API process taking the batch in.
BATCH_OWNER_NAME: Final = ".owner"

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

    The folder stays marked as ``owner``'s until the caller has stored the task's record and calls
    :func:`release_intake`.

    Raises:
        UnsupportedMediaError: if PyAV cannot decode audio from it (415).
        DecodeLimitError: if probing it broke the sandbox's limits or crashed the decoder (415).
        AudioTooShortError: below MAIE_MIN_DURATION_S (422).
        AudioTooLongError: above MAIE_MAX_DURATION_S (422).
    """
    await anyio.Path(task_dir).mkdir(parents=True)
    part = task_dir / PART_NAME
    if owner is not None:
        await mark_intake(task_dir, owner)
    async with aiofiles.open(part, "wb") as out:
        while chunk := await upload.read(CHUNK_BYTES):
            await out.write(chunk)
    return await anyio.to_thread.run_sync(keep_recording, part, options, sandbox)


async def mark_intake(folder: Path, owner: IntakeOwner, *, name: str = OWNER_NAME) -> None:
    """Name ``owner`` in ``folder`` as the process taking it in (a batch's folder: ``name=.owner``)."""
    await anyio.Path(folder / name).write_text(owner.id)


def release_intake(folder: Path) -> None:
    """The task of ``folder`` is stored: its files are no longer an intake's to sweep."""
    (folder / OWNER_NAME).unlink(missing_ok=True)


def _read_owner(path: Path) -> tuple[str | None, float | None]:
    """(owner id or None, the mark's mtime) of a mark file; (None, None) without one."""
    try:
        return path.read_text().strip() or None, path.stat().st_mtime
    except (FileNotFoundError, NotADirectoryError):
        return None, None


def _intakes(audio_dir: Path) -> list[tuple[Path, str | None, float]]:
    """(folder, owner id or None, seconds since it last changed) of each task folder in intake.

    In intake: an upload's part is there, or an owner's mark (a kept upload or a batch's recording
    whose record may not be stored yet).
    """
    found = []
    now = time.time()
    try:
        folders = list(os.scandir(audio_dir))
    except FileNotFoundError:
        return []
    for entry in folders:
        folder = Path(entry.path)
        owner, marked_at = _read_owner(folder / OWNER_NAME)
        try:
            changed_at = (folder / PART_NAME).stat().st_mtime
        except (FileNotFoundError, NotADirectoryError):
            if marked_at is None:
                continue
            changed_at = marked_at
        found.append((folder, owner, now - changed_at))
    return found


def _staged_batches(batches_dir: Path) -> list[tuple[Path, str | None, float]]:
    """(folder, owner id or None, seconds since anything in it last changed) of each batch staged."""
    found = []
    now = time.time()
    try:
        folders = [Path(e.path) for e in os.scandir(batches_dir) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []
    for folder in folders:
        owner, _ = _read_owner(folder / BATCH_OWNER_NAME)
        try:
            changed_at = max([folder.stat().st_mtime, *(e.stat().st_mtime for e in os.scandir(folder))])
        except FileNotFoundError:
            continue  # taken in and removed meanwhile
        found.append((folder, owner, now - changed_at))
    return found


async def _abandoned(owner: IntakeOwner, owner_id: str | None, age: float, grace_s: float) -> bool:
    return age > grace_s if owner_id is None else not await owner.is_alive(owner_id)


async def sweep_orphan_uploads(audio_dir: Path, owner: IntakeOwner, *, grace_s: float) -> int:
    """Remove the task folders that API processes left when they died mid-intake.

    A folder whose task was stored after all (the process died just after) keeps its files; only
    the stale mark is removed.

    Args:
        audio_dir: ``MAIE_DATA_DIR/audio``.
        owner: This process (it asks the store whether other owners are alive, and for records).
        grace_s: Seconds after which a part with no owner named counts as abandoned.

    Returns:
        How many folders were removed.
    """
    found = await anyio.to_thread.run_sync(_intakes, audio_dir)
    orphans = [(f, o, age) for f, o, age in found if await _abandoned(owner, o, age, grace_s)]
    if not orphans:
        return 0
    stored = await owner.store.get_many([folder.name for folder, _, _ in orphans])
    removed = 0
    for (folder, owner_id, age), record in zip(orphans, stored, strict=True):
        if record is not None:
            await anyio.to_thread.run_sync(release_intake, folder)
            log.info("upload.stale_mark_removed", task_id=folder.name, owner=owner_id)
            continue
        await anyio.to_thread.run_sync(remove_task_dir, folder)
        log.info("upload.orphan_removed", task_id=folder.name, owner=owner_id, age_s=round(age, 1))
        removed += 1
    return removed


async def sweep_orphan_batches(batches_dir: Path, owner: IntakeOwner, *, grace_s: float) -> int:
    """Remove the staging folders of batches whose API process died while taking them in.

    A staging folder lives only as long as its request (the request removes it at the end), so one
    whose owner is gone, or that names none and has not changed for ``grace_s``, is debris.

    Returns:
        How many folders were removed.
    """
    removed = 0
    for folder, owner_id, age in await anyio.to_thread.run_sync(_staged_batches, batches_dir):
        if await _abandoned(owner, owner_id, age, grace_s):
            await anyio.to_thread.run_sync(remove_task_dir, folder)
            log.info("batch.orphan_removed", batch_id=folder.name, owner=owner_id, age_s=round(age, 1))
            removed += 1
    return removed


def remove_task_dir(task_dir: Path) -> None:
    """Remove a task folder and everything in it, if it exists."""
    shutil.rmtree(task_dir, ignore_errors=True)
