"""The fetch stage, on a real PostgreSQL and a real local web server: once per task, probed as an upload."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from maie.config import Settings
from maie.errors import FetchNoMediaError, UnsupportedMediaError
from maie.schemas import Feature, FetchArtifact, StageName, StageRecord, TaskRecord, TaskRequest
from maie.worker.runtime import WorkerRuntime
from tests.fixtures.records import put_record


@pytest.fixture
def runtime(store, tmp_path):
    env = {
        "MAIE_DATA_DIR": str(tmp_path),
        "MAIE_FETCH_ALLOW_PRIVATE": "true",
        "MAIE_MODEL_RESIDENCY": "resident",
    }
    runtime = WorkerRuntime(Settings.from_env(env, env_file=None), store)
    runtime.sandbox.start()
    return runtime


def put_task(store, tmp_path, url: str, task_id: str = "t1") -> TaskRecord:
    """A task as the API stores one given by ``url``."""
    record = TaskRecord(
        task_id=task_id,
        tenant="acme",
        submitted_at=datetime.now(UTC),
        request=TaskRequest(features=[Feature.RAW_TRANSCRIPT], asr_backend="whisper", source_url=url),
        audio_path=str(tmp_path / "audio" / task_id / "fetched"),
        stages=[StageRecord(name=s) for s in (StageName.FETCH, StageName.PREPROCESS, StageName.TRANSCRIBE)],
        fetch_url=url,
    )
    put_record(store, record)
    return record


class TestFetchStage:
    def test_the_recording_is_kept_as_an_upload_and_the_url_forgotten(
        self, runtime, store, media_server, tmp_path
    ):
        record = put_task(store, tmp_path, media_server.url("/redirect/1"))

        artifact = runtime.stages.fetch(record)

        stored = store.get("t1")
        assert stored.fetch_url is None, "the URL as given (maybe with credentials) is not kept"
        assert stored.audio_path == artifact.audio_path == str(tmp_path / "audio" / "t1" / "raw.wav")
        assert stored.source == artifact.source
        assert artifact.source.duration_s == pytest.approx(11.0, abs=0.1)
        assert (artifact.via, artifact.redirects, artifact.size_bytes) == (
            "direct",
            2,
            len(media_server.clip),
        )
        assert sorted(p.name for p in Path(artifact.audio_path).parent.iterdir()) == ["raw.wav"]
        assert store.get_artifact("t1", StageName.FETCH, FetchArtifact) == artifact

    def test_a_redelivered_message_reuses_the_file(self, runtime, store, media_server, tmp_path):
        record = put_task(store, tmp_path, media_server.url("/clip.wav"))
        first = runtime.stages.fetch(record)
        requests = len(media_server.requests)

        again = runtime.stages.fetch(record)  # the message came back: same record, URL and all

        assert again == first
        assert len(media_server.requests) == requests, "nothing fetched twice"
        assert store.get("t1").fetch_url is None

    def test_a_page_without_media_fails_and_changes_nothing(self, runtime, store, media_server, tmp_path):
        record = put_task(store, tmp_path, media_server.url("/page-no-media.html"))

        with pytest.raises(FetchNoMediaError):
            runtime.stages.fetch(record)
        assert store.get("t1").fetch_url is not None, "a failed fetch leaves the record as it was"
        assert store.get_artifact("t1", StageName.FETCH, FetchArtifact) is None

    def test_a_file_that_is_not_audio_is_refused_by_the_probe(self, runtime, store, media_server, tmp_path):
        """The server's Content-Type says audio/wav; PyAV, in the sandbox, decides it is not."""
        media_server.clip = b"just some text, not a recording\n" * 100
        record = put_task(store, tmp_path, media_server.url("/clip.wav"))

        with pytest.raises(UnsupportedMediaError):
            runtime.stages.fetch(record)
        assert not (tmp_path / "audio" / "t1" / "raw.wav").exists(), (
            "it never takes the name preprocess reads"
        )
