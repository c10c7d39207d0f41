"""The sweep of what a killed API leaves mid-intake: task folders and batch staging folders.

Real PostgreSQL and Redis (the API's store): owners' marks are real claims, records real rows.
"""

from __future__ import annotations

import os
import time
import uuid

from maie.api.intake.idempotency import IntakeOwner
from maie.api.intake.uploads import (
    BATCH_OWNER_NAME,
    OWNER_NAME,
    PART_NAME,
    sweep_orphan_batches,
    sweep_orphan_uploads,
)
from tests.fixtures.records import make_record, put_record

GRACE_S = 60.0


def _folder(parent, name, files, *, owner=None, owner_file=OWNER_NAME, age_s=0.0):
    folder = parent / name
    folder.mkdir(parents=True)
    for file in files:
        (folder / file).write_bytes(b"RIFF")
    if owner is not None:
        (folder / owner_file).write_text(owner.id)
    if age_s:
        then = time.time() - age_s
        for path in [*folder.iterdir(), folder]:
            os.utime(path, (then, then))
    return folder


async def _owners(async_store):
    this, dead, alive = IntakeOwner(async_store), IntakeOwner(async_store), IntakeOwner(async_store)
    await alive.beat()  # ``dead`` never beat (or its mark lapsed): it is gone
    return this, dead, alive


class TestTaskFolders:
    async def test_a_dead_owners_folder_goes_unless_its_task_was_stored(self, tmp_path, store, async_store):
        this, dead, alive = await _owners(async_store)
        audio = tmp_path / "audio"
        copying = _folder(audio, str(uuid.uuid4()), [PART_NAME], owner=dead)
        kept_unstored = _folder(audio, str(uuid.uuid4()), ["raw.wav"], owner=dead)
        stored_id = str(uuid.uuid4())
        put_record(store, make_record(stored_id))
        stored = _folder(audio, stored_id, ["raw.wav"], owner=dead)
        live = _folder(audio, str(uuid.uuid4()), [PART_NAME], owner=alive)

        assert await sweep_orphan_uploads(audio, this, grace_s=GRACE_S) == 2
        assert not copying.exists()
        assert not kept_unstored.exists(), "a recording kept but never stored is debris too"
        assert (stored / "raw.wav").is_file(), "the stored task keeps its audio"
        assert not (stored / OWNER_NAME).exists(), "only its stale mark goes"
        assert (live / PART_NAME).is_file(), "an upload in progress elsewhere is left alone"

    async def test_unmarked_folders_go_only_as_old_parts(self, tmp_path, async_store):
        this, _, _ = await _owners(async_store)
        audio = tmp_path / "audio"
        stale = _folder(audio, str(uuid.uuid4()), [PART_NAME], age_s=GRACE_S * 2)
        fresh = _folder(audio, str(uuid.uuid4()), [PART_NAME])
        finished = _folder(audio, str(uuid.uuid4()), ["raw.wav", "audio.wav"], age_s=GRACE_S * 100)

        assert await sweep_orphan_uploads(audio, this, grace_s=GRACE_S) == 1
        assert not stale.exists()
        assert fresh.exists()
        assert finished.exists(), "a task's folder, however old, is not the sweep's"

    async def test_no_audio_folder_is_nothing_to_do(self, tmp_path, async_store):
        this, _, _ = await _owners(async_store)
        assert await sweep_orphan_uploads(tmp_path / "audio", this, grace_s=GRACE_S) == 0


class TestBatchStaging:
    async def test_dead_and_stale_batches_go_live_ones_stay(self, tmp_path, async_store):
        this, dead, alive = await _owners(async_store)
        batches = tmp_path / "batches"
        mark = {"owner_file": BATCH_OWNER_NAME}
        orphan = _folder(batches, uuid.uuid4().hex, ["part-0000", "part-0001"], owner=dead, **mark)
        mine = _folder(batches, uuid.uuid4().hex, ["part-0000"], owner=this, **mark)
        elsewhere = _folder(batches, uuid.uuid4().hex, ["part-0000"], owner=alive, **mark)
        unnamed_old = _folder(batches, uuid.uuid4().hex, ["part-0000"], age_s=GRACE_S * 2)
        unnamed_new = _folder(batches, uuid.uuid4().hex, ["part-0000"])

        assert await sweep_orphan_batches(batches, this, grace_s=GRACE_S) == 2
        assert not orphan.exists()
        assert not unnamed_old.exists()
        assert mine.exists()
        assert elsewhere.exists()
        assert unnamed_new.exists()

    async def test_a_file_written_lately_keeps_an_unnamed_folder(self, tmp_path, async_store):
        """The folder's age is that of its newest entry: a part still being written is not old."""
        this, _, _ = await _owners(async_store)
        batches = tmp_path / "batches"
        folder = _folder(batches, uuid.uuid4().hex, ["part-0000"], age_s=GRACE_S * 2)
        (folder / "part-0000").write_bytes(b"more")
        assert await sweep_orphan_batches(batches, this, grace_s=GRACE_S) == 0
        assert folder.exists()
