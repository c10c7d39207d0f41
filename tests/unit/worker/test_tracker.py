"""Stage bookkeeping against a real PostgreSQL: forward-only status, attempts, failures."""

from __future__ import annotations

import pytest

from maie.errors import AudioTooLongError, TransientError, is_permanent
from maie.schemas import StageName, StageState, TaskStatus
from maie.store.sql.deletion import delete_task
from maie.worker.tracker import StageTracker
from tests.fixtures.records import make_record
from tests.fixtures.records import put_record as put
from tests.fixtures.results import make_enhanced


class TestStage:
    """The stage() context."""

    def test_running_then_done(self, store):
        put(store, make_record())
        tracker = StageTracker(store, keep_audio=True)
        with tracker.stage("t1", StageName.PREPROCESS) as record:
            assert record is not None
            inside = store.get("t1")
            assert inside.status == TaskStatus.PREPROCESSING
            assert inside.stage(StageName.PREPROCESS).status == StageState.RUNNING
        done = store.get("t1").stage(StageName.PREPROCESS)
        assert done.status == StageState.DONE
        assert done.attempts == 1
        assert done.duration_s is not None
        assert done.finished_at is not None

    def test_status_never_moves_back(self, store):
        """A redelivered preprocess message after ASR started leaves the status at PROCESSING_ASR."""
        put(store, make_record())
        tracker = StageTracker(store, keep_audio=True)
        with tracker.stage("t1", StageName.TRANSCRIBE):
            pass
        with tracker.stage("t1", StageName.PREPROCESS):
            assert store.get("t1").status == TaskStatus.PROCESSING_ASR

    def test_transient_error_is_noted_and_reraised(self, store):
        put(store, make_record())
        tracker = StageTracker(store, keep_audio=True)
        with pytest.raises(TransientError), tracker.stage("t1", StageName.TRANSCRIBE):
            raise TransientError("model server timed out")
        record = store.get("t1")
        assert record.status == TaskStatus.PROCESSING_ASR
        assert record.stage(StageName.TRANSCRIBE).error == "model server timed out"
        with tracker.stage("t1", StageName.TRANSCRIBE):
            pass
        stage = store.get("t1").stage(StageName.TRANSCRIBE)
        assert stage.attempts == 2
        assert stage.error is None

    def test_permanent_error_fails_the_task(self, store, tmp_path):
        record = make_record()
        record.audio_path = str(tmp_path / "task" / "raw.wav")
        (tmp_path / "task").mkdir()
        (tmp_path / "task" / "raw.wav").write_bytes(b"x")
        put(store, record)
        tracker = StageTracker(store, keep_audio=False)
        with pytest.raises(AudioTooLongError), tracker.stage("t1", StageName.PREPROCESS):
            raise AudioTooLongError("audio is 5 h long; MAIE_MAX_DURATION_S is 4 h")
        failed = store.get("t1")
        assert failed.status == TaskStatus.FAILED
        assert failed.error_code == "audio_too_long"
        assert failed.failed_stage == "preprocess"
        assert failed.stage(StageName.PREPROCESS).status == StageState.FAILED
        assert not (tmp_path / "task").exists(), "audio of a finished task is removed"

    def test_finished_task_is_skipped(self, store):
        record = make_record()
        record.status = TaskStatus.FAILED
        put(store, record)
        tracker = StageTracker(store, keep_audio=True)
        with tracker.stage("t1", StageName.TRANSCRIBE) as skipped:
            assert skipped is None
        assert store.get("t1").stage(StageName.TRANSCRIBE).attempts == 0

    def test_missing_task_is_skipped(self, store):
        with StageTracker(store, keep_audio=True).stage("gone", StageName.PREPROCESS) as skipped:
            assert skipped is None

    def test_fail_is_idempotent(self, store):
        put(store, make_record())
        tracker = StageTracker(store, keep_audio=True)
        tracker.fail("t1", StageName.PREPROCESS, AudioTooLongError("first"))
        tracker.fail("t1", StageName.TRANSCRIBE, RuntimeError("second"))
        record = store.get("t1")
        assert record.error == "first"
        assert record.failed_stage == "preprocess"


@pytest.mark.parametrize(
    ("exc", "permanent"),
    [
        (AudioTooLongError("x"), True),
        (TransientError("x"), False),
        (MemoryError(), True),
        (RuntimeError("x"), False),
    ],
)
def test_is_permanent(exc, permanent):
    assert is_permanent(exc) is permanent


class TestDeletedWhileRunning:
    """A task deleted (DELETE /v1/tasks/{id}) while one of its stages runs."""

    def test_the_stage_ends_quietly_and_its_files_go(self, store, tmp_path):
        record = make_record()
        folder = tmp_path / "audio" / record.task_id
        record.audio_path = str(folder / "raw.wav")
        put(store, record)
        tracker = StageTracker(store, keep_audio=True)
        with tracker.stage(record.task_id, StageName.PREPROCESS):
            store.database.run(delete_task(record.task_id, tenant=record.tenant))
            folder.mkdir(parents=True)
            (folder / "normalized.wav").write_bytes(b"written after the deletion")
            store.put_artifact(record.task_id, StageName.PREPROCESS, make_enhanced("late"))  # raises NotFound
        assert not folder.exists(), "what the stage wrote after the deletion is removed"
        with tracker.stage(record.task_id, StageName.TRANSCRIBE) as later:
            assert later is None, "the next stage's message is skipped"

    def test_an_error_of_a_task_that_still_exists_is_raised(self, store):
        put(store, make_record())
        tracker = StageTracker(store, keep_audio=True)
        with pytest.raises(TransientError), tracker.stage("t1", StageName.TRANSCRIBE):
            raise TransientError("still here")
